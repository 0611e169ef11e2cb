//! Peers that send one DATA frame per message (grpc-go's client and server do), several
//! streams taking turns, to readers that pause: h2 keeps each unread frame apart and
//! guards its memory with a budget per small frame, which such frames spent though they
//! were within the flow-control windows (see `transport/merge.rs`). The frames are written
//! with h2 as such a peer writes them: 16-byte messages, a frame each, three streams.

use bytes::Bytes;
use rill_testkit::rill_echo::{ECHO_CLIENT, ECHO_SERVER};
use rillrpc::{CallOptions, Channel, ServerOptions, Status};
use std::time::Duration;

const MESSAGES: usize = 40_000;

/// A message's frame: the five-byte prefix and 16 bytes of message.
fn message() -> Bytes {
    Bytes::from([&[0u8, 0, 0, 0, 16][..], &[9; 16]].concat())
}

/// Sends `MESSAGES` one-message frames on `out` as its window lets them go; the last one
/// ends the stream when `end`.
async fn one_frame_each(mut out: h2::SendStream<Bytes>, end: bool) -> h2::SendStream<Bytes> {
    let frame = message();
    for i in 0..MESSAGES {
        out.reserve_capacity(frame.len());
        while out.capacity() < frame.len() {
            std::future::poll_fn(|cx| out.poll_capacity(cx))
                .await
                .expect("the stream is open")
                .expect("room on the stream");
        }
        out.send_data(frame.clone(), end && i + 1 == MESSAGES)
            .unwrap();
    }
    out
}

/// A server whose handlers read nothing until `go` says so, then answer how many
/// messages came.
fn paused_server() -> (
    std::sync::Arc<rillrpc::Server>,
    tokio::sync::watch::Sender<bool>,
) {
    let (go, gone) = tokio::sync::watch::channel(false);
    let server = std::sync::Arc::new(
        rill_testkit::rill_echo::builder(ServerOptions::default())
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let s = server.clone();
    tokio::spawn(async move {
        while let Some(mut call) = s.accept().await {
            let mut gone = gone.clone();
            tokio::spawn(async move {
                let _ = gone.wait_for(|g| *g).await;
                let mut n = 0u32;
                while let Ok(Some(_)) = call.recv().await {
                    n += 1;
                }
                let _ = call.send(Bytes::from(n.to_be_bytes().to_vec())).await;
                let _ = call.finish(Status::ok());
            });
        }
    });
    (server, go)
}

/// Regression: a client sending one frame per message on streams whose handlers paused
/// lost its connection: our server closed it with GOAWAY ENHANCE_YOUR_CALM
/// "too_many_data_frames" after about 70,000 unread frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_a_frame_per_message_to_paused_handlers_loses_nothing() {
    let (server, go) = paused_server();
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut calls = Vec::new();
    for _ in 0..3 {
        let req = http::Request::post(format!("http://rill{ECHO_CLIENT}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (resp, out) = client.send_request(req, false).unwrap();
        calls.push((resp, tokio::spawn(one_frame_each(out, true))));
    }
    // Long enough for each stream to fill its window with frames nobody reads.
    tokio::time::sleep(Duration::from_secs(2)).await;
    go.send(true).unwrap();
    for (resp, sent) in calls {
        let resp = match resp.await {
            Ok(r) => r,
            Err(e) => panic!("the call failed ({e}); the connection: {:?}", conn.await),
        };
        let mut body = resp.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = body.data().await {
            got.extend_from_slice(&chunk.expect("the response's data"));
        }
        let n = (MESSAGES as u32).to_be_bytes();
        assert_eq!(got, [&[0u8, 0, 0, 0, 4][..], &n].concat());
        sent.await.unwrap();
    }
    assert!(!conn.is_finished(), "the connection was closed");
}

/// Regression, the same on our client: a server sending one frame per message on server
/// streams the application had not read yet lost the connection (our client sent GOAWAY
/// ENHANCE_YOUR_CALM), and every call on it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sending_a_frame_per_message_to_an_unread_client_loses_nothing() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        while let Some(Ok((_req, mut respond))) = conn.accept().await {
            let head = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let out = respond.send_response(head, false).unwrap();
            tokio::spawn(async move {
                let mut out = one_frame_each(out, false).await;
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                out.send_trailers(trailers).unwrap();
            });
        }
    });
    let ch = Channel::new(&format!("http://{addr}")).unwrap();
    let mut calls = Vec::new();
    for _ in 0..3 {
        let call = ch.server_streaming(ECHO_SERVER, Bytes::new(), CallOptions::new());
        calls.push(call.await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for mut call in calls {
        let mut n = 0;
        while let Some(m) = call.recv().await.expect("the stream's messages") {
            assert_eq!(m.len(), 16);
            n += 1;
        }
        assert_eq!(n, MESSAGES);
    }
}
