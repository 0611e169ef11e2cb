//! The client side of one RPC: `send`, `recv`, `close_send`, `finish`, `cancel`, and the task
//! that writes it to the HTTP/2 stream.

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Request};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::channel::ChannelInner;
use crate::codec::{self, Encoding};
use crate::driver::Driver;
use crate::goaway::{explain, GoAway};
use crate::inbound::Inbound;
use crate::metadata::{decode_bin, Metadata};
use crate::outbound::{Batched, End, Lent, Linger, Outbound, Terminate, TrySendError};
use crate::status::{percent_decode, Code, Status};
use crate::timeout;

/// How much a call may queue for sending before `send` waits.
pub(crate) const SEND_QUEUE_BYTES: usize = 256 * 1024;

/// The shape of a call: how many messages each side sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Shape {
    Unary = 0,
    ClientStreaming = 1,
    ServerStreaming = 2,
    Bidi = 3,
}

impl Shape {
    /// True when the client sends exactly one message.
    pub fn single_request(self) -> bool {
        matches!(self, Shape::Unary | Shape::ServerStreaming)
    }

    /// True when the server sends exactly one message.
    pub fn single_response(self) -> bool {
        matches!(self, Shape::Unary | Shape::ClientStreaming)
    }
}

/// Per-call options.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Sent as `grpc-timeout`; both sides end the call as DEADLINE_EXCEEDED when it passes.
    pub timeout: Option<Duration>,
    pub metadata: Metadata,
    /// Compress every request message with this encoding (gzip).
    pub compression: Option<Encoding>,
    /// Largest response message accepted (default 4 MiB).
    pub max_recv_message_size: Option<usize>,
    /// Largest request message sent (default unlimited).
    pub max_send_message_size: Option<usize>,
    /// `proto`, `thrift`, `json`, ...: the content type becomes `application/grpc+<subtype>`.
    pub content_subtype: Option<String>,
    /// Wait for the channel to connect instead of failing fast with UNAVAILABLE.
    pub wait_for_ready: bool,
}

impl CallOptions {
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    pub fn timeout(mut self, t: Duration) -> CallOptions {
        self.timeout = Some(t);
        self
    }

    pub fn metadata(mut self, md: Metadata) -> CallOptions {
        self.metadata = md;
        self
    }

    pub fn compression(mut self, enc: Encoding) -> CallOptions {
        self.compression = Some(enc);
        self
    }

    pub fn max_recv_message_size(mut self, n: usize) -> CallOptions {
        self.max_recv_message_size = Some(n);
        self
    }

    pub fn max_send_message_size(mut self, n: usize) -> CallOptions {
        self.max_send_message_size = Some(n);
        self
    }

    pub fn content_subtype(mut self, s: impl Into<String>) -> CallOptions {
        self.content_subtype = Some(s.into());
        self
    }

    pub fn wait_for_ready(mut self, yes: bool) -> CallOptions {
        self.wait_for_ready = yes;
        self
    }
}

enum RecvState {
    /// The request is not on the wire yet (connecting); the pump hands over the response.
    Opening(oneshot::Receiver<Result<(ResponseFuture, Arc<GoAway>), Status>>),
    Headers(ResponseFuture),
    Body(Inbound),
    Done,
}

/// One client call. Dropping it before it finished cancels it.
pub struct Call {
    out: Arc<Outbound>,
    state: RecvState,
    headers: Option<Metadata>,
    status: Option<Status>,
    max_recv: usize,
    max_send: usize,
    /// Kept from the body's decoder when the call ends.
    last_compressed: bool,
    /// When the call's deadline passes, if it has one.
    deadline: Option<Instant>,
    /// The GOAWAY of the call's connection, once the stream is open: it explains a
    /// transport failure.
    goaway: Option<Arc<GoAway>>,
}

