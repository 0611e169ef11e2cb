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
//! connection's budget, and at least `GATE_FLOOR` (`Gate`); and while the server's
//! transports together hold half the server's budget, only while it holds less than its
//! share of that half (`Pool`). Over a budget, the
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

use tokio::sync::Notify;

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

/// How soon after a sweep a new stream brings the next: streams opened at full speed fill
/// in a few milliseconds, and a budget they would overrun between two sweeps of `SWEEP`
/// would hold little.
const SWEEP_ON_OPEN: Duration = Duration::from_millis(5);

/// A sweep walks every stream of the server: the next one waits at least this many times
/// as long as the last one took, so that sweeping takes at most this share of a thread
/// however many streams there are. (Sweeping on every new stream, 5 ms apart, a debug
/// build of the server with 8,000 streams spent all of a thread on it, a sweep taking 20
/// ms, and a normal call waited seconds behind it.)
const SWEEP_COST: u32 = 20;

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

/// A call queue as a sweep reads it (`Backlog::backlog`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Queued {
    /// Queued and not yet handed to the stream, the writer's batch included.
    pub(crate) bytes: usize,
    /// The call's handler waits for room in its queue: the stream goes on only as its
    /// client reads.
    pub(crate) sender_waits: bool,
}

/// What a stream's call has queued and not yet handed to its stream: told by the call
/// layer, which owns the queue.
pub(crate) trait Backlog: Send + Sync {
    fn backlog(&self) -> Queued;

    /// Nothing is queued or being written: a bound grown beyond the queue's least falls
    /// back to it. True if it had grown.
    fn fall_back(&self) -> bool;
}

/// The server's budget and the ledgers of its connections.
pub(crate) struct SendBudget {
    limit: u64,
    per_connection: u64,
    ledgers: Mutex<Vec<Weak<Ledger>>>,
    pool: Arc<Pool>,
    over: AtomicBool,
    /// A stream opened: the sweeper sweeps as soon as its rest allows.
    opened: Arc<Notify>,
}

/// One connection's streams, by stream id.
pub(crate) struct Ledger {
    streams: Mutex<HashMap<u32, Arc<Meter>>>,
    over: AtomicBool,
    gate: Arc<Gate>,
}

/// What a connection's transport holds unwritten (and the room its streams' queues took
/// beyond their least: `Meter::reserve`), kept as it changes, and the writers waiting for
/// it to fall. A sweep finds a budget overrun only every `SWEEP`; streams
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
    /// The writers waiting: whoever brings `unwritten` under `limit` (or the pool under
    /// its own) wakes them.
    waiting: Waiters<Waker>,
    pool: Arc<Pool>,
}

/// What all the server's transports hold unwritten (with the room their queues took).
/// Each connection's gate bounds its own, but a client with many connections would hold
/// half a connection's budget on each between two sweeps, however small the server's
/// budget (with the defaults, 32 connections would hold 1 GiB against the server's 512
/// MiB). So past half the server's budget, a connection holding more than its share of
/// that half waits too. Its share, not nothing: a gate shared by every connection would
/// let a client that reads nothing stall the others, while with shares a connection whose
/// client reads keeps its share flowing whatever the others hold.
struct Pool {
    unwritten: AtomicU64,
    /// Half the server's budget, at least `GATE_FLOOR`.
    limit: u64,
    /// The server's connections, as last counted: `limit` split between them is a share.
    connections: AtomicU64,
    /// The gates waiting on the pool: whoever brings `unwritten` under `limit` opens them.
    waiting: Waiters<Weak<Gate>>,
}

