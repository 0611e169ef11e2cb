//! The server's send budget: what its streams hold for clients that have not read it, per
//! connection and over the whole server, bounded by the operator's numbers rather than by
//! how many streams a client opens and leaves unread. Every transport the server speaks
//! counts its streams here: HTTP/2, TTHeader Streaming and HTTP/1.1.
//!
//! A stream holds what its call has queued and not yet handed to its transport (its
//! backlog, which the call's queue bounds per stream) and what the transport was handed and
//! has not yet written to the socket (up to h2's send buffer per HTTP/2 stream). A client
//! that grants windows and never reads its socket, or grants none, makes every stream it
//! opens hold up to those bounds, and it may open thousands of streams on each of many
//! connections. A stream whose call has ended still holds what its transport has not
//! written (h2 keeps a finished stream's data until it goes out): a client that opens
//! short calls and reads none of them holds that, so it stays counted until it is written,
//! the stream is reset or its connection ends.
//!
//! What h2 wrote is read from the connection's own bytes (`watch`: the DATA frames going
//! out, by stream, and the resets either way, after which h2 holds nothing of a stream);
//! TTHeader's and HTTP/1.1's writers count their own. What a transport was handed is
//! counted as it is handed, and a sweep every `SWEEP` adds them up. Between sweeps, a
//! connection's streams hand its transport more only while it holds less than half the
//! connection's budget, and at least `GATE_FLOOR` (`Gate`). Over a budget, the
//! server refuses new streams there (REFUSED_STREAM over HTTP/2, which gRPC clients retry
//! elsewhere or later; RESOURCE_EXHAUSTED over the others) and cuts the stalled streams
//! holding the most, largest first, until the total is back under it: each is reset (over
//! HTTP/2 with ENHANCE_YOUR_CALM, RFC 9113 §7: "the peer is exhibiting a behavior that
//! might be generating excessive load"; gRPC clients see RESOURCE_EXHAUSTED) and its call
//! ends with RESOURCE_EXHAUSTED, which frees what it held. A stream whose client keeps
//! reading is never cut: it gives back what it holds as it goes. (Envoy's overload manager
//! resets the streams holding the most buffered data the same way.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use crate::status::{Code, Status};

/// How a call the budget cut ends, whatever its protocol.
pub(crate) fn cut_status() -> Status {
    Status::new(
        Code::ResourceExhausted,
        "the server's send budget is spent and this call's client is not reading",
    )
}

/// How often what the streams hold is added up while nothing else happens.
pub(crate) const SWEEP: Duration = Duration::from_millis(100);

/// How soon after a sweep a new stream sweeps again: streams opened at full speed fill
/// in a few milliseconds, and a budget they would overrun between two sweeps of `SWEEP`
/// would hold little.
const SWEEP_ON_OPEN: Duration = Duration::from_millis(5);

/// A stream holding less than this is never cut: about what a stream whose client keeps
/// up holds between two writes.
const CUT_FLOOR: u64 = 32 * 1024;

/// The least a connection's transport may hold unwritten before its streams wait (see
/// `Gate`), however small the connection's budget: enough for a stalled stream to hold
/// `CUT_FLOOR` and be cut, instead of waiting on a closed gate with too little to cut.
const GATE_FLOOR: u64 = 2 * CUT_FLOOR;

/// A stream whose client read less than this since the last sweep is stalled (about
/// 40 KB/s): a client reading slowly on purpose would have to read faster than that on
/// every stream it holds.
const STALL: u64 = 4 * 1024;

/// Cuts bring the total down to this share of the budget (7/8), so that a total at the
/// budget is not cut a stream per sweep.
fn after_cuts(limit: u64) -> u64 {
    limit - limit / 8
}

/// What a stream's call has queued and not yet handed to its stream: told by the call
/// layer, which owns the queue.
pub(crate) trait Backlog: Send + Sync {
    fn backlog(&self) -> usize;
}

/// The server's budget and the ledgers of its connections.
pub(crate) struct SendBudget {
    limit: u64,
    per_connection: u64,
    ledgers: Mutex<Vec<Weak<Ledger>>>,
    over: AtomicBool,
    /// When the last sweep began, in ms since `born`.
    swept: AtomicU64,
    born: Instant,
}

/// One connection's streams, by stream id.
pub(crate) struct Ledger {
    streams: Mutex<HashMap<u32, Arc<Meter>>>,
    over: AtomicBool,
    gate: Arc<Gate>,
}

