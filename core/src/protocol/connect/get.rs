//! Connect's GET form of a unary call, for methods without side effects: the request's
//! message, codec and compression travel in the URL's query, so that an HTTP cache can
//! keep the response. The Connect spec:
//!
//! ```text
//! Unary-Get-Request → Method Path "?" Message-Query; Method → "GET"
//! Message-Query → Encoding-Query "&" Message-Param ["&" Base64-Param]
//!                 ["&" Compression-Query] ["&" Connect-Query]
//! Encoding-Query → "encoding=" Message-Codec; Message-Param → "message=" ...
//! Base64-Param → "base64=1"; Compression-Query → "compression=" Content-Coding
//! Connect-Query → "connect=v1"
//! ```

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{Method, Request};

use crate::protocol::envelope::{self, Encoding};
use crate::protocol::grpc::{self, RequestHead};
use crate::status::{Code, Status};

/// A GET request's query, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Query {
    /// The codec (`encoding=`), lower-cased.
    pub(crate) codec: String,
    /// The message as it travelled: compressed if `compression` says so.
    pub(crate) message: Bytes,
    pub(crate) compression: Encoding,
}

/// The longest URL a client sends as a GET; a longer one goes as a POST instead, as
/// connect-go's `WithHTTPGetMaxURLSize(n, true)` does. Servers and proxies cap request
/// lines (nginx at 8 KiB by default), and a POST always arrives.
const MAX_URL: usize = 8 * 1024;

/// A client's GET for a unary call whose request is `msg`: a POST's method and URL made
/// a GET's, the message in the URL (the caller adds the headers; there is no body).
/// `None` when the URL would be longer than `MAX_URL`.
pub(crate) fn request(head: &RequestHead<'_>, msg: &[u8]) -> Result<Option<Request<()>>, Status> {
    if msg.len() / 3 * 4 > MAX_URL && head.encoding == Encoding::Identity {
        return Ok(None);
    }
    let codec = head
        .content_subtype
        .filter(|s| !s.is_empty())
        .unwrap_or("proto");
    // The parameters in the order the spec recommends (connect, base64, compression,
    // encoding, message), so that shared caches see one URL per request. Base64 always:
    // messages are binary more often than not, and a server takes either form.
    let mut query = String::with_capacity(64 + msg.len() * 4 / 3);
    query.push_str("connect=v1&base64=1");
    let compressed;
    let msg = if head.encoding == Encoding::Identity {
        msg
    } else {
        let mut b = BytesMut::new();
        envelope::compress(&mut b, msg, head.encoding)?;
        compressed = b;
        query.push_str("&compression=");
        query.push_str(head.encoding.name());
        &compressed[..]
    };
    query.push_str("&encoding=");
    percent_encode(codec, &mut query);
    query.push_str("&message=");
    URL_SAFE_NO_PAD.encode_string(msg, &mut query);
    let mut req = grpc::post(head)?;
    *req.method_mut() = Method::GET;
    let uri = format!("{}?{query}", req.uri());
    if uri.len() > MAX_URL {
        return Ok(None);
    }
    *req.uri_mut() = uri
        .parse()
        .map_err(|e| Status::internal(format!("invalid GET URL: {e}")))?;
    Ok(Some(req))
}

/// The codec a GET request's query names, if it names one: what tells a Connect GET
/// from any other.
pub(crate) fn codec_of(query: Option<&str>) -> Option<String> {
    pairs(query?)
        .find(|(k, _)| k == "encoding")
        .map(|(_, v)| String::from_utf8_lossy(&v).to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// Reads a GET request's query; a malformed one is the client's error.
pub(crate) fn parse(query: Option<&str>) -> Result<Query, Status> {
    let bad = |why: String| Status::new(Code::InvalidArgument, why);
    let (mut codec, mut message, mut base64, mut compression) = (None, None, false, None);
    for (k, v) in pairs(query.unwrap_or("")) {
        match k.as_str() {
            "encoding" => codec = Some(String::from_utf8_lossy(&v).to_ascii_lowercase()),
            "message" => message = Some(v),
            "base64" => base64 = v == b"1",
            "compression" => compression = Some(String::from_utf8_lossy(&v).into_owned()),
            // The spec: "connect=v1" is the protocol version, optional in a GET.
            "connect" if v != b"v1" => {
                let v = String::from_utf8_lossy(&v);
                return Err(bad(format!("connect must be \"v1\": got {v:?}")));
            }
            _ => {}
        }
    }
    let codec = codec
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("a GET request names its codec in encoding=".into()))?;
    let message = message.unwrap_or_default();
    let message = if base64 {
        // URL-safe or standard alphabet, padded or not: clients differ.
        let end = message
            .iter()
            .rposition(|&c| c != b'=')
            .map_or(0, |i| i + 1);
        let trimmed = &message[..end];
        let decoded = if trimmed.iter().any(|&c| c == b'+' || c == b'/') {
            STANDARD_NO_PAD.decode(trimmed)
        } else {
            URL_SAFE_NO_PAD.decode(trimmed)
        };
        Bytes::from(decoded.map_err(|e| bad(format!("message= is not base64: {e}")))?)
    } else {
        Bytes::from(message)
    };
    let compression = match compression.as_deref() {
        None | Some("") | Some("identity") => Encoding::Identity,
        Some(name) => envelope::requested(name)?,
    };
    Ok(Query {
        codec,
        message,
        compression,
    })
}

/// The query's `key=value` pairs, decoded as a form (`+` is a space, `%XX` a byte): the
/// values as bytes, since a message sent without base64 need not be UTF-8.
fn pairs(query: &str) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let k = String::from_utf8_lossy(&form_decode(k)).into_owned();
        (k, form_decode(v))
    })
}

/// A form's text as bytes: `+` is a space, then `%XX` escapes are decoded.
fn form_decode(s: &str) -> Vec<u8> {
    let spaced: Vec<u8> = s
        .bytes()
        .map(|c| if c == b'+' { b' ' } else { c })
        .collect();
    grpc::percent_decode_bytes(&spaced)
}

/// Query-safe text: unreserved characters as they are, every other byte as `%XX`.
fn percent_encode(s: &str, out: &mut String) {
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
}