impl Call {
    /// Opens a call. `first`, when given, is its whole request: one message, then the
    /// half-close.
    pub(crate) fn start(
        chan: &Arc<ChannelInner>,
        method: &str,
        opts: CallOptions,
        first: Option<&[u8]>,
    ) -> Result<Call, Status> {
        let compress = opts.compression.unwrap_or(Encoding::Identity);
        let out = Arc::new(Outbound::new(SEND_QUEUE_BYTES, compress));
        // Taken before the request can leave: the server's deadline (its receipt plus
        // grpc-timeout) must not come before ours.
        let deadline = opts.timeout.map(|t| Instant::now() + t);
        let pump = Pump {
            chan: chan.clone(),
            out: out.clone(),
            deadline,
            wait_for_ready: opts.wait_for_ready,
        };
        if let Some(first) = first {
            let max = opts.max_send_message_size.unwrap_or(usize::MAX);
            if first.len() > max {
                return Err(too_large(first.len(), max));
            }
        }
        // With a connection ready, the stream is opened from the caller's thread, and the
        // writer task starts only when something needs it (a burst, a cancel, a deadline):
        // a call whose request is written at once costs no hand-off to a runtime thread.
        let mut first = first;
        let call = match chan.try_open_now(request(chan, method, &opts)?) {
            Some((resp, mut stream, conn)) => {
                let driver = conn.driver;
                if let Some(msg) = first {
                    // The whole request in one DATA frame with END_STREAM, written now.
                    if write_whole_request(&mut stream, &driver, msg, compress)? {
                        out.closed_directly();
                        first = None;
                    }
                }
                out.lend(Lent::new(stream, Some(driver)));
                // The first message goes out directly, like an answer.
                out.received();
                let rt = chan.runtime().clone();
                if pump.deadline.is_some() {
                    pump.spawn_serving(&rt);
                } else {
                    out.defer_pump(Box::new(move || pump.spawn_serving(&rt)));
                }
                let mut call = Call::receiving(out, RecvState::Headers(resp), &opts, deadline);
                call.goaway = Some(conn.goaway);
                call
            }
            None => {
                let (tx, rx) = oneshot::channel();
                let req = request(chan, method, &opts)?;
                chan.runtime().spawn(pump.run(req, tx));
                Call::receiving(out, RecvState::Opening(rx), &opts, deadline)
            }
        };
        if let Some(first) = first {
            match call.out.try_send_ref(first, None) {
                Ok(_) => {}
                Err(s) => return Err(s),
            }
            call.out.close(End::CloseSend);
        }
        Ok(call)
    }

    fn receiving(
        out: Arc<Outbound>,
        state: RecvState,
        opts: &CallOptions,
        deadline: Option<Instant>,
    ) -> Call {
        Call {
            out,
            state,
            headers: None,
            status: None,
            max_recv: opts
                .max_recv_message_size
                .unwrap_or(codec::DEFAULT_MAX_RECV_MESSAGE),
            max_send: opts.max_send_message_size.unwrap_or(usize::MAX),
            last_compressed: false,
            deadline,
            goaway: None,
        }
    }

