//! The bounded queue between a call's sender and the task (the pump) that writes to the
//! HTTP/2 stream. Small messages are framed straight into one shared buffer, so a burst of
//! sends becomes one DATA frame and one write; the pump is woken once per burst, not once
//! per message.
//!
//! A send that answers a received message on an idle stream skips the pump: while the pump
//! waits, it lends the stream here, and such a send writes its frame into it and kicks the
//! connection from the sender's own thread (see `driver`). Request-response rhythms
//! (ping-pong) then cost no hand-off to a runtime thread; bursts still coalesce.

use bytes::{Bytes, BytesMut};
use h2::SendStream;
use http::HeaderMap;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

use crate::codec::{self, Encoding};
use crate::driver::Driver;
use crate::status::{Code, Status};

/// Messages up to this size are copied into the shared buffer; larger ones travel as
/// their own chunk without a copy.
pub(crate) const COALESCE_MAX: usize = 16 * 1024;

/// The size of the buffers small messages are framed into: one DATA frame each.
const TAIL_CHUNK: usize = 32 * 1024;

/// An open batch wakes the writer anyway once this much is queued, so that a long turn
/// of the sender's loop keeps the connection busy instead of filling the queue first.
const BATCH_WAKE: usize = TAIL_CHUNK;

/// A full DATA frame at the default SETTINGS_MAX_FRAME_SIZE: what a lingering pump waits
/// to have queued.
const FRAME: usize = 16 * 1024;

/// How often a lingering pump looks whether its stream still flows (tokio's timer rounds
/// it up to its next millisecond tick), and how long it may linger at most.
const LINGER_TICK: Duration = Duration::from_millis(1);
const LINGER_MAX: Duration = Duration::from_millis(5);
/// How long after a burst a stream still counts as flowing.
const FLOWING: Duration = Duration::from_millis(2);

/// The pump's timer for holding back a small batch of a flowing stream.
///
/// With a sender on another thread than the pump (a binding's, or a task the runtime
/// runs on the other core), a pump that takes whatever is queued the moment it can makes
/// each batch the few messages queued during its last write, each its own small DATA
/// frame. h2 (tonic's and hyper's) counts the small DATA frames it holds unread and closes
/// the connection with GOAWAY ENHANCE_YOUR_CALM past a budget; a peer may also simply
/// spend a wake-up per frame. So once a stream flows (messages came while the pump was
/// writing), a batch smaller than a frame waits for a frame's worth, for as long as
/// messages keep coming (up to `LINGER_MAX`), or for the end of the call. A stream that
/// is not flowing — the first message after the pump went idle, every request-response
/// rhythm — is written at once, and a lull ends the wait within a tick.
#[derive(Default)]
pub(crate) struct Linger {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Since when the held batch waits, and how much was queued at the last tick.
    since: Option<(Instant, usize)>,
}

impl Linger {
    /// True once the held batch (`queued` bytes now) should go: the stream stopped
    /// growing over a tick, or waited `LINGER_MAX`. Arms the timer on the first ask.
    fn expired(&mut self, cx: &mut Context<'_>, queued: usize) -> bool {
        let now = Instant::now();
        let tick = now + LINGER_TICK;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(tick)));
        match self.since {
            None => {
                self.since = Some((now, queued));
                sleep.as_mut().reset(tick);
            }
            Some((start, last)) => {
                if sleep.as_mut().poll(cx).is_pending() {
                    return false;
                }
                if queued <= last || now >= start + LINGER_MAX {
                    return true;
                }
                self.since = Some((start, queued));
                sleep.as_mut().reset(tick);
            }
        }
        // Registers the timer's wake-up.
        sleep.as_mut().poll(cx).is_ready()
    }

    fn reset(&mut self) {
        self.since = None;
    }
}

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

/// How the sending side ends.
pub(crate) enum End {
    /// Client half-close: END_STREAM after the last message.
    CloseSend,
    /// Server finish: the trailers (or, when nothing was sent yet, a Trailers-Only response).
    Trailers(HeaderMap),
}

/// Everything the pump takes in one go.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) headers: Option<HeaderMap>,
    pub(crate) chunks: VecDeque<Bytes>,
    pub(crate) end: Option<End>,
    pub(crate) reset: Option<h2::Reason>,
}