/// What a connection's transport holds unwritten, kept as it changes, and the writers
/// waiting for it to fall. A sweep finds a budget overrun only every `SWEEP`; streams
/// hand their transport data between two sweeps faster than cuts could follow (a few
/// hundred MiB a second on a client that reads nothing), so a stream hands more only
/// while its connection's transport holds less than half the connection's budget. The
/// rest of the budget is for what calls queue while they wait here, which their queues
/// bound (`Meter::gated` tells them to shrink it). The sum is corrected at each sweep, so
/// the races between a count and a reset cannot make it drift.
struct Gate {
    unwritten: AtomicU64,
    /// Past this, streams wait (half the connection's budget, at least `GATE_FLOOR`).
    limit: u64,
    /// A writer waits: whoever brings `unwritten` under `limit` wakes them.
    closed: AtomicBool,
    waiting: Mutex<Vec<Waker>>,
}

/// A stream's call is running.
const LIVE: u8 = 0;
/// The budget cut the stream: its transport dropped what it held.
const CUT: u8 = 1;
/// The stream's call ended: it holds what its transport has not written yet.
const ENDED: u8 = 2;

/// One stream's count: what was handed to its transport and what the transport wrote.
pub(crate) struct Meter {
    handed: AtomicU64,
    written: AtomicU64,
    /// `written` at the last sweep: how far the client read since.
    swept: AtomicU64,
    state: AtomicU8,
    /// The stream's writer, to wake when the stream is cut.
    waker: Mutex<Option<Waker>>,
    backlog: OnceLock<Weak<dyn Backlog>>,
    /// Its connection's.
    gate: Arc<Gate>,
}

impl SendBudget {
    pub(crate) fn new(limit: Option<usize>, per_connection: Option<usize>) -> Option<Arc<Self>> {
        if limit.is_none() && per_connection.is_none() {
            return None;
        }
        Some(Arc::new(SendBudget {
            limit: limit.map_or(u64::MAX, |n| n as u64),
            per_connection: per_connection.map_or(u64::MAX, |n| n as u64),
            ledgers: Mutex::new(Vec::new()),
            swept: AtomicU64::new(0),
            born: Instant::now(),
            over: AtomicBool::new(false),
        }))
    }

    /// The ledger of a new connection.
    pub(crate) fn ledger(&self) -> Arc<Ledger> {
        let l = Arc::new(Ledger {
            streams: Mutex::new(HashMap::new()),
            over: AtomicBool::new(false),
            gate: Arc::new(Gate {
                unwritten: AtomicU64::new(0),
                limit: (self.per_connection / 2).max(GATE_FLOOR),
                closed: AtomicBool::new(false),
                waiting: Mutex::new(Vec::new()),
            }),
        });
        lock(&self.ledgers).push(Arc::downgrade(&l));
        l
    }

    /// Whether a new stream on `conn` is refused: the server or the connection is over
    /// its budget, as a sweep found it (this one's, if the last was `SWEEP_ON_OPEN` ago).
    pub(crate) fn refuses(&self, conn: &Ledger) -> bool {
        self.is_over() || conn.over.load(Ordering::Relaxed)
    }

    /// Whether the server is over its budget, as a sweep found it (this one's, if the last
    /// was `SWEEP_ON_OPEN` ago): a call on a connection without a ledger of its own (a
    /// PingPong one, which answers a request at a time) is refused then.
    pub(crate) fn is_over(&self) -> bool {
        let now = self.born.elapsed().as_millis() as u64;
        let last = self.swept.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= SWEEP_ON_OPEN.as_millis() as u64;
        if due
            && self
                .swept
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep();
        }
        self.over.load(Ordering::Relaxed)
    }

    /// Sweeps every `SWEEP` for as long as the server lasts.
    pub(crate) async fn run(me: Weak<SendBudget>) {
        loop {
            tokio::time::sleep(SWEEP).await;
            let Some(budget) = me.upgrade() else { return };
            let now = budget.born.elapsed().as_millis() as u64;
            budget.swept.store(now, Ordering::Relaxed);
            budget.sweep();
        }
    }

    /// Adds up what every stream holds; over a budget, cuts the stalled streams holding
    /// the most and refuses new streams while cuts do not suffice.
    pub(crate) fn sweep(&self) {
        let ledgers: Vec<Arc<Ledger>> = {
            let mut all = lock(&self.ledgers);
            all.retain(|l| l.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        };
        let (mut total, mut stalled) = (0, Vec::new());
        for l in ledgers {
            let (mut held, mut mine) = l.survey();
            if held > self.per_connection {
                held -= cut(&mut mine, held - after_cuts(self.per_connection));
            }
            l.over.store(held > self.per_connection, Ordering::Relaxed);
            total += held;
            stalled.append(&mut mine);
        }
        if total > self.limit {
            total -= cut(&mut stalled, total - after_cuts(self.limit));
        }
        self.over.store(total > self.limit, Ordering::Relaxed);
    }
}

