//! Servers: configure, listen, start, accept, shut down.

use rillrpc::{Cors, Idempotency, Server, ServerBuilder, ServerOptions, ServerTls, Shape};
use std::ffi::c_char;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::channel::{bytes, error_code};
use crate::notify::Notify;
use crate::registry::{lock, Registry};
use crate::result::*;
use crate::server_call::{rill_server_call, ServerCallObj, SERVER_CALLS};
use crate::{attempt, block, idempotency_from, shape_from, versioned, Waitable};

/// A server. 0 is never a valid handle.
pub type rill_server = u64;

/// Server settings. Fill with `rill_server_options_init` first, then change fields.
#[repr(C)]
pub struct rill_server_options {
    /// Set by `rill_server_options_init` to `sizeof(rill_server_options)`.
    pub size: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection (> 0). Default 4096.
    pub max_concurrent_streams: u32,
    /// Largest request message accepted, bytes (> 0). Default 4 MiB.
    pub max_recv_message_size: u32,
    /// CORS: browser pages from these origins may call the server (gRPC-Web and Connect):
    /// an array of `cors_len` NUL-terminated origins as browsers send them
    /// ("https://app.example.com"), or "*" for any. NULL and 0 (the default): no CORS, so
    /// browsers let only pages of the server's own origin call.
    pub cors: *const *const c_char,
    /// How many origins `cors` holds.
    pub cors_len: usize,
    /// How long a browser may cache the answer to a preflight, ms (>= 0; browsers are told
    /// whole seconds). Default 7200000 (two hours).
    pub cors_max_age_ms: i64,
    /// How long a new connection may take to finish its TLS handshake and send the HTTP/2
    /// preface (or its first HTTP/1.1 request), ms (> 0); past it the server closes the
    /// connection. Default 10000. Appended after `cors_max_age_ms` with the three below: a
    /// program built against the header before them passes the smaller `size` and gets
    /// their defaults.
    pub handshake_timeout_ms: i64,
    /// At most this many connections at once (0, the default: no limit). At the limit a
    /// new connection takes the place of the oldest one still in its handshake; with none
    /// such, new ones wait until one ends.
    pub max_connections: u32,
    /// Past this age, ms (±10%), a connection is told to go (GOAWAY; its calls run on, the
    /// client opens a new connection for new ones), as grpc-go's `MaxConnectionAge`. 0
    /// (the default): no limit.
    pub max_connection_age_ms: i64,
    /// How long, ms, the calls of a connection told to go by `max_connection_age_ms` may
    /// run on before it closes and ends them. 0 (the default): as long as they take.
    pub max_connection_age_grace_ms: i64,
    /// An HTTP/2 connection without a call this long, ms, is told to go (GOAWAY) and
    /// closes, as grpc-go's `MaxConnectionIdle`. 0 (the default): idle connections stay.
    /// Appended after `max_connection_age_grace_ms`: a program built against the header
    /// before it passes the smaller `size` and gets the default.
    pub max_connection_idle_ms: i64,
    /// How long a request's head (HTTP/2 HEADERS and CONTINUATIONs, an HTTP/1.1 request
    /// line and headers) may take to arrive once begun, ms (> 0); past it the server closes
    /// the connection. Default 30000. Appended after `max_connection_idle_ms` with the two
    /// below: a program built against the header before them passes the smaller `size` and
    /// gets their defaults.
    pub header_read_timeout_ms: i64,
    /// Keepalive enforcement, as grpc-go's `EnforcementPolicy.MinTime`: a client that
    /// pings more often than this, ms (>= 0), while the server sends it nothing, gets
    /// GOAWAY ENHANCE_YOUR_CALM after two strikes. Default 300000 (five minutes).
    pub permit_keepalive_time_ms: i64,
    /// Whether clients may ping that often without calls too (grpc-go's
    /// `PermitWithoutStream`); otherwise such pings must be two hours apart. Default false.
    /// With `permit_keepalive_time_ms` 0, any rate is permitted.
    pub permit_keepalive_without_calls: bool,
    /// The server's own keepalive, as grpc-go's `ServerParameters.Time`: an HTTP/2
    /// connection from which nothing has arrived for this long, ms, gets a PING, and
    /// closes (its calls end) if the answer does not come within `keepalive_timeout_ms`.
    /// Finds clients that froze or vanished without closing their socket. 0 turns the
    /// pings off. Default 7200000 (two hours). Appended after
    /// `permit_keepalive_without_calls` with the one below: a program built against the
    /// header before them passes the smaller `size` and gets their defaults.
    pub keepalive_time_ms: i64,
    /// How long a keepalive PING may go unanswered, ms (> 0). Default 20000.
    pub keepalive_timeout_ms: i64,
    /// At most this many bytes held for clients to read over all connections, whatever
    /// their protocol (what calls have queued and what waits for the socket); past it new
    /// streams are refused and the streams whose clients stopped reading are cut, those
    /// holding the most first (their calls end RESOURCE_EXHAUSTED). 0: no limit. Default 536870912 (512
    /// MiB). Appended after `keepalive_timeout_ms` with the one below: a program built
    /// against the header before them passes the smaller `size` and gets their defaults.
    pub send_budget: u64,
    /// The same for each connection. 0: no limit. Default 67108864 (64 MiB).
    pub connection_send_budget: u64,
    /// How far the HTTP/2 connection windows granted to clients may grow together, in
    /// bytes, beyond each connection's first 4 MiB: what clients can make the server hold
    /// of requests its handlers have not read yet. Past it, request streams that are not
    /// read stall their connection's other calls until they are. 0: no limit. Default
    /// 536870912 (512 MiB). Appended after `connection_send_budget` with the one below: a
    /// program built against the header before them passes the smaller `size` and gets
    /// their defaults.
    pub receive_budget: u64,
    /// The most one HTTP/2 connection's window grows to (never less than its first
    /// 4 MiB). 0: as far as HTTP/2 allows (2^31-1). Default 67108864 (64 MiB).
    pub connection_receive_budget: u64,
}