pub(crate) struct Outbound {
    state: Mutex<State>,
    /// Set once the call has a final local outcome (cancelled, deadline, protocol error):
    /// lets the receive path check for it without taking the lock.
    terminated: AtomicBool,
    /// A message was handed to the receiver since the last direct write: the next send
    /// is an answer, and may go out directly.
    answer: AtomicBool,
    /// Starts the pump of a call opened from its caller's thread, the first time the call
    /// needs it (see `Call::start`).
    deferred: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    has_deferred: AtomicBool,
    /// Messages were queued into an open batch since the last `flush`: the writer has not
    /// been told of them. Set under the state lock; read without it by the paths that
    /// flush before they wait.
    batch_open: AtomicBool,
    limit: usize,
}

/// The pump's stream, lent while the pump waits for work.
pub(crate) struct Lent {
    pub(crate) stream: SendStream<Bytes>,
    pub(crate) driver: Option<Arc<Driver>>,
    /// The pump's waker, which h2 holds while the pump watches for a reset.
    pub(crate) pump: Option<Waker>,
}

impl Lent {
    pub(crate) fn new(stream: SendStream<Bytes>, driver: Option<Arc<Driver>>) -> Lent {
        Lent {
            stream,
            driver,
            pump: None,
        }
    }

    /// Hands the reset watch back to the pump (waking it if the reset already came).
    fn watch_reset(&mut self) {
        if let Some(w) = &self.pump {
            if self
                .stream
                .poll_reset(&mut Context::from_waker(w))
                .is_ready()
            {
                w.wake_by_ref();
            }
        }
    }
}

struct State {
    headers: Option<HeaderMap>,
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    queued: usize,
    end: Option<End>,
    end_queued: bool,
    reset: Option<h2::Reason>,
    /// Why sending is no longer possible; later sends fail with it.
    closed: Option<Status>,
    /// The outcome this side decided on its own (cancel, deadline, a protocol error).
    local_status: Option<Status>,
    /// The receive side has the final status; the pump may stop.
    done: bool,
    /// Set by `terminate` and `mark_done` until the pump takes the batch: a write in
    /// progress stops for it.
    urgent: bool,
    pump: Option<Waker>,
    sender: Option<Waker>,
    /// A handler waiting for the call to be cancelled.
    watcher: Option<Waker>,
    peer_finished: bool,
    compress: Encoding,
    lent: Option<Lent>,
    /// The pump took a batch and has not written it yet: nothing may go out directly,
    /// or it would overtake the batch (the pump still holds the stream's loan until its
    /// wait ends).
    busy: bool,
    /// How much must be queued before a send wakes the pump: one byte when it waits for
    /// work, a frame's worth while it lingers, never while it writes.
    want: usize,
    /// The pump found nothing queued when it last looked.
    fresh: bool,
    /// Messages queued (with `queued` bytes).
    msgs: usize,
    /// Until when the stream counts as flowing though the pump found it empty: a batch of
    /// several messages was taken just before (a burst arriving in pieces, such as the
    /// answers to a peer's DATA frames of a few messages each).
    flowing_until: Option<Instant>,
}

enum Push {
    Full,
    Closed(Status),
}

/// Why a non-waiting send did not queue.
#[derive(Debug)]
pub enum TrySendError {
    /// The queue is full; the message is handed back.
    Full(Bytes),
    /// The call cannot send any more.
    Closed(Status),
}

