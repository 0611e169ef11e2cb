//! A server's port fed what one client connection sends, whatever protocol its bytes make
//! it: HTTP/2 prior knowledge (gRPC, gRPC-Web, Connect), HTTP/1.1 (the same, Connect GET,
//! CORS preflights), TTHeader Streaming or Thrift PingPong (TTHeader, Framed, Buffered,
//! KitexProtobuf). Where the parser targets feed one parser each, this one goes through the
//! port's own path: telling the protocols apart, the connections' state machines (h2's and
//! hyper's glue, TTHeader Streaming's streams, PingPong's reader), routing and the calls.
//!
//! The input is written over loopback to a process-wide server serving echo.proto's
//! methods (and echo.thrift's, the same paths) with handlers that echo the bytes they get;
//! once the server pauses, the connection's write side is shut and its answer read to the
//! end.
//!
//! Checks:
//! - nothing panics, in any of the server's tasks (libfuzzer-sys's hook aborts on a panic
//!   on any thread);
//! - the server closes the connection once its peer has said all it will: the answer ends
//!   (EOF or a reset) within `CLOSE_WITHIN` of the shutdown;
//! - every 64 inputs, and after any input the server closed by a reset, a well-formed call
//!   over a new gRPC connection and one over a new TTHeader connection still succeed: bad
//!   bytes end their own connection, never the server.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rillrpc::{
    BizStatus, CallOptions, Channel, ChannelOptions, Code, Cors, Idempotency, Metadata, Protocol,
    ServerBuilder, ServerCall, ServerOptions, Shape, Status,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the server may take to close a connection after its peer's end: far longer
/// than it needs (milliseconds), so that a loaded machine does not fail the run.
const CLOSE_WITHIN: Duration = Duration::from_secs(8);

/// How long the server may be quiet before the client ends the connection: enough for
/// the calls an input makes to answer, mostly.
const PAUSE: Duration = Duration::from_millis(3);

/// Small, so that inputs reach the limits: a message, and a connection's unread bytes.
const MAX_MESSAGE: usize = 4 * 1024;

struct Target {
    addr: SocketAddr,
    grpc: Channel,
    ttheader: Channel,
}

fn target() -> &'static Target {
    static T: OnceLock<Target> = OnceLock::new();
    T.get_or_init(|| {
        let opts = ServerOptions {
            max_recv_message_size: MAX_MESSAGE,
            cors: Some(Cors::any_origin()),
            ..ServerOptions::default()
        };
        let server = ServerBuilder::new(opts)
            .register("/echo.TestService/PingPong", Shape::Unary)
            .register("/echo.TestService/Echo", Shape::Bidi)
            .register("/echo.TestService/EchoClient", Shape::ClientStreaming)
            .register("/echo.TestService/EchoServer", Shape::ServerStreaming)
            .register_with(
                "/echo.TestService/Get",
                Shape::Unary,
                Idempotency::NoSideEffects,
            )
            .bind("127.0.0.1:0")
            .expect("a loopback port");
        let addr = server.local_addr();
        std::thread::spawn(move || {
            rillrpc::runtime::block_on(server.serve(|mut call| async move {
                let status = serve(&mut call).await.unwrap_or_else(|s| s);
                let _ = call.finish(status);
            }))
        });
        let url = format!("http://{addr}");
        let ttheader = ChannelOptions {
            protocol: Protocol::Ttheader,
            ..ChannelOptions::default()
        };
        Target {
            addr,
            grpc: Channel::new(&url).expect("a channel"),
            ttheader: Channel::with_options(&url, ttheader).expect("a channel"),
        }
    })
}

/// The echo handlers, payload-blind: a message starting `err` ends the call with an
/// error, `biz` with a biz status; otherwise messages come back as they came.
async fn serve(call: &mut ServerCall) -> Result<Status, Status> {
    match call.method() {
        "/echo.TestService/PingPong" | "/echo.TestService/Get" => {
            let m = call.recv_single().await?;
            if m.starts_with(b"err") {
                return Ok(Status::new(Code::InvalidArgument, "asked for an error"));
            }
            if m.starts_with(b"biz") {
                return Ok(Status::biz(BizStatus::new(7, "asked").with_extra("k", "v")));
            }
            let mut headers = Metadata::new();
            let _ = headers.append_ascii("x-echo", "1");
            call.send_headers(&headers)?;
            call.send(m).await?;
        }
        "/echo.TestService/Echo" => {
            while let Some(m) = call.recv().await? {
                call.send(m).await?;
            }
        }
        "/echo.TestService/EchoClient" => {
            let mut total = 0;
            while let Some(m) = call.recv().await? {
                total += m.len();
            }
            call.send(total.to_string().into()).await?;
        }
        "/echo.TestService/EchoServer" => {
            let m = call.recv_single().await?;
            for _ in 0..m.first().map_or(1, |b| b % 4) {
                call.send(m.clone()).await?;
            }
        }
        other => return Err(Status::new(Code::Unimplemented, other)),
    }
    Ok(Status::ok())
}

/// Writes `data` as a client would, reads the answer until the server pauses, shuts the
/// write side and reads the rest to its end; whether the server ended it with a reset.
/// (Shutting the write side at once would often end the connection before its calls
/// answer: HTTP/2 and TTHeader have no half-closed connection, so a peer's end is the end.)
fn exchange(addr: SocketAddr, data: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).expect("the server listens");
    let _ = s.set_nodelay(true);
    // The server may answer, or give up on the connection, before it has read everything:
    // a failed write is its choice, not a finding.
    let _ = s.write_all(data);
    let mut buf = [0u8; 16 * 1024];
    s.set_read_timeout(Some(PAUSE)).expect("a timeout");
    // When the write side was shut: `None` until the server pauses.
    let mut shut: Option<Instant> = None;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) if shut.is_none() => {
                // The pause.
                let _ = s.shutdown(Shutdown::Write);
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .expect("a timeout");
                shut = Some(Instant::now());
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    shut.is_some_and(|since| since.elapsed() < CLOSE_WITHIN),
                    "the server kept the connection open {CLOSE_WITHIN:?} after its peer's end"
                );
            }
            Err(e) => panic!("reading the server's answer: {e}"),
        }
    }
}

/// A well-formed unary call over each transport succeeds.
fn still_serves(t: &Target) {
    let req = rillrpc::Bytes::from_static(b"\x0a\x02hi");
    for (name, ch) in [("gRPC", &t.grpc), ("TTHeader", &t.ttheader)] {
        let got = rillrpc::runtime::block_on(ch.unary(
            "/echo.TestService/PingPong",
            req.clone(),
            CallOptions::default().timeout(Duration::from_secs(10)),
        ));
        assert_eq!(
            got.as_deref().map_err(|s| s.to_string()),
            Ok(&req[..]),
            "a {name} call after bad input"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let t = target();
    let reset = exchange(t.addr, data);
    if reset || RUNS.fetch_add(1, Ordering::Relaxed).is_multiple_of(64) {
        still_serves(t);
    }
});