    /// A unary call written by the calling task itself: with the whole request in hand
    /// there is nothing to queue, so no writer task is spawned and no hand-off is needed.
    /// Must run inside a tokio runtime (for the deadline).
    pub(crate) async fn unary_direct(
        chan: &Arc<ChannelInner>,
        method: &str,
        msg: Bytes,
        opts: CallOptions,
    ) -> Result<Bytes, Status> {
        let deadline = opts.timeout.map(|t| Instant::now() + t);
        let req = request(chan, method, &opts)?;
        let max_send = opts.max_send_message_size.unwrap_or(usize::MAX);
        if msg.len() > max_send {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "trying to send message larger than max ({} vs. {max_send})",
                    msg.len()
                ),
            ));
        }
        let compress = opts.compression.unwrap_or(Encoding::Identity);
        let mut framed = bytes::BytesMut::with_capacity(codec::PREFIX_LEN + msg.len());
        codec::encode(&mut framed, &msg, compress)?;
        let work = async {
            let (resp, mut stream, _) = chan.open_stream(req, opts.wait_for_ready).await?;
            stream
                .send_data(framed.freeze(), true)
                .map_err(|e| Status::from_h2(&e))?;
            let out = Arc::new(Outbound::new(0, compress));
            out.close(End::CloseSend);
            let mut call = Call::receiving(out, RecvState::Headers(resp), &opts, deadline);
            let r = single_response(&mut call).await;
            // Dropping the stream handles of an unfinished call makes h2 reset it (CANCEL).
            drop(stream);
            r
        };
        match opts.timeout {
            None => work.await,
            Some(t) => tokio::time::timeout(t, work)
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded())),
        }
    }

    /// Queues one message, waiting only while the send queue is full (flow control).
    pub async fn send(&self, msg: Bytes) -> Result<(), Status> {
        self.check_send(&msg)?;
        self.out.send(msg, None).await
    }

    /// Like `send`, choosing for this message whether to compress it (with the call's
    /// `compression`; without one, messages go uncompressed whatever `compress` says).
    pub async fn send_with(&self, msg: Bytes, compress: bool) -> Result<(), Status> {
        self.check_send(&msg)?;
        self.out.send(msg, Some(compress)).await
    }

    /// `try_send`, choosing for this message whether to compress it.
    pub fn try_send_with(&self, msg: Bytes, compress: bool) -> Result<(), TrySendError> {
        if let Err(s) = self.check_send(&msg) {
            return Err(TrySendError::Closed(s));
        }
        self.out.try_send_with(msg, Some(compress))
    }

    /// Queues a message from a borrowed slice (copied into the send buffer), waiting
    /// while the queue is full.
    pub async fn send_ref(&self, msg: &[u8]) -> Result<(), Status> {
        self.check_len(msg.len())?;
        self.out.send_ref(msg, None).await
    }

    /// `try_send` from a borrowed slice: `Ok(false)` when the queue is full.
    pub fn try_send_ref(&self, msg: &[u8]) -> Result<bool, Status> {
        self.check_len(msg.len())?;
        self.out.try_send_ref(msg, None)
    }

    /// Queues borrowed messages (copied) in order while there is room, under one lock and
    /// with at most one wake of the writer for the lot: how many were queued, and the error
    /// that stopped the next one (`None`: all went, or the queue filled). For senders on a
    /// thread of their own, where a wake per message would cross threads each time.
    pub fn try_send_refs<'m, I>(&self, msgs: I) -> (usize, Option<Status>)
    where
        I: IntoIterator<Item = &'m [u8]>,
    {
        self.out.push_many(msgs, None, |m| self.check_len(m.len()))
    }

    /// Queues a borrowed message (copied) into this call's open batch, without waking the
    /// writer: the batch leaves when `flush` is called, when a batch's worth is queued, or
    /// when this call waits (for room, or for a message). For a sender running in an event
    /// loop: the sends of one turn of the loop then leave together, in shared DATA frames,
    /// when the turn ends. `Batched::Opened` asks the caller to arrange that `flush`.
    pub fn try_send_batched(&self, msg: &[u8]) -> Result<Batched, Status> {
        self.check_len(msg.len())?;
        self.out.push_batched(msg, None)
    }

    /// Ends the open batch (see `try_send_batched`): its messages leave now.
    pub fn flush(&self) {
        self.out.flush();
    }

    /// Queues one message if there is room now.
    pub fn try_send(&self, msg: Bytes) -> Result<(), TrySendError> {
        if let Err(s) = self.check_send(&msg) {
            return Err(TrySendError::Closed(s));
        }
        self.out.try_send(msg)
    }

    /// Ready when `try_send` may succeed.
    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let r = self.out.poll_ready(cx);
        if r.is_pending() {
            // Waiting for room: what the open batch holds must be on its way.
            self.out.flush();
        }
        r
    }

    fn check_send(&self, msg: &Bytes) -> Result<(), Status> {
        self.check_len(msg.len())
    }

    fn check_len(&self, len: usize) -> Result<(), Status> {
        if len > self.max_send {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "trying to send message larger than max ({len} vs. {})",
                    self.max_send
                ),
            ));
        }
        Ok(())
    }

    /// The client has nothing more to send (half-close). Idempotent.
    pub fn close_send(&self) {
        self.out.close(End::CloseSend);
    }

    /// Aborts the call: RST_STREAM(CANCEL) goes to the server, which sees CANCELLED, and
    /// this call's outcome becomes CANCELLED.
    pub fn cancel(&mut self) {
        self.out.terminate(
            Status::cancelled("call cancelled by the client"),
            Terminate::Reset(h2::Reason::CANCEL),
        );
    }

    /// The next message; `Ok(None)` at the end of a successful call; `Err` with the call's
    /// status when it failed.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, Status> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        let r = self.poll_next(cx);
        if r.is_pending() {
            // Waiting for the peer, who may be waiting for what this call's open batch holds.
            self.out.flush();
        }
        r
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        if let Some(s) = self.out.local_status() {
            self.end(Some(s));
        }
        loop {
            match &mut self.state {
                RecvState::Opening(rx) => match Pin::new(rx).poll(cx) {
                    Poll::Ready(Ok(Ok((fut, goaway)))) => {
                        self.goaway = Some(goaway);
                        self.state = RecvState::Headers(fut);
                    }
                    Poll::Ready(Ok(Err(s))) => self.end(Some(s)),
                    Poll::Ready(Err(_)) => self.end(Some(Status::internal(
                        "the call's sender task ended unexpectedly",
                    ))),
                    Poll::Pending => return Poll::Pending,
                },
                RecvState::Headers(fut) => match Pin::new(fut).poll(cx) {
                    Poll::Ready(Ok(resp)) => self.on_response(resp),
                    Poll::Ready(Err(e)) => self.end_h2(&e),
                    Poll::Pending => return Poll::Pending,
                },
                RecvState::Body(inb) => match inb.poll_message(cx) {
                    Poll::Ready(Ok(Some(m))) => {
                        if inb.answerable() {
                            self.out.received();
                        }
                        return Poll::Ready(Ok(Some(m)));
                    }
                    Poll::Ready(Ok(None)) => match inb.poll_trailers(cx) {
                        Poll::Ready(Ok(Some(t))) => self.end(Some(status_from_trailers(&t))),
                        Poll::Ready(Ok(None)) => self.end(Some(Status::internal(
                            "server closed the stream without sending trailers",
                        ))),
                        Poll::Ready(Err(s)) => {
                            let s = self
                                .out
                                .local_status()
                                .unwrap_or_else(|| past_deadline(s, self.deadline));
                            self.end(Some(s))
                        }
                        Poll::Pending => return Poll::Pending,
                    },
                    Poll::Ready(Err(s)) => {
                        let s = self
                            .out
                            .local_status()
                            .unwrap_or_else(|| past_deadline(s, self.deadline));
                        self.fail_locally(s);
                    }
                    Poll::Pending => return Poll::Pending,
                },
                RecvState::Done => {
                    let s = self.status.as_ref().expect("status is set when done");
                    return Poll::Ready(if s.is_ok() { Ok(None) } else { Err(s.clone()) });
                }
            }
        }
    }

    /// Whether the most recently received response message arrived compressed (its
    /// Compressed-Flag was 1); it reaches `recv` decompressed either way.
    pub fn last_recv_compressed(&self) -> bool {
        match &self.state {
            RecvState::Body(inb) => inb.last_compressed(),
            _ => self.last_compressed,
        }
    }

    /// Appends every message that is ready (up to `max`) to `out`, waiting only if none is:
    /// one wake-up hands over a batch. Returns `Ok(n)`, the number appended; zero means the
    /// call ended successfully. An error comes after the messages that preceded it.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Bytes>,
        max: usize,
    ) -> Poll<Result<usize, Status>> {
        crate::inbound::batch(cx, out, max, |cx| self.poll_recv(cx))
    }

    /// Waits for the response headers (or the end of the call, for a Trailers-Only
    /// response), without consuming messages.
    pub async fn headers(&mut self) -> Result<Metadata, Status> {
        poll_fn(|cx| self.poll_headers(cx)).await
    }

    pub fn poll_headers(&mut self, cx: &mut Context<'_>) -> Poll<Result<Metadata, Status>> {
        loop {
            if let Some(h) = &self.headers {
                return Poll::Ready(Ok(h.clone()));
            }
            if let Some(s) = self.out.local_status() {
                self.end(Some(s));
            }
            match &mut self.state {
                RecvState::Opening(rx) => match Pin::new(rx).poll(cx) {
                    Poll::Ready(Ok(Ok((fut, goaway)))) => {
                        self.goaway = Some(goaway);
                        self.state = RecvState::Headers(fut);
                    }
                    Poll::Ready(Ok(Err(s))) => self.end(Some(s)),
                    Poll::Ready(Err(_)) => self.end(Some(Status::internal(
                        "the call's sender task ended unexpectedly",
                    ))),
                    Poll::Pending => return Poll::Pending,
                },
                RecvState::Headers(fut) => match Pin::new(fut).poll(cx) {
                    Poll::Ready(Ok(resp)) => self.on_response(resp),
                    Poll::Ready(Err(e)) => self.end_h2(&e),
                    Poll::Pending => return Poll::Pending,
                },
                RecvState::Body(_) => unreachable!("headers are set when the body starts"),
                RecvState::Done => {
                    return Poll::Ready(Err(self.status.clone().expect("status is set when done")));
                }
            }
        }
    }

    /// The trailers, once the call has ended.
    pub fn trailers(&self) -> Option<&Metadata> {
        self.status.as_ref().map(|s| s.trailers())
    }

    /// The final status if the call has ended.
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    /// Half-closes, discards any unread messages and returns the call's final status.
    pub async fn finish(&mut self) -> Status {
        self.close_send();
        let mut sink = Vec::new();
        loop {
            sink.clear();
            match poll_fn(|cx| self.poll_recv_many(cx, &mut sink, 1024)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        self.status.clone().expect("status is set when done")
    }

    fn on_response(&mut self, resp: http::Response<RecvStream>) {
        let (parts, body) = resp.into_parts();
        let h = &parts.headers;
        // Trailers-Only: the status came in the only header block.
        if h.contains_key("grpc-status") {
            self.headers = Some(Metadata::from_headers(h));
            let s = status_from_trailers(h);
            self.end(Some(s));
            return;
        }
        if parts.status != http::StatusCode::OK {
            let code = Code::from_http_status(parts.status.as_u16());
            self.headers = Some(Metadata::from_headers(h));
            self.fail_locally(Status::new(
                code,
                format!(
                    "unexpected HTTP status code received from server: {}",
                    parts.status
                ),
            ));
            return;
        }
        let ct = h
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_grpc_content_type(ct) {
            self.headers = Some(Metadata::from_headers(h));
            self.fail_locally(Status::new(
                Code::Unknown,
                format!("unexpected content-type {ct:?} in the response"),
            ));
            return;
        }
        let enc = match h.get("grpc-encoding").map(|v| v.to_str().unwrap_or("?")) {
            None => Encoding::Identity,
            Some(name) => match Encoding::from_name(name) {
                Some(e) => e,
                None => {
                    self.headers = Some(Metadata::from_headers(h));
                    self.fail_locally(Status::internal(format!(
                        "server sent messages in an unsupported grpc-encoding {name:?}"
                    )));
                    return;
                }
            },
        };
        self.headers = Some(Metadata::from_headers(h));
        self.state = RecvState::Body(Inbound::new(body, self.max_recv, enc, self.goaway.clone()));
    }

    /// Ends the call for a reason found on this side: the stream is reset so the server
    /// stops, and the status is this side's.
    fn fail_locally(&mut self, s: Status) {
        self.out
            .terminate(s.clone(), Terminate::Reset(h2::Reason::CANCEL));
        self.end(Some(self.out.local_status().unwrap_or(s)));
    }

    fn end_h2(&mut self, e: &h2::Error) {
        let s = self.out.local_status().unwrap_or_else(|| {
            past_deadline(
                explain(self.goaway.as_deref(), Status::from_h2(e)),
                self.deadline,
            )
        });
        self.end(Some(s));
    }

    fn end(&mut self, s: Option<Status>) {
        if self.status.is_none() {
            self.status = s;
        }
        if self.headers.is_none() {
            self.headers = Some(Metadata::new());
        }
        if let RecvState::Body(inb) = &self.state {
            self.last_compressed = inb.last_compressed();
        }
        self.state = RecvState::Done;
        self.out.mark_done();
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.out.terminate(
                Status::cancelled("call dropped before it finished"),
                Terminate::Reset(h2::Reason::CANCEL),
            );
        }
        self.out.mark_done();
    }
}