/// Cuts the streams holding the most until `need` bytes are freed: what they freed.
fn cut(stalled: &mut Vec<(u64, Arc<Meter>)>, need: u64) -> u64 {
    stalled.sort_unstable_by_key(|(held, _)| std::cmp::Reverse(*held));
    let mut freed = 0;
    let mut n = 0;
    for (held, m) in stalled.iter() {
        if freed >= need {
            break;
        }
        m.cut();
        freed += held;
        n += 1;
    }
    stalled.drain(..n);
    freed
}

impl Ledger {
    /// Counts a new stream.
    pub(crate) fn open(&self, id: u32) -> Arc<Meter> {
        let m = Arc::new(Meter {
            handed: AtomicU64::new(0),
            written: AtomicU64::new(0),
            swept: AtomicU64::new(0),
            state: AtomicU8::new(LIVE),
            waker: Mutex::new(None),
            backlog: OnceLock::new(),
            gate: self.gate.clone(),
        });
        lock(&self.streams).insert(id, m.clone());
        m
    }

    /// h2 wrote a DATA frame of `n` bytes on stream `id`.
    pub(crate) fn written(&self, id: u32, n: u64) {
        if let Some(m) = lock(&self.streams).get(&id) {
            m.wrote(n as usize);
        }
    }

    /// Stream `id` was reset: its transport holds nothing of it any more.
    pub(crate) fn reset(&self, id: u32) {
        let gone = lock(&self.streams).remove(&id);
        if let Some(m) = gone {
            self.gate.wrote(m.in_transport());
        }
    }

    /// What the connection's streams hold, and those of them stalled and holding enough to
    /// be cut. Forgets the streams that hold nothing and never will again: those cut, and
    /// those ended with all they were handed written.
    fn survey(&self) -> (u64, Vec<(u64, Arc<Meter>)>) {
        // A backlog is read under its queue's lock, which a thread writing to the
        // connection may hold while the connection's bytes come here: not under ours.
        let meters: Vec<Arc<Meter>> = {
            let mut streams = lock(&self.streams);
            streams.retain(|_, m| !m.is_spent());
            streams.values().cloned().collect()
        };
        let (mut total, mut stalled, mut unwritten) = (0, Vec::new(), 0);
        for m in &meters {
            unwritten += m.in_transport();
            let written = m.written.load(Ordering::Relaxed);
            let read = written.saturating_sub(m.swept.swap(written, Ordering::Relaxed));
            let held = m.held();
            total += held;
            let live = m.state.load(Ordering::Relaxed) == LIVE;
            if live && held >= CUT_FLOOR && read < STALL {
                stalled.push((held, m.clone()));
            }
        }
        self.gate.unwritten.store(unwritten, Ordering::Relaxed);
        self.gate.opened();
        (total, stalled)
    }
}

impl Meter {
    /// The call's queue, whose backlog the stream holds too.
    pub(crate) fn backlog_of(&self, b: Weak<dyn Backlog>) {
        let _ = self.backlog.set(b);
    }

