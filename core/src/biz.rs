//! Kitex's business status: an error a service returns as part of its API (a code of its
//! own, a message and a map of strings), which Kitex keeps apart from transport errors.
//!
//! On every wire it is a status whose trailers carry `biz-status` (the code, decimal),
//! `biz-extra` (the map as a JSON object of strings, when not empty) and, on TTHeader,
//! `biz-message`. Over gRPC Kitex sends it as grpc-status INTERNAL with the message as
//! `grpc-message` (`nphttp2/grpc/http2_server.go`, `WriteStatus`); on TTHeader as string
//! pairs beside an empty result or an empty TRAILER (`ttstream/server_handler.go`,
//! `OnStreamFinish`; `transmeta/ttheader.go`). Kitex's client rebuilds it from the same
//! keys (`ParseBizStatusErr`). The bindings expose it as an error type of their own and
//! build it with [`Status::biz`], read it with [`Status::biz_status`]: the keys and their
//! encoding live here once.

use crate::metadata::{Metadata, MetadataValue};
use crate::status::{Code, Status};

/// The trailer keys of a biz status.
pub(crate) const BIZ_STATUS: &str = "biz-status";
pub(crate) const BIZ_MESSAGE: &str = "biz-message";
pub(crate) const BIZ_EXTRA: &str = "biz-extra";

/// The gRPC code a biz status travels under, as Kitex sends and expects it.
pub(crate) const BIZ_CODE: Code = Code::Internal;

/// A business status: Kitex's `kerrors.BizStatusError` (`BizStatusCode`, `BizMessage`,
/// `BizExtra`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BizStatus {
    code: i32,
    message: String,
    extra: Vec<(String, String)>,
}