/// The request header block of a call.
fn request(chan: &ChannelInner, method: &str, opts: &CallOptions) -> Result<Request<()>, Status> {
    if !method.starts_with('/') || method.len() < 2 {
        return Err(Status::new(
            Code::InvalidArgument,
            format!("method path must look like /package.Service/Method, got {method:?}"),
        ));
    }
    let uri = format!("{}://{}{}", chan.scheme(), chan.authority(), method);
    let mut req = Request::post(uri).body(()).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("invalid method path {method:?}: {e}"),
        )
    })?;
    let h = req.headers_mut();
    let ct = content_type(opts.content_subtype.as_deref())
        .map_err(|_| Status::new(Code::InvalidArgument, "invalid content subtype"))?;
    h.insert(http::header::CONTENT_TYPE, ct);
    h.insert(http::header::TE, HeaderValue::from_static("trailers"));
    h.insert(http::header::USER_AGENT, chan.user_agent().clone());
    if let Some(t) = opts.timeout {
        h.insert(
            "grpc-timeout",
            HeaderValue::from_str(&timeout::encode(t)).expect("ascii"),
        );
    }
    let compress = opts.compression.unwrap_or(Encoding::Identity);
    if compress != Encoding::Identity {
        h.insert("grpc-encoding", HeaderValue::from_static(compress.name()));
    }
    h.insert(
        "grpc-accept-encoding",
        HeaderValue::from_static(codec::ACCEPT_ENCODING),
    );
    opts.metadata.write_to(h);
    Ok(req)
}