/// The struct as each earlier header declared it (`versioned::earlier`).
const EARLIER: [(usize, usize); 6] = [
    versioned::earlier(
        std::mem::offset_of!(rill_server_options, handshake_timeout_ms),
        std::mem::align_of::<rill_server_options>(),
    ),
    versioned::earlier(
        std::mem::offset_of!(rill_server_options, max_connection_idle_ms),
        std::mem::align_of::<rill_server_options>(),
    ),
    versioned::earlier(
        std::mem::offset_of!(rill_server_options, header_read_timeout_ms),
        std::mem::align_of::<rill_server_options>(),
    ),
    versioned::earlier(
        std::mem::offset_of!(rill_server_options, keepalive_time_ms),
        std::mem::align_of::<rill_server_options>(),
    ),
    versioned::earlier(
        std::mem::offset_of!(rill_server_options, send_budget),
        std::mem::align_of::<rill_server_options>(),
    ),
    versioned::earlier(
        std::mem::offset_of!(rill_server_options, receive_budget),
        std::mem::align_of::<rill_server_options>(),
    ),
];

/// The defaults, as `rill_server_options_init` hands them out.
fn defaults() -> rill_server_options {
    let d = ServerOptions::default();
    let ms = |t: Option<Duration>| t.map_or(0, |t| t.as_millis() as i64);
    rill_server_options {
        size: std::mem::size_of::<rill_server_options>(),
        max_concurrent_streams: d.max_concurrent_streams,
        max_recv_message_size: d.max_recv_message_size as u32,
        cors: std::ptr::null(),
        cors_len: 0,
        cors_max_age_ms: Cors::any_origin().max_age.as_millis() as i64,
        handshake_timeout_ms: d.handshake_timeout.as_millis() as i64,
        max_connections: d.max_connections.map_or(0, |n| n as u32),
        max_connection_age_ms: ms(d.max_connection_age),
        max_connection_age_grace_ms: ms(d.max_connection_age_grace),
        max_connection_idle_ms: ms(d.max_connection_idle),
        header_read_timeout_ms: d.header_read_timeout.as_millis() as i64,
        permit_keepalive_time_ms: d.permit_keepalive_time.as_millis() as i64,
        permit_keepalive_without_calls: d.permit_keepalive_without_calls,
        keepalive_time_ms: ms(d.keepalive_time),
        keepalive_timeout_ms: d.keepalive_timeout.as_millis() as i64,
        send_budget: d.send_budget.map_or(0, |n| n as u64),
        connection_send_budget: d.connection_send_budget.map_or(0, |n| n as u64),
        receive_budget: d.receive_budget.map_or(0, |n| n as u64),
        connection_receive_budget: d.connection_receive_budget.map_or(0, |n| n as u64),
    }
}