impl Outbound {
    pub(crate) fn new(limit: usize, compress: Encoding) -> Outbound {
        Outbound {
            state: Mutex::new(State {
                headers: None,
                chunks: VecDeque::new(),
                tail: BytesMut::new(),
                queued: 0,
                end: None,
                end_queued: false,
                reset: None,
                closed: None,
                local_status: None,
                done: false,
                urgent: false,
                pump: None,
                sender: None,
                watcher: None,
                peer_finished: false,
                compress,
                lent: None,
                busy: false,
                want: 1,
                fresh: true,
                msgs: 0,
                flowing_until: None,
            }),
            terminated: AtomicBool::new(false),
            answer: AtomicBool::new(false),
            deferred: Mutex::new(None),
            has_deferred: AtomicBool::new(false),
            batch_open: AtomicBool::new(false),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leaves the pump unstarted until something needs it.
    pub(crate) fn defer_pump(&self, start: Box<dyn FnOnce() + Send>) {
        *self.deferred.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
        self.has_deferred.store(true, Ordering::Release);
    }

    /// Wakes the pump that waits for work, or starts a deferred one. Called without the
    /// state lock (starting takes it).
    fn wake_pump(&self, w: Option<Waker>) {
        if let Some(w) = w {
            w.wake();
        } else if let Some(start) = self.take_deferred() {
            start();
        }
    }

    /// The deferred pump's starter, if it was not taken yet.
    fn take_deferred(&self) -> Option<Box<dyn FnOnce() + Send>> {
        // A plain load first: every queued send of a busy call passes here.
        if !self.has_deferred.load(Ordering::Acquire)
            || !self.has_deferred.swap(false, Ordering::AcqRel)
        {
            return None;
        }
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Queues one message if there is room, without waiting.
    pub(crate) fn try_send(&self, msg: Bytes) -> Result<(), TrySendError> {
        self.try_send_with(msg, None)
    }

    /// As `try_send`, choosing compression for this one message (`None`: the call's).
    pub(crate) fn try_send_with(
        &self,
        msg: Bytes,
        compress: Option<bool>,
    ) -> Result<(), TrySendError> {
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

    /// Queues a borrowed message, waiting while the queue is full.
    pub(crate) async fn send_ref(&self, msg: &[u8], compress: Option<bool>) -> Result<(), Status> {
        while !self.try_send_ref(msg, compress)? {
            std::future::poll_fn(|cx| self.poll_ready(cx)).await;
        }
        Ok(())
    }

    /// The one place a message enters the queue. `owned`, when given, is `msg` as `Bytes`:
    /// a large message then travels without a copy.
    fn push(&self, msg: &[u8], owned: Option<&Bytes>, compress: Option<bool>) -> Result<(), Push> {
        let mut st = self.lock();
        if !self.admit(&st)? {
            return Ok(());
        }
        let enc = Self::encoding(&st, compress);
        if st.queued == 0 && msg.len() <= COALESCE_MAX && self.may_write_direct(&mut st) {
            let mut frame = BytesMut::with_capacity(codec::PREFIX_LEN + msg.len());
            codec::encode(&mut frame, msg, enc).map_err(Push::Closed)?;
            self.write_direct(st, frame.freeze());
            return Ok(());
        }
        Self::enqueue(&mut st, msg, owned, enc, false)?;
        // This send, queued, was the answer: the next one is not.
        self.answer.store(false, Ordering::Relaxed);
        if st.queued >= st.want {
            let w = st.pump.take();
            drop(st);
            self.wake_pump(w);
        }
        Ok(())
    }

    /// Queues a borrowed message (copied) into the open batch without waking the pump: a
    /// sender in an event loop frames every message of one turn into shared DATA frames,
    /// where waking the pump per message would let it, running beside the sender on
    /// another core, take and frame each message alone (a 23-byte DATA frame per message,
    /// which hardened servers such as h2's answer with GOAWAY ENHANCE_YOUR_CALM). The
    /// sender calls `flush` when its turn ends; a batch's worth wakes the pump anyway.
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
        let enc = Self::encoding(&st, compress);
        if let Err(Push::Closed(s)) = Self::enqueue(&mut st, msg, None, enc, true) {
            return Err(s);
        }
        let opened = !self.batch_open.swap(true, Ordering::AcqRel);
        if st.queued >= st.want.max(BATCH_WAKE) {
            let w = st.pump.take();
            drop(st);
            self.wake_pump(w);
        }
        Ok(if opened {
            Batched::Opened
        } else {
            Batched::Joined
        })
    }

    /// Ends the open batch: what it queued leaves now. A small batch that answers a
    /// received message goes straight onto the idle stream from this thread, as a single
    /// answer does; anything else wakes the pump once.
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
            st.queued = 0;
            st.msgs = 0;
            self.write_direct(st, frame);
            return;
        }
        // A pump that is writing comes back for the batch; one that lingers decides.
        if st.want != usize::MAX {
            let w = st.pump.take();
            drop(st);
            self.wake_pump(w);
        }
    }

    /// Queues borrowed messages in order while there is room, under one lock and with at
    /// most one wake of the pump, after the last: how many were queued, and the error that
    /// stopped the next one. A sender on a thread of its own (C, a binding's event loop)
    /// otherwise wakes the pump at its first message, and the pump, running beside it on
    /// another core, takes the batch a message or two at a time: a cross-thread wake every
    /// few messages (C server streaming ran at 0.72-0.84 of the Rust core for it).
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
            let enc = Self::encoding(st, compress);
            if let Err(e) = Self::enqueue(st, msg, None, enc, burst) {
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
        if let Some(mut st) = st.filter(|st| st.queued > 0 && st.queued >= st.want) {
            let w = st.pump.take();
            drop(st);
            self.wake_pump(w);
        }
        (n, failed)
    }

    /// May a message be queued now? `Ok(false)`: accepted and dropped (the peer finished).
    fn admit(&self, st: &State) -> Result<bool, Push> {
        if st.peer_finished && !st.done {
            // The server has ended the call; like HTTP/2 itself we drop what comes after,
            // and recv/finish report the call's status (grpc-js drops such writes too).
            return Ok(false);
        }
        if let Some(s) = &st.closed {
            return Err(Push::Closed(s.clone()));
        }
        if st.end_queued {
            return Err(Push::Closed(Status::new(
                Code::FailedPrecondition,
                "send after the sending side was closed",
            )));
        }
        // Room means "below the limit": one message may overshoot it. The same rule as
        // `poll_ready`, so a sender woken as ready never finds the queue full and spins.
        if st.queued >= self.limit {
            return Err(Push::Full);
        }
        Ok(true)
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
            let prefix = codec::prefix(msg.len()).map_err(Push::Closed)?;
            if !st.tail.is_empty() {
                let t = st.tail.split().freeze();
                st.chunks.push_back(t);
            }
            st.chunks.push_back(Bytes::copy_from_slice(&prefix));
            st.queued += codec::PREFIX_LEN + msg.len();
            st.msgs += 1;
            st.chunks.push_back(match owned {
                Some(b) => b.clone(),
                None => Bytes::copy_from_slice(msg),
            });
        } else {
            let need = codec::PREFIX_LEN + msg.len();
            if st.tail.capacity() - st.tail.len() < need {
                // Start a fresh buffer rather than grow this one: growing copies everything
                // queued so far, and at millions of small messages a second those copies
                // dominated the profile.
                if !st.tail.is_empty() {
                    let t = st.tail.split().freeze();
                    st.chunks.push_back(t);
                }
                // A lone message (the queue was empty) gets a buffer of its own size, so an
                // idle or ping-pong stream holds no 32 KiB buffer; a burst gets big ones.
                let cap = if st.queued == 0 && !burst {
                    need
                } else {
                    need.max(TAIL_CHUNK)
                };
                st.tail = BytesMut::with_capacity(cap);
            }
            let before = st.tail.len();
            codec::encode(&mut st.tail, msg, enc).map_err(Push::Closed)?;
            st.queued += st.tail.len() - before;
            st.msgs += 1;
        }
        Ok(())
    }

