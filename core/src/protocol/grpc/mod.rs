//! gRPC over HTTP/2: the request and response heads, the trailers that carry the status,
//! Trailers-Only responses, and how HTTP/2 resets and HTTP statuses map to codes
//! (gRPC's `PROTOCOL-HTTP2.md` and `http-grpc-status-mapping.md`); and gRPC-Web
//! (`PROTOCOL-WEB.md`), which is gRPC with its trailers moved into the body. The rules are
//! sans I/O; `protocol::stream` applies them to an h2 stream.

pub(crate) mod timeout;
pub(crate) mod web_text;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::envelope::{self, Accepts, Encoding};
use super::names::{
    GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_MESSAGE, GRPC_STATUS, GRPC_STATUS_DETAILS_BIN,
    GRPC_TIMEOUT, X_GRPC_WEB,
};
use super::terms::NoHead;
use super::terms::{Incoming, Refusal};
use crate::metadata::{decode_bin, Metadata};
use crate::status::{Code, Status};

/// What we advertise in `grpc-accept-encoding`.
pub(crate) const ACCEPT_ENCODING: &str = envelope::ACCEPTED;

/// "Content-Type → "content-type" "application/grpc" [("+proto" / "+json" / {custom})]"
pub(crate) fn content_type(subtype: Option<&str>) -> Result<HeaderValue, Status> {
    match subtype {
        None | Some("") => Ok(HeaderValue::from_static("application/grpc")),
        Some("proto") => Ok(HeaderValue::from_static("application/grpc+proto")),
        Some(s) => HeaderValue::from_str(&format!("application/grpc+{s}"))
            .map_err(|_| Status::new(Code::InvalidArgument, "invalid content subtype")),
    }
}

/// gRPC-Web's content type: `application/grpc-web[+proto|+json|+{custom}]`.
fn web_content_type(subtype: Option<&str>) -> Result<HeaderValue, Status> {
    match subtype {
        None | Some("") | Some("proto") => {
            Ok(HeaderValue::from_static("application/grpc-web+proto"))
        }
        Some(s) => HeaderValue::from_str(&format!("application/grpc-web+{s}"))
            .map_err(|_| Status::new(Code::InvalidArgument, "invalid content subtype")),
    }
}

/// A head's content type, or "" when it has none (or not as text).
fn content_type_of(h: &http::HeaderMap) -> &str {
    h.get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub(crate) fn is_grpc_content_type(ct: &str) -> bool {
    let base = ct.split(';').next().unwrap_or("").trim();
    base == "application/grpc" || base.starts_with("application/grpc+")
}

/// gRPC-Web's binary content type, `application/grpc-web[+proto]`.
pub(crate) fn is_grpc_web_content_type(base: &str) -> bool {
    base == "application/grpc-web" || base.starts_with("application/grpc-web+")
}

/// gRPC-Web's text content type, `application/grpc-web-text[+proto]`.
pub(crate) fn is_grpc_web_text_content_type(base: &str) -> bool {
    base == "application/grpc-web-text" || base.starts_with("application/grpc-web-text+")
}

/// gRPC-Web's flag for the body frame that carries the trailers: "the MSB (0x80) ...
/// indicates that this frame contains trailers" (`PROTOCOL-WEB.md`).
pub(crate) const WEB_TRAILERS: u8 = 0x80;

/// The status a gRPC-Web trailers frame carries: its header lines ("key: value\r\n").
pub(crate) fn status_from_web_trailers(frame: &[u8]) -> Status {
    let mut h = HeaderMap::new();
    for line in frame.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name =
            http::header::HeaderName::from_bytes(&line[..colon].trim_ascii().to_ascii_lowercase());
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (name, value) {
            h.append(n, v);
        }
    }
    status_from_trailers(&h)
}

