//! The interop server's handlers: grpc.testing.TestService as the interop descriptions'
//! "Server" section defines it (EmptyCall, UnaryCall, StreamingInputCall,
//! StreamingOutputCall, FullDuplexCall, HalfDuplexCall, Echo Status, Echo Metadata,
//! CompressedRequest, CompressedResponse, ResponseParameters.interval_us).
//! CacheableUnaryCall is left unregistered: it needs GET requests behind a caching proxy.

use prost::Message;
use rillrpc::{
    Bytes, Code, Encoding, Metadata, Server, ServerBuilder, ServerCall, ServerOptions, Shape,
    Status,
};
use std::sync::Arc;
use std::time::Duration;

use crate::method::*;
use crate::pb;
use crate::{ECHO_INITIAL, ECHO_TRAILING_BIN};

/// A server builder with every implemented TestService method registered.
pub fn builder(opts: ServerOptions) -> ServerBuilder {
    ServerBuilder::new(opts)
        .register(EMPTY_CALL, Shape::Unary)
        .register(UNARY_CALL, Shape::Unary)
        .register(STREAMING_OUTPUT_CALL, Shape::ServerStreaming)
        .register(STREAMING_INPUT_CALL, Shape::ClientStreaming)
        .register(FULL_DUPLEX_CALL, Shape::Bidi)
        .register(HALF_DUPLEX_CALL, Shape::Bidi)
}

/// Serves calls until the server shuts down, one task per call.
pub async fn serve(server: Arc<Server>) {
    server
        .serve(handle)
        .await
        .expect("the interop service is this server's only handler");
}

/// Serves one call: its status goes out with the echoed trailing metadata.
pub async fn handle(mut call: ServerCall) {
    let trailing = echo(&call, ECHO_TRAILING_BIN);
    let status = match dispatch(&mut call).await {
        Ok(()) => Status::ok(),
        Err(s) => s,
    };
    // A call the client cancelled, or whose deadline passed, has already ended: `finish`
    // then only reports that, and there is no one left to tell.
    let _ = call.finish(status.with_trailers(trailing));
}

async fn dispatch(call: &mut ServerCall) -> Result<(), Status> {
    match call.method() {
        EMPTY_CALL => {
            decode::<pb::Empty>(&call.recv_single().await?)?;
            call.send_headers(&echo(call, ECHO_INITIAL))?;
            call.send(Bytes::new()).await
        }
        UNARY_CALL => unary(call).await,
        STREAMING_INPUT_CALL => streaming_input(call).await,
        STREAMING_OUTPUT_CALL => {
            let req = decode::<pb::StreamingOutputCallRequest>(&call.recv_single().await?)?;
            let gzip = start_stream(call)?;
            respond(call, &req, gzip).await
        }
        FULL_DUPLEX_CALL => {
            let gzip = start_stream(call)?;
            while let Some(m) = call.recv().await? {
                let req = decode::<pb::StreamingOutputCallRequest>(&m)?;
                respond(call, &req, gzip).await?;
            }
            Ok(())
        }
        HALF_DUPLEX_CALL => {
            let gzip = start_stream(call)?;
            let mut reqs = Vec::new();
            while let Some(m) = call.recv().await? {
                reqs.push(decode::<pb::StreamingOutputCallRequest>(&m)?);
            }
            for req in &reqs {
                respond(call, req, gzip).await?;
            }
            Ok(())
        }
        other => Err(Status::new(
            Code::Unimplemented,
            format!("no handler for {other}"),
        )),
    }
}

async fn unary(call: &mut ServerCall) -> Result<(), Status> {
    let req = decode::<pb::SimpleRequest>(&call.recv_single().await?)?;
    check_compressed(call, req.expect_compressed.as_ref())?;
    let compress = req.response_compressed.as_ref().is_some_and(|b| b.value);
    // The encoding is announced in the response headers, so it is chosen before they go.
    if compress {
        enable_gzip(call)?;
    }
    call.send_headers(&echo(call, ECHO_INITIAL))?;
    requested_status(req.response_status.as_ref())?;
    let payload = payload(req.response_type, req.response_size)?;
    let resp = pb::SimpleResponse {
        payload: Some(payload),
        ..Default::default()
    };
    call.send_with(Bytes::from(resp.encode_to_vec()), compress)
        .await
}