pub(crate) struct ServerObj {
    opts: ServerOptions,
    methods: Vec<(String, Shape, Idempotency)>,
    addr: Option<String>,
    server: Option<Arc<Server>>,
    notify: Arc<Notify>,
    waker: Waker,
}

impl Waitable for ServerObj {
    fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }
}

pub(crate) static SERVERS: Registry<ServerObj> = Registry::new(4, "server");

/// Fills `opts` with the defaults.
#[no_mangle]
pub extern "C" fn rill_server_options_init(opts: *mut rill_server_options) -> rill_result {
    guard(|| {
        let o = out(opts, "opts")?;
        put(o, defaults());
        Ok(RILL_OK)
    })
}

/// The CORS settings of the options: `None` without origins.
///
/// # Safety
/// `o.cors` is NULL or points to `o.cors_len` pointers, each NULL or NUL-terminated.
unsafe fn cors(o: &rill_server_options) -> R<Option<Cors>> {
    if o.cors_max_age_ms < 0 {
        return Err(Fail::invalid(format!(
            "opts.cors_max_age_ms must be >= 0, got {}",
            o.cors_max_age_ms
        )));
    }
    if o.cors_len == 0 {
        return Ok(None);
    }
    if o.cors.is_null() {
        return Err(Fail::null("opts.cors"));
    }
    if o.cors_len > isize::MAX as usize / std::mem::size_of::<*const c_char>() {
        return Err(Fail::invalid("opts.cors_len is too large"));
    }
    // SAFETY: non-NULL with `cors_len` pointers per the contract above.
    let list = unsafe { std::slice::from_raw_parts(o.cors, o.cors_len) };
    let allowed_origins = list
        .iter()
        .enumerate()
        // SAFETY: each entry is NULL or NUL-terminated per the contract above.
        .map(|(i, p)| unsafe { text(*p, &format!("opts.cors[{i}]")) }.map(str::to_owned))
        .collect::<R<Vec<String>>>()?;
    Ok(Some(Cors {
        allowed_origins,
        max_age: Duration::from_millis(o.cors_max_age_ms as u64),
    }))
}

/// Creates a server (not listening yet): add methods and a listening address, then
/// `rill_server_start`. `opts` may be NULL; it is only read during this call (the CORS
/// origins are copied). Free the server with `rill_server_free`.
///
/// # Safety
/// `opts` is NULL or filled by `rill_server_options_init`, its `cors` NULL or an array of
/// `cors_len` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn rill_server_new(
    opts: *const rill_server_options,
    server_out: *mut rill_server,
) -> rill_result {
    guard(|| {
        let o = out(server_out, "server_out")?;
        let so = if opts.is_null() {
            ServerOptions::default()
        } else {
            // SAFETY: non-NULL and initialized per the contract above (this version's
            // struct or an earlier one); `read` reads no further than the one it was.
            let c = unsafe { versioned::read(opts, defaults(), &EARLIER, "server_options") }?;
            // SAFETY: `cors` holds `cors_len` strings per the contract above.
            unsafe { options(&c) }?
        };
        let (notify, waker) = Notify::new();
        put(
            o,
            SERVERS.insert(ServerObj {
                opts: so,
                methods: Vec::new(),
                addr: None,
                server: None,
                notify,
                waker,
            }),
        );
        Ok(RILL_OK)
    })
}

