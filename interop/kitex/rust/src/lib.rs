//! TestService of `shared/idl/echo.thrift` on the rillrpc core, for Kitex's gRPC transport
//! (`application/grpc+thrift`, interop/kitex/WIRE.md §3): the Thrift messages (`echo`) and
//! the conventions kitex-server and kitex-client keep (method paths, biz status errors,
//! metainfo headers), shared by `kitex-echo-rill-server` and `kitex-echo-rill-client`.

pub mod echo;

use rillrpc::{Code, Metadata, MetadataValue, Status};

/// `/<package>.<service>/<method>`, the package being `namespace go echo` (Kitex's
/// `fullMethodName`).
pub const PING_PONG: &str = "/echo.TestService/PingPong";
pub const ECHO: &str = "/echo.TestService/Echo";
pub const ECHO_CLIENT: &str = "/echo.TestService/EchoClient";
pub const ECHO_SERVER: &str = "/echo.TestService/EchoServer";

/// The content subtype: `application/grpc+thrift`.
pub const THRIFT: &str = "thrift";

/// The trailers of a Kitex biz status error over gRPC (`nphttp2/grpc/http2_server.go`
/// `WriteStatus`); its message travels as `grpc-message`, its code as grpc-status 13.
pub const BIZ_STATUS: &str = "biz-status";
pub const BIZ_EXTRA: &str = "biz-extra";
pub const BIZ_GRPC_CODE: Code = Code::Internal;

/// The extra map key kitex-server puts the request's count under.
pub const EXTRA_COUNT_KEY: &str = "echo-count";

/// Metainfo over gRPC: `rpc-transit-<key>` (transient) and `rpc-persist-<key>`
/// (persistent) headers, metainfo's HTTP form.
const METAINFO_PREFIXES: [&str; 2] = ["rpc-transit-", "rpc-persist-"];

/// The metainfo entries of `md`, which kitex-server sends back in the response headers
/// and trailers under the keys it received them with.
pub fn metainfo(md: &Metadata) -> Metadata {
    let mut out = Metadata::new();
    for (k, v) in md.iter() {
        if METAINFO_PREFIXES.iter().any(|p| k.starts_with(p)) {
            // Keys and values came in valid, so they go out valid.
            let _ = out.append(k, v);
        }
    }
    out
}

/// kitex-server's answer to a request with `count < 0`:
/// `kerrors.NewBizStatusErrorWithExtra(-count, payload, {"echo-count": "<count>"})`, as
/// Kitex sends it over gRPC.
pub fn biz_error(count: i32, payload: &[u8]) -> Status {
    // Go's `-*req.Count` on an int32 wraps: i32::MIN stays i32::MIN.
    let code = count.wrapping_neg();
    // Go sends the payload's bytes as they are (percent-encoded); a Rust Status message is
    // a String, so invalid UTF-8 becomes U+FFFD here.
    let message = String::from_utf8_lossy(payload).into_owned();
    let extra = serde_json::json!({ EXTRA_COUNT_KEY: count.to_string() }).to_string();
    let mut trailers = Metadata::new();
    trailers
        .append_ascii(BIZ_STATUS, &code.to_string())
        .expect("a decimal number is a valid value");
    // serde_json writes non-ASCII as UTF-8, which an ASCII value refuses; the count's
    // decimal text is all this object holds.
    trailers
        .append_ascii(BIZ_EXTRA, &extra)
        .expect("the JSON of a decimal number is printable ASCII");
    Status::new(BIZ_GRPC_CODE, message).with_trailers(trailers)
}

/// A biz status error read back from a call's status, as Kitex's client rebuilds it
/// (`GRPCBizStatusError`): code from `biz-status`, message from `grpc-message`, extra from
/// the `biz-extra` JSON object.
#[derive(Debug, PartialEq, Eq)]
pub struct BizError {
    pub code: i32,
    pub message: String,
    pub extra: Vec<(String, String)>,
}

impl BizError {
    /// The biz status error `status` carries; an error saying why if it carries none.
    pub fn from_status(status: &Status, trailers: &Metadata) -> Result<BizError, String> {
        if status.code() != BIZ_GRPC_CODE {
            return Err(format!("status {}, want INTERNAL", status.code().name()));
        }
        let text = |key: &str| match trailers.get(key) {
            Some(MetadataValue::Ascii(v)) => Ok(v),
            other => Err(format!("trailer {key} = {other:?}")),
        };
        let code = text(BIZ_STATUS)?;
        let code = code
            .parse()
            .map_err(|e| format!("trailer {BIZ_STATUS} = {code:?}: {e}"))?;
        let raw = text(BIZ_EXTRA)?;
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&raw).map_err(|e| format!("trailer {BIZ_EXTRA} {raw:?}: {e}"))?;
        let extra = map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                other => Err(format!("{BIZ_EXTRA} value {k} = {other}, not a string")),
            })
            .collect::<Result<_, _>>()?;
        Ok(BizError {
            code,
            message: status.message().to_owned(),
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biz_error_matches_kitex_trailers() {
        let s = biz_error(-5, "matrix error: 100% ünïcødé ✓".as_bytes());
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), "matrix error: 100% ünïcødé ✓");
        assert_eq!(s.trailers().get_ascii(BIZ_STATUS), Some("5"));
        // WIRE.md §3.2: `biz-extra: {"echo-count":"-5"}`.
        assert_eq!(
            s.trailers().get_ascii(BIZ_EXTRA),
            Some(r#"{"echo-count":"-5"}"#)
        );
        let back = BizError::from_status(&s, s.trailers()).unwrap();
        assert_eq!(back.code, 5);
        assert_eq!(back.extra, [("echo-count".into(), "-5".into())]);
    }

    #[test]
    fn biz_error_code_wraps_like_go() {
        let s = biz_error(i32::MIN, b"x");
        assert_eq!(s.trailers().get_ascii(BIZ_STATUS), Some("-2147483648"));
    }

    #[test]
    fn metainfo_keeps_only_rpc_transit_and_persist() {
        let mut md = Metadata::new();
        md.append_ascii("rpc-transit-echo-key", "value").unwrap();
        md.append_ascii("rpc-persist-echo-persist-key", "persist value")
            .unwrap();
        md.append_ascii("user-agent-ish", "no").unwrap();
        let got = metainfo(&md);
        assert_eq!(got.len(), 2);
        assert_eq!(got.get_ascii("rpc-transit-echo-key"), Some("value"));
    }
}
