//! kitex-echo-rill-server: TestService of `shared/idl/echo.thrift` on the rillrpc core, for
//! Kitex's gRPC transport (`application/grpc+thrift`), TTHeader Streaming and PingPong,
//! and PingPong in echo.proto's messages too (Kitex's KitexProtobuf), with kitex-server's
//! semantics (interop/kitex/kitex-server/main.go):
//!   - PingPong echoes the payload (Kitex's args/result wrapper structs over gRPC);
//!   - Echo answers every request with its payload;
//!   - EchoClient answers the total payload bytes received, as decimal text;
//!   - EchoServer sends `count` copies of the payload;
//!   - `count < 0` ends the call with Kitex's biz status error: grpc-status 13, grpc-message
//!     the payload, trailers `biz-status: <-count>` and `biz-extra: {"echo-count":"<count>"}`;
//!   - metainfo headers (`rpc-transit-*`, `rpc-persist-*`) come back in the response
//!     headers and trailers;
//!   - the slow path, for deadline checks, as kitex-server's: a request whose payload starts
//!     with `sleep:<ms>` makes the handler wait that long (or until the call ends: client
//!     cancel, deadline, broken connection) before it answers: PingPong before its answer,
//!     EchoServer before its first response, Echo before the answer to that request.
//!
//!     kitex-echo-rill-server [--port N] [--host 127.0.0.1]   prints `listening on HOST:PORT`

use std::future::{poll_fn, Future};
use std::io::Write;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use rill_kitex::echo::{decode, encode_into, PingPongArgs, PingPongResult, Request, Response};
use rill_kitex::{biz_error, metainfo, ECHO, ECHO_CLIENT, ECHO_SERVER, PING_PONG, PROTO, THRIFT};
use rillrpc::{Bytes, Code, Metadata, ServerBuilder, ServerCall, ServerOptions, Shape, Status};
use thrift::protocol::TSerializable;

fn main() {
    let (mut host, mut port) = ("127.0.0.1".to_owned(), "0".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--port", Some(v)) => port = v,
            ("--host", Some(v)) => host = v,
            _ => usage(&format!("bad argument {a}")),
        }
    }
    let server = ServerBuilder::new(ServerOptions::default())
        .register(PING_PONG, Shape::Unary)
        .register(ECHO, Shape::Bidi)
        .register(ECHO_CLIENT, Shape::ClientStreaming)
        .register(ECHO_SERVER, Shape::ServerStreaming)
        .bind(&format!("{host}:{port}"))
        .unwrap_or_else(|e| {
            eprintln!("kitex-echo-rill-server: {e}");
            std::process::exit(1)
        });
    println!("listening on {}", server.local_addr());
    // A script waits for this line, through a pipe: it must not sit in a buffer.
    let _ = std::io::stdout().flush();
    if let Err(e) = rillrpc::runtime::block_on(server.serve(handle)) {
        eprintln!("kitex-echo-rill-server: {e}");
        std::process::exit(1);
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("kitex-echo-rill-server: {msg}\nusage: kitex-echo-rill-server [--port N] [--host H]");
    std::process::exit(2)
}

/// One call: its answer, then its status with the metainfo trailers.
async fn handle(mut call: ServerCall) {
    let md = metainfo(call.metadata());
    let mut out = Out {
        headers: Some(md.clone()).filter(|m| !m.is_empty()),
        buf: Vec::new(),
    };
    let mut status = match serve(&mut call, &mut out).await {
        Ok(()) => Status::ok(),
        Err(s) => s,
    };
    // Kitex's SetTrailer pairs go out beside a biz error's own trailers.
    for (k, v) in md.iter() {
        let _ = status.trailers_mut().append(k, v);
    }
    let _ = call.finish(status);
}

/// The response side of a call. kitex-server's SetHeader pairs leave with the first
/// message, or with the status (a Trailers-Only response when no message went out): so the
/// headers wait here for the first message instead of going out when the call starts.
/// Its answers are encoded into one buffer and sent from it, as the proto echo server's
/// (`rill_echo`) are.
struct Out {
    headers: Option<Metadata>,
    buf: Vec<u8>,
}

impl Out {
    async fn send<T: TSerializable>(
        &mut self,
        call: &mut ServerCall,
        msg: &T,
    ) -> Result<(), Status> {
        if let Some(h) = self.headers.take() {
            call.send_headers(&h)?;
        }
        encode_into(msg, &mut self.buf);
        call.send_ref(&self.buf).await
    }

    async fn send_bytes(&mut self, call: &mut ServerCall, msg: Bytes) -> Result<(), Status> {
        if let Some(h) = self.headers.take() {
            call.send_headers(&h)?;
        }
        call.send(msg).await
    }
}

fn bad_message(what: &str, e: thrift::Error) -> Status {
    Status::new(Code::InvalidArgument, format!("bad {what}: {e}"))
}

