//! The interop client's test cases, named and asserting as the interop descriptions'
//! "Client" section says.

use prost::Message;
use rillrpc::{Bytes, Call, CallOptions, Channel, Code, Encoding, Metadata, Shape, Status};
use std::time::Duration;

use crate::method::*;
use crate::pb;
use crate::{ECHO_INITIAL, ECHO_TRAILING_BIN};

/// Every test case the client implements, in the order the runner plays them.
pub const CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "custom_metadata",
    "unimplemented_method",
    "unimplemented_service",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_compressed_streaming",
    "server_compressed_streaming",
];

/// How a case ended, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held; the note says what could not be checked, if anything.
    Pass(Option<String>),
    /// The server does not implement a feature the case needs (the case's own probe, or
    /// an observation, said so); nothing was wrong on the wire.
    Unsupported(String),
}

/// A failed assertion or call, as a sentence.
pub type Failure = String;

const REQ_SIZES: [usize; 4] = [27182, 8, 1828, 45904];
const RESP_SIZES: [i32; 4] = [31415, 9, 2653, 58979];
const LARGE_REQ: usize = 271828;
const LARGE_RESP: i32 = 314159;
const INITIAL_VALUE: &str = "test_initial_metadata_value";
const TRAILING_VALUE: [u8; 3] = [0xab, 0xab, 0xab];
const SPECIAL_MESSAGE: &str = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

/// Runs one case on `ch`.
pub async fn run(ch: &Channel, case: &str) -> Result<Outcome, Failure> {
    let pass = Ok(Outcome::Pass(None));
    match case {
        "empty_unary" => empty_unary(ch).await.and(pass),
        "large_unary" => large_unary(ch).await.and(pass),
        "client_streaming" => client_streaming(ch).await.and(pass),
        "server_streaming" => server_streaming(ch).await.and(pass),
        "ping_pong" => ping_pong(ch).await.and(pass),
        "empty_stream" => empty_stream(ch).await.and(pass),
        "timeout_on_sleeping_server" => timeout_on_sleeping_server(ch).await.and(pass),
        "cancel_after_begin" => cancel_after_begin(ch).await.and(pass),
        "cancel_after_first_response" => cancel_after_first_response(ch).await.and(pass),
        "status_code_and_message" => status_code_and_message(ch).await.and(pass),
        "special_status_message" => special_status_message(ch).await.and(pass),
        "custom_metadata" => custom_metadata(ch).await.and(pass),
        "unimplemented_method" => unimplemented(ch, UNIMPLEMENTED_CALL).await.and(pass),
        "unimplemented_service" => unimplemented(ch, UNIMPLEMENTED_SERVICE_CALL)
            .await
            .and(pass),
        "client_compressed_unary" => client_compressed_unary(ch).await,
        "server_compressed_unary" => server_compressed_unary(ch).await,
        "client_compressed_streaming" => client_compressed_streaming(ch).await,
        "server_compressed_streaming" => server_compressed_streaming(ch).await,
        other => Err(format!(
            "unknown test case {other:?}; known: {}",
            CASES.join(", ")
        )),
    }
}

/// One response of a single-response call, with what came around it.
struct Reply {
    msg: Bytes,
    compressed: bool,
    headers: Metadata,
    trailers: Metadata,
}

fn bytes(m: &impl Message) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

fn zeros(n: usize) -> Option<pb::Payload> {
    Some(pb::Payload {
        r#type: pb::PayloadType::Compressable as i32,
        body: vec![0; n],
    })
}

fn decode<M: Message + Default>(what: &str, b: &[u8]) -> Result<M, Failure> {
    M::decode(b).map_err(|e| format!("cannot decode the {what}: {e}"))
}

fn call_failed(what: &str, s: &Status) -> Failure {
    format!("{what} failed: {s}")
}

/// Sends `reqs` on a new call, half-closes, and reads exactly one response and the OK
/// status. A send refused because the call already ended reports the call's status.
async fn single_response(
    ch: &Channel,
    method: &str,
    reqs: Vec<Bytes>,
    opts: CallOptions,
) -> Result<Reply, Status> {
    // `true`: compressed when the call has an encoding, as every message is by default.
    let reqs = reqs.into_iter().map(|r| (r, true)).collect();
    single_response_with(ch, method, reqs, opts).await
}

