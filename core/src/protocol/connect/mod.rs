//! The Connect protocol (connectrpc.com/docs/protocol), sans I/O.
//!
//! Connect frames a streaming call like gRPC (the 5-byte envelope, flag 0x01 for a
//! compressed message) but ends it in the body: a last envelope flagged 0x02 holds a JSON
//! "end-stream message" with the error and the trailers, and the HTTP status is always
//! 200. A unary call is plain HTTP: the request and response bodies are the bare
//! messages, an error is an HTTP status with a JSON body, and trailers travel as headers
//! prefixed `trailer-`, so a unary response cannot start before the call has ended.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub(crate) mod get;

use super::details::{self, Any};
use super::envelope::{self, Accepts, Encoding};
use super::grpc::{self, code_for_http, RequestHead};
use super::names::{
    CONNECT_ACCEPT_ENCODING, CONNECT_CONTENT_ENCODING, CONNECT_PROTOCOL_VERSION, CONNECT_TIMEOUT_MS,
};
use super::terms::{Incoming, NoHead, Refusal};
use crate::metadata::Metadata;
use crate::status::{Code, Status};

/// The most of an error body read as JSON once decompressed.
const MAX_ERROR_JSON: usize = 1 << 20;

/// The envelope flag of the end-stream message.
pub(crate) const END_STREAM: u8 = 0x02;

/// What we take in `connect-accept-encoding` / `accept-encoding`.
const ACCEPT_ENCODING: &str = envelope::ACCEPTED;

/// The prefix of a streaming call's content type: `application/connect+proto`.
const STREAMING_PREFIX: &str = "application/connect+";

/// The codecs whose content types a Connect request may have. The core passes messages
/// through as bytes, but a content type naming a codec no peer speaks is not a Connect
/// request (connect-go answers 415 for a codec it has not registered).
const CODECS: [&str; 2] = ["proto", "json"];

/// Whether a content type (parameters dropped) is Connect's streaming one:
/// `application/connect+proto` or `application/connect+json`.
pub(crate) fn is_streaming_content_type(base: &str) -> bool {
    base.strip_prefix(STREAMING_PREFIX)
        .is_some_and(|codec| CODECS.contains(&codec))
}

/// Whether a content type is a Connect unary request's: `application/proto` or
/// `application/json`.
pub(crate) fn is_unary_content_type(base: &str) -> bool {
    base.strip_prefix("application/")
        .is_some_and(|codec| CODECS.contains(&codec))
}

/// Checks a Connect request head. `unary`: the Connect unary form (bare body, compression
/// in `content-encoding`), else streaming (envelopes, `connect-content-encoding`).
pub(crate) fn accept(
    parts: &http::request::Parts,
    base_ct: &str,
    unary: bool,
) -> Result<Incoming, Refusal> {
    let h = &parts.headers;
    let content_type = HeaderValue::from_str(base_ct)
        .unwrap_or_else(|_| HeaderValue::from_static("application/proto"));
    let refuse = |status: Status| {
        Err(Refusal {
            status,
            content_type: content_type.clone(),
            accept: None,
        })
    };
    // The spec: "Connect-Protocol-Version → "connect-protocol-version" "1"": optional, but
    // when sent it must name the version this side speaks.
    if let Some(v) = h.get(&CONNECT_PROTOCOL_VERSION) {
        if v.as_bytes() != b"1" {
            return refuse(Status::new(
                Code::InvalidArgument,
                format!("connect-protocol-version must be \"1\": got {v:?}"),
            ));
        }
    }
    let timeout = match h.get(&CONNECT_TIMEOUT_MS) {
        None => None,
        Some(v) => match parse_timeout(v.as_bytes()) {
            Some(t) => Some(t),
            None => {
                return refuse(Status::new(
                    Code::InvalidArgument,
                    format!("malformed connect-timeout-ms {v:?}: at most 10 digits"),
                ))
            }
        },
    };
    // A GET's message, codec and compression are in its URL; it takes encodings back as
    // a unary POST does.
    let get = match parts.method == http::Method::GET {
        true => match get::parse(parts.uri.query()) {
            Ok(q) => Some(q),
            Err(s) => return refuse(s),
        },
        false => None,
    };
    let compressed = match &get {
        Some(q) => Ok((
            q.compression,
            Accepts::parse(h.get_all(http::header::ACCEPT_ENCODING).iter()),
        )),
        None => compression(h, unary),
    };
    let (encoding, accepts) = match compressed {
        Ok(c) => c,
        Err(s) => return refuse(s),
    };
    let metadata = Metadata::from_headers_but(h, |k| {
        matches!(
            k,
            "connect-protocol-version"
                | "connect-timeout-ms"
                | "connect-content-encoding"
                | "connect-accept-encoding"
                | "content-encoding"
                | "accept-encoding"
                | "content-length"
        )
    });
    Ok(Incoming {
        path: parts.uri.path().to_owned(),
        metadata,
        timeout,
        encoding,
        accepts,
        content_type,
        message: get.map(|q| q.message),
    })
}

