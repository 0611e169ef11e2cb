//! Channels: a client's connection to one server.

use rillrpc::{Channel, ChannelOptions, ClientTls, ErrorKind};
use std::ffi::c_char;
use std::mem::offset_of;
use std::time::Duration;

use crate::registry::Registry;
use crate::result::{
    guard, opt_text, out, put, rill_result, text, Fail, R, RILL_ERR_IO, RILL_ERR_TLS, RILL_OK,
};
use crate::{http_version_from, protocol_from, rill_http_version, rill_protocol, versioned};

/// A client channel. 0 is never a valid handle.
pub type rill_channel = u64;

/// Channel settings. Fill with `rill_channel_options_init` first, then change fields:
/// `size` tells this library which version of the struct you compiled against.
#[repr(C)]
pub struct rill_channel_options {
    /// Set by `rill_channel_options_init` to `sizeof(rill_channel_options)`.
    pub size: usize,
    /// How long one connection attempt may take, ms (> 0). Default 20000.
    pub connect_timeout_ms: i64,
    /// Send an HTTP/2 PING after this much idle time, ms; 0 (default) = no keepalive.
    pub keepalive_interval_ms: i64,
    /// Close the connection when a PING is not answered within this time, ms (> 0).
    pub keepalive_timeout_ms: i64,
    /// For https:// targets: PEM certificates to trust (NUL-terminated), or NULL.
    pub tls_ca_pem: *const c_char,
    /// For https:// targets: a PEM file of certificates to trust, or NULL. With neither
    /// this nor `tls_ca_pem` the system roots are trusted.
    pub tls_ca_file: *const c_char,
    /// The name checked against the server certificate when it differs from the host, or
    /// NULL.
    pub tls_server_name: *const c_char,
    /// The `rill_protocol` every call of the channel speaks. Default RILL_PROTOCOL_GRPC.
    pub protocol: u32,
    /// The `rill_http_version` the calls travel over. Default RILL_HTTP_VERSION_2;
    /// RILL_HTTP_VERSION_1 carries gRPC-Web and Connect to servers that speak only
    /// HTTP/1.1 (no bidi calls then).
    pub http_version: u32,
    /// Connect's GET: a Connect channel sends its unary calls marked
    /// RILL_IDEMPOTENCY_NO_SIDE_EFFECTS (`rill_call_options.idempotency`) and opened with
    /// their request (`rill_call_open_with_request`) as HTTP GET requests, the message in
    /// the URL, which HTTP caches can keep; a call whose URL would pass 8 KiB goes as a
    /// POST. Default false. Appended after `http_version`: a program built against the
    /// header before it passes the smaller `size` and gets false.
    pub http_get: bool,
    /// For https:// targets, mutual TLS: the client's PEM certificate chain and private key
    /// (NUL-terminated, both or neither), presented when the server asks. Appended after
    /// `http_get`, as above.
    pub tls_cert_pem: *const c_char,
    pub tls_key_pem: *const c_char,
    /// The `:authority` (HTTP/2) and `Host` (HTTP/1.1) of every call in place of the
    /// target's host:port, NUL-terminated, or NULL: Kitex's gRPC clients send the
    /// destination service's name there. The TLS server name is not changed by it.
    /// Appended after `tls_key_pem`, as above.
    pub authority: *const c_char,
    /// The most one connection's receive window grows to with the streams open on it
    /// (never less than its first 4 MiB): what a server can make the channel hold of
    /// answers not read yet. 0: as far as HTTP/2 allows (2^31-1). Default 67108864
    /// (64 MiB). Appended after `authority`, as above.
    pub connection_receive_budget: u64,
}

pub(crate) static CHANNELS: Registry<Channel> = Registry::new(2, "channel");

/// The defaults, as `rill_channel_options_init` hands them out.
fn defaults() -> rill_channel_options {
    let d = ChannelOptions::default();
    rill_channel_options {
        size: std::mem::size_of::<rill_channel_options>(),
        connect_timeout_ms: d.connect_timeout.as_millis() as i64,
        keepalive_interval_ms: 0,
        keepalive_timeout_ms: d.keepalive_timeout.as_millis() as i64,
        tls_ca_pem: std::ptr::null(),
        tls_ca_file: std::ptr::null(),
        tls_server_name: std::ptr::null(),
        protocol: rill_protocol::of(d.protocol) as u32,
        http_version: rill_http_version::of(d.http_version) as u32,
        http_get: d.http_get,
        tls_cert_pem: std::ptr::null(),
        tls_key_pem: std::ptr::null(),
        authority: std::ptr::null(),
        connection_receive_budget: d.connection_receive_budget.map_or(0, |n| n as u64),
    }
}

/// Fills `opts` with the defaults.
#[no_mangle]
pub extern "C" fn rill_channel_options_init(opts: *mut rill_channel_options) -> rill_result {
    guard(|| {
        let o = out(opts, "opts")?;
        put(o, defaults());
        Ok(RILL_OK)
    })
}

/// The struct as each earlier header declared it, oldest first (`versioned::earlier`).
const EARLIER: [(usize, usize); 4] = [
    versioned::earlier(offset_of!(rill_channel_options, http_get), ALIGN),
    versioned::earlier(offset_of!(rill_channel_options, tls_cert_pem), ALIGN),
    versioned::earlier(offset_of!(rill_channel_options, authority), ALIGN),
    versioned::earlier(
        offset_of!(rill_channel_options, connection_receive_budget),
        ALIGN,
    ),
];
const ALIGN: usize = std::mem::align_of::<rill_channel_options>();