    /// Whether an answer may go straight into the lent stream now: nothing queued ahead of
    /// it, a message was received since the last direct write, and the window has room.
    fn may_write_direct(&self, st: &mut State) -> bool {
        if st.headers.is_some() || st.end.is_some() || st.reset.is_some() || st.urgent || st.busy {
            return false;
        }
        let Some(lent) = st.lent.as_mut() else {
            return false;
        };
        if !self.answer.swap(false, Ordering::Relaxed) {
            return false;
        }
        // Reserving capacity wakes the stream's send task, which is the pump watching for a
        // reset: a thread hop per answer, for nothing. Point h2 elsewhere meanwhile.
        let mut off = Context::from_waker(Waker::noop());
        if lent.stream.poll_reset(&mut off).is_ready() {
            lent.watch_reset();
            return false;
        }
        lent.stream.reserve_capacity(1);
        if lent.stream.capacity() == 0 {
            lent.watch_reset();
            return false;
        }
        true
    }

    /// Writes a framed answer into the lent stream (`may_write_direct` said yes) and kicks
    /// the connection from this thread.
    fn write_direct(&self, mut st: MutexGuard<'_, State>, frame: Bytes) {
        let lent = st.lent.as_mut().expect("may_write_direct checked the loan");
        let driver = lent.driver.clone();
        let kick = driver.as_deref().map(Driver::announce);
        // A failure means the stream is gone; the pump finds out why when it takes the
        // stream back, and what was sent here is lost with the stream.
        let _ = lent.stream.send_data(frame, false);
        lent.watch_reset();
        drop(st);
        if let Some(k) = kick {
            k.finish();
        }
    }