/// Reads the one response of a single-response call: exactly one message, then OK.
pub(crate) async fn single_response(call: &mut Call) -> Result<Bytes, Status> {
    let first = call.recv().await?;
    let Some(msg) = first else {
        return Err(Status::new(
            Code::Internal,
            "server ended a unary call with OK but no response message",
        ));
    };
    match call.recv().await? {
        None => Ok(msg),
        Some(_) => {
            call.cancel();
            Err(Status::new(
                Code::Internal,
                "server sent more than one response message for a single-response call",
            ))
        }
    }
}

pub(crate) fn content_type(
    subtype: Option<&str>,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    match subtype {
        None | Some("") => Ok(HeaderValue::from_static("application/grpc")),
        Some("proto") => Ok(HeaderValue::from_static("application/grpc+proto")),
        Some(s) => HeaderValue::from_str(&format!("application/grpc+{s}")),
    }
}

/// "Content-Type → "content-type" "application/grpc" [("+proto" / "+json" / {custom})]"
pub(crate) fn is_grpc_content_type(ct: &str) -> bool {
    let base = ct.split(';').next().unwrap_or("").trim();
    base == "application/grpc" || base.starts_with("application/grpc+")
}

pub(crate) fn status_from_trailers(t: &HeaderMap) -> Status {
    let code = match t.get("grpc-status") {
        None => {
            return Status::internal("server sent trailers without grpc-status")
                .with_trailers(Metadata::from_headers(t))
        }
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u32>().ok()) {
            Some(n) => Code::from_u32(n),
            None => Code::Unknown,
        },
    };
    let message = t
        .get("grpc-message")
        .map(|v| percent_decode(v.as_bytes()))
        .unwrap_or_default();
    let details = t
        .get("grpc-status-details-bin")
        .and_then(|v| decode_bin(v.as_bytes()))
        .unwrap_or_default();
    Status::new(code, message)
        .with_details(details)
        .with_trailers(Metadata::from_headers(t))
}

