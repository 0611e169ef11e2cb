//! A channel fed what one server connection sends: the server's side of the `server`
//! target. A process-wide listener on 127.0.0.1 answers each connection with the input's
//! bytes, whatever the client asked, in one or two rounds, each written once the client
//! pauses (3 ms), then shuts its write side. The client makes one call over a new
//! channel, of the protocol and shape the input's first two bytes pick, and reads it to its
//! end. This goes the way a server's bytes go in the client: HTTP/2 responses and trailers
//! (h2's glue), HTTP/1.1 responses (hyper's), gRPC-Web trailers in the body, Connect's
//! end-stream message and unary error bodies, a TTHeader Streaming connection's frames and
//! a PingPong reply.
//!
//! Input: a protocol byte (modulo 6: gRPC; gRPC-Web and Connect over HTTP/1.1 and over
//! HTTP/2; TTHeader), a shape byte (modulo 4: unary, client streaming, server streaming,
//! bidi), a big-endian u16 `n`, then the bytes the server sends: the first `n` of them
//! as its first round, the rest as its second (one round if `n` is 0).
//!
//! Checks: nothing panics (libfuzzer-sys's hook aborts on a panic on any thread), and
//! every call ends, with its messages or a status, within `ENDS_WITHIN` past its 2 s
//! deadline. RILL_FUZZ_TRACE=1 prints each call's end, for reading a reproducer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rillrpc::{Bytes, CallOptions, Channel, ChannelOptions, HttpVersion, Protocol, Shape, Status};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(2);
/// How long the client may be quiet before the server takes its request as all sent.
const PAUSE: Duration = Duration::from_millis(3);
/// How long the server waits for the client to begin before it writes its round anyway
/// (a client waiting for the server would wait for ever).
const WAIT: Duration = Duration::from_millis(50);
/// How long past its deadline a call may take to end: far more than it needs, so that a
/// loaded machine does not fail the run.
const ENDS_WITHIN: Duration = Duration::from_secs(8);

/// The rounds of bytes for the next connection the listener accepts: set for each input,
/// taken by its connection (so a connection made again gets none, and an input whose call
/// made no connection leaves nothing behind for the next).
static NEXT: Mutex<Option<Vec<Vec<u8>>>> = Mutex::new(None);

/// The listener's address, once it listens.
fn target() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        std::thread::spawn(move || listen(listener));
        addr
    })
}

/// Answers each connection with the rounds set for it, on a thread of its own.
fn listen(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let rounds = NEXT
            .lock()
            .expect("not poisoned")
            .take()
            .unwrap_or_default();
        std::thread::spawn(move || answer(conn, &rounds));
    }
}

/// Writes each round once the client has sent something and paused (or sent nothing for
/// `WAIT`), as a server reads a request before it answers (an answer before the request is
/// a race the client may lose in more than one way; over HTTP/2 the client sends its
/// request only once it has the server's SETTINGS, the first round), then shuts the write
/// side.
fn answer(mut conn: TcpStream, rounds: &[Vec<u8>]) {
    let _ = conn.set_nodelay(true);
    let mut sink = [0u8; 4096];
    for round in rounds {
        let _ = conn.set_read_timeout(Some(WAIT));
        if matches!(conn.read(&mut sink), Ok(n) if n > 0) {
            let _ = conn.set_read_timeout(Some(PAUSE));
            while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
        }
        if conn.write_all(round).is_err() {
            break;
        }
    }
    let _ = conn.shutdown(Shutdown::Write);
    // Read what the client sends until it closes: closing with its bytes unread would
    // reset the connection, and the client might not see the answer.
    let _ = conn.set_read_timeout(Some(DEADLINE + ENDS_WITHIN));
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
}

fn channel(addr: SocketAddr, protocol: u8) -> Channel {
    let (protocol, http_version) = match protocol % 6 {
        0 => (Protocol::Grpc, HttpVersion::Http2),
        1 => (Protocol::GrpcWeb, HttpVersion::Http1),
        2 => (Protocol::GrpcWeb, HttpVersion::Http2),
        3 => (Protocol::Connect, HttpVersion::Http1),
        4 => (Protocol::Connect, HttpVersion::Http2),
        _ => (Protocol::Ttheader, HttpVersion::Http2),
    };
    let opts = ChannelOptions {
        protocol,
        http_version,
        // One connection, the one the input answers: no second try on another.
        initial_backoff: Duration::from_secs(60),
        max_backoff: Duration::from_secs(60),
        ..ChannelOptions::default()
    };
    Channel::with_options(&format!("http://{addr}"), opts).expect("a channel")
}

const REQUEST: &[u8] = b"\x0a\x02hi";

/// One call of `shape` to its end: what it received, or its status.
async fn call(ch: &Channel, shape: Shape) -> Result<Vec<Bytes>, Status> {
    let opts = CallOptions::default().timeout(DEADLINE);
    let path = match shape {
        Shape::Unary => "/echo.TestService/PingPong",
        Shape::ClientStreaming => "/echo.TestService/EchoClient",
        Shape::ServerStreaming => "/echo.TestService/EchoServer",
        Shape::Bidi => "/echo.TestService/Echo",
    };
    if shape == Shape::Unary {
        return ch
            .unary(path, Bytes::from_static(REQUEST), opts)
            .await
            .map(|m| vec![m]);
    }
    let mut call = ch.open(path, shape, opts)?;
    // A send fails once the call has ended; receiving says how.
    let _ = call.send(Bytes::from_static(REQUEST)).await;
    call.close_send();
    let mut got = Vec::new();
    while let Some(m) = call.recv().await? {
        got.push(m);
    }
    Ok(got)
}

fuzz_target!(|data: &[u8]| {
    let [protocol, shape, hi, lo, answer @ ..] = data else {
        return;
    };
    let first = usize::from(u16::from_be_bytes([*hi, *lo])).min(answer.len());
    let rounds = match answer.split_at(first) {
        ([], all) => vec![all.to_vec()],
        (first, rest) => vec![first.to_vec(), rest.to_vec()],
    };
    let shape = match shape % 4 {
        0 => Shape::Unary,
        1 => Shape::ClientStreaming,
        2 => Shape::ServerStreaming,
        _ => Shape::Bidi,
    };
    let addr = target();
    *NEXT.lock().expect("not poisoned") = Some(rounds);
    let ch = channel(addr, *protocol);
    let ended = rillrpc::runtime::block_on(async {
        tokio::time::timeout(DEADLINE + ENDS_WITHIN, call(&ch, shape)).await
    });
    let Ok(result) = ended else {
        panic!("a {shape:?} call did not end {ENDS_WITHIN:?} past its deadline");
    };
    if std::env::var_os("RILL_FUZZ_TRACE").is_some() {
        eprintln!("{shape:?}: {result:?}");
    }
});
