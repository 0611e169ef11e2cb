//! The C ABI of rillrpc. `include/rillrpc.h` is generated from this crate by cbindgen; the
//! overview (handles, ownership, blocking and non-blocking forms, pollers) is at its top,
//! in `cbindgen.toml`.

// The names are the C names: `rill_call`, `RILL_OK`.
#![allow(non_camel_case_types)]

mod biz;
mod call;
mod channel;
mod messages;
mod metadata;
mod notify;
mod poller;
mod recv;
mod registry;
mod result;
mod runtime;
mod send;
mod server;
mod server_call;
mod versioned;

pub use call::*;
pub use channel::*;
pub use metadata::*;
pub use poller::*;
pub use result::{rill_last_error_message, rill_result, rill_result_name};
pub use runtime::*;
pub use server::*;
pub use server_call::*;

use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Instant;

use notify::Notify;
use registry::lock;
use result::{Fail, R, RILL_TIMEOUT};

/// Wait without limit in a blocking function (about 292 million years).
pub const RILL_FOREVER: i64 = i64::MAX;

/// The four call shapes (how many messages each side sends).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rill_shape {
    RILL_UNARY = 0,
    RILL_CLIENT_STREAMING = 1,
    RILL_SERVER_STREAMING = 2,
    RILL_BIDI = 3,
}

/// gRPC status codes, unchanged from the gRPC spec (0..16).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rill_status_code {
    RILL_STATUS_OK = 0,
    RILL_STATUS_CANCELLED = 1,
    RILL_STATUS_UNKNOWN = 2,
    RILL_STATUS_INVALID_ARGUMENT = 3,
    RILL_STATUS_DEADLINE_EXCEEDED = 4,
    RILL_STATUS_NOT_FOUND = 5,
    RILL_STATUS_ALREADY_EXISTS = 6,
    RILL_STATUS_PERMISSION_DENIED = 7,
    RILL_STATUS_RESOURCE_EXHAUSTED = 8,
    RILL_STATUS_FAILED_PRECONDITION = 9,
    RILL_STATUS_ABORTED = 10,
    RILL_STATUS_OUT_OF_RANGE = 11,
    RILL_STATUS_UNIMPLEMENTED = 12,
    RILL_STATUS_INTERNAL = 13,
    RILL_STATUS_UNAVAILABLE = 14,
    RILL_STATUS_DATA_LOSS = 15,
    RILL_STATUS_UNAUTHENTICATED = 16,
}

/// Compression of sent messages.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rill_compression {
    RILL_COMPRESSION_NONE = 0,
    RILL_COMPRESSION_GZIP = 1,
}

/// The wire protocol of a call: what a channel speaks (`rill_channel_options.protocol`),
/// and what the client of an accepted call spoke (`rill_server_call_protocol`). A rillrpc
/// server answers all four on one port.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rill_protocol {
    /// gRPC over HTTP/2.
    RILL_PROTOCOL_GRPC = 0,
    /// gRPC-Web: gRPC with its trailers in the body, as browsers speak it.
    RILL_PROTOCOL_GRPC_WEB = 1,
    /// Connect, streaming and unary.
    RILL_PROTOCOL_CONNECT = 2,
    /// Kitex's TTHeader transports (Thrift payloads): TTHeader Streaming for streaming
    /// calls, Thrift PingPong for unary ones.
    RILL_PROTOCOL_TTHEADER = 3,
}

impl rill_protocol {
    const ALL: [rill_protocol; 4] = [
        rill_protocol::RILL_PROTOCOL_GRPC,
        rill_protocol::RILL_PROTOCOL_GRPC_WEB,
        rill_protocol::RILL_PROTOCOL_CONNECT,
        rill_protocol::RILL_PROTOCOL_TTHEADER,
    ];

    pub(crate) fn of(p: rillrpc::Protocol) -> rill_protocol {
        match p {
            rillrpc::Protocol::Grpc => rill_protocol::RILL_PROTOCOL_GRPC,
            rillrpc::Protocol::GrpcWeb => rill_protocol::RILL_PROTOCOL_GRPC_WEB,
            rillrpc::Protocol::Connect => rill_protocol::RILL_PROTOCOL_CONNECT,
            rillrpc::Protocol::Ttheader => rill_protocol::RILL_PROTOCOL_TTHEADER,
        }
    }

