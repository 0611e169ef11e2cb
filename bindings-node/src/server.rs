//! The server side: a server that hands out incoming calls, and those calls, as pull
//! methods for JS.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rillrpc::{
    Cors, Idempotency, Receive, Server, ServerBuilder, ServerCall, ServerOptions, ServerTls, Shape,
};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::meta::{self, Flat, JsStatus};
use crate::send::{Outbox, CLOSED};
use crate::wake::{with_cx, Notify};

#[napi(object)]
pub struct ServerOpts {
    pub cert_pem: Option<Buffer>,
    pub key_pem: Option<Buffer>,
    pub max_concurrent_streams: Option<u32>,
    pub max_recv_message_size: Option<u32>,
    /// Reads connections on the JS thread (see `hosted`); default true.
    pub host_connections: Option<bool>,
    /// CORS: the origins whose browser pages may call ("*" for any); none or empty: off.
    pub cors: Option<Vec<String>>,
    /// How long a browser may cache a preflight's answer (the core's default otherwise).
    pub cors_max_age_ms: Option<f64>,
    /// Mutual TLS: the CAs (PEM) a client's certificate must chain to.
    pub client_ca_pem: Option<Buffer>,
    /// Connection limits (`ServerOptions`), times in ms.
    pub handshake_timeout_ms: Option<f64>,
    pub max_connections: Option<u32>,
    pub max_connection_age_ms: Option<f64>,
    pub max_connection_age_grace_ms: Option<f64>,
    pub max_connection_idle_ms: Option<f64>,
    pub header_read_timeout_ms: Option<f64>,
    /// Keepalive enforcement (`ServerOptions::permit_keepalive_time`).
    pub permit_keepalive_time_ms: Option<f64>,
    pub permit_keepalive_without_calls: Option<bool>,
    /// The server's own keepalive (`ServerOptions::keepalive_time`; 0 turns it off).
    pub keepalive_time_ms: Option<f64>,
    pub keepalive_timeout_ms: Option<f64>,
    /// The send budget (`ServerOptions::send_budget`), bytes; 0: no limit.
    pub send_budget: Option<f64>,
    pub connection_send_budget: Option<f64>,
    /// The receive budget (`ServerOptions::receive_budget`), bytes; 0: no limit.
    pub receive_budget: Option<f64>,
    pub connection_receive_budget: Option<f64>,
}

/// A duration option in ms, checked.
fn ms(v: Option<f64>, what: &str) -> Result<Option<Duration>> {
    match v {
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Duration::from_secs_f64(t / 1000.0))),
        Some(t) => Err(meta::invalid(&format!("invalid {what} {t} ms"))),
        None => Ok(None),
    }
}

/// The CORS settings of the options: off without origins.
fn cors(origins: Option<Vec<String>>, max_age_ms: Option<f64>) -> Result<Option<Cors>> {
    let max_age = ms(max_age_ms, "corsMaxAge")?.unwrap_or(Cors::any_origin().max_age);
    match origins {
        Some(allowed_origins) if !allowed_origins.is_empty() => Ok(Some(Cors {
            allowed_origins,
            max_age,
        })),
        None if max_age_ms.is_some() => Err(meta::invalid(
            "corsMaxAge needs cors, the origins allowed to call",
        )),
        _ => Ok(None),
    }
}

#[napi]
pub struct NativeServer {
    builder: Option<ServerBuilder>,
    server: Option<Arc<Server>>,
    slot: Arc<Notify>,
}