/// The request's compression and whether the client takes gzip back: `content-encoding`
/// and `accept-encoding` in the unary form, `connect-`-prefixed in the streaming one.
fn compression(h: &HeaderMap, unary: bool) -> Result<(Encoding, Accepts), Status> {
    let (enc_header, accept_header) = if unary {
        (
            &http::header::CONTENT_ENCODING,
            &http::header::ACCEPT_ENCODING,
        )
    } else {
        (&CONNECT_CONTENT_ENCODING, &CONNECT_ACCEPT_ENCODING)
    };
    let encoding = match h.get(enc_header).map(|v| v.to_str().unwrap_or("?")) {
        None => Encoding::Identity,
        Some(name) => envelope::requested(name)?,
    };
    Ok((encoding, Accepts::parse(h.get_all(accept_header).iter())))
}

/// The spec: "Timeout-Milliseconds → {positive integer as ASCII string of at most 10
/// digits}".
fn parse_timeout(v: &[u8]) -> Option<Duration> {
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ms: u64 = std::str::from_utf8(v).ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// A streaming response's head.
pub(crate) fn streaming_head(
    ct: &HeaderValue,
    enc: Encoding,
    md: Option<&Metadata>,
) -> Response<()> {
    let mut r = Response::new(());
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, ct.clone());
    if enc != Encoding::Identity {
        h.insert(
            CONNECT_CONTENT_ENCODING.clone(),
            HeaderValue::from_static(enc.name()),
        );
    }
    h.insert(
        CONNECT_ACCEPT_ENCODING.clone(),
        HeaderValue::from_static(ACCEPT_ENCODING),
    );
    if let Some(md) = md {
        md.write_to(h);
    }
    r
}

/// A streaming call's last envelope: flag 0x02 and the end-stream message, `{}` for a
/// success without trailers.
pub(crate) fn end_stream(status: &Status) -> Bytes {
    let mut end = Map::new();
    if !status.is_ok() {
        end.insert("error".into(), error_json(status));
    }
    let md = metadata_json(status.trailers());
    if !md.is_empty() {
        end.insert("metadata".into(), Value::Object(md));
    }
    let body = serde_json::to_vec(&Value::Object(end)).expect("JSON of strings");
    let mut b = BytesMut::with_capacity(envelope::PREFIX_LEN + body.len());
    b.put_u8(END_STREAM);
    b.put_u32(body.len() as u32);
    b.extend_from_slice(&body);
    b.freeze()
}

/// A unary call's whole response: its head (HTTP status, the handler's headers, the
/// trailers as `trailer-` headers) and its body (the message, or the JSON error).
pub(crate) fn unary_response(
    ct: &HeaderValue,
    enc: Encoding,
    head: Option<&Metadata>,
    status: &Status,
    message: Bytes,
) -> (Response<()>, Bytes) {
    let mut r = Response::new(());
    let h = r.headers_mut();
    let body = if status.is_ok() {
        h.insert(http::header::CONTENT_TYPE, ct.clone());
        if enc != Encoding::Identity && !message.is_empty() {
            h.insert(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static(enc.name()),
            );
        }
        message
    } else {
        *r.status_mut() = http_status(status.code());
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Bytes::from(serde_json::to_vec(&error_json(status)).expect("JSON of strings"))
    };
    let h = r.headers_mut();
    h.insert(
        http::header::ACCEPT_ENCODING,
        HeaderValue::from_static(ACCEPT_ENCODING),
    );
    if let Some(md) = head {
        md.write_to(h);
    }
    let mut trailers = HeaderMap::new();
    status.trailers().write_to(&mut trailers);
    for (k, v) in trailers.iter() {
        if let Ok(name) = HeaderName::from_bytes(format!("trailer-{k}").as_bytes()) {
            h.append(name, v.clone());
        }
    }
    (r, body)
}

