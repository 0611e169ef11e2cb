//! Metadata on Kitex's TTHeader transports: the string pairs of a packet as a call's
//! metadata and back, and the keys of a business status.

use bytes::Bytes;

use crate::biz::{BIZ_CODE, BIZ_MESSAGE, BIZ_STATUS};
use crate::metadata::{Metadata, MetadataValue};
use crate::status::Status;

/// The string key of the service a Kitex client calls ("isn", beside the metainfo of its
/// HEADER frame).
pub(crate) const ISN: &str = "isn";

/// Kitex's metainfo prefixes on TTHeader, and as its HTTP/2 transport names them.
const METAINFO: [(&str, &str); 2] = [
    ("RPC_TRANSIT_", "rpc-transit-"),
    ("RPC_PERSIST_", "rpc-persist-"),
];

/// Whether a status's metadata carries a biz status: a `biz-status` Kitex's client reads
/// as one (`biz_code`).
pub(crate) fn is_biz(md: &Metadata) -> bool {
    md.get_ascii(BIZ_STATUS)
        .and_then(|v| biz_code(v.as_bytes()))
        .is_some()
}

/// The code a `biz-status` value gives a biz status, read as Kitex's client reads it over
/// TTHeader (`transmeta.ParseBizStatusErr`: `strconv.ParseInt(v, 10, 32)`, and `code !=
/// 0`): a 32-bit decimal other than 0. Any other value, 0 included, is no biz status, and
/// Kitex's client takes the answer as if the pair were not there.
fn biz_code(value: &[u8]) -> Option<i32> {
    let code = std::str::from_utf8(value).ok()?.parse::<i32>().ok()?;
    (code != 0).then_some(code)
}

/// Adds a biz status's message to the pairs of `md` (a biz status's trailers), unless they
/// name one.
pub(crate) fn push_biz_message(strs: &mut Vec<(Bytes, Bytes)>, md: &Metadata, status: &Status) {
    if is_biz(md) && md.get_ascii(BIZ_MESSAGE).is_none() {
        strs.push((
            Bytes::from_static(BIZ_MESSAGE.as_bytes()),
            Bytes::copy_from_slice(status.message().as_bytes()),
        ));
    }
}

/// The status a biz status in a peer's pairs ends a client's call with: a biz status's code
/// with its message (as a Kitex server's biz error reads over gRPC), its pairs becoming the
/// trailers; `None` without one (`biz_code`).
pub(crate) fn biz_status(strs: &[(Bytes, Bytes)]) -> Option<Status> {
    let value = |k: &str| strs.iter().rev().find(|(key, _)| key == k.as_bytes());
    let text = |k: &str| Some(String::from_utf8_lossy(&value(k)?.1).into_owned());
    biz_code(&value(BIZ_STATUS)?.1)?;
    let message = text(BIZ_MESSAGE).unwrap_or_default();
    Some(Status::new(BIZ_CODE, message).with_trailers(metadata(strs)))
}

/// Metadata as string pairs: keys as they are, binary values raw.
pub(crate) fn pairs(md: &Metadata) -> Vec<(Bytes, Bytes)> {
    md.iter()
        .map(|(k, v)| (Bytes::copy_from_slice(k.as_bytes()), raw(v)))
        .collect()
}

/// Metadata as a request's string pairs, or a PingPong answer's (Kitex's backward values):
/// metainfo keys in their TTHeader form (`rpc-transit-echo-key` as `RPC_TRANSIT_ECHO_KEY`),
/// as Kitex reads them there.
pub(crate) fn wire_pairs(md: &Metadata) -> Vec<(Bytes, Bytes)> {
    md.iter()
        .map(|(k, v)| {
            let key = match METAINFO.iter().find(|(_, http)| k.starts_with(http)) {
                Some((wire, http)) => {
                    format!(
                        "{wire}{}",
                        k[http.len()..].to_ascii_uppercase().replace('-', "_")
                    )
                }
                None => k.to_owned(),
            };
            (Bytes::from(key), raw(v))
        })
        .collect()
}

