//! The channel and a server's GOAWAY (issue 17): a call the GOAWAY cuts ends with the
//! server's reason, and later calls move to a new connection, none failing.
//!
//! The servers here are h2's own (tonic's HTTP/2) and, where h2 cannot say it (a GOAWAY
//! with debug data, as h2 sends on its own when a client floods it with small DATA
//! frames), a socket writing the frames spelled out.

mod common;

use bytes::Bytes;
use common::*;
use rill_testkit::rill_echo::{ECHO_CLIENT, PING_PONG};
use rillrpc::{CallOptions, Channel, Code};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads HTTP/2 frames from a client (after its preface) until one of type `kind`.
async fn read_until_frame(sock: &mut TcpStream, kind: u8) {
    let mut preface = [0u8; 24];
    sock.read_exact(&mut preface).await.unwrap();
    assert_eq!(&preface[..], PREFACE);
    loop {
        let mut head = [0u8; 9];
        sock.read_exact(&mut head).await.unwrap();
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        sock.read_exact(&mut payload).await.unwrap();
        if head[3] == kind {
            return;
        }
    }
}

/// A unary echo over h2: the request's one message comes back, then grpc-status 0.
async fn answer(req: http::Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>) {
    let mut body = req.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    let head = http::Response::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let mut out = respond.send_response(head, false).unwrap();
    out.send_data(Bytes::from(got), false).unwrap();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    out.send_trailers(trailers).unwrap();
}

/// Serves one connection with h2, answering every call with `answer`.
async fn serve_h2(sock: TcpStream) {
    let mut conn = h2::server::handshake(sock).await.unwrap();
    while let Some(Ok((req, respond))) = conn.accept().await {
        tokio::spawn(answer(req, respond));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_by_goaway_says_why_and_the_next_call_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // The first connection: the server's SETTINGS, the client's first HEADERS, then
        // GOAWAY (last stream 1, ENHANCE_YOUR_CALM, debug "too_many_data_frames"), as h2
        // sends it to a client that floods it with small DATA frames; then it hangs up.
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        read_until_frame(&mut sock, 0x1).await;
        let debug = b"too_many_data_frames";
        let mut goaway = vec![0, 0, 8 + debug.len() as u8, 0x7, 0, 0, 0, 0, 0];
        goaway.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0xb]);
        goaway.extend_from_slice(debug);
        sock.write_all(&goaway).await.unwrap();
        drop(sock);
        // Every later connection is served.
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(serve_h2(sock));
        }
    });

    let ch = Channel::new(&format!("http://{addr}")).unwrap();
    let opts = || CallOptions::new().timeout(Duration::from_secs(10));
    let mut cut = ch
        .open(ECHO_CLIENT, rillrpc::Shape::ClientStreaming, opts())
        .unwrap();
    // The GOAWAY can end the call before its message is queued: then the send fails with
    // the call's status, and finish reports the same one.
    let sent = cut.send(req(b"first", 0)).await;
    let status = cut.finish().await;
    if let Err(refused) = sent {
        assert_eq!(refused, status, "the send and the call's end agree");
    }
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("GOAWAY ENHANCE_YOUR_CALM")
            && status.message().contains("too_many_data_frames"),
        "the status names the server's reason: {status:?}"
    );

    let r = ch.unary(PING_PONG, req(b"again", 0), opts()).await.unwrap();
    assert_eq!(resp_payload(&r), b"again");
}