/// Those waiting for a count to fall under its limit. `closed` is set, under the list's
/// lock, by whoever finds the count at its limit and joins the list, and read without
/// the lock by whoever lowers the count, who takes the list only when it is set.
struct Waiters<T> {
    closed: AtomicBool,
    list: Mutex<Vec<T>>,
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
    /// The room the stream's call queue took beyond its least (`reserve`).
    reserved: AtomicU64,
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
        let limit = limit.map_or(u64::MAX, |n| n as u64);
        Some(Arc::new(SendBudget {
            limit,
            per_connection: per_connection.map_or(u64::MAX, |n| n as u64),
            ledgers: Mutex::new(Vec::new()),
            pool: Arc::new(Pool {
                unwritten: AtomicU64::new(0),
                limit: (limit / 2).max(GATE_FLOOR),
                connections: AtomicU64::new(0),
                waiting: Waiters::default(),
            }),
            over: AtomicBool::new(false),
            opened: Arc::new(Notify::new()),
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
                waiting: Waiters::default(),
                pool: self.pool.clone(),
            }),
        });
        lock(&self.ledgers).push(Arc::downgrade(&l));
        self.pool.connections.fetch_add(1, Ordering::Relaxed);
        l
    }

    /// Whether a new stream on `conn` is refused: the server or the connection is over
    /// its budget, as the last sweep found it.
    pub(crate) fn refuses(&self, conn: &Ledger) -> bool {
        self.is_over() || conn.over.load(Ordering::Relaxed)
    }

    /// Whether the server is over its budget, as the last sweep found it: a call on a
    /// connection without a ledger of its own (a PingPong one, which answers a request at
    /// a time) is refused then. Asked as a stream opens, it brings the next sweep forward.
    pub(crate) fn is_over(&self) -> bool {
        self.opened.notify_one();
        self.over.load(Ordering::Relaxed)
    }

    /// Sweeps for as long as the server lasts: every `SWEEP`, or `SWEEP_ON_OPEN` after
    /// the last once a stream opens, and never more often than `SWEEP_COST` allows. The
    /// sweeper is a task of its own, so that no connection waits for a sweep.
    pub(crate) async fn run(me: Weak<SendBudget>) {
        let Some(opened) = me.upgrade().map(|b| b.opened.clone()) else {
            return;
        };
        loop {
            let began = Instant::now();
            match me.upgrade() {
                Some(budget) => budget.sweep(),
                None => return,
            }
            tokio::time::sleep(SWEEP_ON_OPEN.max(began.elapsed() * SWEEP_COST)).await;
            if let Some(left) = SWEEP.checked_sub(began.elapsed()) {
                let _ = tokio::time::timeout(left, opened.notified()).await;
            }
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
        let (mut total, mut stalled, mut unwritten) = (0, Vec::new(), 0);
        let connections = ledgers.len() as u64;
        for l in ledgers {
            let (mut held, mut mine) = l.survey();
            unwritten += l.gate.unwritten.load(Ordering::Relaxed);
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
        self.pool.unwritten.store(unwritten, Ordering::Relaxed);
        self.pool.connections.store(connections, Ordering::Relaxed);
        self.pool.opened();
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
            reserved: AtomicU64::new(0),
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
            m.reclaim();
            let in_transport = m.in_transport();
            unwritten += in_transport + m.reserved.load(Ordering::Relaxed);
            let written = m.written.load(Ordering::Relaxed);
            let read = written.saturating_sub(m.swept.swap(written, Ordering::Relaxed));
            let queued = m.queued();
            let held = in_transport + queued.bytes as u64;
            total += held;
            let live = m.state.load(Ordering::Relaxed) == LIVE;
            // A stream whose handler waits for room holds what its queue's bound let in
            // before the window closed, which may be less than the floor: it is cut all
            // the same, or a connection over its budget holding only such streams would
            // wait for ever.
            let enough = held >= self.gate.cut_floor() || (queued.sender_waits && held > 0);
            if live && enough && read < STALL {
                stalled.push((held, m.clone()));
            }
        }
        self.gate.unwritten.store(unwritten, Ordering::Relaxed);
        self.gate.opened();
        (total, stalled)
    }
}

impl Drop for Ledger {
    /// The connection ended: its transport holds nothing any more.
    fn drop(&mut self) {
        let pool = &self.gate.pool;
        sub(
            &pool.unwritten,
            self.gate.unwritten.swap(0, Ordering::SeqCst),
        );
        sub(&pool.connections, 1);
        pool.opened();
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
        self.gate.took(n as u64);
    }

    /// `n` more bytes written by the transport (or dropped by it with a stream it reset).
    pub(crate) fn wrote(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        self.gate.wrote(n as u64);
    }