/// The answer to a request for a method the server does not have, in either form: 404
/// (which Connect clients read as UNIMPLEMENTED, and which connect-go's router sends) with
/// the error as JSON.
pub(crate) fn route_not_found(status: &Status) -> (Response<()>, Bytes) {
    let mut r = Response::new(());
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&error_json(status)).expect("JSON of strings");
    (r, Bytes::from(body))
}

/// The spec's "Error → {"code": ..., "message": ..., "details": [...]}".
fn error_json(status: &Status) -> Value {
    let mut e = Map::new();
    e.insert("code".into(), json!(code_name(status.code())));
    if !status.message().is_empty() {
        e.insert("message".into(), json!(status.message()));
    }
    let anys = details::read(status.details()).unwrap_or_default();
    if !anys.is_empty() {
        let list = anys
            .iter()
            .map(|a| {
                json!({
                    "type": a.type_url.rsplit('/').next().unwrap_or(""),
                    "value": STANDARD_NO_PAD.encode(&a.value),
                })
            })
            .collect();
        e.insert("details".into(), Value::Array(list));
    }
    Value::Object(e)
}

/// The details of a JSON error as gRPC carries them: a serialized `google.rpc.Status`.
pub(crate) fn details_from_json(code: Code, message: &str, details: &[Value]) -> Bytes {
    let anys: Vec<Any> = details
        .iter()
        .filter_map(|d| {
            let ty = d.get("type")?.as_str()?;
            let v = d.get("value")?.as_str()?;
            let value = STANDARD_NO_PAD
                .decode(v.trim_end_matches('='))
                .or_else(|_| STANDARD.decode(v))
                .ok()?;
            Some(Any {
                type_url: format!("type.googleapis.com/{ty}"),
                value: Bytes::from(value),
            })
        })
        .collect();
    if anys.is_empty() {
        return Bytes::new();
    }
    details::write(code, message, &anys)
}

/// Metadata as the end-stream message carries it: each key to the list of its values,
/// written as they would be as headers (binary values base64).
fn metadata_json(md: &Metadata) -> Map<String, Value> {
    let mut h = HeaderMap::new();
    md.write_to(&mut h);
    let mut out = Map::new();
    for k in h.keys() {
        let vals = h
            .get_all(k)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| json!(v))
            .collect();
        out.insert(k.as_str().to_owned(), Value::Array(vals));
    }
    out
}

// ---- the client's side ----

/// A call's request head: the unary form (`unary`) or the streaming one.
pub(crate) fn request(head: &RequestHead<'_>, unary: bool) -> Result<Request<()>, Status> {
    let mut req = grpc::post(head)?;
    let codec = head
        .content_subtype
        .filter(|s| !s.is_empty())
        .unwrap_or("proto");
    let ct = if unary {
        format!("application/{codec}")
    } else {
        format!("{STREAMING_PREFIX}{codec}")
    };
    let h = req.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(&ct)
            .map_err(|_| Status::new(Code::InvalidArgument, "invalid content subtype"))?,
    );
    h.insert(
        CONNECT_PROTOCOL_VERSION.clone(),
        HeaderValue::from_static("1"),
    );
    if head.encoding != Encoding::Identity {
        let enc_header = if unary {
            http::header::CONTENT_ENCODING
        } else {
            CONNECT_CONTENT_ENCODING.clone()
        };
        h.insert(enc_header, HeaderValue::from_static(head.encoding.name()));
    }
    common_headers(h, head, unary);
    Ok(req)
}