    /// `n` more bytes handed to the transport.
    pub(crate) fn handed(&self, n: usize) {
        self.handed.fetch_add(n as u64, Ordering::Relaxed);
        self.gate.unwritten.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` more bytes written by the transport (or dropped by it with a stream it reset).
    pub(crate) fn wrote(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        self.gate.wrote(n as u64);
    }

    /// Whether the stream may hand its transport more; if not, the writer polling is
    /// woken when it may (see `Gate`).
    pub(crate) fn poll_gate(&self, cx: &mut Context<'_>) -> bool {
        self.gate.poll_open(cx)
    }

    /// Whether the stream's connection holds its transport's share of the budget: the
    /// stream's queue should hold no more than its least.
    pub(crate) fn gated(&self) -> bool {
        self.gate.is_closed()
    }

    /// What the transport was handed and has not written.
    fn in_transport(&self) -> u64 {
        self.handed
            .load(Ordering::Relaxed)
            .saturating_sub(self.written.load(Ordering::Relaxed))
    }

    /// Holds nothing and never will again: cut, or ended with everything written.
    fn is_spent(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            CUT => true,
            ENDED => self.in_transport() == 0,
            _ => false,
        }
    }

    /// What the stream holds: its call's backlog, and what its transport has not written.
    fn held(&self) -> u64 {
        let queued = self
            .backlog
            .get()
            .and_then(Weak::upgrade)
            .map_or(0, |b| b.backlog() as u64);
        self.in_transport() + queued
    }

    /// Whether the stream was cut; if not, the writer polling is woken when it is.
    /// `waiting`: the writer waits for the window, as a stream cut for its backlog does;
    /// else it watches for the peer's end between writes, when the stream can be cut only
    /// for what its transport holds, and a waker is kept only once that is enough (this is
    /// polled for every message received, and a lock there would cost every stream).
    /// Never reads the backlog: the writer may poll this under its queue's lock.
    pub(crate) fn poll_cut(&self, cx: &mut Context<'_>, waiting: bool) -> bool {
        match self.state.load(Ordering::SeqCst) {
            CUT => return true,
            ENDED => return false,
            _ => {}
        }
        if !waiting && self.in_transport() < CUT_FLOOR {
            return false;
        }
        // A look with the no-op waker (at a stream found broken) keeps the writer's.
        if !cx.waker().will_wake(Waker::noop()) {
            let mut w = lock(&self.waker);
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        self.state.load(Ordering::SeqCst) == CUT
    }

    fn cut(&self) {
        if self
            .state
            .compare_exchange(LIVE, CUT, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            if let Some(w) = lock(&self.waker).take() {
                w.wake();
            }
        }
    }

    /// The stream's call ended: it holds what its transport has not written, until that
    /// is written (or the stream is reset, or its connection ends). A cut stream stays cut.
    pub(crate) fn end(&self) {
        let _ = self
            .state
            .compare_exchange(LIVE, ENDED, Ordering::SeqCst, Ordering::SeqCst);
    }
}

impl Gate {
    fn is_closed(&self) -> bool {
        self.unwritten.load(Ordering::SeqCst) >= self.limit
    }

    fn poll_open(&self, cx: &mut Context<'_>) -> bool {
        if !self.is_closed() {
            return true;
        }
        let mut waiting = lock(&self.waiting);
        self.closed.store(true, Ordering::SeqCst);
        // Written in between: the writer of those bytes may have found no one waiting.
        if !self.is_closed() {
            return true;
        }
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        false
    }

    /// `n` bytes the transport held are gone (written, or dropped with their stream).
    fn wrote(&self, n: u64) {
        let _ = self
            .unwritten
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                Some(u.saturating_sub(n))
            });
        self.opened();
    }

    /// Wakes the waiting writers once the connection's transport is under its share.
    fn opened(&self) {
        if self.closed.load(Ordering::SeqCst) && !self.is_closed() {
            let waiting = {
                let mut w = lock(&self.waiting);
                self.closed.store(false, Ordering::SeqCst);
                std::mem::take(&mut *w)
            };
            waiting.into_iter().for_each(Waker::wake);
        }
    }
}

/// Locks, ignoring poisoning: the data behind these locks is consistent between
/// statements.
fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    /// A stream that was handed `handed` KiB, of which the client read `written` KiB.
    fn stream(l: &Ledger, id: u32, handed: u64, written: u64) -> Arc<Meter> {
        let m = l.open(id);
        m.handed((handed * K) as usize);
        l.written(id, written * K);
        m
    }

    #[test]
    fn over_a_connections_budget_the_stalled_streams_holding_most_are_cut() {
        let b = SendBudget::new(None, Some(100 * K as usize)).unwrap();
        let l = b.ledger();
        let (big, mid) = (stream(&l, 1, 80, 0), stream(&l, 3, 60, 0));
        // Read 10 KiB since the stream began: not stalled, and never cut.
        let reading = stream(&l, 5, 50, 10);
        // Too little to be worth a cut.
        let small = stream(&l, 7, 20, 0);
        b.sweep();
        // 80 + 60 + 40 + 20 = 200 KiB over 100: down to 87.5 takes the two largest.
        assert!(big.poll_cut(&mut cx(), true) && mid.poll_cut(&mut cx(), true));
        assert!(!reading.poll_cut(&mut cx(), true) && !small.poll_cut(&mut cx(), true));
        assert!(!b.refuses(&l), "the cuts brought it back under");
    }

    #[test]
    fn over_a_budget_that_cuts_cannot_meet_new_streams_are_refused() {
        let b = SendBudget::new(None, Some(100 * K as usize)).unwrap();
        let l = b.ledger();
        let reading: Vec<_> = (0..3).map(|i| stream(&l, 1 + 2 * i, 60, 10)).collect();
        b.sweep();
        assert!(b.refuses(&l));
        assert!(reading.iter().all(|m| !m.poll_cut(&mut cx(), true)));
        // The clients read on: back under, streams welcome again.
        for i in 0..3 {
            l.written(1 + 2 * i, 40 * K);
        }
        b.sweep();
        assert!(!b.refuses(&l));
    }

    #[test]
    fn the_servers_budget_spans_its_connections() {
        let b = SendBudget::new(Some(100 * K as usize), None).unwrap();
        let (a, c) = (b.ledger(), b.ledger());
        let on_a = stream(&a, 1, 70, 0);
        let on_c = stream(&c, 1, 50, 0);
        b.sweep();
        // 120 KiB over 100: the larger of the two, on another connection than the smaller.
        assert!(on_a.poll_cut(&mut cx(), true) && !on_c.poll_cut(&mut cx(), true));
        assert!(!b.refuses(&a) && !b.refuses(&c));
    }

    /// A call's queued bytes count as held, as what h2 holds does.
    #[test]
    fn a_calls_backlog_counts() {
        struct Queued(usize);
        impl Backlog for Queued {
            fn backlog(&self) -> usize {
                self.0
            }
        }
        let b = SendBudget::new(None, Some(100 * K as usize)).unwrap();
        let l = b.ledger();
        let q: Arc<dyn Backlog> = Arc::new(Queued(150 * K as usize));
        let m = stream(&l, 1, 0, 0);
        m.backlog_of(Arc::downgrade(&q));
        b.sweep();
        assert!(m.poll_cut(&mut cx(), true));
    }

    /// A waker that counts its wakes.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Streams hand their transport no more once it holds half the connection's budget,
    /// whatever a sweep last found: they wait until the client reads, or a reset drops
    /// what a stream held.
    #[test]
    fn a_connections_transport_holds_half_its_budget_between_sweeps() {
        let b = SendBudget::new(None, Some(200 * K as usize)).unwrap();
        let l = b.ledger();
        let (first, second) = (stream(&l, 1, 60, 0), l.open(3));
        let wakes = Arc::new(Wakes(Default::default()));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(second.poll_gate(&mut cx) && !second.gated());
        second.handed(40 * K as usize);
        // 100 KiB unwritten: the gate is shut, and no sweep has run.
        assert!(!second.poll_gate(&mut cx) && first.gated());
        l.written(1, 2 * K);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the write reopened it");
        assert!(second.poll_gate(&mut cx));
        second.handed(4 * K as usize);
        assert!(!first.poll_gate(&mut cx));
        // A reset stream's bytes are dropped with it.
        l.reset(3);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
        assert!(first.poll_gate(&mut cx));
        // A reset stream's writer may hand a last piece after the reset: counted, it
        // shuts the gate until a sweep counts afresh what the ledger's streams hold.
        second.handed(60 * K as usize);
        assert!(first.gated());
        b.sweep();
        assert!(!first.gated());
    }

    /// Regression: with a budget of one byte the gate's limit was 0, shut with nothing
    /// unwritten: a stream waited on it for ever, holding too little to be cut (Node's
    /// "the send budget cuts a grpc-js stream whose reader stopped reading" hung).
    #[test]
    fn under_a_tiny_budget_a_stream_may_still_hold_enough_to_be_cut() {
        let b = SendBudget::new(None, Some(1)).unwrap();
        let l = b.ledger();
        let m = l.open(1);
        assert!(m.poll_gate(&mut cx()));
        m.handed((CUT_FLOOR + K) as usize);
        assert!(m.poll_gate(&mut cx()), "shut before the stream can be cut");
        m.handed(GATE_FLOOR as usize);
        assert!(!m.poll_gate(&mut cx()));
        b.sweep();
        assert!(
            m.poll_cut(&mut cx(), true),
            "a stalled stream over the budget"
        );
    }

    /// An ended stream is forgotten with what it held, and what h2 writes for it later
    /// counts nowhere.
    #[test]
    fn an_ended_stream_holds_nothing() {
        let b = SendBudget::new(None, Some(100 * K as usize)).unwrap();
        let l = b.ledger();
        stream(&l, 1, 150, 0).end();
        l.written(1, 150 * K);
        let m = stream(&l, 3, 90, 0);
        b.sweep();
        assert!(!b.refuses(&l) && !m.poll_cut(&mut cx(), true));
    }
}
