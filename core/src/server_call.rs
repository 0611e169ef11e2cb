//! The server side of one RPC, handed out by `Server::accept`.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::SendStream;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

use crate::call::{disarm, sleep_until, write_chunks, Shape, SEND_QUEUE_BYTES};
use crate::codec::{self, Encoding};
use crate::driver::Driver;
use crate::inbound::Inbound;
use crate::metadata::Metadata;
use crate::outbound::{Batch, Batched, End, Lent, Linger, Outbound, Terminate, TrySendError};
use crate::runtime;
use crate::status::{percent_encode, Code, Status};

pub(crate) struct Incoming {
    pub(crate) method: String,
    pub(crate) shape: Shape,
    pub(crate) metadata: Metadata,
    pub(crate) timeout: Option<Duration>,
    pub(crate) peer: SocketAddr,
    pub(crate) body: h2::RecvStream,
    pub(crate) respond: SendResponse<Bytes>,
    pub(crate) content_type: HeaderValue,
    pub(crate) request_encoding: Encoding,
    pub(crate) accepts_gzip: bool,
    pub(crate) max_recv: usize,
    /// The connection, for kicks from the handler's thread.
    pub(crate) driver: Option<Arc<Driver>>,
}

/// One incoming call. Dropping it without `finish` ends it as UNKNOWN, so a handler that
/// forgets never leaves the client hanging.
pub struct ServerCall {
    /// The writer not started yet (see `new`).
    lazy: Mutex<Option<Lazy>>,
    /// A message was queued while the writer was not started.
    sent: AtomicBool,
    method: String,
    shape: Shape,
    metadata: Metadata,
    deadline: Option<Instant>,
    peer: SocketAddr,
    inbound: Inbound,
    out: Arc<Outbound>,
    accepts_gzip: bool,
    received: usize,
    eof: bool,
    finished: bool,
}

impl ServerCall {
    pub(crate) fn new(inc: Incoming) -> ServerCall {
        let deadline = inc.timeout.map(|t| Instant::now() + t);
        // Answer in the encoding the client used, when it accepts it, as grpc-go does.
        let answer = match inc.request_encoding {
            Encoding::Gzip if inc.accepts_gzip => Encoding::Gzip,
            _ => Encoding::Identity,
        };
        let out = Arc::new(Outbound::new(SEND_QUEUE_BYTES, answer));
        let pump = Pump {
            out: out.clone(),
            deadline,
            content_type: inc.content_type,
            driver: inc.driver,
        };
        // A single-response call without a deadline usually ends with one message and its
        // status, all known when the handler finishes: then the handler's own task writes
        // them, and no writer task is started (one task hand-off fewer per call). Anything
        // that needs the writer later (a second message, waiting, watching for cancel)
        // starts it then.
        let lazy = if inc.shape.single_response() && deadline.is_none() {
            Some(Lazy {
                pump,
                respond: inc.respond,
            })
        } else {
            runtime::handle().spawn(pump.run(inc.respond));
            None
        };
        ServerCall {
            lazy: Mutex::new(lazy),
            sent: AtomicBool::new(false),
            method: inc.method,
            shape: inc.shape,
            metadata: inc.metadata,
            deadline,
            peer: inc.peer,
            inbound: Inbound::new(inc.body, inc.max_recv, inc.request_encoding, None),
            out,
            accepts_gzip: inc.accepts_gzip,
            received: 0,
            eof: false,
            finished: false,
        }
    }

