//! connectrpc.conformance.v1.ConformanceService as the conformance suite defines it
//! (service.proto, docs/testing_servers.md): each request says which headers, messages,
//! trailers, delays and error to answer with, and the answers echo what the server saw of
//! the request (its headers, its timeout, the request messages) so the runner can check it.
//!
//! `Unimplemented` is deliberately not registered: the suite expects the framework's own
//! UNIMPLEMENTED for a method without a handler, and that is what it then tests.

use prost::{Message, Name};
use prost_types::Any;
use rillrpc::{
    Bytes, Code, Idempotency, Metadata, Server, ServerBuilder, ServerCall, ServerOptions, Shape,
    Status,
};
use std::future::poll_fn;
use std::time::Duration;

use crate::pb::conformance_payload::RequestInfo;
use crate::pb::{self, unary_response_definition::Response, ConformancePayload, Header};
use rill_conformance::codec::Codec;
use rill_conformance::headers::{of_metadata, to_metadata};

const UNARY: &str = "/connectrpc.conformance.v1.ConformanceService/Unary";
const IDEMPOTENT_UNARY: &str = "/connectrpc.conformance.v1.ConformanceService/IdempotentUnary";
const SERVER_STREAM: &str = "/connectrpc.conformance.v1.ConformanceService/ServerStream";
const CLIENT_STREAM: &str = "/connectrpc.conformance.v1.ConformanceService/ClientStream";
const BIDI_STREAM: &str = "/connectrpc.conformance.v1.ConformanceService/BidiStream";

pub fn builder(opts: ServerOptions) -> ServerBuilder {
    ServerBuilder::new(opts)
        .register(UNARY, Shape::Unary)
        // `idempotency_level = NO_SIDE_EFFECTS` in the suite's proto: it takes Connect's GET.
        .register_with(IDEMPOTENT_UNARY, Shape::Unary, Idempotency::NoSideEffects)
        .register(SERVER_STREAM, Shape::ServerStreaming)
        .register(CLIENT_STREAM, Shape::ClientStreaming)
        .register(BIDI_STREAM, Shape::Bidi)
}

/// Serves calls until the process is killed, each in a task of its own.
pub async fn serve(server: Server) {
    server
        .serve(handle)
        .await
        .expect("the conformance service is this server's only handler");
}

async fn handle(mut call: ServerCall) {
    let status = match dispatch(&mut call).await {
        Ok(s) | Err(s) => s,
    };
    // After a cancel, a passed deadline or a broken request the call has already ended
    // with its own status, and `finish` only says so.
    let _ = call.finish(status);
}

/// The call's final status: `Ok` is what the request asked for (an error among them),
/// `Err` is why the call could not go as asked.
async fn dispatch(call: &mut ServerCall) -> Result<Status, Status> {
    // The client reads its answers in the codec it wrote its requests in.
    let codec = Codec::named(call.codec()).ok_or_else(|| {
        Status::new(
            Code::Unimplemented,
            format!("codec {:?} is not supported", call.codec()),
        )
    })?;
    match call.method() {
        UNARY => {
            let msg = call.recv_single().await?;
            let (req, echo) = decode::<pb::UnaryRequest>(codec, &msg)?;
            respond_once(call, codec, req.response_definition, vec![echo], |p| {
                pb::UnaryResponse { payload: Some(p) }
            })
            .await
        }
        IDEMPOTENT_UNARY => {
            let msg = call.recv_single().await?;
            let (req, echo) = decode::<pb::IdempotentUnaryRequest>(codec, &msg)?;
            respond_once(call, codec, req.response_definition, vec![echo], |p| {
                pb::IdempotentUnaryResponse { payload: Some(p) }
            })
            .await
        }
        CLIENT_STREAM => {
            let mut def = None;
            let mut requests = Vec::new();
            while let Some(msg) = call.recv().await? {
                let (req, echo) = decode::<pb::ClientStreamRequest>(codec, &msg)?;
                // Only the first message's definition counts.
                if requests.is_empty() {
                    def = req.response_definition;
                }
                requests.push(echo);
            }
            respond_once(call, codec, def, requests, |p| pb::ClientStreamResponse {
                payload: Some(p),
            })
            .await
        }
        SERVER_STREAM => server_stream(call, codec).await,
        BIDI_STREAM => bidi_stream(call, codec).await,
        other => Err(Status::new(
            Code::Unimplemented,
            format!("no handler for {other}"),
        )),
    }
}

/// Unary and client streaming: one response, or the requested error, after the delay.
async fn respond_once<R: Message + Name>(
    call: &mut ServerCall,
    codec: Codec,
    def: Option<pb::UnaryResponseDefinition>,
    requests: Vec<Any>,
    wrap: impl FnOnce(ConformancePayload) -> R,
) -> Result<Status, Status> {
    let info = request_info(call, requests);
    let Some(def) = def else {
        // No definition: no metadata, no data, only the echo.
        send(call, codec, &wrap(payload(Vec::new(), Some(info)))).await?;
        return Ok(Status::ok());
    };
    no_raw_response(def.raw_response.is_some())?;
    let headers = metadata(&def.response_headers)?;
    let trailers = metadata(&def.response_trailers)?;
    delay(call, def.response_delay_ms).await?;
    if !headers.is_empty() {
        call.send_headers(&headers)?;
    }
    let data = match def.response {
        Some(Response::Error(e)) => return Ok(error(&e, Some(&info)).with_trailers(trailers)),
        Some(Response::ResponseData(data)) => data,
        None => Vec::new(),
    };
    send(call, codec, &wrap(payload(data, Some(info)))).await?;
    Ok(Status::ok().with_trailers(trailers))
}