/// A budget in bytes as the option structs give it: 0 for none (as far as the protocol
/// allows).
pub(crate) fn bytes(n: u64) -> Option<usize> {
    (n > 0).then(|| usize::try_from(n).unwrap_or(usize::MAX))
}

pub(crate) fn error_code(kind: ErrorKind) -> rill_result {
    match kind {
        ErrorKind::Tls => RILL_ERR_TLS,
        ErrorKind::Io => RILL_ERR_IO,
        ErrorKind::Closed => crate::result::RILL_ERR_CLOSED,
        _ => crate::result::RILL_ERR_INVALID_ARGUMENT,
    }
}

/// # Safety
/// `o` points to an initialized `rill_channel_options` whose strings are NULL or valid.
unsafe fn options(o: &rill_channel_options) -> R<ChannelOptions> {
    let ms = |v: i64, what: &str| -> R<Duration> {
        if v <= 0 {
            return Err(Fail::invalid(format!("{what} must be > 0 ms, got {v}")));
        }
        Ok(Duration::from_millis(v as u64))
    };
    let mut c = ChannelOptions {
        connect_timeout: ms(o.connect_timeout_ms, "connect_timeout_ms")?,
        keepalive_timeout: ms(o.keepalive_timeout_ms, "keepalive_timeout_ms")?,
        protocol: protocol_from(o.protocol, "opts.protocol")?,
        http_version: http_version_from(o.http_version, "opts.http_version")?,
        http_get: o.http_get,
        connection_receive_budget: bytes(o.connection_receive_budget),
        ..Default::default()
    };
    if o.keepalive_interval_ms < 0 {
        return Err(Fail::invalid(
            "keepalive_interval_ms must be >= 0 (0 = off)",
        ));
    }
    if o.keepalive_interval_ms > 0 {
        c.keepalive_interval = Some(Duration::from_millis(o.keepalive_interval_ms as u64));
    }
    // SAFETY: the strings are NULL or NUL-terminated (the caller's contract).
    let (ca_pem, ca_file, name, cert, key, authority) = unsafe {
        (
            opt_text(o.tls_ca_pem, "tls_ca_pem")?,
            opt_text(o.tls_ca_file, "tls_ca_file")?,
            opt_text(o.tls_server_name, "tls_server_name")?,
            opt_text(o.tls_cert_pem, "tls_cert_pem")?,
            opt_text(o.tls_key_pem, "tls_key_pem")?,
            opt_text(o.authority, "authority")?,
        )
    };
    c.authority = authority.map(str::to_owned);
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some((c.as_bytes().to_vec(), k.as_bytes().to_vec())),
        (None, None) => None,
        _ => {
            return Err(Fail::invalid(
                "give tls_cert_pem and tls_key_pem, or neither",
            ))
        }
    };
    let ca = match (ca_pem, ca_file) {
        (Some(_), Some(_)) => {
            return Err(Fail::invalid("give tls_ca_pem or tls_ca_file, not both"))
        }
        (Some(p), None) => Some(p.as_bytes().to_vec()),
        (None, Some(f)) => Some(
            std::fs::read(f).map_err(|e| Fail::new(RILL_ERR_IO, format!("reading {f}: {e}")))?,
        ),
        (None, None) => None,
    };
    if ca.is_some() || name.is_some() || identity.is_some() {
        c.tls = Some(ClientTls {
            ca_pem: ca,
            server_name: name.map(str::to_owned),
            identity,
        });
    }
    Ok(c)
}

/// Creates a channel to `target`, "http://host:port" (h2c) or "https://host:port" (TLS).
/// `opts` may be NULL for the defaults; it is only read during this call. Nothing
/// connects until the first call. Free the channel with `rill_channel_free`.
///
/// # Safety
/// `target` is NULL or NUL-terminated; `opts` is NULL or points to options filled by
/// `rill_channel_options_init`.
#[no_mangle]
pub unsafe extern "C" fn rill_channel_new(
    target: *const c_char,
    opts: *const rill_channel_options,
    channel_out: *mut rill_channel,
) -> rill_result {
    guard(|| {
        let o = out(channel_out, "channel_out")?;
        // SAFETY: the caller's contract above.
        let target = unsafe { text(target, "target") }?;
        let copts = if opts.is_null() {
            ChannelOptions::default()
        } else {
            // SAFETY: non-NULL and initialized per the contract above (this version's
            // struct or an earlier one); `read` reads no further than the one it was.
            let o = unsafe { versioned::read(opts, defaults(), &EARLIER, "channel_options") }?;
            // SAFETY: its strings are NULL or NUL-terminated per the contract above.
            unsafe { options(&o) }?
        };
        crate::runtime::start();
        let ch = Channel::with_options(target, copts)
            .map_err(|e| Fail::new(error_code(e.kind()), e.message().to_owned()))?;
        put(o, CHANNELS.insert(ch));
        Ok(RILL_OK)
    })
}

/// Closes the channel's connection and frees the handle. Calls already open on it end as
/// UNAVAILABLE/CANCELLED; their handles must still be freed.
#[no_mangle]
pub extern "C" fn rill_channel_free(channel: rill_channel) -> rill_result {
    guard(|| {
        let ch = CHANNELS.remove(channel)?;
        crate::registry::lock(&ch).close();
        Ok(RILL_OK)
    })
}