/// As `single_response`, choosing per request message whether to compress it.
async fn single_response_with(
    ch: &Channel,
    method: &str,
    reqs: Vec<(Bytes, bool)>,
    opts: CallOptions,
) -> Result<Reply, Status> {
    // Bidi: this helper checks for the one response itself, whatever the method's shape.
    let mut call = ch.open(method, Shape::Bidi, opts)?;
    for (r, compress) in reqs {
        if let Err(e) = call.send_with(r, compress).await {
            let s = call.finish().await;
            return Err(if s.is_ok() { e } else { s });
        }
    }
    call.close_send();
    let headers = call.headers().await?;
    let Some(msg) = call.recv().await? else {
        return Err(Status::new(
            Code::Internal,
            "the server ended the call with OK but no response",
        ));
    };
    let compressed = call.last_recv_compressed();
    if call.recv().await?.is_some() {
        return Err(Status::new(
            Code::Internal,
            "the server sent more than one response",
        ));
    }
    let trailers = call.trailers().cloned().unwrap_or_default();
    Ok(Reply {
        msg,
        compressed,
        headers,
        trailers,
    })
}

async fn unary(ch: &Channel, req: &pb::SimpleRequest, opts: CallOptions) -> Result<Reply, Status> {
    single_response(ch, UNARY_CALL, vec![bytes(req)], opts).await
}

fn large_request() -> pb::SimpleRequest {
    pb::SimpleRequest {
        response_size: LARGE_RESP,
        payload: zeros(LARGE_REQ),
        ..Default::default()
    }
}

/// The payload of a response: COMPRESSABLE, `size` zero bytes.
fn check_payload(p: Option<&pb::Payload>, size: i32, what: &str) -> Result<(), Failure> {
    let Some(p) = p else {
        return Err(format!("{what}: the response has no payload"));
    };
    if p.r#type != pb::PayloadType::Compressable as i32 {
        return Err(format!(
            "{what}: payload type {} is not COMPRESSABLE",
            p.r#type
        ));
    }
    if p.body.len() != size as usize {
        return Err(format!(
            "{what}: payload body is {} bytes, want {size}",
            p.body.len()
        ));
    }
    if p.body.iter().any(|&b| b != 0) {
        return Err(format!("{what}: payload body is not all zeros"));
    }
    Ok(())
}

fn check_simple(r: &Reply, size: i32, what: &str) -> Result<(), Failure> {
    let resp: pb::SimpleResponse = decode("SimpleResponse", &r.msg)?;
    check_payload(resp.payload.as_ref(), size, what)
}

fn expect_code(r: Result<Reply, Status>, code: Code, what: &str) -> Result<Status, Failure> {
    match r {
        Ok(_) => Err(format!("{what} succeeded, want {code:?}")),
        Err(s) if s.code() == code => Ok(s),
        Err(s) => Err(format!("{what} failed with {s}, want code {code:?}")),
    }
}

async fn empty_unary(ch: &Channel) -> Result<(), Failure> {
    let r = single_response(
        ch,
        EMPTY_CALL,
        vec![bytes(&pb::Empty {})],
        CallOptions::new(),
    )
    .await
    .map_err(|s| call_failed("EmptyCall", &s))?;
    decode::<pb::Empty>("Empty", &r.msg)?;
    if !r.msg.is_empty() {
        return Err(format!("EmptyCall answered {} bytes, want 0", r.msg.len()));
    }
    Ok(())
}

async fn large_unary(ch: &Channel) -> Result<(), Failure> {
    let r = unary(ch, &large_request(), CallOptions::new())
        .await
        .map_err(|s| call_failed("UnaryCall", &s))?;
    check_simple(&r, LARGE_RESP, "UnaryCall")
}