async fn server_stream(call: &mut ServerCall, codec: Codec) -> Result<Status, Status> {
    let msg = call.recv_single().await?;
    let (req, echo) = decode::<pb::ServerStreamRequest>(codec, &msg)?;
    let Some(def) = req.response_definition else {
        return Ok(Status::ok());
    };
    no_raw_response(def.raw_response.is_some())?;
    let headers = metadata(&def.response_headers)?;
    let trailers = metadata(&def.response_trailers)?;
    // Headers first: the client has them before any delay, and apart from the trailers
    // even when no message follows.
    if !def.response_data.is_empty() || !headers.is_empty() {
        call.send_headers(&headers)?;
    }
    send_rest(call, codec, &def, 0, vec![echo], trailers, |p| {
        pb::ServerStreamResponse { payload: Some(p) }
    })
    .await
}

async fn bidi_stream(call: &mut ServerCall, codec: Codec) -> Result<Status, Status> {
    let mut def: Option<pb::StreamResponseDefinition> = None;
    let mut full_duplex = false;
    let mut headers = Metadata::new();
    let mut trailers = Metadata::new();
    let mut headers_sent = false;
    let mut first = true;
    let mut sent = 0;
    let mut requests = Vec::new();
    while let Some(msg) = call.recv().await? {
        let (req, echo) = decode::<pb::BidiStreamRequest>(codec, &msg)?;
        requests.push(echo);
        // The first message says how the call goes; later ones only carry data.
        if first {
            first = false;
            full_duplex = req.full_duplex;
            def = req.response_definition;
            if let Some(d) = &def {
                no_raw_response(d.raw_response.is_some())?;
                headers = metadata(&d.response_headers)?;
                trailers = metadata(&d.response_trailers)?;
                // A half-duplex client reads nothing before it has sent everything, so only
                // full duplex answers (and shows its headers) while requests still come.
                if full_duplex && !d.response_data.is_empty() {
                    call.send_headers(&headers)?;
                    headers_sent = true;
                }
            }
        }
        if !full_duplex {
            continue;
        }
        // Full duplex: one response per request, each echoing the requests since the
        // previous one; a request with no response left to answer it ends the call.
        let Some(data) = def.as_ref().and_then(|d| d.response_data.get(sent)) else {
            break;
        };
        let requests = std::mem::take(&mut requests);
        let info = match sent {
            0 => request_info(call, requests),
            _ => RequestInfo {
                requests,
                ..RequestInfo::default()
            },
        };
        delay(call, def.as_ref().map_or(0, |d| d.response_delay_ms)).await?;
        send(
            call,
            codec,
            &bidi_response(payload(data.clone(), Some(info))),
        )
        .await?;
        sent += 1;
    }
    let Some(def) = def else {
        return Ok(Status::ok());
    };
    if !headers_sent && (!def.response_data.is_empty() || !headers.is_empty()) {
        call.send_headers(&headers)?;
    }
    send_rest(call, codec, &def, sent, requests, trailers, bidi_response).await
}

/// Sends the responses of `def` from `sent` on, then gives the status it asks for. The
/// first response of the call carries the request info; if there is none, the error does.
async fn send_rest<R: Message + Name>(
    call: &ServerCall,
    codec: Codec,
    def: &pb::StreamResponseDefinition,
    sent: usize,
    mut requests: Vec<Any>,
    trailers: Metadata,
    wrap: fn(ConformancePayload) -> R,
) -> Result<Status, Status> {
    for (i, data) in def.response_data.iter().enumerate().skip(sent) {
        let info = (i == 0).then(|| request_info(call, std::mem::take(&mut requests)));
        delay(call, def.response_delay_ms).await?;
        send(call, codec, &wrap(payload(data.clone(), info))).await?;
    }
    let status = match &def.error {
        Some(e) => {
            let info = def
                .response_data
                .is_empty()
                .then(|| request_info(call, requests));
            error(e, info.as_ref())
        }
        None => Status::ok(),
    };
    Ok(status.with_trailers(trailers))
}

fn bidi_response(p: ConformancePayload) -> pb::BidiStreamResponse {
    pb::BidiStreamResponse { payload: Some(p) }
}

async fn send<M: Message + Name>(call: &ServerCall, codec: Codec, msg: &M) -> Result<(), Status> {
    let bytes = codec
        .encode(msg)
        .map_err(|e| Status::new(Code::Internal, e))?;
    call.send(Bytes::from(bytes)).await
}

