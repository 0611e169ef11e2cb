//! The client side: a channel and its calls, as pull methods for JS.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rillrpc::{Call, CallOptions, Channel, ChannelOptions, ClientTls, Encoding, Receive, Shape};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::meta::{self, Flat, JsStatus};
use crate::send::{Outbox, CLOSED};
use crate::wake::{with_cx, Notify};

/// Result codes of `trySend`/`pollSend`.

#[napi(object)]
pub struct ChannelOpts {
    /// PEM CA certificates to trust for `https://` (system roots otherwise).
    pub ca_pem: Option<Buffer>,
    pub server_name: Option<String>,
    /// Client certificate chain and key (PEM), for mutual TLS.
    pub cert_pem: Option<Buffer>,
    pub key_pem: Option<Buffer>,
    pub connect_timeout_ms: Option<f64>,
    pub keepalive_ms: Option<f64>,
    pub user_agent: Option<String>,
    /// Reads plain-TCP connections on the JS thread (see `hosted`); default true.
    pub host_connections: Option<bool>,
    /// What every call speaks: "grpc" (the core's default), "grpc-web", "connect" or "ttheader".
    pub protocol: Option<String>,
    /// What the calls travel over: "http2" (the core's default) or "http1".
    pub http_version: Option<String>,
    /// Connect's GET for unary calls marked "no-side-effects" (off by default).
    pub http_get: Option<bool>,
    /// The `:authority` / `Host` of every call in place of the target's host:port.
    pub authority: Option<String>,
    /// The most a connection's receive window grows to
    /// (`ChannelOptions::connection_receive_budget`), bytes; 0: as far as HTTP/2 allows.
    pub connection_receive_budget: Option<f64>,
}

#[napi(object)]
pub struct CallOpts {
    pub timeout_ms: Option<f64>,
    pub metadata: Option<Flat>,
    /// "gzip" or "identity".
    pub compression: Option<String>,
    pub max_recv_message_size: Option<u32>,
    pub content_subtype: Option<String>,
    pub wait_for_ready: Option<bool>,
    /// "unknown", "no-side-effects" or "idempotent" (the core's names).
    pub idempotency: Option<String>,
}

#[napi]
pub struct NativeChannel {
    ch: Channel,
    /// The id its connections are watched under (see `hosted`).
    hosted: Option<u32>,
    protocol: rillrpc::Protocol,
    http_version: rillrpc::HttpVersion,
    http_get: bool,
}

impl Drop for NativeChannel {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(id) = self.hosted {
            crate::hosted::unwatch_channel(id);
        }
    }
}

#[napi]
impl NativeChannel {
    #[napi(constructor)]
    pub fn new(env: &Env, target: String, opts: Option<ChannelOpts>) -> Result<NativeChannel> {
        let mut co = ChannelOptions {
            host_connections: cfg!(unix),
            ..Default::default()
        };
        if let Some(o) = opts {
            co.host_connections &= o.host_connections.unwrap_or(true);
            if o.ca_pem.is_some()
                || o.server_name.is_some()
                || o.cert_pem.is_some()
                || o.key_pem.is_some()
            {
                let identity = match (o.cert_pem, o.key_pem) {
                    (Some(c), Some(k)) => Some((c.to_vec(), k.to_vec())),
                    (None, None) => None,
                    _ => return Err(meta::invalid("cert and key go together")),
                };
                co.tls = Some(ClientTls {
                    ca_pem: o.ca_pem.map(|b| b.to_vec()),
                    server_name: o.server_name,
                    identity,
                });
            }
            if let Some(t) = o.connect_timeout_ms {
                co.connect_timeout = ms(t)?;
            }
            if let Some(t) = o.keepalive_ms {
                co.keepalive_interval = Some(ms(t)?);
            }
            co.user_agent = o.user_agent;
            if let Some(name) = o.protocol {
                co.protocol = meta::named("protocol", &name)?;
            }
            if let Some(name) = o.http_version {
                co.http_version = meta::named("httpVersion", &name)?;
            }
            if let Some(on) = o.http_get {
                co.http_get = on;
            }
            co.authority = o.authority;
            if let Some(n) =
                meta::byte_count(o.connection_receive_budget, "connectionReceiveBudget")?
            {
                co.connection_receive_budget = (n > 0).then_some(n);
            }
        }
        let (protocol, http_version, http_get) = (co.protocol, co.http_version, co.http_get);
        let host = co.host_connections;
        let ch = Channel::with_options(&target, co).map_err(|e| meta::invalid(&format!("{e}")))?;
        #[cfg(unix)]
        let hosted = match host {
            true => Some(crate::hosted::watch_channel(env, ch.clone())?),
            false => None,
        };
        #[cfg(not(unix))]
        let hosted = {
            let _ = (env, host);
            None
        };
        Ok(NativeChannel {
            ch,
            hosted,
            protocol,
            http_version,
            http_get,
        })
    }

