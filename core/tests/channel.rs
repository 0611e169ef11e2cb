//! The channel's connection life: lazy connect, fail-fast and wait-for-ready, reconnect
//! after the server comes back, keepalive detecting a dead peer.

mod common;

use bytes::Bytes;
use common::*;
use rill_testkit::rill_echo::{self, PING_PONG};
use rillrpc::{CallOptions, Channel, ChannelOptions, Code, ServerOptions};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn connects_lazily() {
    let ch = Channel::new("http://127.0.0.1:1").unwrap();
    assert!(!ch.is_connected());
}

#[tokio::test]
async fn refused_connection_fails_fast_as_unavailable() {
    let ch = Channel::new("http://127.0.0.1:1").unwrap();
    let err = ch
        .unary(PING_PONG, req(b"", 0), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("127.0.0.1:1"), "{err}");
}

/// Regression (found by the c_abi fuzzer, fuzz/regressions/c_abi/
/// open-with-request-to-a-dead-server): opening a call with its request on a channel whose
/// connection fails gave the connection's error from the open itself, now and then (when
/// the writer had failed the call before the request was queued), and no call. The open
/// hands back a call every time; receiving says UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_with_request_to_a_dead_server_gives_a_call_that_fails() {
    let ch = Channel::new("http://127.0.0.1:1").unwrap();
    for _ in 0..50 {
        let mut call = ch
            .open_with_request(PING_PONG, rillrpc::Shape::Unary, CallOptions::new(), b"x")
            .expect("a call, whatever the connection does");
        let err = call.recv().await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err}");
    }
}

#[tokio::test]
async fn invalid_targets_are_refused() {
    assert!(Channel::new("ftp://x:1").is_err());
    assert!(Channel::new("not a uri").is_err());
}