async fn streaming_input(call: &mut ServerCall) -> Result<(), Status> {
    call.send_headers(&echo(call, ECHO_INITIAL))?;
    let mut total = 0usize;
    while let Some(m) = call.recv().await? {
        let req = decode::<pb::StreamingInputCallRequest>(&m)?;
        check_compressed(call, req.expect_compressed.as_ref())?;
        total += req.payload.map_or(0, |p| p.body.len());
    }
    let resp = pb::StreamingInputCallResponse {
        aggregated_payload_size: i32::try_from(total).map_err(|_| {
            Status::new(
                Code::InvalidArgument,
                "aggregated payload size overflows int32",
            )
        })?,
    };
    call.send(Bytes::from(resp.encode_to_vec())).await
}

/// Streaming responses may each ask for compression: gzip is set up front (when the client
/// accepts it), and every message then says whether it is compressed. Returns whether
/// gzip is on.
fn start_stream(call: &mut ServerCall) -> Result<bool, Status> {
    let gzip = call.set_compression(Encoding::Gzip);
    call.send_headers(&echo(call, ECHO_INITIAL))?;
    Ok(gzip)
}

/// One StreamingOutputCallResponse per ResponseParameters, each after its interval.
async fn respond(
    call: &ServerCall,
    req: &pb::StreamingOutputCallRequest,
    gzip: bool,
) -> Result<(), Status> {
    requested_status(req.response_status.as_ref())?;
    for p in &req.response_parameters {
        if p.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(p.interval_us as u64)).await;
        }
        let compress = p.compressed.as_ref().is_some_and(|b| b.value);
        if compress && !gzip {
            return Err(Status::new(
                Code::InvalidArgument,
                "a response asks for compression, but the client does not accept gzip",
            ));
        }
        let resp = pb::StreamingOutputCallResponse {
            payload: Some(payload(req.response_type, p.size)?),
            ..Default::default()
        };
        call.send_with(Bytes::from(resp.encode_to_vec()), compress)
            .await?;
    }
    Ok(())
}

fn decode<M: Message + Default>(msg: &[u8]) -> Result<M, Status> {
    M::decode(msg).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("cannot decode the request: {e}"),
        )
    })
}

/// The "Echo Metadata" feature: `key` from the request metadata, if the client sent it.
fn echo(call: &ServerCall, key: &str) -> Metadata {
    let mut md = Metadata::new();
    if let Some(v) = call.metadata().get(key) {
        let _ = md.append(key, v);
    }
    md
}

/// The "Echo Status" feature: a non-OK `response_status` ends the call with it.
fn requested_status(s: Option<&pb::EchoStatus>) -> Result<(), Status> {
    match s {
        Some(s) if s.code != 0 => Err(Status::new(
            Code::from_u32(u32::try_from(s.code).unwrap_or(u32::MAX)),
            s.message.clone(),
        )),
        _ => Ok(()),
    }
}

/// The "CompressedRequest" feature: with `expect_compressed` true, a request that did not
/// arrive compressed fails the call with INVALID_ARGUMENT.
fn check_compressed(call: &ServerCall, expect: Option<&pb::BoolValue>) -> Result<(), Status> {
    if expect.is_some_and(|b| b.value) && !call.last_recv_compressed() {
        return Err(Status::new(
            Code::InvalidArgument,
            "expected a compressed request, but it arrived uncompressed",
        ));
    }
    Ok(())
}

fn enable_gzip(call: &ServerCall) -> Result<(), Status> {
    if call.set_compression(Encoding::Gzip) {
        return Ok(());
    }
    Err(Status::new(
        Code::InvalidArgument,
        "response_compressed asks for gzip, but the client does not accept it",
    ))
}

/// A payload of `size` zero bytes; COMPRESSABLE is the only type the suite defines.
fn payload(kind: i32, size: i32) -> Result<pb::Payload, Status> {
    if pb::PayloadType::try_from(kind).is_err() {
        return Err(Status::new(
            Code::InvalidArgument,
            format!("unsupported response_type {kind}"),
        ));
    }
    let size = usize::try_from(size).map_err(|_| {
        Status::new(
            Code::InvalidArgument,
            format!("requested a response with invalid length {size}"),
        )
    })?;
    Ok(pb::Payload {
        r#type: kind,
        body: vec![0; size],
    })
}