/// A client's GET for a unary call whose request is `msg` (see `get`); `None` when its
/// URL would be too long, and the call goes as a POST.
pub(crate) fn get_request(
    head: &RequestHead<'_>,
    msg: &[u8],
) -> Result<Option<Request<()>>, Status> {
    let Some(mut req) = get::request(head, msg)? else {
        return Ok(None);
    };
    common_headers(req.headers_mut(), head, true);
    Ok(Some(req))
}

/// What every Connect request head carries, POST or GET: the user agent, the timeout,
/// the encodings this side takes back and the call's metadata.
fn common_headers(h: &mut HeaderMap, head: &RequestHead<'_>, unary: bool) {
    h.insert(http::header::USER_AGENT, head.user_agent.clone());
    if let Some(t) = head.timeout {
        // At most ten digits; a longer deadline is no deadline a peer could tell apart.
        let ms = t.as_millis().clamp(1, 9_999_999_999);
        h.insert(CONNECT_TIMEOUT_MS.clone(), HeaderValue::from(ms as u64));
    }
    let accept_header = if unary {
        http::header::ACCEPT_ENCODING
    } else {
        CONNECT_ACCEPT_ENCODING.clone()
    };
    h.insert(accept_header, HeaderValue::from_static(ACCEPT_ENCODING));
    head.metadata.write_to(h);
}

/// What a client makes of a streaming response's head: its metadata and message
/// encoding, or the status of a call the server refused before it began.
pub(crate) fn check_streaming_response(
    parts: &http::response::Parts,
) -> Result<(Metadata, Encoding), NoHead> {
    let h = &parts.headers;
    let md = response_metadata(h);
    if parts.status != StatusCode::OK {
        // The spec: a streaming call's errors are in the end-stream message; a status
        // other than 200 comes from something before the handler, and maps as gRPC's do.
        let s = Status::new(
            code_for_http(parts.status.as_u16()),
            format!("unexpected HTTP status {}", parts.status),
        );
        return Err(NoHead::Refused(s, md));
    }
    let ct = h
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_streaming_content_type(ct.split(';').next().unwrap_or("").trim()) {
        let s = Status::new(
            Code::Unknown,
            format!("unexpected content-type {ct:?} in the response"),
        );
        return Err(NoHead::Refused(s, md));
    }
    let enc =
        encoding_of(h, &CONNECT_CONTENT_ENCODING).map_err(|s| NoHead::Refused(s, md.clone()))?;
    Ok((md, enc))
}

/// A unary response's head, 200: its metadata, its trailers (the `trailer-` headers) and
/// the body's encoding.
pub(crate) fn check_unary_response(
    parts: &http::response::Parts,
) -> Result<(Metadata, Metadata, Encoding), Status> {
    let h = &parts.headers;
    let ct = h
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_unary_content_type(ct.split(';').next().unwrap_or("").trim()) {
        // Not a Connect answer (a gRPC-only server answers with its own content type): the
        // HTTP status says what it can, as connect-go reads it.
        return Err(Status::new(
            code_for_http(parts.status.as_u16()),
            format!("invalid content-type {ct:?} in a Connect unary response"),
        ));
    }
    let enc = encoding_of(h, &http::header::CONTENT_ENCODING)?;
    Ok((response_metadata(h), unary_trailers(h), enc))
}

/// The status of a unary call that failed: the JSON error in its body, or, when the body
/// is not one (a proxy's error page), the code its HTTP status maps to.
/// A unary error response read as the call's end: its status, whose metadata is the
/// response's headers and trailers (as connect-go's `Error.Meta()`), and the headers alone,
/// which the call reports as its response headers.
pub(crate) fn unary_error(parts: &http::response::Parts, body: &[u8]) -> (Status, Metadata) {
    let h = &parts.headers;
    let trailers = unary_trailers(h);
    // An error body may be compressed like a message.
    let body = match encoding_of(h, &http::header::CONTENT_ENCODING) {
        Ok(Encoding::Identity) | Err(_) => Bytes::copy_from_slice(body),
        Ok(enc) => envelope::decompress(enc, body, MAX_ERROR_JSON).unwrap_or_default(),
    };
    let by_http = code_for_http(parts.status.as_u16());
    let status = match serde_json::from_slice::<Value>(&body) {
        // A code the JSON lacks, or one this side does not know, is the HTTP status's; the
        // message and details are the JSON's still.
        Ok(e @ Value::Object(_)) => status_from_error_json(&e, by_http),
        _ => Status::new(by_http, format!("HTTP status {}", parts.status)),
    };
    // The spec: the error's metadata is the response's headers and trailers.
    let head = response_metadata(h);
    let mut all = head.clone();
    for (k, v) in trailers.iter() {
        let _ = all.append(k, v);
    }
    (status.with_trailers(all), head)
}

