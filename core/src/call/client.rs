//! The client side of one call: `send`, `recv`, `close_send`, `finish`, `cancel`.

use bytes::{Bytes, BytesMut};
use std::future::{poll_fn, Future};
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::deadline::{watch as watch_deadline, Watch};
use super::queue::{SendQueue, Stop, COALESCE_MAX, SEND_QUEUE_BYTES};
use super::receive::{Expect, From, Kept, Receive};
use super::send::SendHalf;
use super::shape::Shape;
use super::writer::{past_deadline, Open, Opening, Role, Writer};
use crate::metadata::Metadata;
use crate::protocol::envelope::Encoding;
use crate::protocol::{Abort, End, Framing, NoHead, Receiver, Sender};
use crate::status::Status;

/// What the client decided about a call before its stream exists.
pub(crate) struct Start {
    pub(crate) shape: Shape,
    pub(crate) deadline: Option<Instant>,
    pub(crate) compression: Encoding,
    pub(crate) framing: Framing,
    pub(crate) max_send: Option<usize>,
    pub(crate) runtime: Handle,
}

// Every call spends its life in `Open`; boxing the receiver to shrink the brief `Opening`
// would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
enum RecvState {
    /// The stream is not open yet (connecting): the writer hands the receive half over.
    Opening(oneshot::Receiver<Result<Receiver, Status>>),
    Open(Receiver),
    Done,
}

/// One client call. Dropping it before it finished cancels it.
pub struct Call {
    send: SendHalf,
    state: RecvState,
    headers: Option<Metadata>,
    status: Option<Status>,
    /// The single-response rule of the call's shape.
    expect: Expect,
    /// Kept from the receive side when the call ends.
    last_compressed: bool,
    deadline: Option<Instant>,
    /// The message `recv_ref` handed out last when it could not lend it in place.
    kept: Kept,
    /// The deadline's watch, when no writer task watches it.
    _watch: Option<Watch>,
}

impl Deref for Call {
    type Target = SendHalf;

    fn deref(&self) -> &SendHalf {
        &self.send
    }
}

fn queue_for(start: &Start) -> Arc<SendQueue> {
    let only_one = start
        .shape
        .single_request()
        .then_some("this call's shape sends exactly one request message");
    Arc::new(SendQueue::new(
        SEND_QUEUE_BYTES,
        start.compression,
        start.framing.clone(),
        only_one,
    ))
}

impl Call {
    /// A call whose stream was opened on the caller's thread. `first`, when given, is the
    /// whole request: one message, then the half-close, handed to h2 with the opening
    /// when it is small (h2 sends it after the head). The writer task waits until something needs it (a burst, a cancel, a
    /// wait for the window): a call written at once costs no hand-off to a runtime thread.
    pub(crate) fn opened(
        start: Start,
        mut sender: Sender,
        mut receiver: Receiver,
        first: Option<&[u8]>,
    ) -> Result<Call, Status> {
        let queue = queue_for(&start);
        let mut first = first;
        if let Some(msg) = first.filter(|m| m.len() <= COALESCE_MAX) {
            // A large request goes through the writer, fed to h2 as the window opens.
            let mut frame = BytesMut::with_capacity(start.framing.overhead() + msg.len());
            start.framing.frame(&mut frame, msg, start.compression)?;
            let frame = frame.freeze();
            let kept = receiver.may_replay().then(|| frame.clone());
            if let Ok(kick) = sender.send_request_now(frame) {
                if let Some(request) = kept {
                    receiver.request_sent(request);
                }
                queue.closed_directly();
                first = None;
                if let Some(k) = kick {
                    k.finish();
                }
            }
        }
        // The first message goes out directly, like an answer.
        queue.received(true);
        let writer = Writer {
            queue: queue.clone(),
            role: Role::Client,
            deadline: start.deadline,
        };
        // The deadline is watched beside other calls' (`deadline`), not by a task of the
        // call's own: a call written at once still costs no hand-off.
        let watch = start
            .deadline
            .map(|d| watch_deadline(d, &queue, Role::Client));
        writer.defer(sender, start.runtime.clone(), false);
        let mut call = Call::with_request(start, queue, RecvState::Open(receiver), first)?;
        call._watch = watch;
        Ok(call)
    }