/// TTHeader runs over plain TCP: a channel refuses it over TLS as it opens, rather than
/// when a call needs the wire.
#[tokio::test]
async fn a_channel_over_ttheader_refuses_tls_as_it_opens() {
    let opts = || rillrpc::ChannelOptions {
        protocol: rillrpc::Protocol::Ttheader,
        ..Default::default()
    };
    let e = Channel::with_options("https://127.0.0.1:1", opts()).unwrap_err();
    assert!(
        e.to_string().contains("TTHeader runs over plain TCP"),
        "{e}"
    );
    assert!(Channel::with_options("http://127.0.0.1:1", opts()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_the_server_comes_back() {
    // Find a free port, then serve on it only after the first call failed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = ChannelOptions {
        initial_backoff: Duration::from_millis(100),
        ..Default::default()
    };
    let ch = Channel::with_options(&format!("http://127.0.0.1:{port}"), opts).unwrap();
    let err = ch
        .unary(PING_PONG, req(b"", 0), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    let server = Arc::new(
        rill_echo::builder(ServerOptions::default())
            .bind(&format!("127.0.0.1:{port}"))
            .unwrap(),
    );
    tokio::spawn(rill_echo::serve(server.clone()));
    // wait_for_ready rides out the backoff instead of failing fast.
    let r = ch
        .unary(
            PING_PONG,
            req(b"back", 0),
            CallOptions::new()
                .wait_for_ready(true)
                .timeout(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(resp_payload(&r), b"back");
    assert!(ch.is_connected());

    // The server goes away and comes back on the same port: the channel reconnects.
    server.shutdown(Duration::from_millis(100)).await;
    let server = Arc::new(
        rill_echo::builder(ServerOptions::default())
            .bind(&format!("127.0.0.1:{port}"))
            .unwrap(),
    );
    tokio::spawn(rill_echo::serve(server.clone()));
    let r = ch
        .unary(
            PING_PONG,
            req(b"again", 0),
            CallOptions::new()
                .wait_for_ready(true)
                .timeout(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(resp_payload(&r), b"again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_detects_a_peer_that_stopped_answering() {
    // An HTTP/2 server that completes the handshake, then never reads again: PINGs go
    // unanswered, as with a peer whose host vanished without closing TCP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        // Take the first request so the call is on the wire, then stop polling.
        let _req = conn.accept().await;
        std::future::pending::<()>().await;
        drop(conn);
    });
    let opts = ChannelOptions {
        keepalive_interval: Some(Duration::from_millis(100)),
        keepalive_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let ch = Channel::with_options(&format!("http://{addr}"), opts).unwrap();
    let mut call = ch
        .bidi("/echo.TestService/Echo", CallOptions::new())
        .unwrap();
    call.send(Bytes::from_static(b"x")).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), call.recv())
        .await
        .expect("keepalive ends the call")
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_server_limit_wait_for_a_slot() {
    let server = rill_server(ServerOptions {
        max_concurrent_streams: 2,
        ..Default::default()
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let mut open = Vec::new();
    for _ in 0..2 {
        let call = ch.bidi(rill_echo::ECHO, CallOptions::new()).unwrap();
        call.send(req(b"hold", 0)).await.unwrap();
        open.push(call);
    }
    for c in open.iter_mut() {
        assert!(c.recv().await.unwrap().is_some());
    }
    // A third call waits for a slot; it completes once one of the first two ends.
    let ch2 = ch.clone();
    let third = tokio::spawn(async move {
        ch2.unary(PING_PONG, req(b"third", 0), CallOptions::new())
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!third.is_finished());
    let mut first = open.remove(0);
    first.close_send();
    assert!(first.finish().await.is_ok());
    let r = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp_payload(&r), b"third");
}

#[tokio::test]
async fn oversized_metadata_is_refused_by_the_server() {
    let server = rill_server(ServerOptions {
        max_header_list_size: 1024,
        ..Default::default()
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let mut md = rillrpc::Metadata::new();
    md.append_ascii("big", &"x".repeat(4000)).unwrap();
    let err = ch
        .unary(PING_PONG, req(b"", 0), CallOptions::new().metadata(md))
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    ch.unary(PING_PONG, req(b"small", 0), CallOptions::new())
        .await
        .unwrap();
}

/// Regression: a peer that sends one DATA frame per message (as grpcio does) to a reader
/// that is slow for a moment spent h2's default small-frame budget, and the client closed
/// the connection with ENHANCE_YOUR_CALM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_data_frames_to_a_slow_reader() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        while let Some(Ok((_req, mut respond))) = conn.accept().await {
            tokio::spawn(async move {
                let resp = http::Response::builder()
                    .status(200)
                    .header("content-type", "application/grpc")
                    .body(())
                    .unwrap();
                let mut s = respond.send_response(resp, false).unwrap();
                for _ in 0..200 {
                    s.send_data(Bytes::from(frame(0, &[7u8; 16])), false)
                        .unwrap();
                }
                let mut t = http::HeaderMap::new();
                t.insert("grpc-status", "0".parse().unwrap());
                s.send_trailers(t).unwrap();
            });
        }
    });
    let ch = Channel::new(&format!("http://{addr}")).unwrap();
    let mut calls = Vec::new();
    for _ in 0..100 {
        let c = ch
            .bidi("/echo.TestService/Echo", CallOptions::new())
            .unwrap();
        c.close_send();
        calls.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for mut c in calls {
        let mut n = 0;
        while c.recv().await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 200);
    }
}

/// At `max_connections` the server accepts no more until a connection ends: a peer that
/// holds the only place past its handshake (its preface sent, then silent) keeps a second
/// client waiting, and the second is served once the first goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_at_its_connection_limit_accepts_once_a_connection_ends() {
    use tokio::io::AsyncWriteExt;
    let server = rill_server(ServerOptions {
        max_connections: Some(1),
        handshake_timeout: Duration::from_secs(60),
        ..Default::default()
    });
    let addr = server.local_addr();
    let mut holder = tokio::net::TcpStream::connect(addr).await.unwrap();
    holder
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // Give the server the time to accept the holder and read its preface (a second client
    // that came first would hold the place instead).
    tokio::time::sleep(Duration::from_millis(200)).await;

    let ch = Channel::new(&format!("http://{addr}")).unwrap();
    let opts = || CallOptions::new().timeout(Duration::from_millis(300));
    let waiting = ch.unary(PING_PONG, req(b"a", 0), opts()).await;
    assert_eq!(
        waiting.as_ref().map(drop).map_err(|s| s.code()),
        Err(Code::DeadlineExceeded),
        "{waiting:?}"
    );

    drop(holder);
    let served = ch
        .unary(
            PING_PONG,
            req(b"b", 0),
            CallOptions::new().timeout(Duration::from_secs(10)),
        )
        .await;
    assert!(served.is_ok(), "{served:?}");
}

/// Regression (the attack suite's half-preface and fd-exhaustion floods): connections that
/// never finish their handshake held every place until their handshake timeout, and a
/// normal client timed out behind them. At the limit, the oldest connection still in its
/// handshake (no call in flight, nothing lost) now gives its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_still_in_its_handshake_gives_its_place_at_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = rill_server(ServerOptions {
        max_connections: Some(4),
        handshake_timeout: Duration::from_secs(60),
        ..Default::default()
    });
    let addr = server.local_addr();
    // Four connections, each half a preface, then silent: every place taken.
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut t = tokio::net::TcpStream::connect(addr).await.unwrap();
        t.write_all(b"PRI * HTTP").await.unwrap();
        holders.push(t);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ch = Channel::new(&format!("http://{addr}")).unwrap();
    let served = ch
        .unary(
            PING_PONG,
            req(b"a", 0),
            CallOptions::new().timeout(Duration::from_secs(5)),
        )
        .await;
    assert!(served.is_ok(), "{served:?}");
    // The oldest holder was closed for it; the youngest still waits in its handshake.
    let mut byte = [0u8; 1];
    let oldest = tokio::time::timeout(Duration::from_secs(5), holders[0].read(&mut byte));
    assert_eq!(oldest.await.expect("closed in time").unwrap(), 0);
    let youngest = tokio::time::timeout(Duration::from_millis(100), holders[3].read(&mut byte));
    assert!(youngest.await.is_err(), "the youngest is still open");
}

/// A server that answers every request with an error whose message is the authority it
/// was called by: `:authority` over HTTP/2 (a gRPC Trailers-Only response), `Host` over
/// HTTP/1.1 (a Connect unary error).
async fn authority_echo() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 3];
                if tcp.peek(&mut first).await.unwrap_or(0) < 3 {
                    return;
                }
                if &first == b"PRI" {
                    let mut conn = h2::server::handshake(tcp).await.unwrap();
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        let authority = req.uri().authority().unwrap().to_string();
                        let resp = http::Response::builder()
                            .header("content-type", "application/grpc")
                            .header("grpc-status", "5")
                            .header("grpc-message", authority)
                            .body(())
                            .unwrap();
                        let _ = respond.send_response(resp, true);
                    }
                    return;
                }
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = tcp.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the request head ends");
                    head.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let host = head
                    .lines()
                    .find_map(|l| l.strip_prefix("host: "))
                    .unwrap_or("")
                    .to_owned();
                let body = format!("{{\"code\":\"not_found\",\"message\":\"{host}\"}}");
                let resp = format!(
                    "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

/// Kitex's gRPC server routes by `:authority`, which its clients set to the destination
/// service's name ("echo" in `interop/kitex`): a channel can send a name in place of the
/// target's `host:port`, over HTTP/2 and, as `Host`, over HTTP/1.1.
#[tokio::test]
async fn a_channel_calls_by_the_authority_it_is_given() {
    let addr = authority_echo().await;
    let target = format!("http://{addr}");
    let cases = [
        (
            rillrpc::Protocol::Grpc,
            rillrpc::HttpVersion::Http2,
            None,
            addr.to_string(),
        ),
        (
            rillrpc::Protocol::Grpc,
            rillrpc::HttpVersion::Http2,
            Some("echo"),
            "echo".into(),
        ),
        (
            rillrpc::Protocol::Connect,
            rillrpc::HttpVersion::Http1,
            Some("echo.svc:8888"),
            "echo.svc:8888".into(),
        ),
        (
            rillrpc::Protocol::Connect,
            rillrpc::HttpVersion::Http1,
            None,
            addr.to_string(),
        ),
    ];
    for (protocol, http_version, authority, want) in cases {
        let opts = ChannelOptions {
            protocol,
            http_version,
            authority: authority.map(str::to_owned),
            ..Default::default()
        };
        let ch = Channel::with_options(&target, opts).unwrap();
        let err = ch
            .unary(PING_PONG, req(b"", 0), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err}");
        assert_eq!(err.message(), want, "{protocol:?} over {http_version:?}");
    }
    for bad in ["a b", "x/y", "user@host", ""] {
        let opts = ChannelOptions {
            authority: Some(bad.into()),
            ..Default::default()
        };
        let err = Channel::with_options(&target, opts).unwrap_err();
        assert!(err.to_string().contains("authority"), "{bad:?}: {err}");
    }
}

/// Regression: a connection counted as ready once TCP connected and our own HTTP/2 preface
/// was written, so calls went to a peer that accepted the connection and said nothing (a
/// proxy whose backend is down, a frozen server's listen backlog) and hung there until
/// their deadline. Found by the faults suite's link-down case. The server's preface must
/// come first (RFC 9113 §3.4), as grpc-go waits for it: until then the channel is
/// connecting, a fail-fast call fails UNAVAILABLE once the attempt times out, and a peer
/// that closes without a word fails the attempt at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_accepts_and_says_nothing_is_not_a_ready_connection() {
    use tokio::io::AsyncReadExt;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    // Accepts, reads whatever comes (our preface), answers nothing; closes the second.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = silent.accept().await {
            if held.len() == 1 {
                drop(sock);
                continue;
            }
            let mut buf = [0u8; 256];
            let _ = sock.read(&mut buf).await;
            held.push(sock);
        }
    });
    let opts = ChannelOptions {
        connect_timeout: Duration::from_millis(300),
        initial_backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let ch = Channel::with_options(&format!("http://{addr}"), opts).unwrap();
    let deadline = CallOptions::new().timeout(Duration::from_secs(10));
    let err = ch
        .unary(PING_PONG, req(b"", 0), deadline.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("timed out"), "{err:?}");
    // The next attempt meets a peer that closes without a word.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = ch
        .unary(PING_PONG, req(b"", 0), deadline)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}
