//! The bounded queue between a call's sender and its writer task.
//!
//! Small messages are framed straight into one shared buffer, so a burst of sends becomes
//! one DATA frame and one write; the writer is woken once per burst, not once per message
//! (see `flow` for how a flowing stream's small batches wait for more).
//!
//! A send that answers a received message on an idle stream skips the writer: while the
//! writer waits, it lends its end of the stream here, and such a send writes its frame and
//! kicks the connection from the sender's own thread (see `transport::driver`).
//! Request-response rhythms (ping-pong) then cost no hand-off to a runtime thread; bursts
//! still coalesce.

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::flow::{Flow, Linger, FRAME};
use crate::metadata::Metadata;
use crate::protocol::envelope::Encoding;
use crate::protocol::{Abort, End, Framing, PeerEnd, Sender};
use crate::status::{Code, Status};

/// How much a call may hold for sending, queued or in the writer's hands, before `send`
/// waits, until its stream shows it takes more. The writer hands the stream no more than
/// the peer's window, so a stream holds this much beyond what the peer can take: a peer
/// that grants no window holds a handler's sends to this, and a thousand such streams to
/// 2 MiB. Small, because a client may open thousands of streams and read none; a stream
/// that flows grows its bound within a few batches (`FLOWING_GROWTH`).
pub(crate) const SEND_QUEUE_BYTES: usize = 2 * 1024;

/// While the stream takes batches near the bound, the bound doubles, up to this many times
/// `SEND_QUEUE_BYTES` (256 KiB): bigger batches, fewer turns of the writer and fuller
/// writes to the socket. A peer that grants no window from the start holds
/// `SEND_QUEUE_BYTES`, and one that stops reading later at most this many times it. A
/// batch that waited for room on the way does not bring the bound back: h2 gives a stream
/// room as it writes the connection's buffered frames to the socket, so a fast stream
/// waits too.
const FLOWING_GROWTH: usize = 128;

/// Messages up to this size are copied into the shared buffer; larger ones travel as
/// their own chunk without a copy.
pub(crate) const COALESCE_MAX: usize = 16 * 1024;

/// The size of the buffers small messages are framed into: one DATA frame each.
const TAIL_CHUNK: usize = 32 * 1024;

/// An open batch wakes the writer anyway once this much is queued, so that a long turn
/// of the sender's loop keeps the connection busy instead of filling the queue first.
const BATCH_WAKE: usize = TAIL_CHUNK;

/// What became of a message sent into the call's open batch (`try_send_batched`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batched {
    /// The queue is full: nothing was queued. Wait for room (`poll_send_ready`).
    Full,
    /// Queued, and it opened a batch: arrange one `flush` for when the sender's turn ends.
    Opened,
    /// Queued into the batch already open (or dropped, the peer having ended the call).
    Joined,
}

/// Why a non-waiting send did not queue.
#[derive(Debug)]
pub enum TrySendError {
    /// The queue is full; the message is handed back.
    Full(Bytes),
    /// The call cannot send any more.
    Closed(Status),
}

/// Where the sending side of a call is in its life.
#[derive(Clone, Debug)]
enum Phase {
    /// Messages may be queued.
    Open,
    /// The end is queued behind the messages, or was written: no more messages.
    Closed,
    /// The peer ended the call after its whole response: messages are dropped quietly,
    /// and the call's outcome is what the peer answered.
    PeerFinished,
    /// Nothing more can be sent: sends fail with this status.
    Failed(Status),
    /// This side ended the call early (cancelled, past its deadline, a broken message):
    /// queued messages were dropped, sends fail with the status, and it is the call's
    /// outcome.
    Aborted(Status),
}

/// Where the writer task is.
enum Writer {
    /// Not started: the call began on its caller's thread and nothing has needed a task
    /// yet. `start` spawns it; with `hold`, the call's one message waits for its end, and
    /// the end (or an abort) is written from the caller's thread with it.
    Deferred {
        start: Box<dyn FnOnce() + Send>,
        hold: bool,
    },
    /// Waiting for work: woken once `want` bytes are queued, or anything else is due.
    Waiting { want: usize },
    /// Took a batch and is writing it: only an abort or the end of the call wakes it.
    Writing,
    /// Opening the stream, or gone: no send needs to wake it.
    Away,
}

/// How a call is ended early (`abort`).
pub(crate) enum Stop {
    /// The stream is reset with this reason.
    Reset(Abort),
    /// The status goes out as the call's end, in place of any queued message.
    Status,
}

/// Everything the writer takes in one go.
#[derive(Default)]
pub(crate) struct Batch {
    /// The server's response head, sent by the handler itself.
    pub(crate) head: Option<Metadata>,
    pub(crate) chunks: VecDeque<Bytes>,
    pub(crate) end: Option<End>,
    pub(crate) abort: Option<Abort>,
}

/// The writer's end of the stream, lent while the writer waits for work.
struct Lent {
    sender: Sender,
    /// The writer's waker, which the stream holds while the writer watches for the peer's
    /// end.
    watch: Option<Waker>,
}

impl Lent {
    /// Hands the watch back to the writer (waking it if the peer's end already came).
    fn rewatch(&mut self) {
        if let Some(w) = &self.watch {
            if self
                .sender
                .poll_peer_end(&mut Context::from_waker(w))
                .is_ready()
            {
                w.wake_by_ref();
            }
        }
    }
}

struct State {
    phase: Phase,
    /// The receive side has the call's final status: the writer may stop.
    done: bool,
    head: Option<Metadata>,
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    queued: usize,
    /// Bytes the writer took and has not yet handed to the stream (waiting for window).
    held: usize,
    /// The current bound on `queued + held` (see `FLOWING_GROWTH`).
    limit: usize,
    end: Option<End>,
    abort: Option<Abort>,
    /// An abort or the end of the call came after the writer took its batch: the write in
    /// progress stops for it.
    interrupt: bool,
    writer: Writer,
    /// The writer task's waker, from whichever of its polls came last.
    writer_waker: Option<Waker>,
    lent: Option<Lent>,
    flow: Flow,
    /// A send waiting for room.
    sender: Option<Waker>,
    /// A handler waiting for the call to be aborted.
    watcher: Option<Waker>,
    compress: Encoding,
    framing: Framing,
    /// The head is decided: sent by the handler, or going out with the first message or
    /// with the end. Compression can no longer change, nor can headers be sent.
    head_decided: bool,
    /// Messages accepted so far.
    sent: usize,
    /// `sent` when `fall_back` last looked.
    sent_at_look: usize,
    /// The sender closed its side (`close`): whatever became of the call since, a send is
    /// that mistake first.
    closed_by_sender: bool,
}

pub(crate) struct SendQueue {
    state: Mutex<State>,
    /// Set once the call has a final local outcome (`Phase::Aborted`): lets the receive
    /// path check for it without taking the lock.
    aborted: AtomicBool,
    /// A message was handed to the receiver since the last direct write: the next send
    /// is an answer, and may go out directly.
    answer: AtomicBool,
    /// Messages were queued into an open batch since the last `flush`: the writer has not
    /// been told of them. Set under the lock; read without it by the paths that flush
    /// before they wait.
    batch_open: AtomicBool,
    /// A message of a burst was received since the writer last took a batch.
    burst: AtomicBool,
    /// The bound of a stream whose peer's window is closed (`SEND_QUEUE_BYTES`).
    floor: usize,
    /// This side sends exactly one message (its call's shape): why a second one is refused.
    only_one: Option<&'static str>,
}