    /// A call whose writer opens its stream (connecting first, when the channel must).
    pub(crate) fn opening(start: Start, open: Open, first: Option<&[u8]>) -> Result<Call, Status> {
        let queue = queue_for(&start);
        let (to_call, rx) = oneshot::channel();
        Writer {
            queue: queue.clone(),
            role: Role::Client,
            deadline: start.deadline,
        }
        .spawn_opening(&start.runtime, Opening { open, to_call });
        Call::with_request(start, queue, RecvState::Opening(rx), first)
    }

    fn with_request(
        start: Start,
        queue: Arc<SendQueue>,
        state: RecvState,
        first: Option<&[u8]>,
    ) -> Result<Call, Status> {
        let call = Call {
            send: SendHalf::new(queue, start.max_send, start.shape.single_request()),
            state,
            headers: None,
            status: None,
            expect: Expect::new(start.shape.single_response(), From::Server),
            last_compressed: false,
            deadline: start.deadline,
            kept: Kept::default(),
            _watch: None,
        };
        if let Some(msg) = first {
            call.send.check_len(msg.len())?;
            // The writer may have ended the call already (its connection failed before the
            // request was queued): the call is still handed back, and receiving reports how
            // it ended, as after any other open. Returning the error instead made a C
            // program's `rill_call_open_with_request` to a dead server fail now and then
            // with INVALID_ARGUMENT, and yield no call (found by the c_abi fuzzer).
            let _ = call.try_send_ref(msg);
            call.close_send();
        }
        Ok(call)
    }

    /// The client has nothing more to send (half-close). Idempotent.
    pub fn close_send(&self) {
        self.send.queue.close(End::HalfClose);
    }

    /// Aborts the call: the server sees CANCELLED (RST_STREAM(CANCEL) over HTTP/2), and this
    /// call's outcome becomes CANCELLED.
    pub fn cancel(&mut self) {
        self.send.queue.abort(
            Status::cancelled("call cancelled by the client"),
            Stop::Reset(Abort::Cancel),
        );
    }

