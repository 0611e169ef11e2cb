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
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};
use std::time::Duration;

use super::details::{self, Any};
use super::envelope::{self, Encoding};
use super::terms::{Incoming, Refusal};
use crate::metadata::Metadata;
use crate::status::{Code, Status};

/// The envelope flag of the end-stream message.
pub(crate) const END_STREAM: u8 = 0x02;

/// What we take in `connect-accept-encoding` / `accept-encoding`.
const ACCEPT_ENCODING: &str = "gzip";

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
    if let Some(v) = h.get("connect-protocol-version") {
        if v.as_bytes() != b"1" {
            return refuse(Status::new(
                Code::InvalidArgument,
                format!("connect-protocol-version must be \"1\": got {v:?}"),
            ));
        }
    }
    let timeout = match h.get("connect-timeout-ms") {
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
    let (encoding, accepts_gzip) = match compression(h, unary) {
        Ok(c) => c,
        Err(s) => return refuse(s),
    };
    let mut metadata = Metadata::from_headers(h);
    for k in [
        "connect-protocol-version",
        "connect-timeout-ms",
        "connect-content-encoding",
        "connect-accept-encoding",
        "content-encoding",
        "accept-encoding",
        "content-length",
    ] {
        metadata.remove(k);
    }
    Ok(Incoming {
        path: parts.uri.path().to_owned(),
        metadata,
        timeout,
        encoding,
        accepts_gzip,
        content_type,
    })
}

/// The request's compression and whether the client takes gzip back: `content-encoding`
/// and `accept-encoding` in the unary form, `connect-`-prefixed in the streaming one.
fn compression(h: &HeaderMap, unary: bool) -> Result<(Encoding, bool), Status> {
    let (enc_header, accept_header) = if unary {
        ("content-encoding", "accept-encoding")
    } else {
        ("connect-content-encoding", "connect-accept-encoding")
    };
    let encoding = match h.get(enc_header).map(|v| v.to_str().unwrap_or("?")) {
        None => Encoding::Identity,
        Some(name) => Encoding::from_name(name).ok_or_else(|| {
            Status::new(
                Code::Unimplemented,
                format!("unknown compression {name:?}: supported encodings are gzip, identity"),
            )
        })?,
    };
    let accepts_gzip = h
        .get_all(accept_header)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.trim() == "gzip");
    Ok((encoding, accepts_gzip))
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
            "connect-content-encoding",
            HeaderValue::from_static(enc.name()),
        );
    }
    h.insert(
        "connect-accept-encoding",
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
#[allow(dead_code)] // the Connect client reads errors with it
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
