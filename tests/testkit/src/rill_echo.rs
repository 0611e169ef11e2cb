//! The echo service of `shared/idl/echo.proto` on the rillrpc core, with the same
//! conventions as `TonicEcho`: `count < 0` asks for status code `-count` with the payload as
//! message, and metadata keys starting with `echo-` come back in headers and trailers.

use prost::Message;
use rillrpc::{
    Bytes, Code, Metadata, Server, ServerBuilder, ServerCall, ServerOptions, Shape, Status,
};
use std::sync::Arc;

use crate::echo::{Request, Response};

pub const PING_PONG: &str = "/echo.TestService/PingPong";
pub const ECHO: &str = "/echo.TestService/Echo";
pub const ECHO_CLIENT: &str = "/echo.TestService/EchoClient";
pub const ECHO_SERVER: &str = "/echo.TestService/EchoServer";
/// The response header that names the protocol a call with `echo-` metadata came in on
/// ("grpc", "grpc-web", "connect"), as every matrix server sends it.
pub const PROTOCOL_HEADER: &str = "echo-protocol";

/// A server builder with the four echo methods registered.
pub fn builder(opts: ServerOptions) -> ServerBuilder {
    ServerBuilder::new(opts)
        .register(PING_PONG, Shape::Unary)
        .register(ECHO, Shape::Bidi)
        .register(ECHO_CLIENT, Shape::ClientStreaming)
        .register(ECHO_SERVER, Shape::ServerStreaming)
}

/// Serves calls until the server shuts down, one task per call.
pub async fn serve(server: Arc<Server>) {
    server
        .serve(handle)
        .await
        .expect("the echo service is this server's only handler");
}

fn echo_md(call: &ServerCall) -> Metadata {
    let mut md = Metadata::new();
    for (k, v) in call.metadata().iter() {
        if k.starts_with("echo-") {
            let _ = md.append(k, v);
        }
    }
    md
}

fn decode(msg: &[u8]) -> Result<Request, Status> {
    Request::decode(msg)
        .map_err(|e| Status::new(Code::InvalidArgument, format!("bad echo.Request: {e}")))
}

fn requested_error(r: &Request) -> Option<Status> {
    (r.count < 0).then(|| {
        Status::new(
            Code::from_u32(r.count.unsigned_abs()),
            String::from_utf8_lossy(&r.payload).into_owned(),
        )
    })
}

/// Encodes a response into `buf` (reused across messages, as a real handler would).
fn response_into(buf: &mut Vec<u8>, payload: Vec<u8>) -> &[u8] {
    buf.clear();
    Response { payload }.encode(buf).expect("a Vec grows");
    buf
}

fn response(payload: Vec<u8>) -> Bytes {
    Bytes::from(Response { payload }.encode_to_vec())
}

/// Serves one call of the echo service.
pub async fn handle(mut call: ServerCall) {
    let md = echo_md(&call);
    let status = match run(&mut call, &md).await {
        Ok(()) => Status::ok(),
        Err(s) => s,
    };
    let _ = call.finish(status.with_trailers(md));
}

async fn run(call: &mut ServerCall, md: &Metadata) -> Result<(), Status> {
    if !md.is_empty() {
        // The matrix's clients check that the call came in on the protocol they spoke.
        let mut headers = md.clone();
        let protocol = call.protocol().name();
        headers
            .append_ascii(PROTOCOL_HEADER, protocol)
            .expect("a protocol's name is a valid ASCII value");
        call.send_headers(&headers)?;
    }
    match call.method() {
        PING_PONG => {
            let req = decode(&call.recv_single().await?)?;
            if let Some(s) = requested_error(&req) {
                return Err(s);
            }
            call.send(response(req.payload)).await
        }
        ECHO => {
            let mut buf = Vec::new();
            while let Some(m) = call.recv().await? {
                let req = decode(&m)?;
                if let Some(s) = requested_error(&req) {
                    return Err(s);
                }
                call.send_ref(response_into(&mut buf, req.payload)).await?;
            }
            Ok(())
        }
        ECHO_CLIENT => {
            let mut total = 0usize;
            while let Some(m) = call.recv().await? {
                let req = decode(&m)?;
                if let Some(s) = requested_error(&req) {
                    return Err(s);
                }
                total += req.payload.len();
            }
            call.send(response(total.to_string().into_bytes())).await
        }
        ECHO_SERVER => {
            let req = decode(&call.recv_single().await?)?;
            if let Some(s) = requested_error(&req) {
                return Err(s);
            }
            let mut buf = Vec::with_capacity(req.payload.len() + 8);
            for _ in 0..req.count {
                call.send_ref(response_into(&mut buf, req.payload.clone()))
                    .await?;
            }
            Ok(())
        }
        other => Err(Status::new(
            Code::Unimplemented,
            format!("no handler for {other}"),
        )),
    }
}