    /// The request and its half-close were written with the stream's opening.
    pub(crate) fn closed_directly(&self) {
        self.lock().end_queued = true;
    }

    /// The receive side handed a message over: a send that follows answers it.
    pub(crate) fn received(&self) {
        self.answer.store(true, Ordering::Relaxed);
    }

    /// The pump's side: lends its stream while it waits for work.
    pub(crate) fn lend(&self, lent: Lent) {
        let mut st = self.lock();
        st.lent = Some(lent);
        st.busy = false;
    }

    /// The pump's side: takes its stream back.
    pub(crate) fn reclaim(&self) -> Option<Lent> {
        self.lock().lent.take()
    }

    /// Watches the lent stream for a reset from the peer.
    pub(crate) fn poll_lent_reset(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<h2::Reason, h2::Error>> {
        match self.lock().lent.as_mut() {
            Some(l) => {
                match &l.pump {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => l.pump = Some(cx.waker().clone()),
                }
                l.stream.poll_reset(cx)
            }
            None => Poll::Pending,
        }
    }

    /// Ready when a message may be queued (or sending has failed, and `try_send` will say
    /// why).
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.queued < self.limit || st.closed.is_some() || st.end_queued || st.peer_finished {
            return Poll::Ready(());
        }
        match &st.sender {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.sender = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Queues one message, waiting while the queue is full.
    pub(crate) async fn send(&self, mut msg: Bytes, compress: Option<bool>) -> Result<(), Status> {
        loop {
            match self.try_send_with(msg, compress) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(s)) => return Err(s),
                Err(TrySendError::Full(m)) => {
                    msg = m;
                    std::future::poll_fn(|cx| self.poll_ready(cx)).await;
                }
            }
        }
    }

    /// Queues the response headers (server side), ahead of any message.
    pub(crate) fn send_headers(&self, headers: HeaderMap) -> Result<(), Status> {
        let mut st = self.lock();
        if let Some(s) = &st.closed {
            return Err(s.clone());
        }
        if st.headers.is_some() || st.end_queued {
            return Err(Status::new(
                Code::FailedPrecondition,
                "headers were already sent",
            ));
        }
        st.headers = Some(headers);
        let w = st.pump.take();
        drop(st);
        self.wake_pump(w);
        Ok(())
    }

    /// Queues the end of the sending side after every queued message. Returns false if it
    /// was already queued.
    pub(crate) fn close(&self, end: End) -> bool {
        let mut st = self.lock();
        if st.end_queued || st.closed.is_some() {
            return false;
        }
        st.end_queued = true;
        if matches!(end, End::CloseSend)
            && st.queued == 0
            && !st.busy
            && st.headers.is_none()
            && !st.urgent
        {
            if let Some(lent) = st.lent.as_mut() {
                // Nothing queued ahead of it: the half-close goes out from this thread.
                let driver = lent.driver.clone();
                let kick = driver.as_deref().map(Driver::announce);
                if lent.stream.send_data(Bytes::new(), true).is_ok() {
                    drop(st);
                    if let Some(k) = kick {
                        k.finish();
                    }
                    return true;
                }
            }
        }
        st.end = Some(end);
        let w = st.pump.take();
        drop(st);
        self.wake_pump(w);
        true
    }