enum Push {
    Full,
    Closed(Status),
}

/// What the send budget counts of a call (`transport::budget`): its bytes not yet handed
/// to the stream.
impl crate::transport::budget::Backlog for SendQueue {
    fn backlog(&self) -> crate::transport::budget::Queued {
        let st = self.lock();
        crate::transport::budget::Queued {
            bytes: st.queued + st.held,
            sender_waits: st.sender.is_some(),
        }
    }

    fn fall_back(&self) -> bool {
        SendQueue::fall_back(self)
    }
}

impl SendQueue {
    pub(crate) fn new(
        limit: usize,
        compress: Encoding,
        framing: Framing,
        only_one: Option<&'static str>,
    ) -> SendQueue {
        SendQueue {
            state: Mutex::new(State {
                phase: Phase::Open,
                done: false,
                head: None,
                chunks: VecDeque::new(),
                tail: BytesMut::new(),
                queued: 0,
                held: 0,
                limit,
                end: None,
                abort: None,
                interrupt: false,
                writer: Writer::Away,
                writer_waker: None,
                lent: None,
                flow: Flow::default(),
                sender: None,
                watcher: None,
                compress,
                framing,
                head_decided: false,
                sent: 0,
                sent_at_look: 0,
                closed_by_sender: false,
            }),
            aborted: AtomicBool::new(false),
            answer: AtomicBool::new(false),
            batch_open: AtomicBool::new(false),
            burst: AtomicBool::new(false),
            floor: limit,
            only_one,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leaves the writer unstarted, with its end of the stream lent here, until something
    /// needs it: `start` spawns it (see `Writer::Deferred`).
    pub(crate) fn defer_writer(&self, sender: Sender, start: Box<dyn FnOnce() + Send>, hold: bool) {
        let mut st = self.lock();
        st.lent = Some(Lent {
            sender,
            watch: None,
        });
        st.writer = Writer::Deferred { start, hold };
    }

    /// Wakes the writer for work, or starts it if it was deferred. The lock is released
    /// before the wake.
    fn wake_writer(&self, mut st: MutexGuard<'_, State>) {
        let start = match std::mem::replace(&mut st.writer, Writer::Away) {
            Writer::Deferred { start, .. } => Some(start),
            other => {
                st.writer = other;
                None
            }
        };
        let w = if start.is_none() {
            st.writer_waker.take()
        } else {
            None
        };
        drop(st);
        if let Some(start) = start {
            start();
        }
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Wakes the writer if a send made it worth it.
    fn nudge(&self, st: MutexGuard<'_, State>) {
        let due = match st.writer {
            Writer::Deferred { hold, .. } => !hold,
            // Without its waker the writer was woken already and has yet to take.
            // A full queue is all the writer will get: a bound under the `want` of a
            // lingering writer must not leave it waiting for more.
            Writer::Waiting { want } => {
                (st.queued >= want || full(&st)) && st.writer_waker.is_some()
            }
            Writer::Writing | Writer::Away => false,
        };
        if due {
            self.wake_writer(st);
        }
    }

    /// Queues one message if there is room, without waiting. `compress`: whether to
    /// compress this message (`None`: the call's choice).
    pub(crate) fn try_send(&self, msg: Bytes, compress: Option<bool>) -> Result<(), TrySendError> {
        match self.push(&msg, Some(&msg), compress) {
            Ok(()) => Ok(()),
            Err(Push::Full) => Err(TrySendError::Full(msg)),
            Err(Push::Closed(s)) => Err(TrySendError::Closed(s)),
        }
    }

    /// Queues a message from a borrowed slice (copied; no `Bytes` needed): `Ok(false)` when
    /// the queue is full.
    pub(crate) fn try_send_ref(&self, msg: &[u8], compress: Option<bool>) -> Result<bool, Status> {
        match self.push(msg, None, compress) {
            Ok(()) => Ok(true),
            Err(Push::Full) => Ok(false),
            Err(Push::Closed(s)) => Err(s),
        }
    }

    /// The one place a single message enters the queue. `owned`, when given, is `msg` as
    /// `Bytes`: a large message then travels without a copy.
    fn push(&self, msg: &[u8], owned: Option<&Bytes>, compress: Option<bool>) -> Result<(), Push> {
        let mut st = self.lock();
        if !self.admit(&st)? {
            return Ok(());
        }
        let enc = encoding(&st, compress);
        st.sent += 1;
        if st.queued == 0 && msg.len() <= COALESCE_MAX && self.may_write_direct(&mut st) {
            let mut frame = BytesMut::with_capacity(st.framing.overhead() + msg.len());
            st.framing
                .frame(&mut frame, msg, enc)
                .map_err(Push::Closed)?;
            self.write_direct(st, frame.freeze(), false);
            return Ok(());
        }
        enqueue(&mut st, msg, owned, enc, false)?;
        // This send, queued, was the answer: the next one is not.
        self.answer.store(false, Ordering::Relaxed);
        self.nudge(st);
        Ok(())
    }

    /// Queues borrowed messages in order while there is room, under one lock and with at
    /// most one wake of the writer, after the last: how many were queued, and the error
    /// that stopped the next one. A sender on a thread of its own (C, a binding's event
    /// loop) otherwise wakes the writer at its first message, and the writer, running
    /// beside it on another core, takes the batch a message or two at a time.
    pub(crate) fn push_many<'m>(
        &self,
        msgs: impl IntoIterator<Item = &'m [u8]>,
        compress: Option<bool>,
        check: impl Fn(&[u8]) -> Result<(), Status>,
    ) -> (usize, Option<Status>) {
        let mut msgs = msgs.into_iter().peekable();
        let mut n = 0;
        let mut failed = None;
        // Taken at the first message that is queued: a lone one takes the single path.
        let mut st = None;
        while let Some(msg) = msgs.next() {
            if let Err(s) = check(msg) {
                failed = Some(s);
                break;
            }
            let burst = msgs.peek().is_some();
            if let (0, true, Some(why)) = (n, burst, self.only_one) {
                // A batch past the shape's one message is refused whole.
                return (0, Some(Status::new(Code::FailedPrecondition, why)));
            }
            if n == 0 && !burst {
                // A lone message may be an answer: the single path can write it directly.
                return match self.push(msg, None, compress) {
                    Ok(()) => (1, None),
                    Err(Push::Full) => (0, None),
                    Err(Push::Closed(s)) => (0, Some(s)),
                };
            }
            let st = st.get_or_insert_with(|| self.lock());
            match self.admit(st) {
                Ok(true) => {}
                Ok(false) => {
                    n += 1;
                    continue;
                }
                Err(Push::Full) => break,
                Err(Push::Closed(s)) => {
                    failed = Some(s);
                    break;
                }
            }
            let enc = encoding(st, compress);
            st.sent += 1;
            if let Err(e) = enqueue(st, msg, None, enc, burst) {
                if let Push::Closed(s) = e {
                    failed = Some(s);
                }
                break;
            }
            n += 1;
        }
        if n > 0 {
            self.answer.store(false, Ordering::Relaxed);
        }
        if let Some(st) = st {
            self.nudge(st);
        }
        (n, failed)
    }

    /// Queues a borrowed message (copied) into the open batch without waking the writer:
    /// a sender in an event loop frames every message of one turn into shared DATA
    /// frames, where waking the writer per message would let it, running beside the sender
    /// on another core, frame each message alone (a 23-byte DATA frame per message, which
    /// hardened servers such as h2's answer with GOAWAY ENHANCE_YOUR_CALM). The sender
    /// calls `flush` when its turn ends; a batch's worth wakes the writer anyway.
    pub(crate) fn push_batched(
        &self,
        msg: &[u8],
        compress: Option<bool>,
    ) -> Result<Batched, Status> {
        let mut st = self.lock();
        match self.admit(&st) {
            Ok(true) => {}
            Ok(false) => return Ok(Batched::Joined),
            Err(Push::Full) => {
                drop(st);
                // The sender is about to wait: what it holds must be on its way.
                self.flush();
                return Ok(Batched::Full);
            }
            Err(Push::Closed(s)) => return Err(s),
        }
        let enc = encoding(&st, compress);
        st.sent += 1;
        if let Err(Push::Closed(s)) = enqueue(&mut st, msg, None, enc, true) {
            return Err(s);
        }
        let opened = !self.batch_open.swap(true, Ordering::AcqRel);
        if st.queued >= BATCH_WAKE {
            self.nudge(st);
        }
        Ok(if opened {
            Batched::Opened
        } else {
            Batched::Joined
        })
    }

    /// Ends the open batch: what it queued leaves now. A small batch that answers a
    /// received message goes straight onto the idle stream from this thread, as a single
    /// answer does; anything else wakes the writer once (which lingers, if the stream
    /// flows).
    pub(crate) fn flush(&self) {
        if !self.batch_open.load(Ordering::Acquire) {
            return;
        }
        let mut st = self.lock();
        if !self.batch_open.swap(false, Ordering::AcqRel) || st.queued == 0 {
            return;
        }
        if st.queued <= COALESCE_MAX && st.chunks.is_empty() && self.may_write_direct(&mut st) {
            let frame = std::mem::take(&mut st.tail).freeze();
            clear_messages(&mut st);
            self.write_direct(st, frame, false);
            return;
        }
        if matches!(
            st.writer,
            Writer::Waiting { .. } | Writer::Deferred { hold: false, .. }
        ) {
            self.wake_writer(st);
        }
    }

    /// May a message be queued now? `Ok(false)`: accepted and dropped (the peer finished).
    fn admit(&self, st: &State) -> Result<bool, Push> {
        if st.closed_by_sender {
            return Err(Push::Closed(send_after_close()));
        }
        match &st.phase {
            Phase::Open => {}
            // The server has ended the call; like HTTP/2 itself we drop what comes after,
            // and recv/finish report the call's status (grpc-js drops such writes too).
            Phase::PeerFinished => return Ok(false),
            Phase::Closed => return Err(Push::Closed(send_after_close())),
            Phase::Failed(s) | Phase::Aborted(s) => return Err(Push::Closed(s.clone())),
        }
        if let (Some(why), 1..) = (self.only_one, st.sent) {
            return Err(Push::Closed(Status::new(Code::FailedPrecondition, why)));
        }
        // Room means "below the limit": one message may overshoot it. The same rule as
        // `poll_ready`, so a sender woken as ready never finds the queue full and spins.
        if full(st) {
            return Err(Push::Full);
        }
        Ok(true)
    }

    /// Whether an answer may go straight into the lent stream now: the writer idle with
    /// nothing due, and a message received since the last direct write.
    fn may_write_direct(&self, st: &mut State) -> bool {
        writer_idle(st) && self.answer.swap(false, Ordering::Relaxed)
    }

    /// Writes framed bytes into the lent stream from this thread and kicks the connection;
    /// queues them instead if the stream cannot take them now.
    fn write_direct(&self, mut st: MutexGuard<'_, State>, frame: Bytes, end: bool) {
        let lent = st.lent.as_mut().expect("may_write_direct checked the loan");
        match lent.sender.try_send_now(frame, end) {
            Ok(kick) => {
                lent.rewatch();
                drop(st);
                if let Some(k) = kick {
                    k.finish();
                }
            }
            Err(frame) => {
                lent.rewatch();
                if !frame.is_empty() {
                    st.queued += frame.len();
                    st.chunks.push_back(frame);
                    st.flow.queued_one();
                }
                if end {
                    // The end is due whatever is queued (a writer waiting for more bytes
                    // would otherwise wait for a message that never comes).
                    st.end = Some(End::HalfClose);
                    return self.settle(st);
                }
                self.nudge(st);
            }
        }
    }

    /// The request and its half-close were written with the stream's opening.
    pub(crate) fn closed_directly(&self) {
        self.lock().phase = Phase::Closed;
    }

    /// The receive side handed a message over. When it came alone and nothing of this
    /// side's waits to be written, a send that follows answers it and may go out at once
    /// (a request-response rhythm: the peer waited for the last answer). When it came in a
    /// burst, or while this side's last answer still waits, the peer is streaming: what
    /// this side sends flows too, and is framed together (see `flow`).
    #[inline]
    pub(crate) fn received(&self, alone: bool) {
        if !alone {
            // A message of a burst: streaming, whatever waits here (and no lock per message
            // of a stream).
            self.burst.store(true, Ordering::Relaxed);
            return;
        }
        self.received_alone();
    }

    fn received_alone(&self) {
        let waiting = {
            let st = self.lock();
            st.queued > 0 || matches!(st.writer, Writer::Writing)
        };
        if !waiting {
            self.answer.store(true, Ordering::Relaxed);
        } else {
            self.burst.store(true, Ordering::Relaxed);
        }
    }

    /// Ready when a message may be queued (or sending has failed, and `try_send` will say
    /// why).
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if !full(&st) || !matches!(st.phase, Phase::Open) {
            return Poll::Ready(());
        }
        register(&mut st.sender, cx);
        // Only a writer drains the queue.
        if matches!(st.writer, Writer::Deferred { .. }) {
            self.wake_writer(st);
        }
        Poll::Pending
    }

    /// Queues the response head (server side), ahead of any message; a writer not started
    /// yet has it written now, from this thread.
    pub(crate) fn send_head(&self, metadata: Metadata) -> Result<(), Status> {
        let mut st = self.lock();
        match &st.phase {
            Phase::Failed(s) | Phase::Aborted(s) => return Err(s.clone()),
            _ if st.head_decided || !matches!(st.phase, Phase::Open) => {
                return Err(Status::new(
                    Code::FailedPrecondition,
                    "headers were already sent",
                ))
            }
            _ => {}
        }
        st.head_decided = true;
        let State {
            writer,
            lent,
            compress,
            ..
        } = &mut *st;
        if let (Writer::Deferred { .. }, Some(lent)) = (writer, lent.as_mut()) {
            // A writer not started has nothing queued ahead of the head: the head goes out
            // from this thread, as the call's answer and end will. Starting the writer for
            // it would hand the rest of the call to a runtime thread.
            let enc = *compress;
            let kick = lent.sender.announce();
            let sent = lent.sender.send_head(Some(metadata), enc);
            lent.rewatch();
            drop(st);
            if let Some(k) = kick {
                k.finish();
            }
            return sent;
        }
        st.head = Some(metadata);
        self.wake_writer(st);
        Ok(())
    }

    /// Queues the end of the sending side after every queued message. Returns false if
    /// the sending side was already closed or ended.
    pub(crate) fn close(&self, end: End) -> bool {
        let mut st = self.lock();
        st.closed_by_sender = true;
        if !matches!(st.phase, Phase::Open) {
            return false;
        }
        st.phase = Phase::Closed;
        self.batch_open.store(false, Ordering::Release);
        st.head_decided = true;
        if matches!(end, End::HalfClose) && st.queued == 0 && writer_idle(&st) {
            // Nothing queued ahead of it: the half-close goes out from this thread.
            self.write_direct(st, Bytes::new(), true);
            return true;
        }
        st.end = Some(end);
        self.settle(st);
        true
    }

    /// Ends the call here and now: queued messages are dropped, and the writer resets the
    /// stream (or, with `Stop::Status`, sends `status` as the call's end); `status` becomes
    /// the call's outcome on this side. The first outcome wins: false if the call had one.
    pub(crate) fn abort(&self, status: Status, how: Stop) -> bool {
        let mut st = self.lock();
        if matches!(st.phase, Phase::Aborted(_)) || st.done {
            return false;
        }
        st.phase = Phase::Aborted(status.clone());
        self.batch_open.store(false, Ordering::Release);
        clear_messages(&mut st);
        st.head = None;
        match how {
            Stop::Reset(a) => st.abort = Some(a),
            Stop::Status => st.end = Some(End::Status(status)),
        }
        st.interrupt = true;
        self.aborted.store(true, Ordering::Release);
        let (s, w) = (st.sender.take(), st.watcher.take());
        self.settle(st);
        for w in [s, w].into_iter().flatten() {
            w.wake();
        }
        true
    }

    /// Gets the end or abort just queued written: by the writer, woken (or started); or,
    /// when the writer was deferred and this is an abort or the end of a held call, from
    /// this thread, without a task.
    fn settle(&self, mut st: MutexGuard<'_, State>) {
        let inline = match &st.writer {
            Writer::Deferred { hold, .. } => *hold || st.abort.is_some(),
            _ => false,
        };
        if !inline {
            return self.wake_writer(st);
        }
        st.writer = Writer::Away;
        let Some(lent) = st.lent.take() else {
            return;
        };
        drop(st);
        let mut sender = lent.sender;
        self.write_inline(&mut sender);
    }

    /// The outcome decided on this side, if any.
    #[inline]
    pub(crate) fn local_status(&self) -> Option<Status> {
        if !self.aborted.load(Ordering::Acquire) {
            return None;
        }
        self.aborted_status()
    }

    #[cold]
    fn aborted_status(&self) -> Option<Status> {
        match &self.lock().phase {
            Phase::Aborted(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The stream can take nothing more: later sends fail with `status`.
    pub(crate) fn fail(&self, status: Status) {
        let mut st = self.lock();
        if !matches!(st.phase, Phase::Aborted(_) | Phase::Failed(_)) {
            st.phase = Phase::Failed(status);
        }
        discard(st);
    }

    /// The peer ended the call after its complete response: later sends are dropped
    /// rather than failed, so the response's status stays the call's outcome.
    pub(crate) fn peer_finished(&self) {
        let mut st = self.lock();
        if matches!(st.phase, Phase::Open | Phase::Closed) {
            st.phase = Phase::PeerFinished;
        }
        discard(st);
    }

    /// What the peer's end of the stream means for this side: a finished peer lets later
    /// sends drop quietly; a failure fails them and, on a server, ends the call (the
    /// handler sees it cancelled).
    pub(crate) fn peer_ended(&self, end: PeerEnd, ends_call: bool) {
        match end {
            PeerEnd::Finished => self.peer_finished(),
            PeerEnd::Failed(s) => {
                if ends_call {
                    self.abort(s.clone(), Stop::Reset(Abort::Finished));
                }
                self.fail(s);
            }
        }
    }

    /// The receive side has the final status: nothing more will be sent, and a writer
    /// never started is dropped (its closure holds this queue: keeping it would keep both
    /// alive).
    pub(crate) fn mark_done(&self) {
        let mut st = self.lock();
        st.done = true;
        st.interrupt = true;
        if matches!(st.phase, Phase::Open | Phase::Closed | Phase::PeerFinished) {
            st.phase = Phase::Failed(Status::new(
                Code::FailedPrecondition,
                "the call has finished",
            ));
        }
        let deferred = match std::mem::replace(&mut st.writer, Writer::Away) {
            Writer::Deferred { start, .. } => Some(start),
            other => {
                st.writer = other;
                None
            }
        };
        let (p, s) = (st.writer_waker.take(), st.sender.take());
        drop(st);
        drop(deferred);
        for w in [p, s].into_iter().flatten() {
            w.wake();
        }
    }

    pub(crate) fn set_compression(&self, enc: Encoding) {
        self.lock().compress = enc;
    }

    /// True once the head was queued (explicitly or not) or the end was queued.
    pub(crate) fn head_decided(&self) -> bool {
        let st = self.lock();
        st.head_decided
    }

    /// Ready once the call was aborted: for a handler watching for a cancel, and for a
    /// client call waiting on its peer.
    pub(crate) fn poll_aborted(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if matches!(st.phase, Phase::Aborted(_)) {
            return Poll::Ready(());
        }
        register(&mut st.watcher, cx);
        Poll::Pending
    }

    /// Looks whether the peer ended the stream lent by a deferred writer (which has no
    /// task of its own to watch it): a handler that only listens for cancellation, as
    /// every Node call does, then starts no task per call.
    pub(crate) fn watch_deferred(&self, cx: &mut Context<'_>, ends_call: bool) {
        let mut st = self.lock();
        if !matches!(st.writer, Writer::Deferred { .. }) {
            return;
        }
        let Some(lent) = st.lent.as_mut() else { return };
        if let Poll::Ready(end) = lent.sender.poll_peer_end(cx) {
            drop(st);
            self.peer_ended(end, ends_call);
        }
    }

    /// Writes what a deferred writer's queue holds from the calling thread, at once: the end
    /// of a single-response server call whose handler finished before a writer was needed, or
    /// an abort. h2 buffers what the window does not take yet; it is one message at most.
    fn write_inline(&self, sender: &mut Sender) {
        let Some(b) = self.take_now() else {
            return;
        };
        let enc = self.encoding();
        // The handler's thread puts the response on the socket itself (see `driver`).
        let kick = sender.announce();
        if let Some(a) = b.abort {
            sender.abort(a);
        } else {
            let mut ok = true;
            if b.head.is_some() || !b.chunks.is_empty() {
                ok = sender.send_head(b.head, enc).is_ok();
            }
            for c in b.chunks {
                ok = ok && sender.send_data(c).is_ok();
            }
            if let (true, Some(end)) = (ok, b.end) {
                let _ = sender.send_end(end, enc);
                if let Some(k) = kick {
                    k.finish();
                }
                // A server's status was its last word.
                self.mark_done();
                return;
            }
        }
        if let Some(k) = kick {
            k.finish();
        }
    }

    // The writer's side.

    /// Lends the writer's end of the stream while it waits for work.
    pub(crate) fn lend(&self, sender: Sender) {
        let mut st = self.lock();
        st.lent = Some(Lent {
            sender,
            watch: None,
        });
        if matches!(st.writer, Writer::Writing) {
            st.writer = Writer::Waiting { want: 1 };
        }
    }

    /// Takes the writer's end of the stream back.
    pub(crate) fn reclaim(&self) -> Option<Sender> {
        self.lock().lent.take().map(|l| l.sender)
    }

    /// The writer's own start: a deferred writer now runs.
    pub(crate) fn started(&self) {
        let mut st = self.lock();
        if matches!(st.writer, Writer::Deferred { .. } | Writer::Away) {
            st.writer = Writer::Waiting { want: 1 };
        }
    }

    /// The writer is opening the stream: sends have nothing to wake it for yet.
    pub(crate) fn opening(&self) {
        self.lock().writer = Writer::Away;
    }

    /// Watches the lent stream for the peer's end.
    pub(crate) fn poll_lent_peer_end(&self, cx: &mut Context<'_>) -> Poll<PeerEnd> {
        let mut st = self.lock();
        let Some(l) = st.lent.as_mut() else {
            return Poll::Pending;
        };
        match &l.watch {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => l.watch = Some(cx.waker().clone()),
        }
        l.sender.poll_peer_end(cx)
    }

    /// Everything due, or Pending until there is something (or the call is done: `None`).
    /// A small batch of a flowing stream waits with `linger`.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        linger: &mut Linger,
    ) -> Poll<Option<Batch>> {
        let mut st = self.lock();
        if self.burst.swap(false, Ordering::Relaxed) {
            st.flow.answering_a_burst();
        }
        let must = st.abort.is_some() || st.head.is_some() || st.end.is_some();
        if !must
            && st.queued > 0
            && st.queued < FRAME
            && !full(&st)
            && st.flow.flowing()
            && !linger.expired(cx, st.queued)
        {
            st.writer = Writer::Waiting { want: FRAME };
            register(&mut st.writer_waker, cx);
            return Poll::Pending;
        }
        if must || st.queued > 0 {
            linger.reset();
            return Poll::Ready(Some(self.take(st)));
        }
        if st.done {
            return Poll::Ready(None);
        }
        st.flow.idle();
        st.writer = Writer::Waiting { want: 1 };
        register(&mut st.writer_waker, cx);
        Poll::Pending
    }

    /// Everything due, now: for a writer that runs once, from the handler's own thread,
    /// and hands the stream all of it at once.
    pub(crate) fn take_now(&self) -> Option<Batch> {
        let st = self.lock();
        let any = st.abort.is_some() || st.head.is_some() || st.end.is_some() || st.queued > 0;
        any.then(|| {
            let b = self.take(st);
            self.lock().held = 0;
            b
        })
    }

    /// The writer handed `n` more bytes of its batch to the stream; `whole`: the batch is
    /// written. `grow` asks for room to raise the bound by so many bytes (the send budget
    /// has it or not: `Sender::reserve`).
    pub(crate) fn handed(&self, n: usize, whole: bool, grow: impl FnOnce(usize) -> bool) {
        let mut st = self.lock();
        st.held = st.held.saturating_sub(n);
        if whole && n >= st.limit / 2 {
            // The stream took a batch near the bound: the bound, not the peer, is what
            // paces this stream.
            let to = (st.limit * 2).min(self.floor * FLOWING_GROWTH);
            if to > st.limit && grow(to - st.limit) {
                st.limit = to;
            }
        }
        // A sender waiting for room is woken once half the bound is free, not at every
        // piece handed.
        let s = if st.queued + st.held > st.limit / 2 {
            None
        } else {
            st.sender.take()
        };
        drop(st);
        if let Some(w) = s {
            w.wake();
        }
    }

    /// The stream's connection holds what the send budget lets its transport hold: the
    /// bound falls back to its least, and grows again as the stream takes whole batches
    /// (the writer gives the room it had back to the budget).
    pub(crate) fn throttle(&self) {
        self.lock().limit = self.floor;
    }

    /// Nothing is queued or being written, and nothing was sent since the last look: the
    /// stream is quiet, and its bound is not what paces it now. A grown bound falls back
    /// to its least; true if it had grown (the send budget takes the room back, see
    /// `transport::budget`). A stream that sent since the last look is only between two
    /// batches: fallen back, it would wait for room again at each of the batches that
    /// grow it back.
    pub(crate) fn fall_back(&self) -> bool {
        let mut st = self.lock();
        let sent = st.sent;
        let sent_since = std::mem::replace(&mut st.sent_at_look, sent) != sent;
        if sent_since || st.queued > 0 || st.held > 0 || st.limit == self.floor {
            return false;
        }
        st.limit = self.floor;
        true
    }

    /// The batch's bytes move from the queue into the writer's hands: they still count
    /// against the bound until `handed`.
    fn take(&self, mut st: MutexGuard<'_, State>) -> Batch {
        st.flow.taken();
        st.writer = Writer::Writing;
        let mut b = Batch {
            head: st.head.take(),
            abort: st.abort.take(),
            end: st.end.take(),
            ..Batch::default()
        };
        b.chunks = std::mem::take(&mut st.chunks);
        if !st.tail.is_empty() {
            b.chunks.push_back(seal(&mut st.tail));
        }
        st.held += st.queued;
        st.queued = 0;
        st.interrupt = false;
        b
    }

    /// Ready when something must interrupt a write in progress: an abort or the end of
    /// the call, come after the writer took its last batch.
    pub(crate) fn poll_interrupt(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.interrupt {
            return Poll::Ready(());
        }
        register(&mut st.writer_waker, cx);
        Poll::Pending
    }

    /// Ready once the call was aborted or is done (while the writer opens the stream).
    pub(crate) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if matches!(st.phase, Phase::Aborted(_)) || st.done {
            return Poll::Ready(());
        }
        register(&mut st.writer_waker, cx);
        Poll::Pending
    }

    /// The current compression and framing, for the writer.
    pub(crate) fn encoding(&self) -> Encoding {
        self.lock().compress
    }
}

/// Nothing is due that a write from the sender's thread could overtake, and the writer's
/// end of the stream is lent.
fn writer_idle(st: &State) -> bool {
    st.head.is_none()
        && st.end.is_none()
        && st.abort.is_none()
        && !st.interrupt
        && !matches!(st.writer, Writer::Writing)
        && st.lent.is_some()
}

fn send_after_close() -> Status {
    Status::new(
        Code::FailedPrecondition,
        "send after the sending side was closed",
    )
}

fn register(slot: &mut Option<Waker>, cx: &mut Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn encoding(st: &State, compress: Option<bool>) -> Encoding {
    match compress {
        Some(false) => Encoding::Identity,
        _ => st.compress,
    }
}

/// Frames `msg` onto the queue; `burst`: more messages follow at once.
fn enqueue(
    st: &mut State,
    msg: &[u8],
    owned: Option<&Bytes>,
    enc: Encoding,
    burst: bool,
) -> Result<(), Push> {
    if enc == Encoding::Identity && msg.len() > COALESCE_MAX {
        if let Some(prefix) = st.framing.prefix(msg.len()).map_err(Push::Closed)? {
            if !st.tail.is_empty() {
                let t = seal(&mut st.tail);
                st.chunks.push_back(t);
            }
            st.queued += prefix.len() + msg.len();
            st.chunks.push_back(prefix);
            st.chunks.push_back(match owned {
                Some(b) => b.clone(),
                None => Bytes::copy_from_slice(msg),
            });
            st.flow.queued_one();
            st.head_decided = true;
            return Ok(());
        }
    }
    let need = st.framing.overhead() + msg.len();
    if st.tail.capacity() - st.tail.len() < need {
        // Start a fresh buffer rather than grow this one: growing copies everything
        // queued so far, and at millions of small messages a second those copies
        // dominated the profile.
        if !st.tail.is_empty() {
            let t = seal(&mut st.tail);
            st.chunks.push_back(t);
        }
        // A lone message (the queue was empty) gets a buffer of its own size, so an
        // idle or ping-pong stream holds no 32 KiB buffer; a burst gets big ones.
        // Never more than the bound lets fill: a stream held to its least holds no
        // 32 KiB buffer either.
        let cap = if st.queued == 0 && !burst {
            need
        } else {
            need.max(TAIL_CHUNK.min(st.limit))
        };
        st.tail = BytesMut::with_capacity(cap);
    }
    st.head_decided = true;
    let before = st.tail.len();
    let State { framing, tail, .. } = st;
    framing.frame(tail, msg, enc).map_err(Push::Closed)?;
    st.queued += st.tail.len() - before;
    st.flow.queued_one();
    Ok(())
}

/// The messages framed into `tail`, as a chunk for the stream; the stream keeps no buffer.
/// A chunk keeps its whole buffer alive for as long as the transport holds it, which for
/// a client that reads nothing is for good: a buffer less than half full goes out as a
/// copy of its own size, so that what a stream's chunks keep alive is at most twice what
/// they hold. (Handed over whole, each batch a writer took as its messages came kept 32
/// KiB alive: 8,000 streams of clients that read nothing held 1 GiB of buffers for 0.5
/// GiB of messages.) A fuller buffer goes whole, without a copy. The buffer is not kept
/// for the next messages: a stream waiting for its peer's window would hold it empty
/// beside the batch it cannot write.
fn seal(tail: &mut BytesMut) -> Bytes {
    let t = std::mem::take(tail);
    if t.len() < t.capacity() / 2 {
        Bytes::copy_from_slice(&t)
    } else {
        t.freeze()
    }
}

/// Whether the queue and the writer's batch hold the bound's worth.
fn full(st: &State) -> bool {
    st.queued + st.held >= st.limit
}

fn clear_messages(st: &mut State) {
    st.chunks.clear();
    st.tail.clear();
    st.queued = 0;
    st.held = 0;
    st.flow.cleared();
}

/// Drops what is queued (it will never be sent) and lets a waiting sender see why.
fn discard(mut st: MutexGuard<'_, State>) {
    clear_messages(&mut st);
    let s = st.sender.take();
    drop(st);
    if let Some(w) = s {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::flow::{FLOWING, LINGER_MAX, LINGER_TICK, TRICKLE};
    use crate::protocol::envelope::PREFIX_LEN;
    use crate::protocol::Wire;
    use std::sync::Arc;
    use std::time::Duration;

    fn queue(limit: usize) -> SendQueue {
        SendQueue::new(limit, Encoding::Identity, Framing::Envelope, None)
    }

    /// Regression: `try_send` refused a message that `poll_ready` called room, so a sender
    /// woken as ready spun without yielding and starved the pump on its worker.
    #[test]
    fn full_and_ready_agree() {
        let out = queue(100);
        let mut cx = Context::from_waker(Waker::noop());
        let mut sent = 0;
        loop {
            let ready = out.poll_ready(&mut cx).is_ready();
            match out.try_send(Bytes::from_static(&[7; 30]), None) {
                Ok(()) => {
                    assert!(ready, "queued a message while poll_ready said full");
                    sent += 1;
                }
                Err(TrySendError::Full(_)) => {
                    assert!(!ready, "poll_ready said ready but try_send said full");
                    break;
                }
                Err(TrySendError::Closed(s)) => panic!("closed: {s}"),
            }
        }
        assert_eq!(sent, 3);
        let b = match out.poll_take(&mut cx, &mut Linger::default()) {
            Poll::Ready(Some(b)) => b,
            _ => panic!("nothing to take"),
        };
        // The first message of a burst gets a buffer of its own size; the rest share one.
        assert_eq!(b.chunks.len(), 2);
        assert_eq!(b.chunks[0].len(), 35);
        assert_eq!(b.chunks[1].len(), 2 * 35);
        // Taken is not yet written: the writer's batch still counts.
        assert!(out.poll_ready(&mut cx).is_pending());
        out.handed(105, true, |_| true);
        assert!(out.poll_ready(&mut cx).is_ready());
    }

    /// Issue 12: a stream whose peer grants no window held 256 KiB of queue plus what h2
    /// buffered. Bytes the writer took but could not hand to the stream count against the
    /// bound; the bound grows while the window takes whole batches and falls back to the
    /// floor at the first wait.
    #[test]
    fn the_bound_counts_the_writers_batch_and_grows_while_the_stream_flows() {
        // Messages of a DATA frame each: a batch of them never lingers.
        const F: usize = PREFIX_LEN + FRAME;
        let out = queue(4 * F);
        let msg = Bytes::from(vec![7u8; FRAME]);
        let fill = |n: usize| {
            let mut k = 0;
            while out.try_send(msg.clone(), None).is_ok() {
                k += 1;
            }
            assert_eq!(k, n, "messages the bound let in");
        };
        let take = || match out.poll_take(
            &mut Context::from_waker(Waker::noop()),
            &mut Linger::default(),
        ) {
            Poll::Ready(Some(b)) => b.chunks.iter().map(|c| c.len()).sum::<usize>() / F,
            _ => panic!("nothing to take"),
        };
        fill(4);
        assert_eq!(take(), 4);
        // The window took nothing yet: no room for the handler.
        out.handed(0, false, |_| true);
        let wakes = Arc::new(Count::default());
        let sender = Waker::from(wakes.clone());
        assert!(out
            .poll_ready(&mut Context::from_waker(&sender))
            .is_pending());
        // A quarter went: room for a message, but the waiting sender sleeps on until half
        // the bound is free.
        out.handed(F, false, |_| true);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        out.handed(F, false, |_| true);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        // The rest, and the batch is written: room, and a doubled bound, each time.
        out.handed(2 * F, true, |_| true);
        let max = 4 * FLOWING_GROWTH;
        let mut n = 8;
        while n <= max {
            fill(n);
            assert_eq!(take(), n);
            out.handed(n * F, true, |_| true);
            n *= 2;
        }
        // At most FLOWING_GROWTH times the floor.
        fill(max);
        assert_eq!(take(), max);
        // What the writer still holds counts.
        out.handed((max - 4) * F, false, |_| true);
        fill(max - 4);
    }

    /// Regression: the writer took the queue's buffer whole however little of it was
    /// filled, and the chunk kept all of it alive for as long as the transport held the
    /// chunk: a client that read nothing made each of its streams keep a 32 KiB buffer per
    /// batch, twice what the send budget counted (1 GiB for 8,000 streams).
    #[test]
    fn a_small_batch_keeps_no_large_buffer_alive() {
        let mut tail = BytesMut::with_capacity(TAIL_CHUNK);
        tail.extend_from_slice(&[1; 1024]);
        let start = tail.as_ptr();
        let chunk = seal(&mut tail);
        assert_eq!(&chunk[..], &[1; 1024][..]);
        assert_ne!(chunk.as_ptr(), start, "a copy of its own");
        assert_eq!(tail.capacity(), 0);
        // Filled past half, the buffer goes whole.
        let mut tail = BytesMut::with_capacity(TAIL_CHUNK);
        tail.extend_from_slice(&[2; TAIL_CHUNK / 2]);
        let start = tail.as_ptr();
        let chunk = seal(&mut tail);
        assert_eq!((chunk.as_ptr(), chunk.len()), (start, TAIL_CHUNK / 2));
        assert_eq!(tail.capacity(), 0);
    }

    /// A stream that grew its bound while it flowed falls back to the floor when its
    /// connection's transport holds its share of the send budget: a thousand such streams
    /// waiting there held 256 KiB each (issue 16).
    #[test]
    fn a_throttled_stream_falls_back_to_the_floor() {
        const F: usize = PREFIX_LEN + FRAME;
        let out = queue(4 * F);
        let msg = Bytes::from(vec![7u8; FRAME]);
        let fill = || {
            let mut k = 0;
            while out.try_send(msg.clone(), None).is_ok() {
                k += 1;
            }
            k
        };
        let mut cx = Context::from_waker(Waker::noop());
        for n in [4, 8] {
            assert_eq!(fill(), n);
            assert!(out.poll_take(&mut cx, &mut Linger::default()).is_ready());
            out.handed(n * F, true, |_| true);
        }
        out.throttle();
        assert_eq!(
            fill(),
            4,
            "the floor's worth, not the 16 messages the stream grew to"
        );
    }

    /// A stream that grew its bound and then found nothing to send gives the growth back;
    /// one with messages waiting keeps it. (Its room in the send budget went with it only
    /// at a throttle or the stream's end, so quiet streams kept their connection's gate
    /// shut.)
    #[test]
    fn a_quiet_stream_falls_back_to_the_floor() {
        const F: usize = PREFIX_LEN + FRAME;
        let out = queue(4 * F);
        let msg = Bytes::from(vec![7u8; FRAME]);
        let fill = |most: usize| {
            let mut k = 0;
            while k < most && out.try_send(msg.clone(), None).is_ok() {
                k += 1;
            }
            k
        };
        let mut cx = Context::from_waker(Waker::noop());
        assert!(!out.fall_back(), "nothing grown");
        assert_eq!(fill(4), 4);
        assert!(out.poll_take(&mut cx, &mut Linger::default()).is_ready());
        out.handed(4 * F, true, |_| true);
        fill(1);
        assert!(!out.fall_back(), "a message waits");
        assert!(out.poll_take(&mut cx, &mut Linger::default()).is_ready());
        out.handed(F, true, |_| true);
        assert!(out.fall_back());
        assert_eq!(fill(usize::MAX), 4, "the floor's worth");
    }

    #[test]
    fn large_messages_travel_without_copy() {
        let out = queue(1 << 20);
        let big = Bytes::from(vec![1u8; COALESCE_MAX + 1]);
        let ptr = big.as_ptr();
        out.try_send(Bytes::from_static(b"small"), None).unwrap();
        out.try_send(big, None).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Some(b)) = out.poll_take(&mut cx, &mut Linger::default()) else {
            panic!("nothing to take")
        };
        assert_eq!(b.chunks.len(), 3);
        assert_eq!(&b.chunks[1][..], &[0, 0, 0, 0x40, 0x01]);
        assert_eq!(b.chunks[2].as_ptr(), ptr);
    }

    /// Records how much was queued when the writer was woken.
    struct SeeQueued(Mutex<Option<Arc<SendQueue>>>, Mutex<Vec<usize>>);
    impl std::task::Wake for SeeQueued {
        fn wake(self: Arc<Self>) {
            let out = self.0.lock().unwrap().clone().expect("set");
            self.1.lock().unwrap().push(out.lock().queued);
        }
    }

    /// Regression: a C server streaming 64-message batches woke the writer at each batch's
    /// first message; the pump, on another core, then took the batch a message or two at a
    /// time, a cross-thread wake each (C server streaming at 0.72-0.84 of the Rust core).
    #[test]
    fn a_batch_wakes_the_writer_once_after_its_last_message() {
        let out = Arc::new(queue(1 << 20));
        let seen = Arc::new(SeeQueued(Mutex::new(Some(out.clone())), Mutex::default()));
        let waker = Waker::from(seen.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(out.poll_take(&mut cx, &mut Linger::default()).is_pending());
        let msgs = [&b"one"[..], b"two", b"three"];
        let (n, failed) = out.push_many(msgs.iter().copied(), None, |_| Ok(()));
        assert_eq!((n, failed.is_none()), (3, true));
        assert_eq!(
            *seen.1.lock().unwrap(),
            [8 + 8 + 10],
            "one wake, with all three queued"
        );
        let Poll::Ready(Some(b)) = out.poll_take(&mut cx, &mut Linger::default()) else {
            panic!("nothing to take")
        };
        assert_eq!(
            b.chunks.len(),
            1,
            "a burst shares one buffer from its first message"
        );
        assert_eq!(
            &b.chunks[0][..],
            b"\0\0\0\0\x03one\0\0\0\0\x03two\0\0\0\0\x05three"
        );
        seen.0.lock().unwrap().take();
    }

    /// Counts wakes.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Regression: a direct answer reserved send capacity on the lent stream, and h2 wakes
    /// the stream's send task on new capacity: the writer, watching for a reset, was woken
    /// on a runtime thread for every ping-pong answer (a futex wake and a tokio driver wake
    /// per message from the Node server's JS thread). The writer must sleep through answers
    /// and still hear the reset.
    #[tokio::test]
    async fn a_direct_answer_does_not_wake_the_writer_but_a_reset_does() {
        let (c, s) = tokio::io::duplex(1 << 16);
        let srv = crate::protocol::accept_one(s);
        let (mut client, conn) = h2::client::handshake(c).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("http://x/p").body(()).unwrap();
        let (resp, mut req_stream) = client.send_request(req, false).unwrap();
        let (_req, respond) = srv.await.unwrap();
        let ct = http::HeaderValue::from_static("application/grpc");
        let respond = crate::transport::http::Respond::H2(respond);
        let mut sender = Sender::server(Wire::Grpc, respond, ct, None, None);
        sender.send_head(None, Encoding::Identity).unwrap();
        let mut resp = resp.await.unwrap().into_body();

        let out = queue(1 << 20);
        out.lend(sender);
        let writer = Arc::new(Count::default());
        let waker = Waker::from(writer.clone());
        assert!(out
            .poll_lent_peer_end(&mut Context::from_waker(&waker))
            .is_pending());
        for i in 0..3u8 {
            out.received(true);
            assert_eq!(out.try_send_ref(&[i; 16], None), Ok(true));
            let got = resp.data().await.unwrap().unwrap();
            assert_eq!(got.len(), 5 + 16, "answer {i} went out directly");
        }
        assert_eq!(writer.0.load(Ordering::SeqCst), 0, "the writer slept");

        req_stream.send_reset(h2::Reason::CANCEL);
        for _ in 0..500 {
            if writer.0.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            writer.0.load(Ordering::SeqCst) > 0,
            "the reset woke the writer"
        );
        let r = out.poll_lent_peer_end(&mut Context::from_waker(&waker));
        assert!(
            matches!(&r, Poll::Ready(PeerEnd::Failed(s)) if s.code() == Code::Cancelled),
            "{r:?}"
        );
    }

    /// Regression: a stream that sent since the last look keeps its grown bound: it is
    /// between two batches, not quiet. (Fallen back to a least of 2 KiB at every sum, a
    /// bidi echo of 256 messages in flight lost 6-11% of its rate regrowing it.) Quiet
    /// until the next look, it falls back.
    #[test]
    fn a_stream_that_sent_since_the_last_look_keeps_its_bound() {
        const F: usize = PREFIX_LEN + FRAME;
        let out = queue(4 * F);
        let msg = Bytes::from(vec![7u8; FRAME]);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(!out.fall_back(), "nothing grown");
        for _ in 0..4 {
            assert!(out.try_send(msg.clone(), None).is_ok());
        }
        assert!(out.poll_take(&mut cx, &mut Linger::default()).is_ready());
        out.handed(4 * F, true, |_| true);
        assert!(!out.fall_back(), "it sent since the last look");
        assert!(out.fall_back(), "quiet since");
    }

    #[test]
    fn a_batch_stops_at_the_limit_and_at_a_closed_call() {
        let out = queue(100);
        let m = [7u8; 30];
        let (n, failed) = out.push_many(std::iter::repeat_n(&m[..], 10), None, |_| Ok(()));
        // The same rule as single sends: room while below the limit.
        assert_eq!((n, failed.is_none()), (3, true));
        let out = queue(100);
        out.close(End::HalfClose);
        let (n, failed) = out.push_many([&m[..], &m[..]], None, |_| Ok(()));
        assert_eq!(n, 0);
        assert_eq!(failed.expect("closed").code(), Code::FailedPrecondition);
    }

    #[test]
    fn send_after_terminate_fails_with_the_status() {
        let out = queue(100);
        out.abort(Status::cancelled("gone"), Stop::Reset(Abort::Cancel));
        match out.try_send(Bytes::from_static(b"x"), None) {
            Err(TrySendError::Closed(s)) => assert_eq!(s.code(), Code::Cancelled),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn taken(out: &SendQueue, linger: &mut Linger) -> Option<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        match out.poll_take(&mut cx, linger) {
            Poll::Ready(Some(b)) => Some(b.chunks.iter().map(|c| c.len()).sum()),
            Poll::Ready(None) => panic!("the call ended"),
            Poll::Pending => None,
        }
    }

    /// Regression (issue 17): a pump that took whatever was queued the moment it could
    /// framed a slower sender's stream one 23-byte DATA frame per message, and tonic's h2
    /// answered with GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames". Once a stream flows,
    /// a small batch waits for a frame's worth or for a lull; the first message after an
    /// idle spell does not wait.
    #[tokio::test(start_paused = true)]
    async fn a_flowing_streams_small_batch_lingers_the_first_message_does_not() {
        let out = queue(1 << 20);
        let mut linger = Linger::default();
        let msg = [7u8; 18];
        assert_eq!(taken(&out, &mut linger), None, "nothing queued");
        assert_eq!(out.try_send_ref(&msg, None), Ok(true));
        assert_eq!(
            taken(&out, &mut linger),
            Some(23),
            "the first message goes at once"
        );

        // A message queued while the pump wrote: the stream flows, the batch waits.
        assert_eq!(out.try_send_ref(&msg, None), Ok(true));
        assert_eq!(taken(&out, &mut linger), None);
        // It waits while messages keep coming, tick after tick...
        for _ in 0..3 {
            tokio::time::advance(LINGER_TICK).await;
            assert_eq!(out.try_send_ref(&msg, None), Ok(true));
            assert_eq!(taken(&out, &mut linger), None);
        }
        // ...and goes after a tick without one.
        tokio::time::advance(LINGER_TICK).await;
        assert_eq!(taken(&out, &mut linger), Some(4 * 23));

        // A frame's worth goes at once.
        assert_eq!(out.try_send_ref(&msg, None), Ok(true));
        assert_eq!(taken(&out, &mut linger), None);
        while out.lock().queued < FRAME {
            assert_eq!(out.try_send_ref(&msg, None), Ok(true));
        }
        assert!(taken(&out, &mut linger).is_some_and(|n| n >= FRAME));

        // A stream that keeps flowing waits LINGER_MAX at most.
        assert_eq!(out.try_send_ref(&msg, None), Ok(true));
        assert_eq!(taken(&out, &mut linger), None);
        let mut waited = Duration::ZERO;
        while taken(&out, &mut linger).is_none() {
            tokio::time::advance(LINGER_TICK).await;
            waited += LINGER_TICK;
            assert_eq!(out.try_send_ref(&msg, None), Ok(true));
            assert!(waited <= LINGER_MAX + LINGER_TICK, "lingered {waited:?}");
        }

        // Right after a burst, a message still counts as flowing; after a lull longer
        // than FLOWING, the next one goes at once again.
        assert_eq!(taken(&out, &mut linger), None, "all taken");
        assert_eq!(out.try_send_ref(&msg, None), Ok(true));
        assert_eq!(taken(&out, &mut linger), None);
        tokio::time::advance(LINGER_TICK).await;
        assert_eq!(taken(&out, &mut linger), Some(23));
        assert_eq!(taken(&out, &mut linger), None);
        tokio::time::advance(FLOWING).await;
        assert_eq!(out.try_send_ref(&msg, None), Ok(true));
        assert_eq!(taken(&out, &mut linger), Some(23));
    }

    /// Regression (issue 17): a Node handler answering the messages of a stream one per turn
    /// of its loop gave the writer one message at a time, each found alone and written as a
    /// frame of its own (9,779 DATA frames for 200,000 echoes to tonic's client). Single
    /// messages taken closer together than TRICKLE are a stream: the next one lingers.
    #[tokio::test(start_paused = true)]
    async fn a_trickle_of_single_messages_lingers() {
        let out = queue(1 << 20);
        let mut linger = Linger::default();
        let msg = [7u8; 18];
        let mut one_alone = || {
            assert_eq!(taken(&out, &mut linger), None, "found empty");
            assert_eq!(out.try_send_ref(&msg, None), Ok(true));
            taken(&out, &mut linger)
        };
        assert_eq!(one_alone(), Some(23), "the first goes at once");
        tokio::time::advance(TRICKLE / 2).await;
        assert_eq!(one_alone(), Some(23), "the second too, and shows a trickle");
        tokio::time::advance(TRICKLE / 2).await;
        assert_eq!(one_alone(), None, "the third waits for more");
        tokio::time::advance(LINGER_TICK).await;
        assert_eq!(
            taken(&out, &mut linger),
            Some(23),
            "a tick without more ends the wait"
        );
    }

    /// Regression: with a bound under a frame's worth (a stream's least, SEND_QUEUE_BYTES),
    /// a flowing stream's writer lingered for a frame that the bound never let in, while
    /// its sender waited for room: a tick lost for every batch until the bound grew.
    #[tokio::test(start_paused = true)]
    async fn a_full_queue_under_a_frame_goes_at_once() {
        const { assert!(SEND_QUEUE_BYTES < FRAME) };
        let out = queue(SEND_QUEUE_BYTES);
        let mut linger = Linger::default();
        let msg = [7u8; 18];
        assert_eq!(out.try_send_ref(&msg, None), Ok(true));
        assert_eq!(taken(&out, &mut linger), Some(23));
        // Queued while the writer wrote: the stream flows, and its writer lingers.
        assert_eq!(out.try_send_ref(&msg, None), Ok(true));
        out.handed(23, true, |_| true);
        let wakes = Arc::new(Count::default());
        let writer = Waker::from(wakes.clone());
        assert!(out
            .poll_take(&mut Context::from_waker(&writer), &mut linger)
            .is_pending());
        // The send that fills the bound wakes it, and it takes everything at once.
        while out.try_send_ref(&msg, None) == Ok(true) {}
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        let n = taken(&out, &mut linger).expect("a full queue does not linger");
        assert!(n >= SEND_QUEUE_BYTES, "took {n}");
    }

    #[test]
    fn borrowed_sends_obey_the_same_limit() {
        let out = queue(100);
        let mut n = 0;
        while out.try_send_ref(&[1; 30], None).unwrap() {
            n += 1;
        }
        assert_eq!(n, 3);
        let big = vec![2u8; COALESCE_MAX + 10];
        let out = queue(1 << 20);
        assert!(out.try_send_ref(&big, None).unwrap());
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Some(b)) = out.poll_take(&mut cx, &mut Linger::default()) else {
            panic!("nothing to take")
        };
        assert_eq!(
            b.chunks.iter().map(|c| c.len()).sum::<usize>(),
            5 + big.len()
        );
    }
}