/// The task that owns the HTTP/2 send side of a client call: it opens the stream, writes
/// queued messages as capacity allows, and enforces the deadline and cancellation.
struct Pump {
    chan: Arc<ChannelInner>,
    out: Arc<Outbound>,
    deadline: Option<Instant>,
    wait_for_ready: bool,
}

impl Pump {
    /// Starts the task for a stream already open and lent to the call.
    fn spawn_serving(self, rt: &tokio::runtime::Handle) {
        let Some(lent) = self.out.reclaim() else {
            return;
        };
        let driver = lent.driver.expect("a call's lent stream has its driver");
        rt.spawn(async move {
            let sleep = sleep_until(self.deadline);
            tokio::pin!(sleep);
            self.serve(lent.stream, driver, sleep).await
        });
    }

    async fn run(
        self,
        req: Request<()>,
        tx: oneshot::Sender<Result<(ResponseFuture, Arc<GoAway>), Status>>,
    ) {
        let sleep = sleep_until(self.deadline);
        tokio::pin!(sleep);
        let opened = tokio::select! {
            biased;
            _ = poll_fn(|cx| self.out.poll_terminated(cx)) => Err(self.out.local_status().unwrap_or_else(|| Status::cancelled("cancelled"))),
            _ = &mut sleep => {
                self.out.terminate(Status::deadline_exceeded(), Terminate::Reset(h2::Reason::CANCEL));
                Err(Status::deadline_exceeded())
            }
            r = self.chan.open_stream(req, self.wait_for_ready) => r,
        };
        let (stream, driver) = match opened {
            Ok((fut, stream, conn)) => {
                if tx.send(Ok((fut, conn.goaway))).is_err() {
                    return;
                }
                (stream, conn.driver)
            }
            Err(s) => {
                self.out.fail(s.clone());
                let _ = tx.send(Err(s));
                return;
            }
        };
        self.serve(stream, driver, sleep).await
    }