/// gRPC-Web's last body frame: the trailers as an HTTP/1 header block ("key: value\r\n"
/// lines, names lower-case) in an envelope flagged 0x80.
pub(crate) fn web_trailers(status: &Status) -> Bytes {
    let t = trailers(status);
    let len: usize = t.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    let mut b = BytesMut::with_capacity(envelope::PREFIX_LEN + len);
    b.put_u8(WEB_TRAILERS);
    b.put_u32(len as u32);
    for (k, v) in t.iter() {
        b.extend_from_slice(k.as_str().as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(v.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    b.freeze()
}

/// What a client's request head says.
pub(crate) struct RequestHead<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) authority: &'a str,
    pub(crate) path: &'a str,
    pub(crate) user_agent: &'a HeaderValue,
    pub(crate) timeout: Option<Duration>,
    pub(crate) encoding: Encoding,
    pub(crate) content_subtype: Option<&'a str>,
    pub(crate) metadata: &'a Metadata,
}

/// A POST to the call's method, the start of every protocol's request head.
pub(crate) fn post(head: &RequestHead<'_>) -> Result<Request<()>, Status> {
    let path = head.path;
    if !path.starts_with('/') || path.len() < 2 {
        return Err(Status::new(
            Code::InvalidArgument,
            format!("method path must look like /package.Service/Method, got {path:?}"),
        ));
    }
    let uri = format!("{}://{}{}", head.scheme, head.authority, path);
    Request::post(uri).body(()).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("invalid method path {path:?}: {e}"),
        )
    })
}

/// The request header block of a call; `web`: gRPC-Web's.
pub(crate) fn request(head: &RequestHead<'_>, web: bool) -> Result<Request<()>, Status> {
    let mut req = post(head)?;
    let h = req.headers_mut();
    if web {
        // PROTOCOL-WEB.md: "Content-Type ... application/grpc-web", "X-Grpc-Web: 1"; no
        // TE: the trailers come in the body.
        h.insert(
            http::header::CONTENT_TYPE,
            web_content_type(head.content_subtype)?,
        );
        h.insert(X_GRPC_WEB.clone(), HeaderValue::from_static("1"));
    } else {
        h.insert(
            http::header::CONTENT_TYPE,
            content_type(head.content_subtype)?,
        );
        h.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    h.insert(http::header::USER_AGENT, head.user_agent.clone());
    if let Some(t) = head.timeout {
        h.insert(
            GRPC_TIMEOUT.clone(),
            HeaderValue::from_str(&timeout::encode(t)).expect("ascii"),
        );
    }
    if head.encoding != Encoding::Identity {
        h.insert(
            GRPC_ENCODING.clone(),
            HeaderValue::from_static(head.encoding.name()),
        );
    }
    h.insert(
        GRPC_ACCEPT_ENCODING.clone(),
        HeaderValue::from_static(ACCEPT_ENCODING),
    );
    head.metadata.write_to(h);
    Ok(req)
}

/// Checks the rest of a gRPC (or gRPC-Web) request head, its content type `base` known: a
/// known `grpc-encoding` and a well-formed `grpc-timeout`.
pub(crate) fn accept(parts: &http::request::Parts, base: &str) -> Result<Incoming, Refusal> {
    let h = &parts.headers;
    let content_type = HeaderValue::from_str(base)
        .unwrap_or_else(|_| HeaderValue::from_static("application/grpc"));
    let encoding = match h.get(&GRPC_ENCODING).map(|v| v.to_str().unwrap_or("?")) {
        None => Encoding::Identity,
        Some(name) => match Encoding::from_name(name) {
            Some(e) => e,
            None => {
                let s = Status::new(
                    Code::Unimplemented,
                    format!("grpc-encoding {name:?} is not supported"),
                );
                return Err(Refusal {
                    status: s,
                    content_type,
                    accept: Some(ACCEPT_ENCODING),
                });
            }
        },
    };
    let timeout = match h.get(&GRPC_TIMEOUT) {
        None => None,
        Some(v) => match timeout::parse(v.as_bytes()) {
            Some(t) => Some(t),
            None => {
                let s = Status::internal(format!("malformed grpc-timeout {v:?}"));
                return Err(Refusal {
                    status: s,
                    content_type,
                    accept: None,
                });
            }
        },
    };
    let accepts = Accepts::parse(h.get_all(&GRPC_ACCEPT_ENCODING).iter());
    Ok(Incoming {
        path: parts.uri.path().to_owned(),
        metadata: Metadata::from_headers(h),
        timeout,
        encoding,
        accepts,
        content_type,
        message: None,
    })
}

/// A response head: 200, the content type, the message encoding, and `extra` (the
/// handler's metadata, or the status of a Trailers-Only response).
pub(crate) fn response(ct: &HeaderValue, enc: Encoding, extra: Option<HeaderMap>) -> Response<()> {
    let mut r = Response::new(());
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, ct.clone());
    if enc != Encoding::Identity {
        h.insert(GRPC_ENCODING.clone(), HeaderValue::from_static(enc.name()));
    }
    h.insert(
        GRPC_ACCEPT_ENCODING.clone(),
        HeaderValue::from_static(ACCEPT_ENCODING),
    );
    if let Some(extra) = extra {
        for (k, v) in extra.iter() {
            h.append(k.clone(), v.clone());
        }
    }
    r
}