    /// Room for the stream's call queue to hold `n` bytes more than its least, out of its
    /// connection's count: given while the gate is open. A queue grows its bound while its
    /// stream flows, to 16 times its least; thousands of streams that flowed and then
    /// stopped (their clients stopped reading) would otherwise hold that many times more
    /// between two sweeps than the gate lets their transport hold.
    pub(crate) fn reserve(&self, n: usize) -> bool {
        if self.gate.is_closed() || self.state.load(Ordering::SeqCst) != LIVE {
            return false;
        }
        self.reserved.fetch_add(n as u64, Ordering::SeqCst);
        self.gate.took(n as u64);
        true
    }

    /// The stream's call queue is back to its least (or gone): its room goes back.
    pub(crate) fn release(&self) {
        let n = self.reserved.swap(0, Ordering::SeqCst);
        if n > 0 {
            self.gate.wrote(n);
        }
    }

    /// A sum found the stream quiet (nothing queued, nothing in its transport, nothing sent
    /// since the last sum that looked): the room its queue took goes back. Returned only
    /// at a throttle or the stream's end, it stayed with streams that flowed and then went
    /// quiet for as long as they lived, and enough of them kept their connection's gate
    /// shut for streams with something to send. (A writer giving it back whenever it
    /// caught up with its handler threw away the growth that streams of 1 KiB messages
    /// live on: 0.38 of their speed.)
    fn reclaim(&self) {
        if self.reserved.load(Ordering::Relaxed) == 0 || self.in_transport() > 0 {
            return;
        }
        let queue = self.backlog.get().and_then(Weak::upgrade);
        if queue.is_some_and(|q| q.fall_back()) {
            self.release();
        }
    }