    /// The next message; `Ok(None)` at the end of a successful call; `Err` with the call's
    /// status when it failed.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, Status> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// `recv`, lending the message until the next receive (see `ServerCall::recv_ref`).
    pub async fn recv_ref(&mut self) -> Result<Option<&[u8]>, Status> {
        if self.lend_whole() {
            return Ok(Some(self.lent_message()));
        }
        let m = self.recv().await?;
        Ok(self.kept.keep(m))
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        let r = self.poll_next(cx);
        if r.is_pending() {
            // Waiting for the peer, who may be waiting for what this call's open batch holds.
            self.send.flush();
        }
        r
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        if let Some(m) = self.next_whole() {
            return Poll::Ready(Ok(Some(m)));
        }
        loop {
            if let Some(s) = self.send.queue.local_status() {
                self.end(s);
            }
            if self.headers.is_none() && !matches!(self.state, RecvState::Done) {
                match self.poll_head(cx) {
                    Poll::Ready(()) => continue,
                    Poll::Pending if self.aborted_meanwhile(cx) => continue,
                    Poll::Pending => return Poll::Pending,
                }
            }
            let RecvState::Open(r) = &mut self.state else {
                let s = self.status.as_ref().expect("status is set when done");
                return Poll::Ready(if s.is_ok() { Ok(None) } else { Err(s.clone()) });
            };
            match r.poll_message(cx) {
                Poll::Ready(Ok(Some(m))) => {
                    if let Err(s) = self.expect.message() {
                        self.fail_locally(s);
                        continue;
                    }
                    self.send.queue.received(r.answerable());
                    return Poll::Ready(Ok(Some(m)));
                }
                Poll::Ready(Ok(None)) => match r.poll_status(cx) {
                    Poll::Ready(Ok(s)) => {
                        let s = match (s.is_ok(), self.expect.end()) {
                            (true, Err(broken)) => broken,
                            _ => s,
                        };
                        self.end(s);
                    }
                    Poll::Ready(Err(s)) => {
                        let s = self.local_or(s);
                        self.end(s);
                    }
                    Poll::Pending if self.aborted_meanwhile(cx) => continue,
                    Poll::Pending => return Poll::Pending,
                },
                Poll::Ready(Err(s)) => {
                    let s = self.local_or(s);
                    self.fail_locally(s);
                }
                Poll::Pending if self.aborted_meanwhile(cx) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// A stream's next message, whole in the chunk in hand, ahead of `poll_next`'s loop
    /// (see `ServerCall::poll_next`).
    fn next_whole(&mut self) -> Option<Bytes> {
        let r = self.streaming_receiver()?;
        let m = r.next_whole()?;
        let answerable = r.answerable();
        let _ = self.expect.message();
        self.send.queue.received(answerable);
        Some(m)
    }

    /// `next_whole`, lending the message in place: true when the receive side holds it.
    fn lend_whole(&mut self) -> bool {
        if !self.streaming_receiver().is_some_and(|r| r.lend_whole()) {
            return false;
        }
        let _ = self.expect.message();
        self.kept.release();
        // More of the burst follows the lent message in its chunk: not one to answer at
        // once (see `SendQueue::received`).
        self.send.queue.received(false);
        true
    }

    /// The receive side of a stream whose head is in and whose call goes on: where its
    /// next message may be taken ahead of `poll_next`'s loop.
    fn streaming_receiver(&mut self) -> Option<&mut Receiver> {
        if !self.expect.streaming()
            || self.headers.is_none()
            || self.send.queue.local_status().is_some()
        {
            return None;
        }
        match &mut self.state {
            RecvState::Open(r) => Some(r),
            _ => None,
        }
    }

    fn lent_message(&self) -> &[u8] {
        match &self.state {
            RecvState::Open(r) => r.lent_message(),
            _ => unreachable!("a message is lent only by an open receive side"),
        }
    }

    /// Whether the call was ended on this side (its deadline, a cancel from another
    /// thread) while the receive side waits for the peer; if not, the wait is woken when
    /// it is. Not every transport wakes its receiver for a reset of its own (h2 does; a
    /// TTHeader stream or PingPong answer waits for the peer's bytes): a call must not
    /// outlive its deadline waiting on a server that does not answer.
    fn aborted_meanwhile(&self, cx: &mut Context<'_>) -> bool {
        self.send.queue.poll_aborted(cx).is_ready()
    }

    /// Ready once the response head (or the call's end) is known: `headers` or `status`
    /// is set.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.headers.is_some() {
            return Poll::Ready(());
        }
        loop {
            match &mut self.state {
                RecvState::Opening(rx) => match Pin::new(rx).poll(cx) {
                    Poll::Ready(Ok(Ok(r))) => self.state = RecvState::Open(r),
                    Poll::Ready(Ok(Err(s))) => {
                        let s = self.send.queue.local_status().unwrap_or(s);
                        self.end(s);
                    }
                    Poll::Ready(Err(_)) => self.end(Status::internal(
                        "the call's writer task ended unexpectedly",
                    )),
                    Poll::Pending => return Poll::Pending,
                },
                RecvState::Open(r) => {
                    match r.poll_head(cx) {
                        Poll::Ready(Ok(md)) => self.headers = Some(md),
                        // The server ended the call: a Trailers-Only response. Ended OK
                        // with no message, a single-response call broke its rule.
                        Poll::Ready(Err(NoHead::Ended(s, head))) => {
                            self.headers = Some(head.unwrap_or_else(|| s.trailers().clone()));
                            let s = match (s.is_ok(), self.expect.end()) {
                                (true, Err(broken)) => broken,
                                _ => s,
                            };
                            self.end(s);
                        }
                        Poll::Ready(Err(NoHead::Refused(s, md))) => {
                            self.headers = Some(md);
                            self.fail_locally(s);
                        }
                        Poll::Ready(Err(NoHead::Broken(s))) => {
                            let s = self.local_or(s);
                            self.end(s);
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                    return Poll::Ready(());
                }
                RecvState::Done => return Poll::Ready(()),
            }
        }
    }

    /// A transport failure's status, unless this side had decided the outcome already; a
    /// CANCEL after the deadline is the deadline's.
    fn local_or(&self, s: Status) -> Status {
        self.send
            .queue
            .local_status()
            .unwrap_or_else(|| past_deadline(s, self.deadline))
    }

    /// Whether the most recently received response message arrived compressed (its
    /// Compressed-Flag was 1); it reaches `recv` decompressed either way.
    pub fn last_recv_compressed(&self) -> bool {
        match &self.state {
            RecvState::Open(r) => r.last_compressed(),
            _ => self.last_compressed,
        }
    }

    /// Waits for the response headers (or the end of the call, for a Trailers-Only
    /// response), without consuming messages.
    pub async fn headers(&mut self) -> Result<Metadata, Status> {
        poll_fn(|cx| self.poll_headers(cx)).await
    }

    pub fn poll_headers(&mut self, cx: &mut Context<'_>) -> Poll<Result<Metadata, Status>> {
        if let Some(s) = self.send.queue.local_status() {
            self.end(s);
        }
        if self.poll_head(cx).is_pending() {
            if !self.aborted_meanwhile(cx) {
                return Poll::Pending;
            }
            let s = self.send.queue.local_status();
            self.end(s.expect("an aborted call has its status"));
        }
        match (&self.headers, &self.status) {
            (Some(h), _) => Poll::Ready(Ok(h.clone())),
            (None, Some(s)) => Poll::Ready(Err(s.clone())),
            (None, None) => unreachable!("poll_head is ready with headers or a status"),
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
            match poll_fn(|cx| self.poll_recv_batch(cx, &mut sink, 1024)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        self.status.clone().expect("status is set when done")
    }

    /// The one response of a single-response call: exactly one message, then OK. (A call
    /// opened with a single-response shape fails in `recv` already, with the rule's status,
    /// when the server sends none or more.)
    pub async fn recv_single(&mut self) -> Result<Bytes, Status> {
        let one = Expect::new(true, From::Server);
        let Some(msg) = self.recv().await? else {
            return Err(one.end().expect_err("no message came"));
        };
        match self.recv().await? {
            None => Ok(msg),
            Some(_) => {
                let mut one = one;
                let _ = one.message();
                let s = one.message().expect_err("a second message");
                self.fail_locally(s.clone());
                Err(s)
            }
        }
    }

    /// Ends the call for a reason found on this side: the stream is reset so the server
    /// stops, and the status is this side's.
    fn fail_locally(&mut self, s: Status) {
        self.send.queue.abort(s.clone(), Stop::Reset(Abort::Cancel));
        let s = self.send.queue.local_status().unwrap_or(s);
        self.end(s);
    }

    fn end(&mut self, s: Status) {
        if self.status.is_none() {
            self.status = Some(s);
        }
        if self.headers.is_none() {
            self.headers = Some(Metadata::new());
        }
        if let RecvState::Open(r) = &self.state {
            self.last_compressed = r.last_compressed();
        }
        self.state = RecvState::Done;
        self.send.queue.mark_done();
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.send.queue.abort(
                Status::cancelled("call dropped before it finished"),
                Stop::Reset(Abort::Cancel),
            );
        }
        self.send.queue.mark_done();
    }
}

impl Receive for Call {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        Call::poll_recv(self, cx)
    }
}