async fn client_streaming(ch: &Channel) -> Result<(), Failure> {
    let reqs = REQ_SIZES
        .iter()
        .map(|&n| {
            bytes(&pb::StreamingInputCallRequest {
                payload: zeros(n),
                ..Default::default()
            })
        })
        .collect();
    let r = single_response(ch, STREAMING_INPUT_CALL, reqs, CallOptions::new())
        .await
        .map_err(|s| call_failed("StreamingInputCall", &s))?;
    check_aggregate(&r, 74922)
}

fn check_aggregate(r: &Reply, want: i32) -> Result<(), Failure> {
    let resp: pb::StreamingInputCallResponse = decode("StreamingInputCallResponse", &r.msg)?;
    if resp.aggregated_payload_size != want {
        return Err(format!(
            "aggregated_payload_size is {}, want {want}",
            resp.aggregated_payload_size
        ));
    }
    Ok(())
}

fn params(sizes: &[i32]) -> Vec<pb::ResponseParameters> {
    sizes
        .iter()
        .map(|&size| pb::ResponseParameters {
            size,
            ..Default::default()
        })
        .collect()
}

/// Every response of a streaming call, with its compressed flag, then its OK status.
async fn drain(
    call: &mut Call,
    what: &str,
) -> Result<Vec<(pb::StreamingOutputCallResponse, bool)>, Failure> {
    let mut out = Vec::new();
    loop {
        match call.recv().await {
            Ok(Some(m)) => out.push((
                decode("StreamingOutputCallResponse", &m)?,
                call.last_recv_compressed(),
            )),
            Ok(None) => return Ok(out),
            Err(s) => return Err(call_failed(what, &s)),
        }
    }
}

fn check_sizes(
    got: &[(pb::StreamingOutputCallResponse, bool)],
    want: &[i32],
    what: &str,
) -> Result<(), Failure> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: {} responses, want {}",
            got.len(),
            want.len()
        ));
    }
    for (i, ((r, _), &size)) in got.iter().zip(want).enumerate() {
        check_payload(r.payload.as_ref(), size, &format!("{what} response {i}"))?;
    }
    Ok(())
}

async fn server_streaming(ch: &Channel) -> Result<(), Failure> {
    let req = pb::StreamingOutputCallRequest {
        response_parameters: params(&RESP_SIZES),
        ..Default::default()
    };
    let mut call = ch
        .server_streaming(STREAMING_OUTPUT_CALL, bytes(&req), CallOptions::new())
        .await
        .map_err(|s| call_failed("StreamingOutputCall", &s))?;
    let got = drain(&mut call, "StreamingOutputCall").await?;
    check_sizes(&got, &RESP_SIZES, "StreamingOutputCall")
}

async fn send(call: &Call, m: &impl Message, what: &str) -> Result<(), Failure> {
    call.send(bytes(m))
        .await
        .map_err(|s| call_failed(&format!("{what} send"), &s))
}

async fn ping_pong(ch: &Channel) -> Result<(), Failure> {
    let mut call = ch
        .bidi(FULL_DUPLEX_CALL, CallOptions::new())
        .map_err(|s| call_failed("FullDuplexCall", &s))?;
    for (i, (&req, &resp)) in REQ_SIZES.iter().zip(&RESP_SIZES).enumerate() {
        let m = pb::StreamingOutputCallRequest {
            response_parameters: params(&[resp]),
            payload: zeros(req),
            ..Default::default()
        };
        send(&call, &m, "FullDuplexCall").await?;
        let reply = call
            .recv()
            .await
            .map_err(|s| call_failed("FullDuplexCall recv", &s))?
            .ok_or_else(|| format!("FullDuplexCall ended after {i} responses, want 4"))?;
        let r: pb::StreamingOutputCallResponse = decode("StreamingOutputCallResponse", &reply)?;
        check_payload(
            r.payload.as_ref(),
            resp,
            &format!("FullDuplexCall response {i}"),
        )?;
    }
    call.close_send();
    let rest = drain(&mut call, "FullDuplexCall").await?;
    if !rest.is_empty() {
        return Err(format!(
            "FullDuplexCall sent {} responses too many",
            rest.len()
        ));
    }
    Ok(())
}