#[napi]
impl NativeServer {
    #[napi(constructor)]
    pub fn new(opts: Option<ServerOpts>) -> Result<NativeServer> {
        let mut so = ServerOptions::default();
        let mut host = cfg!(unix);
        if let Some(o) = opts {
            host &= o.host_connections.unwrap_or(true);
            match (o.cert_pem, o.key_pem, o.client_ca_pem) {
                (Some(c), Some(k), ca) => {
                    so.tls = Some(ServerTls {
                        cert_pem: c.to_vec(),
                        key_pem: k.to_vec(),
                        client_ca_pem: ca.map(|ca| ca.to_vec()),
                    })
                }
                (None, None, None) => {}
                (None, None, Some(_)) => {
                    return Err(meta::invalid("ca (client certificates) needs cert and key"))
                }
                _ => return Err(meta::invalid("cert and key go together")),
            }
            if let Some(n) = o.max_concurrent_streams {
                so.max_concurrent_streams = n;
            }
            if let Some(n) = o.max_recv_message_size {
                so.max_recv_message_size = n as usize;
            }
            so.cors = cors(o.cors, o.cors_max_age_ms)?;
            if let Some(t) = ms(o.handshake_timeout_ms, "handshakeTimeout")? {
                so.handshake_timeout = t;
            }
            so.max_connections = o.max_connections.map(|n| n as usize);
            so.max_connection_age = ms(o.max_connection_age_ms, "maxConnectionAge")?;
            so.max_connection_age_grace =
                ms(o.max_connection_age_grace_ms, "maxConnectionAgeGrace")?;
            so.max_connection_idle = ms(o.max_connection_idle_ms, "maxConnectionIdle")?;
            if let Some(t) = ms(o.header_read_timeout_ms, "headerReadTimeout")? {
                so.header_read_timeout = t;
            }
            if let Some(t) = ms(o.permit_keepalive_time_ms, "permitKeepaliveTime")? {
                so.permit_keepalive_time = t;
            }
            if let Some(p) = o.permit_keepalive_without_calls {
                so.permit_keepalive_without_calls = p;
            }
            if let Some(t) = ms(o.keepalive_time_ms, "keepaliveTime")? {
                so.keepalive_time = (!t.is_zero()).then_some(t);
            }
            if let Some(t) = ms(o.keepalive_timeout_ms, "keepaliveTimeout")? {
                so.keepalive_timeout = t;
            }
            if let Some(n) = meta::byte_count(o.send_budget, "sendBudget")? {
                so.send_budget = (n > 0).then_some(n);
            }
            if let Some(n) = meta::byte_count(o.connection_send_budget, "connectionSendBudget")? {
                so.connection_send_budget = (n > 0).then_some(n);
            }
            if let Some(n) = meta::byte_count(o.receive_budget, "receiveBudget")? {
                so.receive_budget = (n > 0).then_some(n);
            }
            if let Some(n) =
                meta::byte_count(o.connection_receive_budget, "connectionReceiveBudget")?
            {
                so.connection_receive_budget = (n > 0).then_some(n);
            }
        }
        let mut builder = ServerBuilder::new(so);
        if host {
            builder = builder.host_connections();
        }
        Ok(NativeServer {
            builder: Some(builder),
            server: None,
            slot: Notify::new(),
        })
    }

    #[napi]
    pub fn slot(&self) -> u32 {
        self.slot.id()
    }

    /// Serves `path` with `shape` (0 unary, 1 client streaming, 2 server streaming, 3 bidi)
    /// and `idempotency` ("unknown", the default, "no-side-effects" or "idempotent"): a
    /// unary method free of side effects answers Connect's GET too.
    #[napi]
    pub fn add_method(
        &mut self,
        path: String,
        shape: u32,
        idempotency: Option<String>,
    ) -> Result<()> {
        let shape = Shape::try_from(shape).map_err(|e| meta::invalid(e.message()))?;
        let idempotency = match idempotency {
            Some(name) => meta::named("idempotency", &name)?,
            None => Idempotency::default(),
        };
        let b = self
            .builder
            .as_mut()
            .ok_or_else(|| meta::invalid("methods must be added before listen"))?;
        b.add_method_with(&path, shape, idempotency)
            .map_err(|e| meta::invalid(&e.to_string()))
    }

    /// Binds and starts serving; returns the bound port.
    #[napi]
    pub fn bind(&mut self, addr: String) -> Result<u32> {
        let b = self
            .builder
            .take()
            .ok_or_else(|| meta::invalid("the server is already listening"))?;
        let server = b
            .bind(&addr)
            .map_err(|e| Error::new(napi::Status::GenericFailure, e.to_string()))?;
        let port = server.local_addr().port() as u32;
        self.server = Some(Arc::new(server));
        Ok(port)
    }