/// A proxy such as nginx (`keepalive_requests`) or a server with a maximum connection
/// age ends a connection gracefully: GOAWAY, then the calls in flight finish. The calls
/// opened meanwhile must go to a new connection: the old one's server no longer takes
/// streams (h2 would open them there, and the server ignore them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_graceful_goaway_new_calls_go_to_a_new_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        // The first connection drains once its first call arrives: GOAWAY goes out before
        // that call's response headers; the call itself runs to its end.
        let (sock, _) = listener.accept().await.unwrap();
        seen.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let mut conn = h2::server::handshake(sock).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            conn.graceful_shutdown();
            tokio::spawn(async move {
                let head = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(())
                    .unwrap();
                let mut out = respond.send_response(head, false).unwrap();
                let mut body = req.into_body();
                let mut n = 0;
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    let _ = body.flow_control().release_capacity(chunk.len());
                    n += chunk.len();
                }
                out.send_data(Bytes::from(frame(0, &resp(n))), false)
                    .unwrap();
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                out.send_trailers(trailers).unwrap();
            });
            while let Some(Ok((req, respond))) = conn.accept().await {
                tokio::spawn(answer(req, respond));
            }
        });
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_h2(sock));
        }
    });

    let ch = Channel::new(&format!("http://{addr}")).unwrap();
    let opts = || CallOptions::new().timeout(Duration::from_secs(10));
    let mut draining = ch
        .open(ECHO_CLIENT, rillrpc::Shape::ClientStreaming, opts())
        .unwrap();
    draining.send(req(b"first", 0)).await.unwrap();
    // The GOAWAY came before these headers: the draining connection takes no new calls,
    // and the channel says it has none that does.
    draining.headers().await.unwrap();
    assert!(!ch.is_connected());
    for i in 0..20u8 {
        let r = ch.unary(PING_PONG, req(&[i], 0), opts()).await.unwrap();
        assert_eq!(resp_payload(&r), [i]);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert!(ch.is_connected());
    // The call in flight on the old connection finishes there.
    draining.send(req(b"second", 0)).await.unwrap();
    draining.close_send();
    let total = draining.recv().await.unwrap().expect("the response");
    assert_eq!(draining.finish().await.code(), Code::Ok);
    let sent = frame(0, &req(b"first", 0)).len() + frame(0, &req(b"second", 0)).len();
    assert_eq!(resp_payload(&total), sent.to_string().as_bytes());
}

/// An echo.Response whose payload is `n` in decimal, as EchoClient answers.
fn resp(n: usize) -> Vec<u8> {
    let text = n.to_string();
    let mut v = vec![0x0a, text.len() as u8];
    v.extend_from_slice(text.as_bytes());
    v
}

/// One HTTP/2 frame from a client: type, flags, stream id.
async fn next_frame(sock: &mut TcpStream) -> (u8, u8, u32) {
    let mut head = [0u8; 9];
    sock.read_exact(&mut head).await.unwrap();
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).await.unwrap();
    (head[3], head[4], stream)
}

/// Reads frames until the HEADERS that open `stream`.
async fn read_until_headers_of(sock: &mut TcpStream, stream: u32) {
    while next_frame(sock).await != (0x1, 0x4, stream) {}
}

/// RFC 9113 §6.8: streams above a GOAWAY's last stream id "were not processed", and may go
/// again on a new connection. Here the second call's stream (3) comes after the GOAWAY's
/// last id (1): the client sends it again on a new connection, and the caller never knows.
/// Before, it failed with UNAVAILABLE "GOAWAY NO_ERROR".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_refused_unprocessed_by_a_goaway_goes_again_on_a_new_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        seen.fetch_add(1, Ordering::SeqCst);
        // SETTINGS (empty), then the first call: answered Trailers-Only, NOT_FOUND.
        sock.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        let mut preface = [0u8; 24];
        sock.read_exact(&mut preface).await.unwrap();
        read_until_headers_of(&mut sock, 1).await;
        let mut block = vec![0x88]; // :status 200 (static table index 8)
        block.extend_from_slice(b"\x0f\x10\x10application/grpc"); // content-type, literal
        block.extend_from_slice(b"\x00\x0bgrpc-status\x015"); // grpc-status: 5, literal
        let mut headers = vec![0, 0, block.len() as u8, 0x1, 0x5, 0, 0, 0, 1];
        headers.extend_from_slice(&block);
        sock.write_all(&headers).await.unwrap();
        // The second call's stream, 3: GOAWAY, last stream 1, NO_ERROR. The connection
        // stays open: only the GOAWAY says that stream 3 was not processed.
        read_until_headers_of(&mut sock, 3).await;
        let goaway = [0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        sock.write_all(&goaway).await.unwrap();
        tokio::spawn(async move {
            let mut rest = Vec::new();
            let _ = sock.read_to_end(&mut rest).await;
        });
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_h2(sock));
        }
    });

    let ch = Channel::new(&format!("http://{addr}")).unwrap();
    let opts = || CallOptions::new().timeout(Duration::from_secs(10));
    let s = ch
        .unary(PING_PONG, req(b"one", 0), opts())
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    // The connection is up: this call opens its stream at once, with its request.
    let r = ch.unary(PING_PONG, req(b"two", 0), opts()).await.unwrap();
    assert_eq!(resp_payload(&r), b"two");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}
