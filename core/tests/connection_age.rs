//! `max_connection_age` and its grace (grpc-go's `MaxConnectionAge`, `MaxConnectionAgeGrace`):
//! a connection past its age is told to go, its clients (ours, tonic's) carry on over a new
//! one, its calls run on through the grace and are ended after it. `max_connection_idle`
//! (grpc-go's `MaxConnectionIdle`): an idle connection goes, a busy one stays.

mod common;

use common::*;
use rill_testkit::rill_echo::{ECHO, PING_PONG};
use rillrpc::{
    CallOptions, Channel, ChannelOptions, HttpVersion, Protocol, ServerBuilder, ServerCall,
    ServerOptions, Shape, Status,
};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AGE: Duration = Duration::from_millis(300);

/// An echo server (PingPong, Echo) with `opts`, recording the client address of each call:
/// a new address is a new connection.
fn server(opts: ServerOptions) -> (Arc<rillrpc::Server>, Arc<Mutex<Vec<SocketAddr>>>) {
    let b = ServerBuilder::new(opts)
        .register(PING_PONG, Shape::Unary)
        .register(ECHO, Shape::Bidi);
    let server = Arc::new(b.bind("127.0.0.1:0").unwrap());
    let peers = Arc::new(Mutex::new(Vec::new()));
    let (serving, seen) = (server.clone(), peers.clone());
    tokio::spawn(async move {
        serving
            .serve(move |mut call: ServerCall| {
                seen.lock().unwrap().push(call.peer_addr());
                async move {
                    while let Ok(Some(m)) = call.recv().await {
                        if call.send(m).await.is_err() {
                            return;
                        }
                    }
                    let _ = call.finish(Status::ok());
                }
            })
            .await
    });
    (server, peers)
}

fn aging(grace: Option<Duration>) -> ServerOptions {
    ServerOptions {
        max_connection_age: Some(AGE),
        max_connection_age_grace: grace,
        ..Default::default()
    }
}

fn connections(peers: &Mutex<Vec<SocketAddr>>) -> usize {
    peers.lock().unwrap().iter().collect::<HashSet<_>>().len()
}

#[tokio::test]
async fn our_client_moves_to_a_new_connection_when_the_old_one_ages() {
    for version in [HttpVersion::Http2, HttpVersion::Http1] {
        let (server, peers) = server(aging(None));
        let opts = ChannelOptions {
            protocol: Protocol::Connect,
            http_version: version,
            ..Default::default()
        };
        let ch = Channel::with_options(&format!("http://{}", server.local_addr()), opts).unwrap();
        for i in 0..3u8 {
            let r = ch
                .unary(PING_PONG, req(&[i], 0), CallOptions::default())
                .await
                .unwrap_or_else(|s| panic!("{version:?}, call {i}: {s:?}"));
            assert_eq!(r, req(&[i], 0), "{version:?}");
            if i == 0 {
                tokio::time::sleep(AGE * 2).await;
            }
        }
        assert_eq!(connections(&peers), 2, "{version:?}: {:?}", peers.lock());
    }
}

#[tokio::test]
async fn tonics_client_carries_on_over_a_new_connection() {
    let (server, peers) = server(aging(None));
    let mut c = tonic_client(server.local_addr()).await;
    for i in 0..3 {
        let got = c.ping_pong(request(i)).await.unwrap().into_inner();
        assert_eq!(got.payload, vec![i]);
        if i == 0 {
            tokio::time::sleep(AGE * 2).await;
        }
    }
    assert_eq!(connections(&peers), 2, "{:?}", peers.lock());
}

/// A call open when the age comes runs on through the grace, then is ended; without a
/// grace it runs to its own end.
#[tokio::test]
async fn a_call_runs_on_through_the_grace_and_is_ended_after_it() {
    for grace in [Some(Duration::from_millis(600)), None] {
        let (server, _) = server(aging(grace));
        let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
        let mut call = ch.open(ECHO, Shape::Bidi, CallOptions::default()).unwrap();
        // Past the age (GOAWAY sent), inside the grace: the call still answers.
        tokio::time::sleep(AGE + AGE / 2).await;
        call.send(req(b"inside", 0)).await.unwrap();
        assert_eq!(call.recv().await.unwrap(), Some(req(b"inside", 0)));
        tokio::time::sleep(Duration::from_millis(800)).await;
        match grace {
            Some(_) => {
                let ended = async {
                    let _ = call.send(req(b"after", 0)).await;
                    call.recv().await
                };
                let r = tokio::time::timeout(Duration::from_secs(5), ended).await;
                let s = r.expect("the call ended").unwrap_err();
                assert_ne!(s.code(), rillrpc::Code::Ok, "{s:?}");
            }
            None => {
                call.send(req(b"later", 0)).await.unwrap();
                assert_eq!(call.recv().await.unwrap(), Some(req(b"later", 0)));
                call.close_send();
                assert_eq!(call.recv().await.unwrap(), None);
            }
        }
    }
}