    /// The pump of an open stream: writes what is queued, watches the deadline and resets.
    async fn serve(
        self,
        mut stream: SendStream<Bytes>,
        driver: Arc<Driver>,
        mut sleep: Pin<&mut tokio::time::Sleep>,
    ) {
        enum Idle {
            Deadline,
            Reset(Result<h2::Reason, h2::Error>),
            Work(Option<crate::outbound::Batch>),
        }
        let mut linger = Linger::default();
        loop {
            // While waiting, the stream is lent to the call: an answer to a received
            // message is written by its sender directly (see `outbound`).
            self.out.lend(Lent::new(stream, Some(driver.clone())));
            let idle = tokio::select! {
                biased;
                _ = &mut sleep => Idle::Deadline,
                r = poll_fn(|cx| self.out.poll_lent_reset(cx)) => Idle::Reset(r),
                b = poll_fn(|cx| self.out.poll_take(cx, &mut linger)) => Idle::Work(b),
            };
            stream = self
                .out
                .reclaim()
                .expect("only the pump takes the stream")
                .stream;
            let step = match idle {
                Idle::Deadline => {
                    // The spec: "If the deadline expires, the client ... sends a RST_STREAM(CANCEL)"
                    // and the call fails with DEADLINE_EXCEEDED.
                    self.out.terminate(
                        Status::deadline_exceeded(),
                        Terminate::Reset(h2::Reason::CANCEL),
                    );
                    disarm(sleep.as_mut());
                    continue;
                }
                Idle::Reset(r) => {
                    match r {
                        // The spec (RFC 9113 §8.1): a server that has sent its complete response
                        // "MAY request that the client abort transmission of a request without
                        // error by sending a RST_STREAM with an error code of NO_ERROR". The call
                        // is over, and its status is the one the response carried.
                        Ok(h2::Reason::NO_ERROR) => self.out.peer_finished(),
                        Ok(reason) => self.out.fail(past_deadline(
                            Status::new(
                                Code::from_h2_reason(reason),
                                format!("stream reset by the server ({reason:?})"),
                            ),
                            self.deadline,
                        )),
                        Err(e) => self.out.fail(Status::from_h2(&e)),
                    }
                    return;
                }
                Idle::Work(b) => b,
            };
            let Some(batch) = step else { return };
            if let Some(r) = batch.reset {
                stream.send_reset(r);
                return;
            }
            let write = write_chunks(&mut stream, batch.chunks);
            let r = tokio::select! {
                biased;
                _ = &mut sleep => {
                    self.out.terminate(Status::deadline_exceeded(), Terminate::Reset(h2::Reason::CANCEL));
                    disarm(sleep.as_mut());
                    continue;
                }
                _ = poll_fn(|cx| self.out.poll_urgent(cx)) => continue,
                r = write => r,
            };
            if let Err(s) = r {
                if stream_finished_by_peer(&mut stream) {
                    self.out.peer_finished();
                } else {
                    self.out.fail(past_deadline(s, self.deadline));
                }
                return;
            }
            if let Some(End::CloseSend) = batch.end {
                if let Err(e) = stream.send_data(Bytes::new(), true) {
                    self.out.fail(Status::from_h2(&e));
                    return;
                }
            }
        }
    }
}