    /// The name of the protocol every call speaks.
    #[napi]
    pub fn protocol(&self) -> &'static str {
        self.protocol.name()
    }

    /// The name of the HTTP version the calls travel over: "http1" or "http2".
    #[napi]
    pub fn http_version(&self) -> &'static str {
        self.http_version.name()
    }

    /// Whether Connect's GET is on.
    #[napi]
    pub fn http_get(&self) -> bool {
        self.http_get
    }

    /// Opens a call of `shape` (0 unary, 1 client streaming, 2 server streaming, 3 bidi);
    /// `first`, when given, is queued at once and `close_send` half-closes after it (unary
    /// and server streaming in one crossing).
    #[napi]
    pub fn open(
        &self,
        method: String,
        shape: u32,
        opts: Option<CallOpts>,
        first: Option<BufferSlice>,
        close_send: Option<bool>,
    ) -> Result<NativeCall> {
        let shape = Shape::try_from(shape).map_err(|e| meta::invalid(e.message()))?;
        let co = call_options(opts)?;
        let whole = close_send == Some(true) && first.is_some();
        let opened = match (&first, whole) {
            // The whole request in hand: the core writes it with the stream's opening (and
            // only then can a unary call go as Connect's GET, the message in its URL).
            (Some(m), true) => self.ch.open_with_request(&method, shape, co, m),
            _ => self.ch.open(&method, shape, co),
        };
        let call = match opened {
            Ok(c) => c,
            Err(s) => {
                return Ok(NativeCall {
                    call: None,
                    failed: Some(s),
                    slot: Notify::new(),
                    outbox: Outbox::default(),
                })
            }
        };
        let mut nc = NativeCall {
            call: Some(call),
            failed: None,
            slot: Notify::new(),
            outbox: Outbox::default(),
        };
        if whole {
            return Ok(nc);
        }
        // A single-request call half-closes after its one message (the core's rule); a
        // message the queue could not take yet waits in the outbox for `pollSend`.
        if let (Some(m), Some(c)) = (first, &nc.call) {
            nc.outbox.try_send(c, &nc.slot, &m);
        }
        Ok(nc)
    }

    #[napi]
    pub fn close(&self) {
        self.ch.close();
    }
}

fn ms(t: f64) -> Result<Duration> {
    if !(t.is_finite() && t >= 0.0) {
        return Err(meta::invalid(&format!("invalid duration {t} ms")));
    }
    Ok(Duration::from_secs_f64(t / 1000.0))
}

fn call_options(opts: Option<CallOpts>) -> Result<CallOptions> {
    let mut co = CallOptions::new();
    let Some(o) = opts else { return Ok(co) };
    if let Some(t) = o.timeout_ms {
        co = co.timeout(ms(t)?);
    }
    co = co.metadata(meta::from_js(o.metadata)?);
    match o.compression.as_deref() {
        None | Some("identity") => {}
        Some("gzip") => co = co.compression(Encoding::Gzip),
        Some(other) => return Err(meta::invalid(&format!("unknown compression {other:?}"))),
    }
    if let Some(n) = o.max_recv_message_size {
        co = co.max_recv_message_size(n as usize);
    }
    if let Some(s) = o.content_subtype {
        co = co.content_subtype(s);
    }
    if let Some(w) = o.wait_for_ready {
        co = co.wait_for_ready(w);
    }
    if let Some(name) = o.idempotency {
        co = co.idempotency(meta::named("idempotency", &name)?);
    }
    Ok(co)
}

