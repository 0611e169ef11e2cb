//! The server side of one call, handed out by `Server::accept`.

use bytes::Bytes;
use std::borrow::Cow;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

use super::deadline::{watch as watch_deadline, Watch};
use super::queue::{SendQueue, Stop, SEND_QUEUE_BYTES};
use super::receive::{Expect, From, Kept, Receive};
use super::send::SendHalf;
use super::shape::Shape;
use super::writer::{Role, Writer};
use crate::metadata::Metadata;
use crate::protocol::envelope::{Accepts, Encoding};
use crate::protocol::{Abort, End, Protocol, Receiver, Sender};
use crate::runtime;
use crate::status::{Code, Status};
use crate::transport::budget::Backlog;

/// What the server hands a call when it accepts one.
pub(crate) struct Accepted {
    pub(crate) method: String,
    pub(crate) shape: Shape,
    pub(crate) protocol: Protocol,
    /// The messages' codec, as the content type names it (`proto`, `json`).
    pub(crate) codec: Cow<'static, str>,
    pub(crate) metadata: Metadata,
    pub(crate) timeout: Option<Duration>,
    pub(crate) peer: SocketAddr,
    /// How the client compressed its messages: the answers use the same, if it accepts it.
    pub(crate) request_encoding: Encoding,
    pub(crate) accepts: Accepts,
    pub(crate) sender: Sender,
    pub(crate) receiver: Receiver,
}

/// One incoming call. Dropping it without `finish` ends it as UNKNOWN, so a handler that
/// forgets never leaves the client hanging.
pub struct ServerCall {
    send: SendHalf,
    method: String,
    shape: Shape,
    protocol: Protocol,
    codec: Cow<'static, str>,
    metadata: Metadata,
    deadline: Option<Instant>,
    peer: SocketAddr,
    receiver: Receiver,
    /// The single-request rule of the call's shape.
    expect: Expect,
    /// A single-request call's request, held until the client's half-close shows it is the
    /// only one.
    held: Option<Bytes>,
    /// The message `recv_ref` handed out last when it could not lend it in place.
    kept: Kept,
    accepts: Accepts,
    eof: bool,
    finished: bool,
    /// The deadline's watch, when no writer task watches it.
    _watch: Option<Watch>,
}

impl Deref for ServerCall {
    type Target = SendHalf;

    fn deref(&self) -> &SendHalf {
        &self.send
    }
}

impl ServerCall {
    pub(crate) fn new(a: Accepted) -> ServerCall {
        let deadline = a.timeout.map(|t| Instant::now() + t);
        // Answer in the encoding the client used, when it accepts it, as grpc-go does.
        let answer = match a.request_encoding {
            e if a.accepts.contains(e) => e,
            _ => Encoding::Identity,
        };
        let only_one = a
            .shape
            .single_response()
            .then_some("this call's shape sends exactly one response message");
        let queue = Arc::new(SendQueue::new(
            SEND_QUEUE_BYTES,
            answer,
            a.sender.framing(),
            only_one,
        ));
        if let Some(m) = a.sender.meter() {
            let backlog: Weak<SendQueue> = Arc::downgrade(&queue);
            let backlog: Weak<dyn Backlog> = backlog;
            m.backlog_of(backlog);
        }
        let writer = Writer {
            queue: queue.clone(),
            role: Role::Server,
            deadline,
        };
        // A single-response call ends with one message and its status, all known when the
        // handler finishes: the handler's own thread then writes them, and no writer task
        // is started (one task hand-off fewer per call). Its deadline is watched beside
        // other calls' (`deadline`).
        let watch = if a.shape.single_response() {
            writer.defer(a.sender, runtime::handle(), true);
            deadline.map(|d| watch_deadline(d, &queue, Role::Server))
        } else {
            queue.lend(a.sender);
            writer.spawn(&runtime::handle());
            None
        };
        ServerCall {
            send: SendHalf::new(queue, None, false),
            method: a.method,
            shape: a.shape,
            protocol: a.protocol,
            codec: a.codec,
            metadata: a.metadata,
            deadline,
            peer: a.peer,
            receiver: a.receiver,
            expect: Expect::new(a.shape.single_request(), From::Client),
            held: None,
            kept: Kept::default(),
            accepts: a.accepts,
            eof: false,
            finished: false,
            _watch: watch,
        }
    }