/// # Safety
/// `c.cors` is NULL or holds `c.cors_len` NUL-terminated strings.
unsafe fn options(c: &rill_server_options) -> R<ServerOptions> {
    if c.max_concurrent_streams == 0 || c.max_recv_message_size == 0 {
        return Err(Fail::invalid(
            "max_concurrent_streams and max_recv_message_size must be > 0",
        ));
    }
    if c.handshake_timeout_ms <= 0 {
        return Err(Fail::invalid(format!(
            "opts.handshake_timeout_ms must be > 0, got {}",
            c.handshake_timeout_ms
        )));
    }
    if c.header_read_timeout_ms <= 0 {
        return Err(Fail::invalid(format!(
            "opts.header_read_timeout_ms must be > 0, got {}",
            c.header_read_timeout_ms
        )));
    }
    if c.permit_keepalive_time_ms < 0 {
        return Err(Fail::invalid(format!(
            "opts.permit_keepalive_time_ms must be >= 0, got {}",
            c.permit_keepalive_time_ms
        )));
    }
    if c.keepalive_timeout_ms <= 0 {
        return Err(Fail::invalid(format!(
            "opts.keepalive_timeout_ms must be > 0, got {}",
            c.keepalive_timeout_ms
        )));
    }
    let optional_ms = |v: i64, what: &str| -> R<Option<Duration>> {
        match v {
            0 => Ok(None),
            v if v > 0 => Ok(Some(Duration::from_millis(v as u64))),
            v => Err(Fail::invalid(format!(
                "opts.{what} must be >= 0 (0: none), got {v}"
            ))),
        }
    };
    Ok(ServerOptions {
        max_concurrent_streams: c.max_concurrent_streams,
        max_recv_message_size: c.max_recv_message_size as usize,
        handshake_timeout: Duration::from_millis(c.handshake_timeout_ms as u64),
        max_connections: (c.max_connections > 0).then_some(c.max_connections as usize),
        max_connection_age: optional_ms(c.max_connection_age_ms, "max_connection_age_ms")?,
        max_connection_age_grace: optional_ms(
            c.max_connection_age_grace_ms,
            "max_connection_age_grace_ms",
        )?,
        max_connection_idle: optional_ms(c.max_connection_idle_ms, "max_connection_idle_ms")?,
        header_read_timeout: Duration::from_millis(c.header_read_timeout_ms as u64),
        permit_keepalive_time: Duration::from_millis(c.permit_keepalive_time_ms as u64),
        permit_keepalive_without_calls: c.permit_keepalive_without_calls,
        keepalive_time: optional_ms(c.keepalive_time_ms, "keepalive_time_ms")?,
        keepalive_timeout: Duration::from_millis(c.keepalive_timeout_ms as u64),
        send_budget: bytes(c.send_budget),
        connection_send_budget: bytes(c.connection_send_budget),
        receive_budget: bytes(c.receive_budget),
        connection_receive_budget: bytes(c.connection_receive_budget),
        // SAFETY: the caller's contract.
        cors: unsafe { cors(c) }?,
        ..ServerOptions::default()
    })
}

/// A byte budget: 0 is none; one past what the address space holds is as good as none.
fn not_started(s: &ServerObj, op: &str) -> R<()> {
    if s.server.is_some() {
        return Err(Fail::state(format!("{op} after rill_server_start")));
    }
    Ok(())
}

/// Serves `method` ("/package.Service/Method") as a call of the given `rill_shape`.
/// Calls to other methods end as UNIMPLEMENTED without reaching accept. Before start.
/// The method's idempotency is unknown: it answers Connect's GET with 405 (see
/// `rill_server_add_method_with`).
///
/// # Safety
/// `method` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rill_server_add_method(
    server: rill_server,
    method: *const c_char,
    shape: u32,
) -> rill_result {
    // SAFETY: the caller's contract above.
    guard(|| unsafe { add_method(server, method, shape, Idempotency::Unknown) })
}

/// As `rill_server_add_method`, with the method's `rill_idempotency` (its `.proto`'s
/// `idempotency_level`). A unary method registered RILL_IDEMPOTENCY_NO_SIDE_EFFECTS also
/// answers Connect's HTTP GET, which HTTP caches can keep:
/// `GET /pkg.Svc/Method?connect=v1&encoding=proto&base64=1&message=...`. The call is
/// accepted as any other, its request message taken from the URL. Other methods answer
/// a GET with 405. Before start.
///
/// # Safety
/// `method` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rill_server_add_method_with(
    server: rill_server,
    method: *const c_char,
    shape: u32,
    idempotency: u32,
) -> rill_result {
    guard(|| {
        let idempotency = idempotency_from(idempotency, "idempotency")?;
        // SAFETY: the caller's contract above.
        unsafe { add_method(server, method, shape, idempotency) }
    })
}