impl BizStatus {
    pub fn new(code: i32, message: impl Into<String>) -> BizStatus {
        BizStatus {
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    /// Adds `key: value` to the extra map; a key given twice keeps its last value, as a
    /// map does.
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<String>) -> BizStatus {
        let key = key.into();
        self.extra.retain(|(k, _)| *k != key);
        self.extra.push((key, value.into()));
        self
    }

    pub fn code(&self) -> i32 {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The extra map: in the order its keys were added; read from a peer, in key order.
    pub fn extra(&self) -> &[(String, String)] {
        &self.extra
    }
}

impl Status {
    /// The status that ends a call with `biz`: INTERNAL with its message, its code and
    /// extra map in the trailers.
    pub fn biz(biz: BizStatus) -> Status {
        let mut trailers = Metadata::new();
        // A decimal number is a valid ASCII value.
        let _ = trailers.append_ascii(BIZ_STATUS, &biz.code.to_string());
        if !biz.extra.is_empty() {
            let map: serde_json::Map<String, serde_json::Value> = biz
                .extra
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            let json = ascii_json(&serde_json::Value::Object(map).to_string());
            let _ = trailers.append_ascii(BIZ_EXTRA, &json);
        }
        Status::new(BIZ_CODE, biz.message).with_trailers(trailers)
    }

    /// The biz status this status carries: `None` unless its trailers hold a `biz-status`
    /// that is a 32-bit decimal number and the status is not OK, as Kitex's client reads
    /// it (`nphttp2/client_conn.go`, `Read`: the biz error stands in for a status that is
    /// not OK). Its code is INTERNAL as Kitex and this crate send it, or the gRPC status a
    /// Kitex error carries of its own (`status.Iface`), kept as it came. The message is `biz-message` where the peer sent
    /// one (TTHeader), the status's message otherwise (gRPC); an extra map that is not a
    /// JSON object of strings is left out (its raw text stays in the trailers).
    pub fn biz_status(&self) -> Option<BizStatus> {
        if self.code() == Code::Ok {
            return None;
        }
        let md = self.trailers();
        let code = text(md, BIZ_STATUS)?.trim().parse::<i32>().ok()?;
        let message = text(md, BIZ_MESSAGE).unwrap_or_else(|| self.message().to_owned());
        let extra = text(md, BIZ_EXTRA)
            .and_then(|raw| serde_json::from_str::<serde_json::Map<_, _>>(&raw).ok())
            .map(|map| {
                map.into_iter()
                    .filter_map(|(k, v)| match v {
                        serde_json::Value::String(s) => Some((k, s)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(BizStatus {
            code,
            message,
            extra,
        })
    }
}

/// `json` with every character past ASCII as a `\u` escape: the same JSON text to a
/// peer's decoder, and a value metadata can carry.
fn ascii_json(json: &str) -> String {
    if json.is_ascii() {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// The first value of `key` as text, whichever form it arrived in.
fn text(md: &Metadata, key: &str) -> Option<String> {
    match md.get(key)? {
        MetadataValue::Ascii(s) => Some(s),
        MetadataValue::Binary(b) => Some(String::from_utf8_lossy(&b).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_biz_status_goes_as_kitex_sends_it_over_grpc() {
        // WIRE.md §3.2: grpc-status 13, grpc-message the message, `biz-status: 5`,
        // `biz-extra: {"echo-count":"-5"}`.
        let s = Status::biz(BizStatus::new(5, "no").with_extra("echo-count", "-5"));
        assert_eq!((s.code(), s.message()), (Code::Internal, "no"));
        assert_eq!(s.trailers().get_ascii(BIZ_STATUS), Some("5"));
        assert_eq!(
            s.trailers().get_ascii(BIZ_EXTRA),
            Some(r#"{"echo-count":"-5"}"#)
        );
        assert_eq!(s.trailers().get_ascii(BIZ_MESSAGE), None);
        let back = s.biz_status().unwrap();
        assert_eq!((back.code(), back.message()), (5, "no"));
        assert_eq!(back.extra(), [("echo-count".into(), "-5".into())]);
    }

    #[test]
    fn no_extra_no_biz_extra_key() {
        let s = Status::biz(BizStatus::new(-2147483648, ""));
        assert_eq!(s.trailers().get_ascii(BIZ_STATUS), Some("-2147483648"));
        assert!(s.trailers().get(BIZ_EXTRA).is_none());
        assert_eq!(s.biz_status().unwrap().code(), i32::MIN);
    }

    #[test]
    fn biz_message_in_the_trailers_wins_over_the_status_message() {
        let mut md = Metadata::new();
        md.append_ascii(BIZ_STATUS, "7").unwrap();
        md.append_ascii(BIZ_MESSAGE, "from the pairs").unwrap();
        let s = Status::new(Code::Internal, "other").with_trailers(md);
        assert_eq!(s.biz_status().unwrap().message(), "from the pairs");
    }

    #[test]
    fn bad_biz_pairs_read_as_no_biz_status_or_no_extra() {
        let with = |pairs: &[(&str, &str)]| {
            let mut md = Metadata::new();
            for (k, v) in pairs {
                md.append_ascii(k, v).unwrap();
            }
            Status::new(Code::Internal, "m").with_trailers(md)
        };
        assert_eq!(with(&[]).biz_status(), None);
        assert_eq!(with(&[(BIZ_STATUS, "five")]).biz_status(), None);
        assert_eq!(with(&[(BIZ_STATUS, "4294967296")]).biz_status(), None);
        // Kitex's own test sends "invalid extra JSON str" (testTypeIllegalBizErr).
        let b = with(&[(BIZ_STATUS, "1"), (BIZ_EXTRA, "invalid extra JSON str")]);
        assert_eq!(b.biz_status().unwrap().extra(), []);
        let b = with(&[(BIZ_STATUS, "1"), (BIZ_EXTRA, r#"{"a":"x","n":1}"#)]);
        assert_eq!(b.biz_status().unwrap().extra(), [("a".into(), "x".into())]);
    }

    /// Regression: the C ABI fuzzer found a biz status read from an OK status, though the
    /// C header said its code is then INTERNAL; Kitex's client reads one only where the
    /// status is not OK, and keeps a code other than INTERNAL as it came.
    #[test]
    fn a_biz_status_rides_on_a_status_that_is_not_ok_whatever_its_code() {
        let biz = |code| {
            let mut md = Metadata::new();
            md.append_ascii(BIZ_STATUS, "3").unwrap();
            Status::new(code, "m").with_trailers(md).biz_status()
        };
        assert_eq!(biz(Code::Ok), None);
        assert_eq!(biz(Code::NotFound).unwrap().code(), 3);
        assert_eq!(biz(Code::Internal).unwrap().code(), 3);
    }

    #[test]
    fn a_non_ascii_extra_map_keeps_its_text() {
        let s = Status::biz(BizStatus::new(1, "m").with_extra("k", "ün✓😀"));
        assert_eq!(
            s.trailers().get_ascii(BIZ_EXTRA),
            Some(r#"{"k":"\u00fcn\u2713\ud83d\ude00"}"#)
        );
        assert_eq!(
            s.biz_status().unwrap().extra(),
            [("k".into(), "ün✓😀".into())]
        );
        let s = Status::biz(BizStatus::new(1, "m").with_extra("k", "ünï"));
        assert_eq!(
            s.biz_status().unwrap().extra(),
            [("k".into(), "ünï".into())]
        );
    }

    #[test]
    fn a_key_added_twice_keeps_its_last_value() {
        let b = BizStatus::new(1, "")
            .with_extra("k", "1")
            .with_extra("k", "2");
        assert_eq!(b.extra(), [("k".into(), "2".into())]);
    }
}