/// One client call.
#[napi]
pub struct NativeCall {
    call: Option<Call>,
    /// The call could not start (bad method path, ...).
    failed: Option<rillrpc::Status>,
    slot: Arc<Notify>,
    outbox: Outbox,
}

#[napi]
impl NativeCall {
    /// The id the reactor reports when this call may make progress.
    #[napi]
    pub fn slot(&self) -> u32 {
        self.slot.id()
    }

    /// Every ready message (up to `max`), framed; `null` when none is ready (a wake-up will
    /// follow); an empty Buffer when the call has ended (read `status()`).
    #[napi]
    pub fn poll_recv_batch<'e>(
        &mut self,
        env: &'e Env,
        max: u32,
    ) -> Result<Option<BufferSlice<'e>>> {
        let Some(c) = self.call.as_mut() else {
            return BufferSlice::copy_from(env, []).map(Some);
        };
        let mut batch = Vec::new();
        match with_cx(&self.slot, |cx| {
            c.poll_recv_batch(cx, &mut batch, max as usize)
        }) {
            Poll::Pending => Ok(None),
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => BufferSlice::copy_from(env, []).map(Some),
            Poll::Ready(Ok(_)) => meta::frame(env, &batch).map(Some),
        }
    }

    /// The response headers once they arrived (`null` until then).
    #[napi]
    pub fn poll_headers(&mut self) -> Option<Flat> {
        let Some(c) = self.call.as_mut() else {
            return Some(Vec::new());
        };
        match with_cx(&self.slot, |cx| c.poll_headers(cx)) {
            Poll::Ready(Ok(md)) => Some(meta::to_js(&md)),
            Poll::Ready(Err(_)) => Some(Vec::new()),
            Poll::Pending => None,
        }
    }

    /// Queues one message: 0 sent, 1 full (kept; call `pollSend` after a wake-up), 2 the
    /// call cannot send any more (its status says why).
    #[napi]
    pub fn try_send(&mut self, msg: BufferSlice) -> u32 {
        let Some(c) = &self.call else { return CLOSED };
        self.outbox.try_send(c, &self.slot, &msg)
    }

    /// Queues messages in order while there is room: one crossing for a batch of writes.
    /// Returns how many were queued; `trySend` the next one to learn why it stopped.
    #[napi]
    pub fn try_send_batch(&mut self, msgs: Vec<BufferSlice>) -> u32 {
        let Some(c) = &self.call else { return 0 };
        self.outbox.try_send_batch(c, msgs.iter().map(|m| &m[..]))
    }

    /// Retries the kept message: 0 sent, 1 still full, 2 closed.
    #[napi]
    pub fn poll_send(&mut self) -> u32 {
        let Some(c) = &self.call else { return CLOSED };
        self.outbox.poll_send(c, &self.slot)
    }

    #[napi]
    pub fn close_send(&self) {
        if let Some(c) = &self.call {
            c.close_send();
        }
    }

    #[napi]
    pub fn cancel(&mut self) {
        self.outbox.clear();
        if let Some(c) = self.call.as_mut() {
            c.cancel();
        }
    }

    /// The final status, once `pollRecvBatch` reported the end.
    #[napi]
    pub fn status(&self) -> Option<JsStatus> {
        if let Some(s) = &self.failed {
            return Some(meta::status_to_js(s));
        }
        self.call
            .as_ref()
            .and_then(|c| c.status())
            .map(meta::status_to_js)
    }

    /// Releases the call now rather than at garbage collection (cancels it if unfinished).
    #[napi]
    pub fn dispose(&mut self) {
        self.outbox.clear();
        self.call = None;
    }
}