/// What both add functions do: every argument checked now, the method kept for start.
///
/// # Safety
/// `method` is NULL or NUL-terminated.
unsafe fn add_method(
    server: rill_server,
    method: *const c_char,
    shape: u32,
    idempotency: Idempotency,
) -> R {
    // SAFETY: the caller's contract above.
    let m = unsafe { text(method, "method") }?;
    let shape = shape_from(shape)?;
    // The core checks the path when it is added; a builder thrown away does that here,
    // so a bad path fails this call rather than rill_server_start.
    let mut b = ServerBuilder::new(ServerOptions::default());
    b.add_method_with(m, shape, idempotency)
        .map_err(|e| Fail::invalid(e.message().to_owned()))?;
    let obj = SERVERS.get(server)?;
    let mut s = lock(&obj);
    not_started(&s, "add_method")?;
    s.methods.push((m.to_owned(), shape, idempotency));
    Ok(RILL_OK)
}

/// Sets the listening address, "host:port" (port 0 picks a free one: read it with
/// `rill_server_port`). With `tls_cert_pem` and `tls_key_pem` (NUL-terminated PEM) it
/// speaks TLS, with both NULL h2c. One address per server; before start.
///
/// # Safety
/// The strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rill_server_listen(
    server: rill_server,
    addr: *const c_char,
    tls_cert_pem: *const c_char,
    tls_key_pem: *const c_char,
) -> rill_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (a, cert, key) = unsafe {
            (
                text(addr, "addr")?,
                opt_text(tls_cert_pem, "tls_cert_pem")?,
                opt_text(tls_key_pem, "tls_key_pem")?,
            )
        };
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some(ServerTls {
                cert_pem: c.as_bytes().to_vec(),
                key_pem: k.as_bytes().to_vec(),
                client_ca_pem: None,
            }),
            (None, None) => None,
            _ => {
                return Err(Fail::invalid(
                    "give both tls_cert_pem and tls_key_pem, or neither",
                ))
            }
        };
        let obj = SERVERS.get(server)?;
        let mut s = lock(&obj);
        not_started(&s, "listen")?;
        if s.addr.is_some() {
            return Err(Fail::state(
                "this version serves one listening address per server",
            ));
        }
        s.addr = Some(a.to_owned());
        s.opts.tls = tls;
        Ok(RILL_OK)
    })
}

/// Mutual TLS: a client must present a certificate that one of the CAs in `ca_pem`
/// (NUL-terminated PEM) signed, or its handshake fails. After a TLS `rill_server_listen`,
/// before start.
///
/// # Safety
/// `ca_pem` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rill_server_require_client_certs(
    server: rill_server,
    ca_pem: *const c_char,
) -> rill_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let ca = unsafe { text(ca_pem, "ca_pem")? };
        let obj = SERVERS.get(server)?;
        let mut s = lock(&obj);
        not_started(&s, "require_client_certs")?;
        let Some(tls) = s.opts.tls.as_mut() else {
            return Err(Fail::state(
                "client certificates need TLS: call rill_server_listen with a certificate first",
            ));
        };
        tls.client_ca_pem = Some(ca.as_bytes().to_vec());
        Ok(RILL_OK)
    })
}

/// Binds the address and starts serving on the library's runtime.
#[no_mangle]
pub extern "C" fn rill_server_start(server: rill_server) -> rill_result {
    guard(|| {
        let obj = SERVERS.get(server)?;
        let mut s = lock(&obj);
        not_started(&s, "start")?;
        let Some(addr) = s.addr.clone() else {
            return Err(Fail::state(
                "no listening address: call rill_server_listen first",
            ));
        };
        if s.methods.is_empty() {
            return Err(Fail::state(
                "no method registered: call rill_server_add_method",
            ));
        }
        crate::runtime::start();
        let mut b = ServerBuilder::new(s.opts.clone());
        for (m, shape, idempotency) in &s.methods {
            b = b.register_with(m, *shape, *idempotency);
        }
        let srv = b
            .bind(&addr)
            .map_err(|e| Fail::new(error_code(e.kind()), e.message().to_owned()))?;
        s.server = Some(Arc::new(srv));
        Ok(RILL_OK)
    })
}