    /// Every incoming call ready now; `null` when none is (a wake-up will follow); an empty
    /// array once the server has shut down. New connections are taken onto this thread's
    /// loop first.
    #[napi]
    pub fn poll_accept(&self, env: &Env, max: u32) -> Option<Vec<NativeServerCall>> {
        let Some(server) = &self.server else {
            return Some(Vec::new());
        };
        #[cfg(unix)]
        crate::hosted::adopt_from_server(env, server, &self.slot);
        #[cfg(not(unix))]
        let _ = env;
        let mut out = Vec::new();
        loop {
            if out.len() >= max.max(1) as usize {
                return Some(out);
            }
            match with_cx(&self.slot, |cx| server.poll_accept(cx)) {
                Poll::Ready(Some(c)) => out.push(NativeServerCall::new(c)),
                Poll::Ready(None) => return Some(out),
                Poll::Pending if out.is_empty() => return None,
                Poll::Pending => return Some(out),
            }
        }
    }

    /// Stops accepting, lets calls in flight finish for `grace_ms`, then cancels the rest.
    #[napi]
    pub fn shutdown(&self, grace_ms: f64) -> AsyncTask<Shutdown> {
        let grace = if grace_ms.is_finite() && grace_ms > 0.0 {
            Duration::from_secs_f64(grace_ms / 1000.0)
        } else {
            Duration::ZERO
        };
        AsyncTask::new(Shutdown {
            server: self.server.clone(),
            grace,
        })
    }
}

pub struct Shutdown {
    server: Option<Arc<Server>>,
    grace: Duration,
}

impl Task for Shutdown {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        if let Some(s) = &self.server {
            rillrpc::runtime::block_on(s.shutdown(self.grace));
        }
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _out: ()) -> Result<()> {
        Ok(())
    }
}

/// One incoming call.
#[napi]
pub struct NativeServerCall {
    call: Option<ServerCall>,
    slot: Arc<Notify>,
    outbox: Outbox,
    /// How the receiving side ended, once it did.
    recv_end: Option<rillrpc::Status>,
}

impl NativeServerCall {
    fn new(c: ServerCall) -> NativeServerCall {
        NativeServerCall {
            call: Some(c),
            slot: Notify::new(),
            outbox: Outbox::default(),
            recv_end: None,
        }
    }
}

#[napi]
impl NativeServerCall {
    #[napi]
    pub fn slot(&self) -> u32 {
        self.slot.id()
    }

    #[napi]
    pub fn method(&self) -> String {
        self.call
            .as_ref()
            .map(|c| c.method().to_owned())
            .unwrap_or_default()
    }

    #[napi]
    pub fn shape(&self) -> u32 {
        self.call.as_ref().map(|c| c.shape() as u32).unwrap_or(0)
    }