/// The status an end-stream message says: its error (none: OK) and its metadata as the
/// trailers.
pub(crate) fn status_from_end_stream(json: &[u8]) -> Status {
    let v: Value = match serde_json::from_slice(json) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return Status::internal(format!(
                "invalid end-stream message: {:?}",
                String::from_utf8_lossy(&json[..json.len().min(200)])
            ))
        }
    };
    let status = match v.get("error") {
        None | Some(Value::Null) => Status::ok(),
        Some(e) => status_from_error_json(e, Code::Unknown),
    };
    let mut h = HeaderMap::new();
    if let Some(Value::Object(md)) = v.get("metadata") {
        for (k, vals) in md {
            let Ok(name) = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()) else {
                continue;
            };
            for val in vals.as_array().into_iter().flatten() {
                if let Some(Ok(hv)) = val.as_str().map(HeaderValue::from_str) {
                    h.append(name.clone(), hv);
                }
            }
        }
    }
    status.with_trailers(Metadata::from_headers(&h))
}

/// The status a JSON error says; `fallback` is the code when it names none this side knows.
fn status_from_error_json(e: &Value, fallback: Code) -> Status {
    let code = e
        .get("code")
        .and_then(Value::as_str)
        .and_then(code_from_name)
        .unwrap_or(fallback);
    let message = e.get("message").and_then(Value::as_str).unwrap_or("");
    let details = e
        .get("details")
        .and_then(Value::as_array)
        .map(|d| details_from_json(code, message, d))
        .unwrap_or_default();
    Status::new(code, message).with_details(details)
}

/// A response's metadata: its headers but the protocol's own and the trailers.
fn response_metadata(h: &HeaderMap) -> Metadata {
    Metadata::from_headers_but(h, |k| {
        k.starts_with("trailer-") || k.starts_with("connect-") || is_plumbing(k)
    })
}

fn is_plumbing(k: &str) -> bool {
    matches!(
        k,
        "content-encoding" | "accept-encoding" | "content-length" | "date" | "vary"
    )
}

/// A unary response's trailers: its `trailer-` headers, the prefix dropped.
fn unary_trailers(h: &HeaderMap) -> Metadata {
    let mut t = HeaderMap::new();
    for (k, v) in h.iter() {
        if let Some(name) = k.as_str().strip_prefix("trailer-") {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                t.append(n, v.clone());
            }
        }
    }
    Metadata::from_headers(&t)
}

fn encoding_of(h: &HeaderMap, header: &HeaderName) -> Result<Encoding, Status> {
    match h.get(header).map(|v| v.to_str().unwrap_or("?")) {
        None => Ok(Encoding::Identity),
        Some(name) => Encoding::from_name(name).ok_or_else(|| {
            Status::internal(format!(
                "server sent messages in an unsupported {header} {name:?}"
            ))
        }),
    }
}

/// The code a Connect code name stands for, if it is one.
pub(crate) fn code_from_name(name: &str) -> Option<Code> {
    (0..=16).map(Code::from_u32).find(|c| code_name(*c) == name)
}

/// The spec's code names: the gRPC names in lower snake case, but "canceled".
pub(crate) fn code_name(code: Code) -> String {
    match code {
        Code::Cancelled => "canceled".into(),
        c => c.name().to_ascii_lowercase(),
    }
}

/// The HTTP status of a unary error (the spec's table, as connect-go has it).
pub(crate) fn http_status(code: Code) -> StatusCode {
    let n = match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unauthenticated => 401,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    };
    StatusCode::from_u16(n).expect("valid status")
}