    fn core(self) -> rillrpc::Protocol {
        match self {
            rill_protocol::RILL_PROTOCOL_GRPC => rillrpc::Protocol::Grpc,
            rill_protocol::RILL_PROTOCOL_GRPC_WEB => rillrpc::Protocol::GrpcWeb,
            rill_protocol::RILL_PROTOCOL_CONNECT => rillrpc::Protocol::Connect,
            rill_protocol::RILL_PROTOCOL_TTHEADER => rillrpc::Protocol::Ttheader,
        }
    }
}

/// A `rill_protocol` from C, checked; `what` names the argument in the message.
pub(crate) fn protocol_from(v: u32, what: &str) -> R<rillrpc::Protocol> {
    match rill_protocol::ALL.iter().find(|p| **p as u32 == v) {
        Some(p) => Ok(p.core()),
        None => Err(Fail::invalid(format!(
            "{what} must be RILL_PROTOCOL_GRPC (0), RILL_PROTOCOL_GRPC_WEB (1) or \
             RILL_PROTOCOL_CONNECT (2), got {v}"
        ))),
    }
}

/// The protocol's name, as every binding spells it: "grpc", "grpc-web", "connect" or "ttheader"; NULL
/// for a value this version does not know.
///
/// Ownership: a static string; never free it.
#[no_mangle]
pub extern "C" fn rill_protocol_name(protocol: u32) -> *const c_char {
    // The names are the core's, made C strings once.
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    std::panic::catch_unwind(|| {
        let names = NAMES.get_or_init(|| {
            rill_protocol::ALL
                .iter()
                .map(|p| CString::new(p.core().name()).unwrap_or_default())
                .collect()
        });
        match rill_protocol::ALL
            .iter()
            .position(|p| *p as u32 == protocol)
        {
            Some(i) => names[i].as_ptr(),
            None => std::ptr::null(),
        }
    })
    .unwrap_or(std::ptr::null())
}

/// The HTTP version a channel's calls travel over (`rill_channel_options.http_version`).
/// 0 is HTTP/2, the default.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rill_http_version {
    /// HTTP/2: every protocol, every call shape, calls multiplexed on one connection.
    RILL_HTTP_VERSION_2 = 0,
    /// HTTP/1.1, for gRPC-Web and Connect to servers that speak only HTTP/1.1: each call
    /// has a connection to itself, and bidi calls are refused (UNIMPLEMENTED).
    RILL_HTTP_VERSION_1 = 1,
    /// Under TLS, the server's choice by ALPN (`h2` or `http/1.1`) on the channel's first
    /// connection, which then holds for the channel; over plain TCP, and for gRPC, HTTP/2.
    RILL_HTTP_VERSION_AUTO = 2,
}

impl rill_http_version {
    const ALL: [rill_http_version; 3] = [
        rill_http_version::RILL_HTTP_VERSION_2,
        rill_http_version::RILL_HTTP_VERSION_1,
        rill_http_version::RILL_HTTP_VERSION_AUTO,
    ];

    pub(crate) fn of(v: rillrpc::HttpVersion) -> rill_http_version {
        match v {
            rillrpc::HttpVersion::Http2 => rill_http_version::RILL_HTTP_VERSION_2,
            rillrpc::HttpVersion::Http1 => rill_http_version::RILL_HTTP_VERSION_1,
            rillrpc::HttpVersion::Auto => rill_http_version::RILL_HTTP_VERSION_AUTO,
        }
    }

    fn core(self) -> rillrpc::HttpVersion {
        match self {
            rill_http_version::RILL_HTTP_VERSION_2 => rillrpc::HttpVersion::Http2,
            rill_http_version::RILL_HTTP_VERSION_1 => rillrpc::HttpVersion::Http1,
            rill_http_version::RILL_HTTP_VERSION_AUTO => rillrpc::HttpVersion::Auto,
        }
    }
}