async fn empty_stream(ch: &Channel) -> Result<(), Failure> {
    let mut call = ch
        .bidi(FULL_DUPLEX_CALL, CallOptions::new())
        .map_err(|s| call_failed("FullDuplexCall", &s))?;
    call.close_send();
    let got = drain(&mut call, "FullDuplexCall").await?;
    if !got.is_empty() {
        return Err(format!("{} responses, want none", got.len()));
    }
    Ok(())
}

async fn timeout_on_sleeping_server(ch: &Channel) -> Result<(), Failure> {
    let opts = CallOptions::new().timeout(Duration::from_millis(1));
    let mut call = ch
        .bidi(FULL_DUPLEX_CALL, opts)
        .map_err(|s| call_failed("FullDuplexCall", &s))?;
    let m = pb::StreamingOutputCallRequest {
        payload: zeros(27182),
        ..Default::default()
    };
    // The deadline may pass before or while the request goes: then send fails with it.
    if let Err(s) = call.send(bytes(&m)).await {
        if s.code() != Code::DeadlineExceeded {
            return Err(call_failed("FullDuplexCall send", &s));
        }
    }
    match call.recv().await {
        Err(s) if s.code() == Code::DeadlineExceeded => Ok(()),
        Err(s) => Err(format!(
            "FullDuplexCall ended with {s}, want DEADLINE_EXCEEDED"
        )),
        Ok(m) => Err(format!(
            "FullDuplexCall recv gave {}, want DEADLINE_EXCEEDED",
            if m.is_some() { "a message" } else { "OK" }
        )),
    }
}

async fn cancel_after_begin(ch: &Channel) -> Result<(), Failure> {
    let mut call = ch
        .open(
            STREAMING_INPUT_CALL,
            Shape::ClientStreaming,
            CallOptions::new(),
        )
        .map_err(|s| call_failed("StreamingInputCall", &s))?;
    call.cancel();
    let s = call.finish().await;
    if s.code() != Code::Cancelled {
        return Err(format!("StreamingInputCall ended with {s}, want CANCELLED"));
    }
    Ok(())
}

async fn cancel_after_first_response(ch: &Channel) -> Result<(), Failure> {
    let mut call = ch
        .bidi(FULL_DUPLEX_CALL, CallOptions::new())
        .map_err(|s| call_failed("FullDuplexCall", &s))?;
    let m = pb::StreamingOutputCallRequest {
        response_parameters: params(&[31415]),
        payload: zeros(27182),
        ..Default::default()
    };
    send(&call, &m, "FullDuplexCall").await?;
    match call.recv().await {
        Ok(Some(_)) => {}
        Ok(None) => return Err("FullDuplexCall ended without a response".into()),
        Err(s) => return Err(call_failed("FullDuplexCall recv", &s)),
    }
    call.cancel();
    match call.recv().await {
        Err(s) if s.code() == Code::Cancelled => Ok(()),
        Err(s) => Err(format!("FullDuplexCall ended with {s}, want CANCELLED")),
        Ok(_) => Err("FullDuplexCall went on after cancel, want CANCELLED".into()),
    }
}

fn echo_status(code: i32, message: &str) -> Option<pb::EchoStatus> {
    Some(pb::EchoStatus {
        code,
        message: message.to_owned(),
    })
}

fn check_status(s: &Status, code: Code, message: &str, what: &str) -> Result<(), Failure> {
    if s.code() != code || s.message() != message {
        return Err(format!(
            "{what} ended with {:?} {:?}, want {code:?} {message:?}",
            s.code(),
            s.message()
        ));
    }
    Ok(())
}

async fn status_code_and_message(ch: &Channel) -> Result<(), Failure> {
    let msg = "test status message";
    let req = pb::SimpleRequest {
        response_status: echo_status(2, msg),
        ..Default::default()
    };
    let s = expect_code(
        unary(ch, &req, CallOptions::new()).await,
        Code::Unknown,
        "UnaryCall",
    )?;
    check_status(&s, Code::Unknown, msg, "UnaryCall")?;
    let mut call = ch
        .bidi(FULL_DUPLEX_CALL, CallOptions::new())
        .map_err(|s| call_failed("FullDuplexCall", &s))?;
    let m = pb::StreamingOutputCallRequest {
        response_status: echo_status(2, msg),
        ..Default::default()
    };
    send(&call, &m, "FullDuplexCall").await?;
    call.close_send();
    match call.recv().await {
        Err(s) => check_status(&s, Code::Unknown, msg, "FullDuplexCall"),
        Ok(_) => Err("FullDuplexCall did not end with the requested status".into()),
    }
}