    /// Whether the stream may hand its transport more; if not, the writer polling is
    /// woken when it may (see `Gate`).
    pub(crate) fn poll_gate(&self, cx: &mut Context<'_>) -> bool {
        Gate::poll_open(&self.gate, cx)
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

    /// What its call's queue holds.
    fn queued(&self) -> Queued {
        self.backlog
            .get()
            .and_then(Weak::upgrade)
            .map_or(Queued::default(), |b| b.backlog())
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
        if !waiting && self.in_transport() < self.gate.cut_floor() {
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
            self.release();
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
        self.release();
    }
}

impl Gate {
    /// What a stream must hold to be cut: `CUT_FLOOR`, or under a budget so small that its
    /// gate's limit is less than four times that, a quarter of the limit. A stream waiting
    /// for its client's window holds its queue's least (2 KiB) and nothing in the
    /// transport, and the room its queue took counts in the gate: under a connection budget
    /// of one byte (a gate of `GATE_FLOOR`) such a stream held less than `CUT_FLOOR`, and
    /// was never cut.
    fn cut_floor(&self) -> u64 {
        CUT_FLOOR.min(self.limit / 4)
    }

    fn is_closed(&self) -> bool {
        let mine = self.unwritten.load(Ordering::SeqCst);
        mine >= self.limit || (mine >= self.pool.share() && self.pool.is_closed())
    }

    fn poll_open(me: &Arc<Gate>, cx: &mut Context<'_>) -> bool {
        if !me.is_closed() {
            return true;
        }
        let mut waiting = me.waiting.close();
        if me.pool.is_closed() {
            me.pool.wait(me);
        }
        // Written in between: the writer of those bytes may have found no one waiting.
        if !me.is_closed() {
            return true;
        }
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        false
    }

    /// The connection's transport holds `n` more bytes (or its queues took that much room).
    fn took(&self, n: u64) {
        self.unwritten.fetch_add(n, Ordering::Relaxed);
        self.pool.unwritten.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` bytes the transport held are gone (written, or dropped with their stream).
    fn wrote(&self, n: u64) {
        let before = sub(&self.unwritten, n);
        // What a sweep's recount had already taken off is not the pool's to lose again.
        sub(&self.pool.unwritten, before.min(n));
        self.opened();
        self.pool.opened();
    }

    /// Wakes the waiting writers once the connection's transport is under its share.
    fn opened(&self) {
        let waiting = self.waiting.open_if(|| !self.is_closed());
        waiting.into_iter().for_each(Waker::wake);
    }
}

impl Pool {
    /// What a connection's transport may hold while the pool is closed.
    fn share(&self) -> u64 {
        (self.limit / self.connections.load(Ordering::Relaxed).max(1)).max(GATE_FLOOR)
    }

    fn is_closed(&self) -> bool {
        self.unwritten.load(Ordering::SeqCst) >= self.limit
    }

    /// `gate` waits for the pool to fall under its limit.
    fn wait(&self, gate: &Arc<Gate>) {
        let mut waiting = self.waiting.close();
        // Connections that ended while the pool stayed closed leave no trace.
        waiting.retain(|g| g.strong_count() > 0);
        if !waiting
            .iter()
            .any(|g| std::ptr::eq(g.as_ptr(), Arc::as_ptr(gate)))
        {
            waiting.push(Arc::downgrade(gate));
        }
    }

    /// Opens the gates waiting on the pool once it is under its limit: each wakes its
    /// writers if its own count lets them go.
    fn opened(&self) {
        let waiting = self.waiting.open_if(|| !self.is_closed());
        waiting
            .iter()
            .filter_map(Weak::upgrade)
            .for_each(|g| g.opened());
    }
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Waiters {
            closed: AtomicBool::new(false),
            list: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Waiters<T> {
    /// Marks the count closed: the list, to join under its lock.
    fn close(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        let list = lock(&self.list);
        self.closed.store(true, Ordering::SeqCst);
        list
    }

    /// Everyone waiting, if the count was closed and `open` says it no longer is.
    fn open_if(&self, open: impl FnOnce() -> bool) -> Vec<T> {
        if !self.closed.load(Ordering::SeqCst) || !open() {
            return Vec::new();
        }
        let mut list = lock(&self.list);
        self.closed.store(false, Ordering::SeqCst);
        std::mem::take(&mut *list)
    }
}

/// Takes `n` from `count`, stopping at zero: what it held before.
fn sub(count: &AtomicU64, n: u64) -> u64 {
    count
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
            Some(u.saturating_sub(n))
        })
        .unwrap_or_else(|u| u)
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

    /// A call queue whose bound has not grown.
    impl Backlog for Queued {
        fn backlog(&self) -> Queued {
            *self
        }

        fn fall_back(&self) -> bool {
            false
        }
    }

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

    /// Whether a sweep under a connection budget of `budget` bytes cuts a stalled stream
    /// that holds nothing in its transport and `backlog` in its call's queue.
    fn cut_for_its_backlog(budget: u64, backlog: Queued) -> bool {
        let b = SendBudget::new(None, Some(budget as usize)).unwrap();
        let l = b.ledger();
        let q: Arc<dyn Backlog> = Arc::new(backlog);
        let m = stream(&l, 1, 0, 0);
        m.backlog_of(Arc::downgrade(&q));
        b.sweep();
        m.poll_cut(&mut cx(), true)
    }

    /// A call's queued bytes count as held, as what h2 holds does.
    #[test]
    fn a_calls_backlog_counts() {
        let backlog = Queued {
            bytes: 150 * K as usize,
            sender_waits: false,
        };
        assert!(cut_for_its_backlog(100 * K, backlog));
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

    /// Regression: under a connection budget of one byte, a stream waiting for its
    /// client's window held its queue's least (16 KiB) and nothing in its transport, less
    /// than `CUT_FLOOR`, and was never cut (Node's budget test hung).
    #[test]
    fn under_a_tiny_budget_a_stream_holding_its_queues_least_is_cut() {
        let backlog = Queued {
            bytes: 16 * K as usize,
            sender_waits: false,
        };
        assert!(cut_for_its_backlog(1, backlog));
    }

    /// Regression: a stream whose client's window closed right after its queue's bound
    /// fell back to its least held what the bound let in before, here 12 KiB of it: its
    /// handler waited for room (it is woken only once half the bound is free) and its
    /// writer for the window, and as it held less than the cut floor it was never cut
    /// (Node's "the send budget cuts a grpc-js stream whose reader stopped reading" hung
    /// in 7 of 24 runs of its file, four at a time). A stream whose handler waits is cut
    /// whatever it holds; one holding as little whose handler does not wait is not.
    #[test]
    fn a_stalled_stream_whose_handler_waits_is_cut_whatever_it_holds() {
        let waits = Queued {
            bytes: 12 * K as usize,
            sender_waits: true,
        };
        assert!(cut_for_its_backlog(1, waits));
        let idle = Queued {
            sender_waits: false,
            ..waits
        };
        assert!(!cut_for_its_backlog(1, idle));
    }

    /// Past half the server's budget, a connection holding more than its share of that
    /// half waits, whatever its own budget; one holding less goes on.
    #[test]
    fn past_half_the_servers_budget_a_connection_over_its_share_waits() {
        let b = SendBudget::new(Some(1024 * K as usize), Some(1024 * K as usize)).unwrap();
        let (busy, other) = (b.ledger(), b.ledger());
        // Two connections: a share is 256 KiB of the pool's 512.
        let filling = stream(&busy, 1, 400, 0);
        let wakes = Arc::new(Wakes(Default::default()));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(
            filling.poll_gate(&mut cx),
            "under its own limit, and the pool open"
        );
        let reading = stream(&other, 1, 120, 0);
        // 520 KiB: the pool is closed; 400 is over a share, 120 is not.
        assert!(!filling.poll_gate(&mut cx) && filling.gated());
        assert!(reading.poll_gate(&mut cx) && !reading.gated());
        // Written on the other connection: the pool opens, and so does the first's gate.
        other.written(1, 20 * K);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(filling.poll_gate(&mut cx));
    }

    /// A stream's queue gets room beyond its least only while its gate is open; the room
    /// counts as its transport's bytes do, and comes back when the queue gives it up or
    /// the stream ends.
    #[test]
    fn a_queues_room_counts_in_its_connections_gate() {
        let b = SendBudget::new(None, Some(200 * K as usize)).unwrap();
        let l = b.ledger();
        let (a, c) = (l.open(1), l.open(3));
        assert!(a.reserve(64 * K as usize) && c.reserve(32 * K as usize));
        // 96 KiB of the gate's 100: one more and it is shut, for room and for writes.
        assert!(a.reserve(8 * K as usize));
        assert!(!c.reserve(K as usize) && !c.poll_gate(&mut cx()));
        a.release();
        assert!(c.poll_gate(&mut cx()) && c.reserve(K as usize));
        c.end();
        assert!(!c.reserve(K as usize), "an ended stream takes no room");
        b.sweep();
        assert_eq!(l.gate.unwritten.load(Ordering::SeqCst), 0, "nothing held");
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

    /// A stream whose queue took room and then went quiet gives the room back at the next
    /// sum; one with bytes still in its transport keeps it.
    #[test]
    fn a_quiet_streams_room_goes_back_at_a_sum() {
        struct Quiet(AtomicBool);
        impl Backlog for Quiet {
            fn backlog(&self) -> Queued {
                Queued::default()
            }

            fn fall_back(&self) -> bool {
                !self.0.swap(true, Ordering::SeqCst)
            }
        }
        let b = SendBudget::new(None, Some(200 * K as usize)).unwrap();
        let l = b.ledger();
        let q: Arc<dyn Backlog> = Arc::new(Quiet(AtomicBool::new(false)));
        let (quiet, busy) = (l.open(1), l.open(3));
        quiet.backlog_of(Arc::downgrade(&q));
        busy.backlog_of(Arc::downgrade(&q));
        assert!(quiet.reserve(90 * K as usize) && busy.reserve(10 * K as usize));
        busy.handed(K as usize);
        assert!(quiet.gated(), "101 KiB of the gate's 100");
        b.sweep();
        assert_eq!(quiet.reserved.load(Ordering::SeqCst), 0);
        assert_eq!(busy.reserved.load(Ordering::SeqCst), 10 * K);
        assert!(!quiet.gated());
        assert_eq!(l.gate.unwritten.load(Ordering::SeqCst), 11 * K);
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