/// The port the started server listens on.
#[no_mangle]
pub extern "C" fn rill_server_port(server: rill_server, port_out: *mut u16) -> rill_result {
    guard(|| {
        let o = out(port_out, "port_out")?;
        let obj = SERVERS.get(server)?;
        let s = lock(&obj);
        let Some(srv) = &s.server else {
            return Err(Fail::state("the server is not started"));
        };
        put(o, srv.local_addr().port());
        Ok(RILL_OK)
    })
}

impl ServerObj {
    fn poll_accept(&mut self) -> Poll<R<rill_server_call>> {
        let Some(srv) = &self.server else {
            return Poll::Ready(Err(Fail::state("the server is not started")));
        };
        let mut cx = Context::from_waker(&self.waker);
        match srv.poll_accept(&mut cx) {
            Poll::Ready(Some(call)) => {
                Poll::Ready(Ok(SERVER_CALLS.insert(ServerCallObj::new(call))))
            }
            Poll::Ready(None) => {
                Poll::Ready(Err(Fail::new(RILL_ERR_CLOSED, "the server has shut down")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The next incoming call, waiting up to `timeout_ms` (> 0, or RILL_FOREVER).
/// RILL_ERR_CLOSED once the server has shut down and every call was handed out.
///
/// Ownership: `*call_out` is a new server call owned by you: end it with
/// `rill_server_call_finish` (or cancel) and free it with `rill_server_call_free`.
#[no_mangle]
pub extern "C" fn rill_server_accept(
    server: rill_server,
    call_out: *mut rill_server_call,
    timeout_ms: i64,
) -> rill_result {
    guard(|| {
        let o = out(call_out, "call_out")?;
        let t = timeout(timeout_ms)?;
        let obj = SERVERS.get(server)?;
        put(o, block(&obj, t, |s| s.poll_accept())?);
        Ok(RILL_OK)
    })
}

/// Like `rill_server_accept` without waiting: RILL_WOULD_BLOCK when no call is waiting.
#[no_mangle]
pub extern "C" fn rill_server_try_accept(
    server: rill_server,
    call_out: *mut rill_server_call,
) -> rill_result {
    guard(|| {
        let o = out(call_out, "call_out")?;
        let obj = SERVERS.get(server)?;
        match attempt(&obj, |s| s.poll_accept()) {
            Poll::Ready(r) => {
                put(o, r?);
                Ok(RILL_OK)
            }
            Poll::Pending => Ok(RILL_WOULD_BLOCK),
        }
    })
}

/// Graceful shutdown: stops accepting connections, lets calls in flight finish for up to
/// `grace_ms` (>= 0), then cancels the rest. Blocks until done. Do not call it from the
/// only thread that serves the calls in flight with a long grace: they cannot finish.
#[no_mangle]
pub extern "C" fn rill_server_shutdown(server: rill_server, grace_ms: i64) -> rill_result {
    guard(|| {
        if grace_ms < 0 {
            return Err(Fail::invalid(format!(
                "grace_ms must be >= 0, got {grace_ms}"
            )));
        }
        let obj = SERVERS.get(server)?;
        let srv = lock(&obj).server.clone();
        let Some(srv) = srv else {
            return Err(Fail::state("the server is not started"));
        };
        rillrpc::runtime::block_on(srv.shutdown(Duration::from_millis(grace_ms as u64)));
        Ok(RILL_OK)
    })
}

/// Frees the server, stopping it at once if it runs (calls in flight are cancelled).
/// Server calls already accepted stay valid handles until you free them.
#[no_mangle]
pub extern "C" fn rill_server_free(server: rill_server) -> rill_result {
    guard(|| {
        let obj = SERVERS.remove(server)?;
        let n = lock(&obj).notify.clone();
        n.attach(None);
        Ok(RILL_OK)
    })
}