    /// The method path, `/package.Service/Method`.
    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The request metadata (custom headers).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// When the client's deadline passes, if it set one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline.
    pub fn time_remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The next request message; `Ok(None)` when the client half-closed.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, Status> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The request of a single-request call (unary, server streaming): exactly one
    /// message, then the client's half-close. Anything else ends the call as INTERNAL, as
    /// grpc-go's servers do.
    pub async fn recv_single(&mut self) -> Result<Bytes, Status> {
        let Some(msg) = self.recv().await? else {
            let s = Status::internal("client half-closed without sending the request message");
            return Err(self.abort_with(s));
        };
        match self.recv().await? {
            None => Ok(msg),
            Some(_) => {
                let s = Status::internal(
                    "client sent more than one request message for a single-request method",
                );
                Err(self.abort_with(s))
            }
        }
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        let r = self.poll_next(cx);
        if r.is_pending() {
            // Waiting for the client, who may be waiting for what the open batch holds.
            self.out.flush();
        }
        r
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        if let Some(s) = self.out.local_status() {
            return Poll::Ready(Err(s));
        }
        if self.eof {
            return Poll::Ready(Ok(None));
        }
        match self.inbound.poll_message(cx) {
            Poll::Ready(Ok(Some(m))) => {
                self.received += 1;
                if self.shape.single_request() && self.received > 1 {
                    let s = Status::internal(
                        "client sent more than one request message for a single-request method",
                    );
                    return Poll::Ready(Err(self.abort_with(s)));
                }
                if self.inbound.answerable() {
                    self.out.received();
                }
                Poll::Ready(Ok(Some(m)))
            }
            Poll::Ready(Ok(None)) => {
                self.eof = true;
                Poll::Ready(Ok(None))
            }
            Poll::Ready(Err(s)) => {
                // A broken request (oversized, malformed, truncated) ends the call with
                // its status, so the client hears why even if the handler gives up.
                let s = if matches!(s.code(), Code::Cancelled | Code::Unavailable) {
                    s
                } else {
                    self.abort_with(s)
                };
                Poll::Ready(Err(s))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Whether the most recently received request message arrived compressed (its
    /// Compressed-Flag was 1); it reaches `recv` decompressed either way. For servers that
    /// must check a client's compression, as the interop suite's `expect_compressed` does.
    pub fn last_recv_compressed(&self) -> bool {
        self.inbound.last_compressed()
    }

    /// Appends every request message that is ready (up to `max`), waiting only if none is.
    /// `Ok(0)`: the client half-closed.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Bytes>,
        max: usize,
    ) -> Poll<Result<usize, Status>> {
        crate::inbound::batch(cx, out, max, |cx| self.poll_recv(cx))
    }

    /// Sends the response headers now, with `metadata`. Otherwise they go with the first
    /// message, or with the status.
    pub fn send_headers(&self, metadata: &Metadata) -> Result<(), Status> {
        self.start_writer();
        let mut h = HeaderMap::new();
        metadata.write_to(&mut h);
        self.out.send_headers(h)
    }

    /// Compresses response messages with `enc` when the client accepts it (it said so in
    /// `grpc-accept-encoding`); returns whether it will. Call before the headers go out.
    pub fn set_compression(&self, enc: Encoding) -> bool {
        if enc == Encoding::Gzip && !self.accepts_gzip {
            return false;
        }
        if self.out.headers_queued() {
            return false;
        }
        self.out.set_compression(enc);
        true
    }

    /// Queues one response message, waiting only while the send queue is full.
    pub async fn send(&self, msg: Bytes) -> Result<(), Status> {
        self.before_send();
        self.out.send(msg, None).await
    }

    /// Like `send`, choosing for this message whether to compress it (with the encoding
    /// set by `set_compression`).
    pub async fn send_with(&self, msg: Bytes, compress: bool) -> Result<(), Status> {
        self.before_send();
        self.out.send(msg, Some(compress)).await
    }

    /// Queues a message from a borrowed slice (copied into the send buffer), waiting
    /// while the queue is full: no `Bytes` to allocate for a message encoded into a
    /// reused buffer.
    pub async fn send_ref(&self, msg: &[u8]) -> Result<(), Status> {
        self.before_send();
        self.out.send_ref(msg, None).await
    }

    /// `try_send` from a borrowed slice: `Ok(false)` when the queue is full.
    pub fn try_send_ref(&self, msg: &[u8]) -> Result<bool, Status> {
        self.before_send();
        self.out.try_send_ref(msg, None)
    }

    /// Queues borrowed messages (copied) in order while there is room, under one lock and
    /// with at most one wake of the writer for the lot: how many were queued, and the error
    /// that stopped the next one (`None`: all went, or the queue filled). For senders on a
    /// thread of their own, where a wake per message would cross threads each time.
    pub fn try_send_refs<'m, I>(&self, msgs: I) -> (usize, Option<Status>)
    where
        I: IntoIterator<Item = &'m [u8]>,
        I::IntoIter: ExactSizeIterator,
    {
        let msgs = msgs.into_iter();
        if msgs.len() > 1 {
            // More than one response: not the inline single-response write.
            self.sent.store(true, Ordering::Relaxed);
            self.start_writer();
        } else if msgs.len() == 1 {
            self.before_send();
        }
        self.out.push_many(msgs, None, |_| Ok(()))
    }

    pub fn try_send(&self, msg: Bytes) -> Result<(), TrySendError> {
        self.before_send();
        self.out.try_send(msg)
    }

    /// Queues a borrowed message (copied) into this call's open batch, without waking the
    /// writer; `flush` sends the batch (see `Call::try_send_batched`).
    pub fn try_send_batched(&self, msg: &[u8]) -> Result<Batched, Status> {
        self.before_send();
        self.out.push_batched(msg, None)
    }

    /// Ends the open batch: its messages leave now.
    pub fn flush(&self) {
        self.out.flush();
    }

    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.start_writer();
        let r = self.out.poll_ready(cx);
        if r.is_pending() {
            self.out.flush();
        }
        r
    }

    /// Ends the call with `status` (its trailers go out as trailer metadata). Queued
    /// messages are sent first. Fails if the call already ended.
    pub fn finish(&mut self, status: Status) -> Result<(), Status> {
        if self.finished {
            return Err(Status::new(
                Code::FailedPrecondition,
                "the call was already finished",
            ));
        }
        if let Some(s) = self.out.local_status() {
            self.finished = true;
            return Err(s);
        }
        self.finished = true;
        if self.out.close(End::Trailers(trailers_for(&status))) {
            self.write_now();
            Ok(())
        } else {
            Err(Status::new(
                Code::FailedPrecondition,
                "the call has already ended",
            ))
        }
    }

    /// Aborts with RST_STREAM(CANCEL): the client sees CANCELLED.
    pub fn cancel(&mut self) {
        self.finished = true;
        self.out.terminate(
            Status::cancelled("call cancelled by the server"),
            Terminate::Reset(h2::Reason::CANCEL),
        );
        self.write_now();
    }

    /// True once the call ended on this side: the client cancelled, the deadline passed or
    /// the connection broke. A handler doing long work checks this.
    pub fn is_cancelled(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.watch_reset(&mut cx);
        self.out
            .local_status()
            .is_some_and(|s| s.code() != Code::Ok)
    }

    /// Ready when the call ended for a reason other than this handler's `finish`.
    pub fn poll_cancelled(&self, cx: &mut Context<'_>) -> Poll<Status> {
        self.watch_reset(cx);
        match self.out.local_status() {
            Some(s) => Poll::Ready(s),
            None => {
                let _ = self.out.poll_watch(cx);
                Poll::Pending
            }
        }
    }

    /// Watches for the client's reset: the writer task does once started; a deferred
    /// writer's stream is watched here, with `cx`, so that a handler that only listens for
    /// cancellation (as every Node call does) does not start a task per call.
    fn watch_reset(&self, cx: &mut Context<'_>) {
        let mut lazy = self.lazy();
        let Some(l) = lazy.as_mut() else { return };
        if let Poll::Ready(r) = l.respond.poll_reset(cx) {
            let s = reset_status(r);
            self.out
                .terminate(s.clone(), Terminate::Reset(h2::Reason::NO_ERROR));
            self.out.fail(s);
            // Nothing more to write: the stream is gone.
            *lazy = None;
        }
    }

    fn abort_with(&mut self, s: Status) -> Status {
        self.finished = true;
        self.out
            .terminate(s.clone(), Terminate::Trailers(trailers_for(&s)));
        self.write_now();
        self.out.local_status().unwrap_or(s)
    }

    fn lazy(&self) -> std::sync::MutexGuard<'_, Option<Lazy>> {
        self.lazy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the writer task if it was deferred.
    fn start_writer(&self) {
        if let Some(l) = self.lazy().take() {
            runtime::handle().spawn(l.pump.run(l.respond));
        }
    }

    /// A deferred writer holds one message at most before it must start.
    fn before_send(&self) {
        if self.sent.swap(true, Ordering::Relaxed) {
            self.start_writer();
        }
    }

    /// With the writer deferred, writes what is queued (the end included) from this task.
    fn write_now(&self) {
        if let Some(mut l) = self.lazy().take() {
            l.pump.write_queued(&mut l.respond);
        }
    }
}

impl Drop for ServerCall {
    fn drop(&mut self) {
        if !self.finished {
            let s = Status::new(
                Code::Unknown,
                "the handler ended without finishing the call",
            );
            self.out
                .terminate(s.clone(), Terminate::Trailers(trailers_for(&s)));
            self.write_now();
        }
    }
}

/// The trailer block for a status: `grpc-status`, `grpc-message` (percent-encoded),
/// `grpc-status-details-bin`, then the status's trailer metadata.
pub(crate) fn trailers_for(status: &Status) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(2 + status.trailers().len());
    h.insert("grpc-status", HeaderValue::from(status.code() as u32));
    if !status.message().is_empty() {
        if let Ok(v) = HeaderValue::from_str(&percent_encode(status.message())) {
            h.insert("grpc-message", v);
        }
    }
    if !status.details().is_empty() {
        if let Ok(v) = HeaderValue::from_str(&STANDARD_NO_PAD.encode(status.details())) {
            h.insert("grpc-status-details-bin", v);
        }
    }
    status.trailers().write_to(&mut h);
    h
}

/// The status of a call whose stream the client reset.
fn reset_status(r: Result<h2::Reason, h2::Error>) -> Status {
    match r {
        Ok(h2::Reason::CANCEL) | Ok(h2::Reason::NO_ERROR) => {
            Status::cancelled("the client cancelled the call")
        }
        Ok(reason) => Status::new(
            Code::from_h2_reason(reason),
            format!("stream reset by the client: {reason:?}"),
        ),
        Err(e) => Status::from_h2(&e),
    }
}

struct Lazy {
    pump: Pump,
    respond: SendResponse<Bytes>,
}

struct Pump {
    out: Arc<Outbound>,
    deadline: Option<Instant>,
    content_type: HeaderValue,
    driver: Option<Arc<Driver>>,
}

impl Pump {
    fn response(&self, extra: Option<HeaderMap>) -> Response<()> {
        let mut r = Response::new(());
        *r.status_mut() = StatusCode::OK;
        let h = r.headers_mut();
        h.insert(http::header::CONTENT_TYPE, self.content_type.clone());
        let enc = self.out.compression();
        if enc != Encoding::Identity {
            h.insert("grpc-encoding", HeaderValue::from_static(enc.name()));
        }
        h.insert(
            "grpc-accept-encoding",
            HeaderValue::from_static(codec::ACCEPT_ENCODING),
        );
        if let Some(extra) = extra {
            for (k, v) in extra.iter() {
                h.append(k.clone(), v.clone());
            }
        }
        r
    }