    /// The name of the protocol the client called with.
    #[napi]
    pub fn protocol(&self) -> &'static str {
        self.call
            .as_ref()
            .map(|c| c.protocol().name())
            .unwrap_or_default()
    }

    /// The codec the request's content type names: "proto", "json", or another.
    #[napi]
    pub fn codec(&self) -> String {
        self.call
            .as_ref()
            .map(|c| c.codec().to_owned())
            .unwrap_or_default()
    }

    #[napi]
    pub fn metadata(&self) -> Flat {
        self.call
            .as_ref()
            .map(|c| meta::to_js(c.metadata()))
            .unwrap_or_default()
    }

    /// Milliseconds left before the client's deadline, if it set one.
    #[napi]
    pub fn time_remaining_ms(&self) -> Option<f64> {
        self.call
            .as_ref()
            .and_then(|c| c.time_remaining())
            .map(|d| d.as_secs_f64() * 1000.0)
    }

    #[napi]
    pub fn peer(&self) -> String {
        self.call
            .as_ref()
            .map(|c| c.peer_addr().to_string())
            .unwrap_or_default()
    }

    /// As `NativeCall.pollRecvBatch`: framed messages, `null` when none is ready, an empty Buffer
    /// at the end of the requests (`recvError()` tells whether it was an error).
    #[napi]
    pub fn poll_recv_batch<'e>(
        &mut self,
        env: &'e Env,
        max: u32,
    ) -> Result<Option<BufferSlice<'e>>> {
        let Some(c) = self.call.as_mut() else {
            return BufferSlice::copy_from(env, []).map(Some);
        };
        if self.recv_end.is_some() {
            return BufferSlice::copy_from(env, []).map(Some);
        }
        let mut batch = Vec::new();
        match with_cx(&self.slot, |cx| {
            c.poll_recv_batch(cx, &mut batch, max as usize)
        }) {
            Poll::Pending => Ok(None),
            Poll::Ready(Ok(0)) => {
                self.recv_end = Some(rillrpc::Status::ok());
                BufferSlice::copy_from(env, []).map(Some)
            }
            Poll::Ready(Err(s)) => {
                self.recv_end = Some(s);
                BufferSlice::copy_from(env, []).map(Some)
            }
            Poll::Ready(Ok(_)) => meta::frame(env, &batch).map(Some),
        }
    }

    /// Why the requests ended, when it was not the client's half-close.
    #[napi]
    pub fn recv_error(&self) -> Option<JsStatus> {
        self.recv_end
            .as_ref()
            .filter(|s| !s.is_ok())
            .map(meta::status_to_js)
    }

    /// Queues one message: 0 sent, 1 full (kept; call `pollSend` after a wake-up), 2 the
    /// call cannot send any more (`sendError` says why).
    #[napi]
    pub fn try_send(&mut self, msg: BufferSlice) -> u32 {
        let Some(c) = &self.call else { return CLOSED };
        self.outbox.try_send(c, &self.slot, &msg)
    }

    /// Why the last send was refused (the call ended: cancelled, broken connection, ...).
    /// The core reports a stream reset found while writing only here, not through
    /// `pollCancelled`.
    #[napi]
    pub fn send_error(&self) -> Option<JsStatus> {
        self.outbox.refused.as_ref().map(meta::status_to_js)
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
    pub fn send_headers(&self, md: Option<Flat>) -> Result<()> {
        let md = meta::from_js(md)?;
        if let Some(c) = &self.call {
            // A call that already ended has no headers to send; its status says why.
            let _ = c.send_headers(&md);
        }
        Ok(())
    }

    #[napi]
    pub fn set_compression(&self, name: String) -> Result<bool> {
        let enc = match name.as_str() {
            "gzip" => rillrpc::Encoding::Gzip,
            "identity" => rillrpc::Encoding::Identity,
            _ => return Err(meta::invalid(&format!("unknown compression {name:?}"))),
        };
        Ok(self.call.as_ref().is_some_and(|c| c.set_compression(enc)))
    }

    /// Ends the call with a status (queued messages go first). False if it had already ended.
    #[napi]
    pub fn finish(
        &mut self,
        code: u32,
        message: String,
        details: Option<Buffer>,
        trailers: Option<Flat>,
    ) -> Result<bool> {
        let s = meta::status_from_js(code, message, details, trailers)?;
        let Some(c) = self.call.as_mut() else {
            return Ok(false);
        };
        Ok(c.finish(s).is_ok())
    }

    #[napi]
    pub fn cancel(&mut self) {
        self.outbox.clear();
        if let Some(c) = self.call.as_mut() {
            c.cancel();
        }
    }

    /// The status once the call ended other than by this side's `finish` (client cancel,
    /// deadline, broken connection); `null` while it has not.
    #[napi]
    pub fn poll_cancelled(&mut self) -> Option<JsStatus> {
        let c = self.call.as_ref()?;
        match with_cx(&self.slot, |cx| c.poll_cancelled(cx)) {
            Poll::Ready(s) if !s.is_ok() => Some(meta::status_to_js(&s)),
            _ => None,
        }
    }

    /// Releases the call (as UNKNOWN if it was not finished).
    #[napi]
    pub fn dispose(&mut self) {
        self.outbox.clear();
        self.call = None;
    }
}