/// The header block of a Trailers-Only response: the status alone, for a call that ends
/// before any message.
pub(crate) fn trailers_only(
    ct: &HeaderValue,
    status: &Status,
    accept: Option<&'static str>,
) -> Response<()> {
    let mut r = Response::new(());
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, ct.clone());
    if let Some(a) = accept {
        h.insert(GRPC_ACCEPT_ENCODING.clone(), HeaderValue::from_static(a));
    }
    for (k, v) in trailers(status).iter() {
        h.append(k.clone(), v.clone());
    }
    r
}

/// The trailer block for a status: `grpc-status`, `grpc-message` (percent-encoded),
/// `grpc-status-details-bin`, then the status's trailer metadata.
pub(crate) fn trailers(status: &Status) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(2 + status.trailers().len());
    h.insert(GRPC_STATUS.clone(), HeaderValue::from(status.code() as u32));
    if !status.message().is_empty() {
        if let Ok(v) = HeaderValue::from_str(&percent_encode(status.message())) {
            h.insert(GRPC_MESSAGE.clone(), v);
        }
    }
    if !status.details().is_empty() {
        if let Ok(v) = HeaderValue::from_str(&STANDARD_NO_PAD.encode(status.details())) {
            h.insert(GRPC_STATUS_DETAILS_BIN.clone(), v);
        }
    }
    status.trailers().write_to(&mut h);
    h
}

/// The status a trailer block (or a Trailers-Only header block) carries.
pub(crate) fn status_from_trailers(t: &HeaderMap) -> Status {
    let code = match t.get(&GRPC_STATUS) {
        None => {
            return Status::internal("server sent trailers without grpc-status")
                .with_trailers(Metadata::from_headers(t))
        }
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u32>().ok()) {
            Some(n) => Code::from_u32(n),
            None => Code::Unknown,
        },
    };
    let message = t
        .get(&GRPC_MESSAGE)
        .map(|v| percent_decode(v.as_bytes()))
        .unwrap_or_default();
    let details = t
        .get(&GRPC_STATUS_DETAILS_BIN)
        .and_then(|v| decode_bin(v.as_bytes()))
        .unwrap_or_default();
    Status::new(code, message)
        .with_details(details)
        .with_trailers(Metadata::from_headers(t))
}

/// What a client makes of a response head: its metadata and message encoding, or why it
/// has no messages to follow. `web`: a gRPC-Web response; `ended`: the head ended the
/// response (HTTP/2's END_STREAM on it, or an empty HTTP/1.1 body).
pub(crate) fn check_response(
    parts: &http::response::Parts,
    web: bool,
    ended: bool,
) -> Result<(Metadata, Encoding), NoHead> {
    let h = &parts.headers;
    // Trailers-Only: the status came in the only header block. A `grpc-status` in a head
    // that a body or trailers follow is not the status: those say it (or its absence).
    if ended && h.contains_key(&GRPC_STATUS) {
        return Err(NoHead::Ended(status_from_trailers(h), None));
    }
    let md = Metadata::from_headers(h);
    if parts.status != StatusCode::OK {
        let s = Status::new(
            code_for_http(parts.status.as_u16()),
            format!(
                "unexpected HTTP status code received from server: {}",
                parts.status
            ),
        );
        return Err(NoHead::Refused(s, md));
    }
    let ct = content_type_of(h);
    let base = ct.split(';').next().unwrap_or("").trim();
    let expected = if web {
        is_grpc_web_content_type(base) || is_grpc_web_text_content_type(base)
    } else {
        is_grpc_content_type(ct)
    };
    if !expected {
        let s = Status::new(
            Code::Unknown,
            format!("unexpected content-type {ct:?} in the response"),
        );
        return Err(NoHead::Refused(s, md));
    }
    let enc = match h.get(&GRPC_ENCODING).map(|v| v.to_str().unwrap_or("?")) {
        None => Encoding::Identity,
        Some(name) => match Encoding::from_name(name) {
            Some(e) => e,
            None => {
                let s = Status::internal(format!(
                    "server sent messages in an unsupported grpc-encoding {name:?}"
                ));
                return Err(NoHead::Refused(s, md));
            }
        },
    };
    Ok((md, enc))
}