    /// Writes everything queued at once, without waiting: used for a single-response call
    /// that ended before its writer task was needed. h2 buffers what the window does not
    /// take yet; it is one message at most.
    fn write_queued(&self, respond: &mut SendResponse<Bytes>) {
        let Some(b) = self.out.take_now() else {
            return;
        };
        // The handler's thread puts the response on the socket itself (see `driver`).
        let kick = self.driver.as_deref().map(Driver::announce);
        self.write_batch(respond, b);
        if let Some(k) = kick {
            k.finish();
        }
        self.out.mark_done();
    }

    fn write_batch(&self, respond: &mut SendResponse<Bytes>, b: Batch) {
        if let Some(r) = b.reset {
            respond.send_reset(r);
        } else if b.headers.is_some() || !b.chunks.is_empty() {
            let Ok(mut s) = respond.send_response(self.response(b.headers), false) else {
                return;
            };
            for c in b.chunks {
                if s.send_data(c, false).is_err() {
                    return;
                }
            }
            if let Some(End::Trailers(t)) = b.end {
                let _ = s.send_trailers(t);
            }
        } else if let Some(End::Trailers(t)) = b.end {
            let _ = respond.send_response(self.response(Some(t)), true);
        }
    }

    async fn run(self, mut respond: SendResponse<Bytes>) {
        let sleep = sleep_until(self.deadline);
        tokio::pin!(sleep);
        let mut stream: Option<SendStream<Bytes>> = None;
        enum Idle {
            Deadline,
            Reset(Result<h2::Reason, h2::Error>),
            Work(Option<Batch>),
        }
        let mut linger = Linger::default();
        loop {
            // While waiting, the stream (once the headers are out) is lent to the call: an
            // answer to a received message is written by its sender directly.
            let lent = match stream.take() {
                Some(s) => {
                    self.out.lend(Lent::new(s, self.driver.clone()));
                    true
                }
                None => false,
            };
            let idle = tokio::select! {
                biased;
                _ = &mut sleep => Idle::Deadline,
                r = poll_fn(|cx| if lent {
                    self.out.poll_lent_reset(cx)
                } else {
                    respond.poll_reset(cx)
                }) => Idle::Reset(r),
                b = poll_fn(|cx| self.out.poll_take(cx, &mut linger)) => Idle::Work(b),
            };
            if lent {
                stream = Some(
                    self.out
                        .reclaim()
                        .expect("only the pump takes the stream")
                        .stream,
                );
            }
            let step = match idle {
                Idle::Deadline => {
                    // The client's deadline passed: end the call as DEADLINE_EXCEEDED, in
                    // trailers, as grpc-go and grpcio servers do.
                    let s = Status::deadline_exceeded();
                    self.out
                        .terminate(s.clone(), Terminate::Trailers(trailers_for(&s)));
                    disarm(sleep.as_mut());
                    continue;
                }
                Idle::Reset(r) => {
                    let s = reset_status(r);
                    self.out
                        .terminate(s.clone(), Terminate::Reset(h2::Reason::NO_ERROR));
                    self.out.fail(s);
                    return;
                }
                Idle::Work(b) => b,
            };
            let Some(batch) = step else { return };
            if let Some(r) = batch.reset {
                match stream.as_mut() {
                    Some(s) => s.send_reset(r),
                    None => respond.send_reset(r),
                }
                return;
            }
            if stream.is_none() && (batch.headers.is_some() || !batch.chunks.is_empty()) {
                match respond.send_response(self.response(batch.headers), false) {
                    Ok(s) => stream = Some(s),
                    Err(e) => {
                        self.out.fail(Status::from_h2(&e));
                        return;
                    }
                }
            }
            if let Some(s) = stream.as_mut() {
                let write = write_chunks(s, batch.chunks);
                let r = tokio::select! {
                    biased;
                    _ = poll_fn(|cx| self.out.poll_urgent(cx)) => continue,
                    r = write => r,
                };
                if let Err(e) = r {
                    // Regression: a client cancel that arrived mid-write only failed later
                    // sends; it must also end the call so is_cancelled/poll_cancelled see it.
                    self.out
                        .terminate(e.clone(), Terminate::Reset(h2::Reason::NO_ERROR));
                    self.out.fail(e);
                    return;
                }
            }
            if let Some(End::Trailers(t)) = batch.end {
                match stream.as_mut() {
                    Some(s) => {
                        let _ = s.send_trailers(t);
                    }
                    None => {
                        // Nothing was sent: one header block carries the status
                        // (Trailers-Only).
                        let _ = respond.send_response(self.response(Some(t)), true);
                    }
                }
                self.out.mark_done();
                return;
            }
        }
    }
}