    /// Ends the call here and now: queued messages are dropped, the pump resets the stream
    /// (or, for `End::Trailers`, sends the status), and `status` becomes the call's outcome
    /// on this side. The first outcome wins.
    pub(crate) fn terminate(&self, status: Status, how: Terminate) -> bool {
        let mut st = self.lock();
        if st.local_status.is_some() || st.done {
            return false;
        }
        st.local_status = Some(status.clone());
        st.closed = Some(status);
        st.chunks.clear();
        st.tail.clear();
        st.queued = 0;
        st.msgs = 0;
        match how {
            Terminate::Reset(r) => st.reset = Some(r),
            Terminate::Trailers(t) => {
                st.end = Some(End::Trailers(t));
                st.end_queued = true;
            }
        }
        st.urgent = true;
        self.terminated.store(true, Ordering::Release);
        let (p, s, w) = (st.pump.take(), st.sender.take(), st.watcher.take());
        drop(st);
        self.wake_pump(p);
        for w in [s, w].into_iter().flatten() {
            w.wake();
        }
        true
    }

    /// The outcome decided on this side, if any.
    pub(crate) fn local_status(&self) -> Option<Status> {
        if !self.terminated.load(Ordering::Acquire) {
            return None;
        }
        self.lock().local_status.clone()
    }

    /// The pump can no longer send: later sends fail with `status`.
    pub(crate) fn fail(&self, status: Status) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.closed = Some(status);
        }
        discard(st);
    }

    /// The server ended the call after its response (RST_STREAM NO_ERROR): later sends are
    /// dropped rather than failed, so the response's status stays the call's outcome.
    pub(crate) fn peer_finished(&self) {
        let mut st = self.lock();
        st.peer_finished = true;
        discard(st);
    }

    /// The receive side has the final status: nothing more will be sent.
    pub(crate) fn mark_done(&self) {
        // A writer never started is not needed any more; its closure holds this queue, so
        // keeping it would keep both alive.
        drop(self.take_deferred());
        let mut st = self.lock();
        st.done = true;
        st.urgent = true;
        if st.closed.is_none() {
            st.closed = Some(Status::new(
                Code::FailedPrecondition,
                "the call has finished",
            ));
        }
        let (p, s) = (st.pump.take(), st.sender.take());
        drop(st);
        if let Some(w) = p {
            w.wake();
        }
        if let Some(w) = s {
            w.wake();
        }
    }

    pub(crate) fn set_compression(&self, enc: Encoding) {
        self.lock().compress = enc;
    }

    pub(crate) fn compression(&self) -> Encoding {
        self.lock().compress
    }

    /// True once headers were queued (explicitly or not) or the end was queued.
    pub(crate) fn headers_queued(&self) -> bool {
        let st = self.lock();
        st.headers.is_some() || st.end_queued
    }

    /// The pump's side: everything queued, or Pending until there is something (or the
    /// call is done, which returns an empty batch). A small batch of a flowing stream
    /// waits with `linger`.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        linger: &mut Linger,
    ) -> Poll<Option<Batch>> {
        let mut st = self.lock();
        let must = st.reset.is_some() || st.headers.is_some() || st.end.is_some();
        if !must
            && st.queued > 0
            && st.queued < FRAME
            && Self::flowing(&st)
            && !linger.expired(cx, st.queued)
        {
            st.want = FRAME;
            Self::register_pump(&mut st, cx);
            return Poll::Pending;
        }
        if must || st.queued > 0 {
            linger.reset();
            return Poll::Ready(Some(self.take(st)));
        }
        if st.done {
            return Poll::Ready(None);
        }
        st.fresh = true;
        st.want = 1;
        Self::register_pump(&mut st, cx);
        Poll::Pending
    }

    /// Everything queued, now (a lingering pump's rules aside): for a writer that runs
    /// once, from the handler's own thread.
    pub(crate) fn take_now(&self) -> Option<Batch> {
        let st = self.lock();
        let any = st.reset.is_some() || st.headers.is_some() || st.end.is_some() || st.queued > 0;
        any.then(|| self.take(st))
    }

    /// Whether the stream flows: messages came while the pump wrote its last batch, or that
    /// batch was a burst taken moments ago. The first message after a lull, and every
    /// message of a one-at-a-time rhythm, is not.
    fn flowing(st: &State) -> bool {
        !st.fresh || st.flowing_until.is_some_and(|t| Instant::now() < t)
    }

    fn take(&self, mut st: MutexGuard<'_, State>) -> Batch {
        if st.msgs > 1 || !st.fresh {
            st.flowing_until = Some(Instant::now() + FLOWING);
        }
        st.busy = true;
        st.fresh = false;
        // Until the pump looks again, it is writing: sends need not wake it.
        st.want = usize::MAX;
        let mut b = Batch {
            headers: st.headers.take(),
            reset: st.reset.take(),
            end: st.end.take(),
            ..Batch::default()
        };
        b.chunks = std::mem::take(&mut st.chunks);
        if !st.tail.is_empty() {
            // Take the whole buffer: a split would leave the spare capacity behind,
            // keeping the allocation alive on an idle stream.
            b.chunks.push_back(std::mem::take(&mut st.tail).freeze());
        }
        st.queued = 0;
        st.msgs = 0;
        st.urgent = false;
        let s = st.sender.take();
        drop(st);
        if let Some(w) = s {
            w.wake();
        }
        b
    }

    fn register_pump(st: &mut State, cx: &mut Context<'_>) {
        match &st.pump {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.pump = Some(cx.waker().clone()),
        }
    }

    /// Ready when something must interrupt a write in progress: a termination or the end
    /// of the call, arrived after the pump took its last batch.
    pub(crate) fn poll_urgent(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.urgent {
            return Poll::Ready(());
        }
        Self::register_pump(&mut st, cx);
        Poll::Pending
    }

    /// For a handler: ready once the call was terminated.
    pub(crate) fn poll_watch(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.local_status.is_some() {
            return Poll::Ready(());
        }
        st.watcher = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Ready once the call was terminated on this side (cancel, deadline, local error).
    pub(crate) fn poll_terminated(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.local_status.is_some() || st.done {
            return Poll::Ready(());
        }
        // Opening the stream: sends have nothing to wake the pump for yet.
        st.want = usize::MAX;
        Self::register_pump(&mut st, cx);
        Poll::Pending
    }
}