/// A unary request's body, gathered whole: it is the one message.
pub(crate) struct Whole {
    acc: BytesMut,
    max_message: usize,
    encoding: Encoding,
    /// The message, from the body's end until it is taken.
    message: Option<Bytes>,
}

impl Whole {
    pub(crate) fn new(max_message: usize, encoding: Encoding) -> Whole {
        Whole {
            acc: BytesMut::new(),
            max_message,
            encoding,
            message: None,
        }
    }

    /// Adds a chunk of the body; a body past the size limit fails the call.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), Status> {
        if self.acc.len() + chunk.len() > self.max_message {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "received message larger than max ({} vs. {})",
                    self.acc.len() + chunk.len(),
                    self.max_message
                ),
            ));
        }
        self.acc.extend_from_slice(chunk);
        Ok(())
    }

    /// The body has ended: it becomes the message.
    pub(crate) fn finish(&mut self) -> Result<(), Status> {
        let body = self.acc.split().freeze();
        self.message = Some(match self.encoding {
            Encoding::Identity => body,
            enc => envelope::decompress(enc, &body, self.max_message)?,
        });
        Ok(())
    }

    /// The message, once.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        self.message.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_stream_bytes_carry_the_error_and_trailers() {
        let mut md = Metadata::new();
        md.append_ascii("x-t", "v").unwrap();
        let s = Status::new(Code::Cancelled, "stop").with_trailers(md);
        let b = end_stream(&s);
        let json = br#"{"error":{"code":"canceled","message":"stop"},"metadata":{"x-t":["v"]}}"#;
        assert_eq!(b[0], END_STREAM);
        assert_eq!(&b[1..5], &(json.len() as u32).to_be_bytes());
        assert_eq!(&b[5..], &json[..]);
        // A success without trailers: `{}`.
        assert_eq!(&end_stream(&Status::ok())[..], b"\x02\x00\x00\x00\x02{}");
    }

    #[test]
    fn an_error_carries_its_details_as_json() {
        let d = details::write(
            Code::NotFound,
            "gone",
            &[Any {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                value: Bytes::from_static(b"\x0a\x03why"),
            }],
        );
        let s = Status::new(Code::NotFound, "gone").with_details(d.clone());
        let ct = HeaderValue::from_static("application/proto");
        let (head, body) = unary_response(&ct, Encoding::Identity, None, &s, Bytes::new());
        assert_eq!(head.status(), 404);
        assert_eq!(head.headers()["content-type"], "application/json");
        assert_eq!(
            &body[..],
            br#"{"code":"not_found","details":[{"type":"google.rpc.ErrorInfo","value":"CgN3aHk"}],"message":"gone"}"#
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        let back = details_from_json(Code::NotFound, "gone", v["details"].as_array().unwrap());
        assert_eq!(back, d);
    }

    #[test]
    fn unary_trailers_travel_as_prefixed_headers() {
        let mut md = Metadata::new();
        md.append_bin("x-b-bin", b"\x00\x01").unwrap();
        let s = Status::ok().with_trailers(md);
        let ct = HeaderValue::from_static("application/proto");
        let (head, body) =
            unary_response(&ct, Encoding::Identity, None, &s, Bytes::from_static(b"m"));
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["trailer-x-b-bin"], "AAE");
        assert_eq!(&body[..], b"m");
    }

    #[test]
    fn timeouts_are_at_most_ten_digits() {
        assert_eq!(parse_timeout(b"1500"), Some(Duration::from_millis(1500)));
        assert_eq!(
            parse_timeout(b"9999999999"),
            Some(Duration::from_millis(9_999_999_999))
        );
        assert_eq!(parse_timeout(b"10000000000"), None);
        assert_eq!(parse_timeout(b"-1"), None);
        assert_eq!(parse_timeout(b""), None);
    }

    #[test]
    fn a_unary_body_past_the_limit_fails() {
        let mut w = Whole::new(4, Encoding::Identity);
        w.push(b"ab").unwrap();
        w.push(b"cd").unwrap();
        let e = w.push(b"e").unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);
    }
}