/// `max_connection_idle` (grpc-go's `MaxConnectionIdle`): a connection with a call in
/// flight stays past the limit; once its last call has ended it is told to go, and the
/// client's next call goes over a new one.
#[tokio::test]
async fn an_idle_connection_goes_and_a_busy_one_stays() {
    const IDLE: Duration = Duration::from_millis(200);
    let (server, peers) = server(ServerOptions {
        max_connection_idle: Some(IDLE),
        ..Default::default()
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let mut call = ch.open(ECHO, Shape::Bidi, CallOptions::default()).unwrap();
    call.send(req(b"open", 0)).await.unwrap();
    assert_eq!(call.recv().await.unwrap(), Some(req(b"open", 0)));
    tokio::time::sleep(IDLE * 3).await;
    // Busy all along: the same connection answers.
    ch.unary(PING_PONG, req(b"busy", 0), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(connections(&peers), 1, "{:?}", peers.lock());
    call.close_send();
    assert_eq!(call.recv().await.unwrap(), None);
    tokio::time::sleep(IDLE * 3).await;
    assert!(!ch.is_connected(), "the idle connection was closed");
    ch.unary(PING_PONG, req(b"back", 0), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(connections(&peers), 2, "{:?}", peers.lock());
}

fn request(i: u8) -> rill_testkit::echo::Request {
    rill_testkit::echo::Request {
        payload: vec![i],
        count: 0,
    }
}

/// A server that keeps telling connections to go (nginx's `keepalive_requests` does so
/// after 1,000 requests) fails none of the calls of a client that keeps calling: a stream
/// the GOAWAY refused never reached a handler, and goes again on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_fails_while_connections_keep_aging() {
    let (server, peers) = server(ServerOptions {
        max_connection_age: Some(Duration::from_millis(20)),
        ..Default::default()
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for i in 0..300u16 {
                let msg = req(&[t, (i >> 8) as u8, i as u8], 0);
                match ch
                    .unary(PING_PONG, msg.clone(), CallOptions::default())
                    .await
                {
                    Ok(r) if r == msg => {}
                    other => failed.push(format!("{t}/{i}: {other:?}")),
                }
            }
            failed
        }));
    }
    let mut failed = Vec::new();
    for t in tasks {
        failed.extend(t.await.unwrap());
    }
    let n = connections(&peers);
    assert!(
        failed.is_empty(),
        "{} of 2400 failed over {n} connections: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(n > 2, "the connections aged: {n}");
}

/// A channel whose keepalive pings are too frequent for the server backs off, as gRPC's
/// keepalive design (A8) asks: each GOAWAY ENHANCE_YOUR_CALM doubles the interval of its
/// next connections. Pinging every 50 ms against a server that permits 300 ms, with a
/// call every 500 ms (whose answer forgives the strikes before it), the channel's first
/// connection is closed at 200 ms and its second (100 ms) at 400 ms; its third (200 ms)
/// lasts. Without the back-off every call would need a new connection: 8.
#[tokio::test]
async fn our_client_pings_less_often_when_the_server_says_calm_down() {
    let (server, peers) = server(ServerOptions {
        permit_keepalive_time: Duration::from_millis(300),
        permit_keepalive_without_calls: true,
        ..Default::default()
    });
    let opts = ChannelOptions {
        keepalive_interval: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let ch = Channel::with_options(&format!("http://{}", server.local_addr()), opts).unwrap();
    let mut last = None;
    for i in 0..8u8 {
        last = Some(
            ch.unary(PING_PONG, req(&[i], 0), CallOptions::default())
                .await,
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(matches!(last, Some(Ok(_))), "{last:?}");
    let n = connections(&peers);
    assert!((2..=4).contains(&n), "{n} connections");
}