    /// The method path, `/package.Service/Method`.
    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The protocol the client called with: the handler is the same for every one.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The codec of the call's messages, as its content type names it: `proto` (also when
    /// it names none) or `json` (Connect's default in browsers), or a custom one. The core
    /// passes messages through as bytes; the handler decodes them with this codec and
    /// answers in it.
    pub fn codec(&self) -> &str {
        &self.codec
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

    /// `recv`, lending the message until the next receive: for a handler that decodes each
    /// message where it lies and keeps no `Bytes` of it, as `send_ref` is for one that
    /// encodes into a buffer of its own. A message handed out as `Bytes` takes a reference
    /// on the buffer it was read into, counted atomically, and gives it back when dropped;
    /// a lent one costs neither.
    pub async fn recv_ref(&mut self) -> Result<Option<&[u8]>, Status> {
        if self.send.queue.local_status().is_none()
            && self.expect.streaming()
            && self.receiver.lend_whole()
        {
            let _ = self.expect.message();
            self.kept.release();
            // More of the burst follows the lent message in its chunk: not one to answer
            // at once (see `SendQueue::received`).
            self.send.queue.received(false);
            return Ok(Some(self.receiver.lent_message()));
        }
        let m = self.recv().await?;
        Ok(self.kept.keep(m))
    }

    /// The request of a single-request call (unary, server streaming): exactly one
    /// message, then the client's half-close. Anything else ends the call as
    /// UNIMPLEMENTED (see `receive::Expect`).
    pub async fn recv_single(&mut self) -> Result<Bytes, Status> {
        let mut one = Expect::new(true, From::Client);
        let Some(msg) = self.recv().await? else {
            let s = one.end().expect_err("no message came");
            return Err(self.abort_with(s));
        };
        let _ = one.message();
        match self.recv().await? {
            None => Ok(msg),
            Some(_) => {
                let s = one.message().expect_err("a second message");
                Err(self.abort_with(s))
            }
        }
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        let r = self.poll_next(cx);
        if r.is_pending() {
            // Waiting for the client, who may be waiting for what the open batch holds.
            self.send.flush();
        }
        r
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        if let Some(s) = self.send.queue.local_status() {
            return Poll::Ready(Err(s));
        }
        // A stream's next message, whole in the chunk in hand, goes out ahead of the loop
        // below: there, every layer's `Poll<Result<..>>` around it cost a copy per message.
        if self.expect.streaming() {
            if let Some(m) = self.receiver.next_whole() {
                let _ = self.expect.message();
                self.send.queue.received(self.receiver.answerable());
                return Poll::Ready(Ok(Some(m)));
            }
        }
        loop {
            if self.eof {
                return Poll::Ready(Ok(self.held.take()));
            }
            match self.receiver.poll_message(cx) {
                Poll::Ready(Ok(Some(m))) => {
                    if let Err(s) = self.expect.message() {
                        self.held = None;
                        return Poll::Ready(Err(self.abort_with(s)));
                    }
                    self.send.queue.received(self.receiver.answerable());
                    if !self.shape.single_request() {
                        return Poll::Ready(Ok(Some(m)));
                    }
                    // A single request is handed out once the half-close shows it is the
                    // only one, as grpc-go's and connect-go's servers read it.
                    self.held = Some(m);
                }
                Poll::Ready(Ok(None)) => {
                    if let Err(s) = self.expect.end() {
                        return Poll::Ready(Err(self.abort_with(s)));
                    }
                    self.eof = true;
                }
                Poll::Ready(Err(s)) => {
                    // A broken request (oversized, malformed, truncated) ends the call with
                    // its status, so the client hears why even if the handler gives up.
                    let s = if matches!(s.code(), Code::Cancelled | Code::Unavailable) {
                        s
                    } else {
                        self.abort_with(s)
                    };
                    return Poll::Ready(Err(s));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Reads a single-request call's request before its handler gets the call, as
    /// grpc-go, connect-go and tonic decode it before calling theirs, so that a handler
    /// answering at once never races the rest of the request: connect-go's client stops
    /// writing a request body once the response headers are in, and the stream then
    /// comes up short of its `content-length` (malformed, RFC 9113 §8.1.1: "A request or
    /// response is also malformed if the value of a content-length header field does not
    /// equal the sum of the DATA frame payload lengths"). Ready once the request is in,
    /// broken, or the call has ended; the handler's `recv` then gives what this read.
    pub(crate) fn poll_request_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.shape.single_request() || self.eof || self.finished {
            return Poll::Ready(());
        }
        match self.poll_next(cx) {
            Poll::Ready(Ok(m)) => {
                // At the half-close `poll_next` hands the held request out: hold it again.
                self.held = m;
                Poll::Ready(())
            }
            Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Pending => self.poll_cancelled(cx).map(|_| ()),
        }
    }

    /// Whether the most recently received request message arrived compressed (its
    /// Compressed-Flag was 1); it reaches `recv` decompressed either way. For servers that
    /// must check a client's compression, as the interop suite's `expect_compressed` does.
    pub fn last_recv_compressed(&self) -> bool {
        self.receiver.last_compressed()
    }

    /// Sends the response headers now, with `metadata`. Otherwise they go with the first
    /// message, or with the status.
    pub fn send_headers(&self, metadata: &Metadata) -> Result<(), Status> {
        self.send.queue.send_head(metadata.clone())
    }

    /// Compresses response messages with `enc` when the client accepts it (it said so in
    /// `grpc-accept-encoding`); returns whether it will. Call before the headers go out.
    pub fn set_compression(&self, enc: Encoding) -> bool {
        if !self.accepts.contains(enc) {
            return false;
        }
        if self.send.queue.head_decided() {
            return false;
        }
        self.send.queue.set_compression(enc);
        true
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
        self.finished = true;
        if let Some(s) = self.send.queue.local_status() {
            return Err(s);
        }
        if self.send.queue.close(End::Status(status)) {
            Ok(())
        } else {
            Err(Status::new(
                Code::FailedPrecondition,
                "the call has already ended",
            ))
        }
    }

    /// Aborts the call: the client sees CANCELLED (RST_STREAM(CANCEL) over HTTP/2).
    pub fn cancel(&mut self) {
        self.finished = true;
        self.send.queue.abort(
            Status::cancelled("call cancelled by the server"),
            Stop::Reset(Abort::Cancel),
        );
    }

    /// True once the call ended on this side: the client cancelled, the deadline passed or
    /// the connection broke. A handler doing long work checks this.
    pub fn is_cancelled(&self) -> bool {
        self.send
            .queue
            .watch_deferred(&mut Context::from_waker(Waker::noop()), true);
        self.send
            .queue
            .local_status()
            .is_some_and(|s| s.code() != Code::Ok)
    }

    /// Ready when the call ended for a reason other than this handler's `finish`.
    pub fn poll_cancelled(&self, cx: &mut Context<'_>) -> Poll<Status> {
        self.send.queue.watch_deferred(cx, true);
        match self.send.queue.local_status() {
            Some(s) => Poll::Ready(s),
            None => {
                let _ = self.send.queue.poll_aborted(cx);
                Poll::Pending
            }
        }
    }

    /// Ends the call with `s` in its trailers (in place of anything queued), and returns
    /// the call's outcome.
    fn abort_with(&mut self, s: Status) -> Status {
        self.finished = true;
        self.send.queue.abort(s.clone(), Stop::Status);
        self.send.queue.local_status().unwrap_or(s)
    }
}

impl Drop for ServerCall {
    fn drop(&mut self) {
        if !self.finished {
            let s = Status::new(
                Code::Unknown,
                "the handler ended without finishing the call",
            );
            self.send.queue.abort(s, Stop::Status);
        }
    }
}

impl Receive for ServerCall {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        ServerCall::poll_recv(self, cx)
    }
}