fn raw(v: MetadataValue) -> Bytes {
    match v {
        MetadataValue::Ascii(s) => Bytes::from(s),
        MetadataValue::Binary(b) => b,
    }
}

/// A request's string pairs as a call's metadata. Kitex's metainfo keys
/// (`RPC_TRANSIT_ECHO_KEY`) are named as its HTTP/2 transport names them
/// (`rpc-transit-echo-key`), so that a handler reads the same key whichever transport
/// carried the call; `isn` (the service Kitex's client calls) routes the call and is not
/// metadata. A pair that no metadata entry can hold is left out.
pub(crate) fn metadata(strs: &[(Bytes, Bytes)]) -> Metadata {
    let mut md = Metadata::new();
    for (k, v) in strs {
        let Ok(key) = std::str::from_utf8(k) else {
            continue;
        };
        if key == ISN {
            continue;
        }
        let key = match METAINFO.iter().find(|(wire, _)| key.starts_with(wire)) {
            Some((wire, http)) => {
                format!(
                    "{http}{}",
                    key[wire.len()..].to_ascii_lowercase().replace('_', "-")
                )
            }
            None => key.to_ascii_lowercase(),
        };
        let added = if key.ends_with("-bin") {
            md.append_bin(&key, v)
        } else {
            match std::str::from_utf8(v) {
                Ok(v) => md.append_ascii(&key, v),
                Err(_) => continue,
            }
        };
        if let Err(e) = added {
            tracing::debug!("TTHeader pair {key:?} left out: {e}");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metainfo_keys_are_named_as_over_http2_and_back() {
        let strs = [
            (
                Bytes::from_static(b"RPC_TRANSIT_ECHO_KEY"),
                Bytes::from_static(b"value"),
            ),
            (
                Bytes::from_static(b"isn"),
                Bytes::from_static(b"TestService"),
            ),
            (
                Bytes::from_static(b"trace-bin"),
                Bytes::from_static(b"\x00\xff"),
            ),
            (Bytes::from_static(b"bad"), Bytes::from_static(b"\xff")),
        ];
        let md = metadata(&strs);
        assert_eq!(md.get_ascii("rpc-transit-echo-key"), Some("value"));
        assert_eq!(md.get_bin("trace-bin").as_deref(), Some(&b"\x00\xff"[..]));
        assert_eq!(
            md.len(),
            2,
            "isn routes the call; a value no entry can hold is left out"
        );
        let back = wire_pairs(&md);
        assert_eq!(back[0].0, "RPC_TRANSIT_ECHO_KEY");
        assert_eq!(pairs(&md)[0].0, "rpc-transit-echo-key");
    }

    /// Regression: any `biz-status` pair ended a call with a biz status, where Kitex's
    /// client (`transmeta.ParseBizStatusErr`) takes only a 32-bit decimal other than 0, and
    /// reads the answer of a Kitex server that sends `biz-status: 0` as a success (found by
    /// the client fuzz target's seeds).
    #[test]
    fn regression_a_biz_status_is_a_nonzero_32_bit_decimal_as_kitex_reads_it() {
        let strs = |v: &'static str| {
            [
                (
                    Bytes::from_static(b"biz-status"),
                    Bytes::from_static(v.as_bytes()),
                ),
                (
                    Bytes::from_static(b"biz-message"),
                    Bytes::from_static(b"no"),
                ),
            ]
        };
        for v in ["7", "-7", "+7", "007", "2147483647", "-2147483648"] {
            let s = biz_status(&strs(v)).unwrap_or_else(|| panic!("{v:?} is a biz status"));
            assert_eq!((s.code(), s.message()), (BIZ_CODE, "no"), "{v:?}");
        }
        for v in [
            "0",
            "-0",
            "",
            " 7",
            "7 ",
            "seven",
            "0x7",
            "2147483648",
            "7.0",
        ] {
            assert!(biz_status(&strs(v)).is_none(), "{v:?} is no biz status");
            let mut md = Metadata::new();
            md.append_ascii("biz-status", v).unwrap();
            assert!(!is_biz(&md), "{v:?} is no biz status to send either");
        }
    }
}