/// The code a client derives from a non-200 HTTP status when the response carries no
/// `grpc-status` (the table in grpc's `http-grpc-status-mapping.md`).
pub(crate) fn code_for_http(status: u16) -> Code {
    match status {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// The code for an RST_STREAM the peer sent, per the gRPC HTTP/2 spec's error-code table.
pub(crate) fn code_for_reset(reason: h2::Reason) -> Code {
    match reason {
        h2::Reason::CANCEL => Code::Cancelled,
        h2::Reason::REFUSED_STREAM => Code::Unavailable,
        h2::Reason::ENHANCE_YOUR_CALM => Code::ResourceExhausted,
        h2::Reason::INADEQUATE_SECURITY => Code::PermissionDenied,
        _ => Code::Internal,
    }
}

/// The status for an h2 error on a stream: a reset from the peer keeps its mapped code,
/// a broken connection is UNAVAILABLE.
pub(crate) fn status_from_h2(err: &h2::Error) -> Status {
    if let Some(reason) = err.reason() {
        if err.is_reset() || err.is_remote() {
            let what = if err.is_go_away() {
                "connection closed (GOAWAY)"
            } else {
                "stream reset by peer"
            };
            return Status::new(code_for_reset(reason), format!("{what}: {reason:?}"));
        }
        if err.is_go_away() {
            // h2's text carries the debug data, which says which of its guards tripped.
            return Status::unavailable(format!("connection closed (GOAWAY {reason:?}): {err}"));
        }
        return Status::new(code_for_reset(reason), format!("stream reset: {reason:?}"));
    }
    if err.is_io() {
        return Status::unavailable(format!("connection error: {err}"));
    }
    Status::unavailable(format!("transport error: {err}"))
}

/// The status for a failure of a call's stream, over either HTTP version.
pub(crate) fn status_from_http(err: &crate::transport::http::Error) -> Status {
    use crate::transport::http::Error;
    match err {
        Error::H2(e) => status_from_h2(e),
        Error::H1(e) => Status::unavailable(format!("connection error: {e}")),
        Error::H1Gone => Status::cancelled("the client closed its connection"),
        Error::H1Aborted => Status::cancelled("the call was cancelled"),
    }
}

/// Percent-encodes `grpc-message`. The spec: "grpc-message ... Percent-Encoded ... all
/// characters outside the range 0x20-0x7E and the percent sign itself are encoded".
pub(crate) fn percent_encode(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for &b in msg.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `grpc-message`. The spec asks receivers to be lenient: a `%` not followed by two
/// hex digits is kept as it is rather than failing the call.
pub(crate) fn percent_decode(raw: &[u8]) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(raw)).into_owned()
}

/// `%XX` escapes as their bytes, leniently as `percent_decode`; Connect's GET query is read
/// with it too.
pub(crate) fn percent_decode_bytes(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// What the envelope decoder needs to know of a peer's messages.
pub(crate) fn decoder(max_message: usize, encoding: Encoding) -> envelope::Decoder {
    let mut d = envelope::Decoder::new(max_message);
    d.set_encoding(encoding);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip_keeps_unicode_and_percent() {
        let msg = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n 100%";
        let enc = percent_encode(msg);
        assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        assert!(enc.contains("%25"));
        assert_eq!(percent_decode(enc.as_bytes()), msg);
    }

    #[test]
    fn percent_decode_is_lenient() {
        assert_eq!(percent_decode(b"50%"), "50%");
        assert_eq!(percent_decode(b"a%zzb"), "a%zzb");
        assert_eq!(percent_decode(b"%4"), "%4");
        assert_eq!(percent_decode(b"%41"), "A");
    }
}