/// A `rill_http_version` from C, checked; `what` names the argument in the message.
pub(crate) fn http_version_from(v: u32, what: &str) -> R<rillrpc::HttpVersion> {
    match rill_http_version::ALL.iter().find(|h| **h as u32 == v) {
        Some(h) => Ok(h.core()),
        None => Err(Fail::invalid(format!(
            "{what} must be RILL_HTTP_VERSION_2 (0), RILL_HTTP_VERSION_1 (1) or \
             RILL_HTTP_VERSION_AUTO (2), got {v}"
        ))),
    }
}

/// A method's idempotency level, numbered as protobuf's `MethodOptions.IdempotencyLevel`
/// (`option idempotency_level = NO_SIDE_EFFECTS;` in a `.proto`): what a call is marked
/// with (`rill_call_options.idempotency`) and what a server method is registered with
/// (`rill_server_add_method_with`). 0 is UNKNOWN, the default.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rill_idempotency {
    /// Nothing is known: the call may change state.
    RILL_IDEMPOTENCY_UNKNOWN = 0,
    /// The call only reads. A Connect channel with `http_get` sends such a unary call as
    /// an HTTP GET; a unary method registered so answers Connect's GET.
    RILL_IDEMPOTENCY_NO_SIDE_EFFECTS = 1,
    /// Repeating the call has the effect of calling it once.
    RILL_IDEMPOTENCY_IDEMPOTENT = 2,
}

impl rill_idempotency {
    pub(crate) fn of(i: rillrpc::Idempotency) -> rill_idempotency {
        match i {
            rillrpc::Idempotency::Unknown => rill_idempotency::RILL_IDEMPOTENCY_UNKNOWN,
            rillrpc::Idempotency::NoSideEffects => {
                rill_idempotency::RILL_IDEMPOTENCY_NO_SIDE_EFFECTS
            }
            rillrpc::Idempotency::Idempotent => rill_idempotency::RILL_IDEMPOTENCY_IDEMPOTENT,
        }
    }
}

/// A `rill_idempotency` from C, checked by the core's conversion (the numbers are
/// protobuf's, the same in every binding); `what` names the argument in the message,
/// which gives the C names rather than the core's.
pub(crate) fn idempotency_from(v: u32, what: &str) -> R<rillrpc::Idempotency> {
    rillrpc::Idempotency::try_from(v).map_err(|_| {
        Fail::invalid(format!(
            "{what} must be RILL_IDEMPOTENCY_UNKNOWN (0), RILL_IDEMPOTENCY_NO_SIDE_EFFECTS (1) \
             or RILL_IDEMPOTENCY_IDEMPOTENT (2), got {v}"
        ))
    })
}

/// A `rill_shape` from C, checked.
pub(crate) fn shape_from(v: u32) -> R<rillrpc::Shape> {
    rillrpc::Shape::try_from(v).map_err(|e| Fail::invalid(e.message().to_owned()))
}

/// A borrowed byte range: a message handed to the library (send batch) or out of it
/// (recv batch; valid as the function says).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rill_slice {
    /// The first byte; may be NULL when `len` is 0.
    pub data: *const u8,
    /// How many bytes.
    pub len: usize,
}

/// Most messages one batch function takes or hands out.
const MAX_BATCH: usize = 1 << 20;

/// The `n` slices of a send batch, every one checked before anything is sent.
///
/// # Safety
/// `msgs` is NULL or points to `n` readable `rill_slice`s.
pub(crate) unsafe fn slices_in<'a>(msgs: *const rill_slice, n: usize) -> R<&'a [rill_slice]> {
    if n == 0 {
        return Ok(&[]);
    }
    if msgs.is_null() {
        return Err(Fail::null("msgs"));
    }
    if n > MAX_BATCH {
        return Err(Fail::invalid(format!("n must be <= {MAX_BATCH}, got {n}")));
    }
    // SAFETY: non-NULL with `n` slices per the contract above.
    let v = unsafe { std::slice::from_raw_parts(msgs, n) };
    if let Some(i) = v.iter().position(|m| m.data.is_null() && m.len > 0) {
        return Err(Fail::null(&format!("msgs[{i}].data")));
    }
    if let Some(i) = v.iter().position(|m| m.len > isize::MAX as usize) {
        return Err(Fail::invalid(format!("msgs[{i}].len is too large")));
    }
    Ok(v)
}

