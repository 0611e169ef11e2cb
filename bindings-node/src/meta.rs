//! Metadata and statuses as JS sees them: metadata is a flat array `[key, value, ...]`
//! (string values, Buffers for `-bin` keys); a status is a plain object.

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use rillrpc::{Code, Metadata, MetadataValue, Named};

pub(crate) type Flat = Vec<Either<String, Buffer>>;

/// Reads JS metadata; a bad key or value is a TypeError naming it.
pub(crate) fn from_js(flat: Option<Flat>) -> Result<Metadata> {
    let mut md = Metadata::new();
    let Some(flat) = flat else { return Ok(md) };
    let mut it = flat.into_iter();
    while let Some(k) = it.next() {
        let Either::A(key) = k else {
            return Err(invalid("metadata keys must be strings"));
        };
        let Some(v) = it.next() else {
            return Err(invalid("metadata: a key without a value"));
        };
        let r = match v {
            Either::A(s) if key.to_ascii_lowercase().ends_with("-bin") => {
                md.append_bin(&key, s.as_bytes())
            }
            Either::A(s) => md.append_ascii(&key, &s),
            Either::B(b) => md.append_bin(&key, &b),
        };
        r.map_err(|e| invalid(&format!("invalid metadata: {e}")))?;
    }
    Ok(md)
}

pub(crate) fn to_js(md: &Metadata) -> Flat {
    let mut out = Vec::with_capacity(md.len() * 2);
    for (k, v) in md.iter() {
        out.push(Either::A(k.to_owned()));
        out.push(match v {
            MetadataValue::Ascii(s) => Either::A(s),
            MetadataValue::Binary(b) => Either::B(Buffer::from(b.to_vec())),
        });
    }
    out
}

pub(crate) fn invalid(msg: &str) -> Error {
    Error::new(napi::Status::InvalidArg, msg.to_owned())
}

/// A count of bytes, checked: a whole number, not negative.
pub(crate) fn byte_count(v: Option<f64>, what: &str) -> Result<Option<usize>> {
    match v {
        Some(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 => Ok(Some(n as usize)),
        Some(n) => Err(invalid(&format!("invalid {what} {n}"))),
        None => Ok(None),
    }
}

/// The core's value called `name` (a protocol, an HTTP version, an idempotency level); an
/// invalid-argument error with the core's list of names otherwise.
pub(crate) fn named<T: Named>(what: &str, name: &str) -> Result<T> {
    rillrpc::by_name(what, name).map_err(|e| invalid(e.message()))
}

/// A call's final status.
#[napi(object)]
pub struct JsStatus {
    pub code: u32,
    pub details: String,
    /// `grpc-status-details-bin`, when the peer sent rich error details.
    pub status_details: Option<Buffer>,
    pub metadata: Flat,
    /// The Kitex biz status the status carries (the core reads it from the trailers).
    pub biz: Option<JsBiz>,
}

/// A Kitex business status: code, message and the extra map as `[key, value, ...]`.
#[napi(object)]
pub struct JsBiz {
    pub code: i32,
    pub message: String,
    pub extra: Vec<String>,
}

/// The status that ends a call with a Kitex biz status, as the core builds it
/// (`new BizStatusError(...)`); `extra` is `[key, value, ...]`.
#[napi]
pub fn biz_status(code: i32, message: String, extra: Vec<String>) -> JsStatus {
    let biz = extra
        .chunks_exact(2)
        .fold(rillrpc::BizStatus::new(code, message), |b, kv| {
            b.with_extra(kv[0].clone(), kv[1].clone())
        });
    status_to_js(&rillrpc::Status::biz(biz))
}

pub(crate) fn status_to_js(s: &rillrpc::Status) -> JsStatus {
    JsStatus {
        code: s.code() as u32,
        details: s.message().to_owned(),
        status_details: if s.details().is_empty() {
            None
        } else {
            Some(Buffer::from(s.details().to_vec()))
        },
        metadata: to_js(s.trailers()),
        biz: s.biz_status().map(|b| JsBiz {
            code: b.code(),
            message: b.message().to_owned(),
            extra: b
                .extra()
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
        }),
    }
}

pub(crate) fn status_from_js(
    code: u32,
    message: String,
    details: Option<Buffer>,
    trailers: Option<Flat>,
) -> Result<rillrpc::Status> {
    // A code outside 0..=16 becomes UNKNOWN with its message kept, as grpcio, grpc-go and
    // the other bindings do; failing the whole status over it would hide the message.
    let mut s =
        rillrpc::Status::new(Code::from_u32(code), message).with_trailers(from_js(trailers)?);
    if let Some(d) = details {
        s = s.with_details(Bytes::copy_from_slice(&d));
    }
    Ok(s)
}

/// Frames a batch as `[u32 LE length][bytes]...` in one Buffer: one allocation and one
/// crossing per batch instead of one per message.
pub(crate) fn frame<'e>(env: &'e Env, batch: &[Bytes]) -> Result<BufferSlice<'e>> {
    let total: usize = batch.iter().map(|m| 4 + m.len()).sum();
    let mut v = Vec::with_capacity(total);
    for m in batch {
        v.extend_from_slice(&(m.len() as u32).to_le_bytes());
        v.extend_from_slice(m);
    }
    if total <= 64 * 1024 {
        BufferSlice::copy_from(env, &v)
    } else {
        BufferSlice::from_data(env, v)
    }
}