async fn special_status_message(ch: &Channel) -> Result<(), Failure> {
    let req = pb::SimpleRequest {
        response_status: echo_status(2, SPECIAL_MESSAGE),
        ..Default::default()
    };
    let opts = CallOptions::new().timeout(Duration::from_secs(10));
    let s = expect_code(unary(ch, &req, opts).await, Code::Unknown, "UnaryCall")?;
    check_status(&s, Code::Unknown, SPECIAL_MESSAGE, "UnaryCall")
}

fn echo_metadata() -> Metadata {
    let mut md = Metadata::new();
    md.append_ascii(ECHO_INITIAL, INITIAL_VALUE)
        .expect("valid metadata");
    md.append_bin(ECHO_TRAILING_BIN, &TRAILING_VALUE)
        .expect("valid metadata");
    md
}

fn check_echoed(headers: &Metadata, trailers: &Metadata, what: &str) -> Result<(), Failure> {
    let initial = headers.get_all(ECHO_INITIAL);
    if initial.len() != 1 || headers.get_ascii(ECHO_INITIAL) != Some(INITIAL_VALUE) {
        return Err(format!(
            "{what}: initial metadata {ECHO_INITIAL} is {initial:?}, want exactly {INITIAL_VALUE:?}"
        ));
    }
    let trailing = trailers.get_all(ECHO_TRAILING_BIN);
    if trailing.len() != 1
        || trailers.get_bin(ECHO_TRAILING_BIN).as_deref() != Some(&TRAILING_VALUE[..])
    {
        return Err(format!(
            "{what}: trailing metadata {ECHO_TRAILING_BIN} is {trailing:?}, want exactly {TRAILING_VALUE:?}"
        ));
    }
    Ok(())
}

async fn custom_metadata(ch: &Channel) -> Result<(), Failure> {
    let opts = || CallOptions::new().metadata(echo_metadata());
    let r = unary(ch, &large_request(), opts())
        .await
        .map_err(|s| call_failed("UnaryCall", &s))?;
    check_simple(&r, LARGE_RESP, "UnaryCall")?;
    check_echoed(&r.headers, &r.trailers, "UnaryCall")?;

    let m = pb::StreamingOutputCallRequest {
        response_parameters: params(&[LARGE_RESP]),
        payload: zeros(LARGE_REQ),
        ..Default::default()
    };
    let r = single_response(ch, FULL_DUPLEX_CALL, vec![bytes(&m)], opts())
        .await
        .map_err(|s| call_failed("FullDuplexCall", &s))?;
    let resp: pb::StreamingOutputCallResponse = decode("StreamingOutputCallResponse", &r.msg)?;
    check_payload(resp.payload.as_ref(), LARGE_RESP, "FullDuplexCall")?;
    check_echoed(&r.headers, &r.trailers, "FullDuplexCall")
}

async fn unimplemented(ch: &Channel, method: &str) -> Result<(), Failure> {
    let r = single_response(ch, method, vec![bytes(&pb::Empty {})], CallOptions::new()).await;
    expect_code(r, Code::Unimplemented, method).map(|_| ())
}

fn gzip() -> CallOptions {
    CallOptions::new().compression(Encoding::Gzip)
}

fn flag(v: bool) -> Option<pb::BoolValue> {
    Some(pb::BoolValue { value: v })
}

