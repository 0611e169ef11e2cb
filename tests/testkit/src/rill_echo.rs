//! The echo service of `shared/idl/echo.proto` on the rillrpc core, with the same
//! conventions as `TonicEcho`: `count < 0` asks for status code `-count` with the payload as
//! message, and metadata keys starting with `echo-` come back in headers and trailers.
//! Served with `serve_with_thrift`, the same methods answer `shared/idl/echo.thrift`'s
//! messages when a call says its codec is Thrift (`application/grpc+thrift`, TTHeader
//! Streaming, Thrift PingPong, whose unary messages are the args and result wrappers), as
//! Kitex's server does on its one port; `serve` reads every call as protobuf (the tests of
//! the transports send echo.proto's messages over TTHeader too).

use prost::Message;
use rillrpc::{
    Bytes, Code, Metadata, Server, ServerBuilder, ServerCall, ServerOptions, Shape, Status,
};
use std::sync::Arc;

use crate::echo::{Request, Response};
use crate::echo_thrift;

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

/// As `serve`, answering Thrift in Thrift (the codec a call's content type names).
pub async fn serve_with_thrift(server: Arc<Server>) {
    server
        .serve(|call| {
            let codec = Codec::of(&call);
            handle_as(call, codec)
        })
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

/// The messages' codec, as the call's content type says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Codec {
    Proto,
    Thrift,
}

impl Codec {
    fn of(call: &ServerCall) -> Codec {
        match call.codec() {
            "thrift" => Codec::Thrift,
            _ => Codec::Proto,
        }
    }

    /// Decodes a message as a Rust user would, where it lies (`recv_ref` lends it): prost
    /// copies its bytes fields into the `Vec`s of echo.proto's generated types, as it does
    /// for tonic's server.
    fn decode(self, msg: &[u8]) -> Result<Request, Status> {
        match self {
            Codec::Proto => Request::decode(msg)
                .map_err(|e| Status::new(Code::InvalidArgument, format!("bad echo.Request: {e}"))),
            Codec::Thrift => echo_thrift::read_request(msg)
                .map(|(payload, count)| Request { payload, count })
                .map_err(|e| Status::new(Code::InvalidArgument, e)),
        }
    }

    /// A unary call's request: Thrift's is wrapped in PingPong's args struct.
    fn decode_unary(self, msg: &[u8]) -> Result<Request, Status> {
        match self {
            Codec::Proto => self.decode(msg),
            Codec::Thrift => self.decode(
                echo_thrift::unwrap_args(msg).map_err(|e| Status::new(Code::InvalidArgument, e))?,
            ),
        }
    }

    /// Encodes a response into `buf` (reused across messages, as a real handler would).
    fn response_into(self, buf: &mut Vec<u8>, payload: Vec<u8>) -> &[u8] {
        match self {
            Codec::Proto => {
                buf.clear();
                Response { payload }.encode(buf).expect("a Vec grows");
            }
            Codec::Thrift => echo_thrift::response_into(buf, &payload),
        }
        buf
    }

    fn response(self, payload: Vec<u8>) -> Bytes {
        let mut buf = Vec::with_capacity(payload.len() + 8);
        self.response_into(&mut buf, payload);
        Bytes::from(buf)
    }

    /// A unary call's response: Thrift's is wrapped in PingPong's result struct.
    fn unary_response(self, payload: Vec<u8>) -> Bytes {
        match self {
            Codec::Proto => self.response(payload),
            Codec::Thrift => echo_thrift::result_of(&self.response(payload)),
        }
    }
}

fn requested_error(r: &Request) -> Option<Status> {
    (r.count < 0).then(|| {
        Status::new(
            Code::from_u32(r.count.unsigned_abs()),
            String::from_utf8_lossy(&r.payload).into_owned(),
        )
    })
}

/// Serves one call of the echo service.
pub async fn handle(call: ServerCall) {
    handle_as(call, Codec::Proto).await
}

async fn handle_as(mut call: ServerCall, codec: Codec) {
    let md = echo_md(&call);
    let status = match run(&mut call, &md, codec).await {
        Ok(()) => Status::ok(),
        Err(s) => s,
    };
    let _ = call.finish(status.with_trailers(md));
}

async fn run(call: &mut ServerCall, md: &Metadata, codec: Codec) -> Result<(), Status> {
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
            let req = codec.decode_unary(&call.recv_single().await?)?;
            if let Some(s) = requested_error(&req) {
                return Err(s);
            }
            call.send(codec.unary_response(req.payload)).await
        }
        ECHO => {
            let mut buf = Vec::new();
            while let Some(m) = call.recv_ref().await? {
                let req = codec.decode(m)?;
                if let Some(s) = requested_error(&req) {
                    return Err(s);
                }
                call.send_ref(codec.response_into(&mut buf, req.payload))
                    .await?;
            }
            Ok(())
        }
        ECHO_CLIENT => {
            let mut total = 0usize;
            while let Some(m) = call.recv_ref().await? {
                let req = codec.decode(m)?;
                if let Some(s) = requested_error(&req) {
                    return Err(s);
                }
                total += req.payload.len();
            }
            call.send(codec.response(total.to_string().into_bytes()))
                .await
        }
        ECHO_SERVER => {
            let req = codec.decode(&call.recv_single().await?)?;
            if let Some(s) = requested_error(&req) {
                return Err(s);
            }
            let mut buf = Vec::with_capacity(req.payload.len() + 8);
            for _ in 0..req.count {
                call.send_ref(codec.response_into(&mut buf, req.payload.clone()))
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