/// A server that resets with CANCEL once the deadline has passed does so because of it
/// (grpc-go's server does, at the deadline): the call failed with DEADLINE_EXCEEDED, as
/// grpc-go's client reports it too (http2_client.go, handleRSTStream). The reset can beat
/// this side's own timer, which fires on the runtime's next millisecond tick.
fn past_deadline(s: Status, deadline: Option<Instant>) -> Status {
    if s.code() == Code::Cancelled && deadline.is_some_and(|d| Instant::now() >= d) {
        return Status::deadline_exceeded();
    }
    s
}

/// Writes a request message with END_STREAM into a stream just opened, and kicks the
/// connection; false when the window has no room yet (the caller queues it instead).
fn write_whole_request(
    stream: &mut SendStream<Bytes>,
    driver: &Driver,
    msg: &[u8],
    compress: Encoding,
) -> Result<bool, Status> {
    // A large request goes through the writer task, which feeds h2 as the window opens
    // rather than handing it the whole message to buffer.
    if msg.len() > crate::outbound::COALESCE_MAX {
        return Ok(false);
    }
    stream.reserve_capacity(codec::PREFIX_LEN + msg.len());
    if stream.capacity() == 0 {
        return Ok(false);
    }
    let mut frame = bytes::BytesMut::with_capacity(codec::PREFIX_LEN + msg.len());
    codec::encode(&mut frame, msg, compress)?;
    let kick = driver.announce();
    let sent = stream.send_data(frame.freeze(), true).is_ok();
    kick.finish();
    Ok(sent)
}

fn too_large(len: usize, max: usize) -> Status {
    Status::new(
        Code::ResourceExhausted,
        format!("trying to send message larger than max ({len} vs. {max})"),
    )
}

/// Regression: a peer's RST_STREAM(CANCEL) that arrived while we waited for flow control
/// surfaced as "UNAVAILABLE: stream closed"; the reset's own reason says what happened.
fn reset_status(stream: &mut SendStream<Bytes>) -> Option<Status> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match stream.poll_reset(&mut cx) {
        Poll::Ready(Ok(reason)) => Some(Status::new(
            Code::from_h2_reason(reason),
            format!("stream reset by the peer: {reason:?}"),
        )),
        _ => None,
    }
}

/// True when the server ended the stream with RST_STREAM(NO_ERROR) after its response.
fn stream_finished_by_peer(stream: &mut SendStream<Bytes>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    matches!(
        stream.poll_reset(&mut cx),
        Poll::Ready(Ok(h2::Reason::NO_ERROR))
    )
}

/// Writes chunks to a stream, waiting for flow-control capacity before each: h2 buffers a
/// chunk beyond the window, and grants capacity only while its send buffer has room, so
/// what waits here is bounded.
pub(crate) async fn write_chunks(
    stream: &mut SendStream<Bytes>,
    chunks: impl IntoIterator<Item = Bytes>,
) -> Result<(), Status> {
    for chunk in chunks {
        if chunk.is_empty() {
            continue;
        }
        stream.reserve_capacity(1);
        if stream.capacity() == 0 {
            loop {
                match poll_fn(|cx| stream.poll_capacity(cx)).await {
                    Some(Ok(0)) => {}
                    Some(Ok(_)) => break,
                    Some(Err(e)) => {
                        return Err(reset_status(stream).unwrap_or_else(|| Status::from_h2(&e)))
                    }
                    None => {
                        return Err(reset_status(stream).unwrap_or_else(|| {
                            Status::unavailable("stream closed while waiting for flow control")
                        }))
                    }
                }
            }
        }
        if let Err(e) = stream.send_data(chunk, false) {
            return Err(reset_status(stream).unwrap_or_else(|| Status::from_h2(&e)));
        }
    }
    Ok(())
}

/// A sleep for an optional deadline (one that never fires when there is none).
pub(crate) fn sleep_until(deadline: Option<Instant>) -> tokio::time::Sleep {
    tokio::time::sleep_until(deadline.unwrap_or_else(far_future))
}

/// Pushes a fired deadline out of the way: a completed `Sleep` stays ready, and a select
/// loop polling it again would spin.
pub(crate) fn disarm(sleep: Pin<&mut tokio::time::Sleep>) {
    sleep.reset(far_future());
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}