fn request(msg: &[u8]) -> Result<Request, Status> {
    checked(decode(msg).map_err(|e| bad_message("echo.Request", e))?)
}

/// The request, or kitex-server's error for a negative count.
fn checked(req: Request) -> Result<Request, Status> {
    match req.count {
        Some(c) if c < 0 => Err(biz_error(c, req.payload.as_deref().unwrap_or_default())),
        _ => Ok(req),
    }
}

/// The payload prefix of a request answered slowly: `sleep:<ms>`.
const SLEEP_PREFIX: &[u8] = b"sleep:";

/// kitex-server's slow path: waits for the time a `sleep:<ms>` payload asks, or until the
/// call ends on its own (then that status).
async fn slow(call: &ServerCall, req: &Request) -> Result<(), Status> {
    let ms = req
        .payload
        .as_deref()
        .and_then(|p| p.strip_prefix(SLEEP_PREFIX))
        .and_then(|ms| std::str::from_utf8(ms).ok()?.parse::<u64>().ok())
        .filter(|&ms| ms > 0);
    let Some(ms) = ms else { return Ok(()) };
    // A blocking-pool thread does the sleeping: the crate has no timer of its own (the
    // core's runtime is tokio, reached through its handle only).
    let handle = rillrpc::runtime::handle();
    let mut timer =
        pin!(handle.spawn_blocking(move || std::thread::sleep(Duration::from_millis(ms))));
    poll_fn(|cx| {
        if let Poll::Ready(s) = call.poll_cancelled(cx) {
            return Poll::Ready(Err(s));
        }
        timer.as_mut().poll(cx).map(|_| Ok(()))
    })
    .await
}

async fn serve(call: &mut ServerCall, out: &mut Out) -> Result<(), Status> {
    if call.codec() == PROTO && call.method() == PING_PONG {
        return ping_pong_proto(call, out).await;
    }
    if call.codec() != THRIFT {
        return Err(Status::new(
            Code::InvalidArgument,
            format!(
                "TestService speaks Thrift (application/grpc+thrift), and protobuf on \
                 PingPong only, not {:?}",
                call.codec()
            ),
        ));
    }
    match call.method() {
        PING_PONG => ping_pong(call, out).await,
        ECHO => echo(call, out).await,
        ECHO_CLIENT => echo_client(call, out).await,
        ECHO_SERVER => echo_server(call, out).await,
        other => Err(Status::new(
            Code::Unimplemented,
            format!("no handler for {other}"),
        )),
    }
}

async fn ping_pong(call: &mut ServerCall, out: &mut Out) -> Result<(), Status> {
    let msg = call.recv_single().await?;
    let args: PingPongArgs = decode(&msg).map_err(|e| bad_message("TestServicePingPongArgs", e))?;
    // Kitex hands its handler a nil request for an absent field; an empty one is ours.
    let req = checked(args.req.unwrap_or_default())?;
    slow(call, &req).await?;
    let result = PingPongResult {
        success: Some(Response {
            payload: req.payload,
        }),
    };
    out.send(call, &result).await
}

/// PingPong in echo.proto's messages (Kitex's KitexProtobuf, a call of codec `proto`):
/// the same semantics, the request and response messages bare.
async fn ping_pong_proto(call: &mut ServerCall, out: &mut Out) -> Result<(), Status> {
    use prost::Message;
    use rill_testkit::echo as pb;
    let msg = call.recv_single().await?;
    let req = pb::Request::decode(msg)
        .map_err(|e| Status::new(Code::InvalidArgument, format!("bad echo.Request: {e}")))?;
    let req = checked(Request {
        payload: Some(req.payload),
        count: Some(req.count),
    })?;
    slow(call, &req).await?;
    let resp = pb::Response {
        payload: req.payload.unwrap_or_default(),
    };
    out.send_bytes(call, Bytes::from(resp.encode_to_vec()))
        .await
}

async fn echo(call: &mut ServerCall, out: &mut Out) -> Result<(), Status> {
    while let Some(msg) = call.recv_ref().await? {
        let req = request(msg)?;
        slow(call, &req).await?;
        let resp = Response {
            payload: req.payload,
        };
        out.send(call, &resp).await?;
    }
    Ok(())
}

async fn echo_client(call: &mut ServerCall, out: &mut Out) -> Result<(), Status> {
    let mut total = 0usize;
    while let Some(msg) = call.recv_ref().await? {
        total += request(msg)?.payload.map_or(0, |p| p.len());
    }
    let resp = Response {
        payload: Some(total.to_string().into_bytes()),
    };
    out.send(call, &resp).await
}

async fn echo_server(call: &mut ServerCall, out: &mut Out) -> Result<(), Status> {
    let req = request(&call.recv_single().await?)?;
    slow(call, &req).await?;
    let resp = Response {
        payload: req.payload,
    };
    for _ in 0..req.count.unwrap_or(0) {
        out.send(call, &resp).await?;
    }
    Ok(())
}