/// The out-array of a recv batch: `max` writable slices.
pub(crate) fn slices_out<'a>(msgs: *mut rill_slice, max: usize) -> R<&'a mut [rill_slice]> {
    let p = result::out(msgs, "msgs")?;
    if max == 0 || max > MAX_BATCH {
        return Err(Fail::invalid(format!(
            "max must be 1..={MAX_BATCH}, got {max}"
        )));
    }
    // SAFETY: C promised `max` writable slices at `msgs` (non-NULL, checked above).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, max) })
}

/// An object behind a handle that can be waited on.
pub(crate) trait Waitable {
    fn notify(&self) -> &Arc<Notify>;
}

/// One non-blocking attempt.
pub(crate) fn attempt<T: Waitable, O>(
    obj: &Arc<Mutex<T>>,
    step: impl FnOnce(&mut T) -> Poll<R<O>>,
) -> Poll<R<O>> {
    let mut g = lock(obj);
    g.notify().begin();
    step(&mut g)
}

/// Attempts until `step` is ready or `timeout` passes, sleeping on the handle's wake-ups in
/// between (the lock is not held while sleeping, so other threads may cancel or free).
pub(crate) fn block<T: Waitable, O>(
    obj: &Arc<Mutex<T>>,
    timeout: std::time::Duration,
    mut step: impl FnMut(&mut T) -> Poll<R<O>>,
) -> R<O> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let notify = {
            let mut g = lock(obj);
            g.notify().begin();
            if let Poll::Ready(r) = step(&mut g) {
                return r;
            }
            g.notify().clone()
        };
        if !notify.wait(deadline) {
            return Err(Fail::new(RILL_TIMEOUT, "timed out"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn protocols_cross_both_ways_under_the_cores_names() {
        for p in rill_protocol::ALL {
            assert_eq!(protocol_from(p as u32, "p").unwrap(), p.core());
            assert_eq!(rill_protocol::of(p.core()), p);
            // SAFETY: a known value names a static C string.
            let name = unsafe { CStr::from_ptr(rill_protocol_name(p as u32)) };
            assert_eq!(name.to_str().unwrap(), p.core().name());
        }
        let e = protocol_from(4, "opts.protocol").unwrap_err();
        assert_eq!(e.code, result::RILL_ERR_INVALID_ARGUMENT);
        assert!(e.msg.contains("got 4"), "{}", e.msg);
        assert!(rill_protocol_name(4).is_null());
    }

    #[test]
    fn idempotency_levels_cross_both_ways() {
        for i in rillrpc::Idempotency::ALL {
            // The C numbers are the core's (protobuf's), both ways.
            let c = rill_idempotency::of(i);
            assert_eq!(c as u32, i as u32);
            assert_eq!(idempotency_from(c as u32, "i").unwrap(), i);
        }
        // A zeroed field is the core's default.
        assert_eq!(
            idempotency_from(0, "i").unwrap(),
            rillrpc::Idempotency::default()
        );
        let e = idempotency_from(3, "opts.idempotency").unwrap_err();
        assert_eq!(e.code, result::RILL_ERR_INVALID_ARGUMENT);
        assert!(
            e.msg
                .contains("opts.idempotency must be RILL_IDEMPOTENCY_UNKNOWN (0)")
                && e.msg.contains("got 3"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn http_versions_cross_both_ways() {
        for h in rill_http_version::ALL {
            assert_eq!(http_version_from(h as u32, "h").unwrap(), h.core());
            assert_eq!(rill_http_version::of(h.core()), h);
        }
        // A zeroed field is the core's default.
        assert_eq!(
            http_version_from(0, "h").unwrap(),
            rillrpc::HttpVersion::default()
        );
        let e = http_version_from(3, "opts.http_version").unwrap_err();
        assert_eq!(e.code, result::RILL_ERR_INVALID_ARGUMENT);
        assert!(
            e.msg.contains("opts.http_version") && e.msg.contains("got 3"),
            "{}",
            e.msg
        );
    }
}