fn payload(data: Vec<u8>, request_info: Option<RequestInfo>) -> ConformancePayload {
    ConformancePayload { data, request_info }
}

/// What the server saw of the request: its metadata, the time left before its deadline,
/// and the request messages.
fn request_info(call: &ServerCall, requests: Vec<Any>) -> RequestInfo {
    RequestInfo {
        request_headers: of_metadata(call.metadata()),
        timeout_ms: call
            .time_remaining()
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
        requests,
        connect_get_info: None,
    }
}

/// The status an `Error` asks for, its details a `google.rpc.Status` that ends with the
/// request info when there is one to echo.
fn error(e: &pb::Error, info: Option<&RequestInfo>) -> Status {
    // 0 is CODE_UNSPECIFIED in the suite's enum, never a success.
    let code = match u32::try_from(e.code) {
        Ok(0) | Err(_) => Code::Unknown,
        Ok(n) => Code::from_u32(n),
    };
    let message = e.message.clone().unwrap_or_default();
    let mut details = e.details.clone();
    if let Some(info) = info {
        details.push(Any {
            type_url: RequestInfo::type_url(),
            value: info.encode_to_vec(),
        });
    }
    let status = Status::new(code, message.clone());
    if details.is_empty() {
        return status;
    }
    let rpc = pb::RpcStatus {
        code: code as i32,
        message,
        details,
    };
    status.with_details(Bytes::from(rpc.encode_to_vec()))
}

/// The suite's headers as metadata: a header it cannot carry is the request's fault.
fn metadata(headers: &[Header]) -> Result<Metadata, Status> {
    to_metadata(headers).map_err(|e| Status::new(Code::InvalidArgument, e))
}

/// Waits `ms` milliseconds, or until the call ends (the client cancelled, the deadline
/// passed), whichever comes first.
async fn delay(call: &ServerCall, ms: u32) -> Result<(), Status> {
    if ms == 0 {
        return Ok(());
    }
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms.into())) => Ok(()),
        s = poll_fn(|cx| call.poll_cancelled(cx)) => Err(s),
    }
}

/// `raw_response` scripts the reference server's wire bytes; a server under test has no
/// business honouring it, and silently ignoring it would pass a case for the wrong reason.
fn no_raw_response(present: bool) -> Result<(), Status> {
    match present {
        true => Err(Status::new(
            Code::InvalidArgument,
            "raw_response is for the reference server only",
        )),
        false => Ok(()),
    }
}

/// A request message, and its echo for the request info: the message's binary form in an
/// `Any` whatever the codec, as connect-go's reference server echoes `anypb.New(msg)`. A
/// binary message is echoed as it arrived, so the runner compares exactly what it sent.
fn decode<M: Message + Name + Default>(codec: Codec, msg: &[u8]) -> Result<(M, Any), Status> {
    let bad = |e: String| {
        Status::new(
            Code::InvalidArgument,
            format!("cannot decode the request: {e}"),
        )
    };
    let binary = codec.decode_to_binary(&M::full_name(), msg).map_err(bad)?;
    let req = M::decode(&binary[..]).map_err(|e| bad(e.to_string()))?;
    let echo = Any {
        type_url: M::type_url(),
        value: binary,
    };
    Ok((req, echo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine;

    #[test]
    fn headers_round_trip_through_metadata() {
        let given = vec![
            Header {
                name: "x-custom-header".into(),
                value: vec!["foo".into(), "bar".into()],
            },
            Header {
                name: "x-custom-header-bin".into(),
                value: vec![STANDARD_NO_PAD.encode([0u8, 1, 2, 255])],
            },
        ];
        let md = metadata(&given).unwrap();
        assert_eq!(
            md.get_bin("x-custom-header-bin").unwrap().as_ref(),
            &[0u8, 1, 2, 255]
        );
        assert_eq!(of_metadata(&md), given);
    }

    #[test]
    fn an_error_carries_its_details_then_the_request_info() {
        let asked = Any {
            type_url: "type.googleapis.com/google.protobuf.Empty".into(),
            value: Vec::new(),
        };
        let e = pb::Error {
            code: Code::ResourceExhausted as i32,
            message: Some("no more".into()),
            details: vec![asked.clone()],
        };
        let info = RequestInfo {
            timeout_ms: Some(1000),
            ..RequestInfo::default()
        };
        let s = error(&e, Some(&info));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), "no more");
        let rpc = pb::RpcStatus::decode(s.details().as_ref()).unwrap();
        assert_eq!(rpc.code, Code::ResourceExhausted as i32);
        assert_eq!(rpc.details.len(), 2);
        assert_eq!(rpc.details[0], asked);
        assert!(rpc.details[1]
            .type_url
            .ends_with(".ConformancePayload.RequestInfo"));
        assert_eq!(
            RequestInfo::decode(&rpc.details[1].value[..]).unwrap(),
            info
        );
    }

    #[test]
    fn an_unspecified_code_is_not_a_success() {
        let e = pb::Error::default();
        assert_eq!(error(&e, None).code(), Code::Unknown);
        assert!(error(&e, None).details().is_empty());
    }
}