/// Drops what is queued (it will never be sent) and lets a waiting sender see why.
fn discard(mut st: MutexGuard<'_, State>) {
    st.chunks.clear();
    st.tail.clear();
    st.queued = 0;
    st.msgs = 0;
    let s = st.sender.take();
    drop(st);
    if let Some(w) = s {
        w.wake();
    }
}

/// How `terminate` ends the stream.
pub(crate) enum Terminate {
    Reset(h2::Reason),
    Trailers(HeaderMap),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Regression: `try_send` refused a message that `poll_ready` called room, so a sender
    /// woken as ready spun without yielding and starved the pump on its worker.
    #[test]
    fn full_and_ready_agree() {
        let out = Outbound::new(100, Encoding::Identity);
        let mut cx = Context::from_waker(Waker::noop());
        let mut sent = 0;
        loop {
            let ready = out.poll_ready(&mut cx).is_ready();
            match out.try_send(Bytes::from_static(&[7; 30])) {
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
        assert!(out.poll_ready(&mut cx).is_ready());
    }

    #[test]
    fn large_messages_travel_without_copy() {
        let out = Outbound::new(1 << 20, Encoding::Identity);
        let big = Bytes::from(vec![1u8; COALESCE_MAX + 1]);
        let ptr = big.as_ptr();
        out.try_send(Bytes::from_static(b"small")).unwrap();
        out.try_send(big).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Some(b)) = out.poll_take(&mut cx, &mut Linger::default()) else {
            panic!("nothing to take")
        };
        assert_eq!(b.chunks.len(), 3);
        assert_eq!(&b.chunks[1][..], &[0, 0, 0, 0x40, 0x01]);
        assert_eq!(b.chunks[2].as_ptr(), ptr);
    }

    /// Records how much was queued when the pump was woken.
    struct SeeQueued(Mutex<Option<Arc<Outbound>>>, Mutex<Vec<usize>>);
    impl std::task::Wake for SeeQueued {
        fn wake(self: Arc<Self>) {
            let out = self.0.lock().unwrap().clone().expect("set");
            self.1.lock().unwrap().push(out.lock().queued);
        }
    }

    /// Regression: a C server streaming 64-message batches woke the pump at each batch's
    /// first message; the pump, on another core, then took the batch a message or two at a
    /// time, a cross-thread wake each (C server streaming at 0.72-0.84 of the Rust core).
    #[test]
    fn a_batch_wakes_the_pump_once_after_its_last_message() {
        let out = Arc::new(Outbound::new(1 << 20, Encoding::Identity));
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
    /// the stream's send task on new capacity: the pump, watching for a reset, was woken on
    /// a runtime thread for every ping-pong answer (a futex wake and a tokio driver wake per
    /// message from the Node server's JS thread). The pump must sleep through answers and
    /// still hear the reset.
    #[tokio::test]
    async fn a_direct_answer_does_not_wake_the_pump_but_a_reset_does() {
        let (c, s) = tokio::io::duplex(1 << 16);
        let srv = tokio::spawn(async move {
            let mut conn = h2::server::handshake(s).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            let stream = respond
                .send_response(http::Response::new(()), false)
                .unwrap();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            (req, stream)
        });
        let (mut client, conn) = h2::client::handshake(c).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("http://x/p").body(()).unwrap();
        let (resp, mut req_stream) = client.send_request(req, false).unwrap();
        let (_req, stream) = srv.await.unwrap();
        let mut resp = resp.await.unwrap().into_body();

        let out = Outbound::new(1 << 20, Encoding::Identity);
        out.lend(Lent::new(stream, None));
        let pump = Arc::new(Count::default());
        let waker = Waker::from(pump.clone());
        assert!(out
            .poll_lent_reset(&mut Context::from_waker(&waker))
            .is_pending());
        for i in 0..3u8 {
            out.received();
            assert_eq!(out.try_send_ref(&[i; 16], None), Ok(true));
            let got = resp.data().await.unwrap().unwrap();
            assert_eq!(got.len(), 5 + 16, "answer {i} went out directly");
        }
        assert_eq!(pump.0.load(Ordering::SeqCst), 0, "the pump slept");

        req_stream.send_reset(h2::Reason::CANCEL);
        for _ in 0..500 {
            if pump.0.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(pump.0.load(Ordering::SeqCst) > 0, "the reset woke the pump");
        let r = out.poll_lent_reset(&mut Context::from_waker(&waker));
        assert!(matches!(r, Poll::Ready(Ok(h2::Reason::CANCEL))), "{r:?}");
    }

    #[test]
    fn a_batch_stops_at_the_limit_and_at_a_closed_call() {
        let out = Outbound::new(100, Encoding::Identity);
        let m = [7u8; 30];
        let (n, failed) = out.push_many(std::iter::repeat_n(&m[..], 10), None, |_| Ok(()));
        // The same rule as single sends: room while below the limit.
        assert_eq!((n, failed.is_none()), (3, true));
        let out = Outbound::new(100, Encoding::Identity);
        out.close(End::CloseSend);
        let (n, failed) = out.push_many([&m[..], &m[..]], None, |_| Ok(()));
        assert_eq!(n, 0);
        assert_eq!(failed.expect("closed").code(), Code::FailedPrecondition);
    }

    #[test]
    fn send_after_terminate_fails_with_the_status() {
        let out = Outbound::new(100, Encoding::Identity);
        out.terminate(
            Status::cancelled("gone"),
            Terminate::Reset(h2::Reason::CANCEL),
        );
        match out.try_send(Bytes::from_static(b"x")) {
            Err(TrySendError::Closed(s)) => assert_eq!(s.code(), Code::Cancelled),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn taken(out: &Outbound, linger: &mut Linger) -> Option<usize> {
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
        let out = Outbound::new(1 << 20, Encoding::Identity);
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

    #[test]
    fn borrowed_sends_obey_the_same_limit() {
        let out = Outbound::new(100, Encoding::Identity);
        let mut n = 0;
        while out.try_send_ref(&[1; 30], None).unwrap() {
            n += 1;
        }
        assert_eq!(n, 3);
        let big = vec![2u8; COALESCE_MAX + 10];
        let out = Outbound::new(1 << 20, Encoding::Identity);
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