/// The CompressedRequest feature probe: an uncompressed request that expects compression
/// must fail with INVALID_ARGUMENT. `Ok(Some(_))`: the server lacks the feature.
fn probe(r: Result<Reply, Status>, what: &str) -> Result<Option<Outcome>, Failure> {
    match r {
        Ok(_) => Ok(Some(Outcome::Unsupported(format!(
            "the server ignores expect_compressed ({what} probe succeeded, want INVALID_ARGUMENT)"
        )))),
        Err(s) if s.code() == Code::InvalidArgument => Ok(None),
        Err(s) => Err(format!(
            "{what} probe failed with {s}, want INVALID_ARGUMENT"
        )),
    }
}

async fn client_compressed_unary(ch: &Channel) -> Result<Outcome, Failure> {
    let req = |expect| pb::SimpleRequest {
        expect_compressed: flag(expect),
        ..large_request()
    };
    if let Some(o) = probe(unary(ch, &req(true), CallOptions::new()).await, "UnaryCall")? {
        return Ok(o);
    }
    let r = unary(ch, &req(true), gzip())
        .await
        .map_err(|s| call_failed("compressed UnaryCall", &s))?;
    check_simple(&r, LARGE_RESP, "compressed UnaryCall")?;
    let r = unary(ch, &req(false), CallOptions::new())
        .await
        .map_err(|s| call_failed("uncompressed UnaryCall", &s))?;
    check_simple(&r, LARGE_RESP, "uncompressed UnaryCall")?;
    Ok(Outcome::Pass(None))
}

async fn server_compressed_unary(ch: &Channel) -> Result<Outcome, Failure> {
    for compressed in [true, false] {
        let req = pb::SimpleRequest {
            response_compressed: flag(compressed),
            ..large_request()
        };
        let what = format!("UnaryCall with response_compressed={compressed}");
        let r = unary(ch, &req, CallOptions::new())
            .await
            .map_err(|s| call_failed(&what, &s))?;
        check_simple(&r, LARGE_RESP, &what)?;
        if r.compressed != compressed {
            if compressed {
                return Ok(Outcome::Unsupported(
                    "the server ignores response_compressed (the response arrived uncompressed)"
                        .into(),
                ));
            }
            return Err(format!("{what}: the response arrived compressed"));
        }
    }
    Ok(Outcome::Pass(None))
}

async fn client_compressed_streaming(ch: &Channel) -> Result<Outcome, Failure> {
    let req = |expect, n| pb::StreamingInputCallRequest {
        expect_compressed: flag(expect),
        payload: zeros(n),
    };
    let r = single_response(
        ch,
        STREAMING_INPUT_CALL,
        vec![bytes(&req(true, 27182))],
        CallOptions::new(),
    )
    .await;
    if let Some(o) = probe(r, "StreamingInputCall")? {
        return Ok(o);
    }
    // The first message compressed, the second not, on one call.
    let reqs = vec![
        (bytes(&req(true, 27182)), true),
        (bytes(&req(false, 45904)), false),
    ];
    let r = single_response_with(ch, STREAMING_INPUT_CALL, reqs, gzip())
        .await
        .map_err(|s| call_failed("compressed StreamingInputCall", &s))?;
    check_aggregate(&r, 73086)?;
    Ok(Outcome::Pass(None))
}

async fn server_compressed_streaming(ch: &Channel) -> Result<Outcome, Failure> {
    let req = pb::StreamingOutputCallRequest {
        response_parameters: vec![
            pb::ResponseParameters {
                size: 31415,
                compressed: flag(true),
                ..Default::default()
            },
            pb::ResponseParameters {
                size: 92653,
                compressed: flag(false),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let what = "StreamingOutputCall";
    let mut call = ch
        .server_streaming(STREAMING_OUTPUT_CALL, bytes(&req), CallOptions::new())
        .await
        .map_err(|s| call_failed(what, &s))?;
    let got = drain(&mut call, what).await?;
    check_sizes(&got, &[31415, 92653], what)?;
    if !got[0].1 {
        return Ok(Outcome::Unsupported(
            "the server ignores ResponseParameters.compressed (response 0 arrived uncompressed)"
                .into(),
        ));
    }
    if got[1].1 {
        return Err(format!(
            "{what}: response 1 arrived compressed, want uncompressed"
        ));
    }
    Ok(Outcome::Pass(None))
}
