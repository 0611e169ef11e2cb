//! TestService of `shared/idl/echo.thrift` on the rillrpc core, for Kitex's gRPC transport
//! (`application/grpc+thrift`, interop/kitex/WIRE.md §3): the Thrift messages (`echo`) and
//! the conventions kitex-server and kitex-client keep (method paths, biz status errors,
//! metainfo headers), shared by `kitex-echo-rill-server` and `kitex-echo-rill-client`.

pub mod echo;

use rillrpc::{BizStatus, Metadata, Status};

/// `/<package>.<service>/<method>`, the package being `namespace go echo` (Kitex's
/// `fullMethodName`).
pub const PING_PONG: &str = "/echo.TestService/PingPong";
pub const ECHO: &str = "/echo.TestService/Echo";
pub const ECHO_CLIENT: &str = "/echo.TestService/EchoClient";
pub const ECHO_SERVER: &str = "/echo.TestService/EchoServer";

/// The content subtype: `application/grpc+thrift`.
pub const THRIFT: &str = "thrift";
/// The codec of echo.proto's messages: a KitexProtobuf PingPong call's.
pub const PROTO: &str = "proto";

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
/// `kerrors.NewBizStatusErrorWithExtra(-count, payload, {"echo-count": "<count>"})`.
pub fn biz_error(count: i32, payload: &[u8]) -> Status {
    // Go's `-*req.Count` on an int32 wraps: i32::MIN stays i32::MIN. Go sends the
    // payload's bytes as they are; a Rust message is a String, so invalid UTF-8 becomes
    // U+FFFD here.
    let biz = BizStatus::new(count.wrapping_neg(), String::from_utf8_lossy(payload))
        .with_extra(EXTRA_COUNT_KEY, count.to_string());
    Status::biz(biz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rillrpc::Code;

    #[test]
    fn biz_error_matches_kitex_trailers() {
        let s = biz_error(-5, "matrix error: 100% ünïcødé ✓".as_bytes());
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), "matrix error: 100% ünïcødé ✓");
        assert_eq!(s.trailers().get_ascii("biz-status"), Some("5"));
        // WIRE.md §3.2: `biz-extra: {"echo-count":"-5"}`.
        assert_eq!(
            s.trailers().get_ascii("biz-extra"),
            Some(r#"{"echo-count":"-5"}"#)
        );
        let back = s.biz_status().unwrap();
        assert_eq!(back.code(), 5);
        assert_eq!(back.extra(), [("echo-count".into(), "-5".into())]);
    }

    #[test]
    fn biz_error_code_wraps_like_go() {
        let s = biz_error(i32::MIN, b"x");
        assert_eq!(s.trailers().get_ascii("biz-status"), Some("-2147483648"));
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
