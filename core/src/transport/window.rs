//! An HTTP/2 connection's receive window, grown with the streams open on it. A TTHeader
//! Streaming connection, which has no window of its own, stops reading at the same bound
//! (`transport::ttheader::conn`).
//!
//! h2 gives a connection's window back only as each stream's data is read: its
//! `release_capacity` releases a stream's window and the connection's together. A stream
//! whose reader has stopped (a client that opened a server stream and reads none of it
//! yet, a handler that reads its request stream later) keeps the connection window its
//! unread data took, and a few such streams spend all of it: with 1 MiB stream windows,
//! four unread streams stall every other call on a 4 MiB connection, unary calls
//! included (head-of-line blocking). grpc-go credits the connection as data arrives,
//! whatever the streams' readers do; h2 cannot. Instead the connection's target window
//! grows: a stream holds at most its own window unread, so a connection window one stream
//! window larger than what its open streams can hold is never spent by unread streams.
//!
//! What a peer sends and nobody reads is memory, so the growth stops at a cap per
//! connection (past it, unread streams stall the connection again, as they did before)
//! and, on a server, at a pool its connections share: a client cannot make the server
//! hold more than the pool plus each connection's configured window, however many
//! connections and streams it opens. A server's operator sets both
//! (`ServerOptions::connection_receive_budget`, `receive_budget`), a client's the cap
//! (`ChannelOptions::connection_receive_budget`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The most a connection's window grows to by default, on either side, unless its
/// configured window is larger: 63 unread streams of 1 MiB windows, and one more.
pub(crate) const DEFAULT_CONNECTION_RECEIVE_BUDGET: usize = 64 << 20;

/// RFC 9113 §6.9.1: "A sender MUST NOT allow a flow-control window to exceed 2^31-1
/// octets." A cap past it is no cap.
const LARGEST: u32 = (1 << 31) - 1;

/// A window cap of `budget` bytes (`None`: none).
pub(crate) fn cap(budget: Option<usize>) -> u32 {
    budget.map_or(LARGEST, |n| n.min(LARGEST as usize) as u32)
}

/// Growth a server's connections share (see the module doc).
pub(crate) struct Pool {
    left: AtomicU64,
}

impl Pool {
    /// A pool of `size` bytes (`None`: without end).
    pub(crate) fn new(size: Option<usize>) -> Arc<Pool> {
        Arc::new(Pool {
            left: AtomicU64::new(size.map_or(u64::MAX, |n| n as u64)),
        })
    }

    /// Takes up to `want` bytes: what it took.
    fn take(&self, want: u64) -> u64 {
        let mut left = self.left.load(Ordering::Relaxed);
        loop {
            let n = want.min(left);
            if n == 0 {
                return 0;
            }
            match self.left.compare_exchange_weak(
                left,
                left - n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return n,
                Err(now) => left = now,
            }
        }
    }

    fn give(&self, n: u64) {
        self.left.fetch_add(n, Ordering::Relaxed);
    }
}

/// A connection's receive window, kept by the task that drives the connection.
pub(crate) struct RecvWindow {
    open: Arc<AtomicUsize>,
    stream: u64,
    /// The configured connection window: never less.
    floor: u64,
    most: u64,
    /// The target last given to h2.
    set: u64,
    pool: Option<Arc<Pool>>,
}

/// A stream counted in its connection's window while it lives (its response or request
/// body, on the side that reads it).
pub(crate) struct Receiving(Option<Arc<AtomicUsize>>);

impl Drop for Receiving {
    fn drop(&mut self) {
        if let Some(open) = &self.0 {
            open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Receiving {
    fn on(open: &Arc<AtomicUsize>) -> Receiving {
        open.fetch_add(1, Ordering::Relaxed);
        Receiving(Some(open.clone()))
    }

    /// A stream whose connection keeps no count (tests that drive h2 themselves).
    #[cfg(test)]
    pub(crate) fn uncounted() -> Receiving {
        Receiving(None)
    }

    /// Moves the count out (from a response's head to its body).
    pub(crate) fn take(&mut self) -> Receiving {
        Receiving(self.0.take())
    }
}

impl RecvWindow {
    /// The window of a connection whose streams start with `stream` bytes of window and
    /// which itself starts with `connection`, growing to `most` at most (never less than
    /// `connection`); `pool`: where its growth comes from.
    pub(crate) fn new(
        stream: u32,
        connection: u32,
        most: u32,
        pool: Option<Arc<Pool>>,
    ) -> RecvWindow {
        RecvWindow {
            open: Arc::new(AtomicUsize::new(0)),
            stream: stream.into(),
            floor: connection.into(),
            most: most.max(connection).into(),
            set: connection.into(),
            pool,
        }
    }

    /// Where a stream the connection opens is counted from (by another thread).
    pub(crate) fn counter(&self) -> Counter {
        Counter(self.open.clone())
    }

    /// The target window now (the configured connection window until a stream grows it).
    pub(crate) fn target(&self) -> u32 {
        // `set` never passes `most`, a u32.
        self.set as u32
    }

    /// A stream's own window: what it may hold unread over HTTP/2.
    pub(crate) fn stream_window(&self) -> usize {
        // The configured stream window, a u32.
        self.stream as usize
    }

    /// Counts a stream the connection accepted.
    pub(crate) fn count(&self) -> Receiving {
        Receiving::on(&self.open)
    }

    /// The target window for the streams open now, when it should change: grown at once
    /// for a new stream (as far as the cap and the pool allow), shrunk only once a few
    /// streams' windows are spare, so that streams opening and ending one after another
    /// do not move it each time.
    pub(crate) fn retarget(&mut self) -> Option<u32> {
        let open = self.open.load(Ordering::Relaxed) as u64;
        let want = (self.stream * (open + 1)).clamp(self.floor, self.most);
        let set = if want > self.set {
            let more = want - self.set;
            let got = self.pool.as_ref().map_or(more, |p| p.take(more));
            self.set + got
        } else if want + 4 * self.stream < self.set {
            if let Some(p) = &self.pool {
                p.give(self.set - want);
            }
            want
        } else {
            self.set
        };
        if set == self.set {
            return None;
        }
        self.set = set;
        // `most` is a u32.
        Some(set as u32)
    }
}

impl Drop for RecvWindow {
    fn drop(&mut self) {
        if let Some(p) = &self.pool {
            p.give(self.set - self.floor);
        }
    }
}

/// Counts a connection's streams into its window; shared with whoever opens them.
#[derive(Clone)]
pub(crate) struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub(crate) fn count(&self) -> Receiving {
        Receiving::on(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u32 = 1 << 20;

    /// The default cap.
    fn most() -> u32 {
        cap(Some(DEFAULT_CONNECTION_RECEIVE_BUDGET))
    }

    #[test]
    fn the_window_stays_a_stream_window_ahead_of_the_open_streams() {
        let mut w = RecvWindow::new(M, 4 * M, most(), None);
        let c = w.counter();
        let mut open: Vec<Receiving> = (0..3).map(|_| c.count()).collect();
        // Three streams hold at most 3 MiB: the configured 4 MiB is enough.
        assert_eq!(w.retarget(), None);
        open.extend((0..5).map(|_| c.count()));
        assert_eq!(w.retarget(), Some(9 * M));
        // Streams ending give the growth back only once four windows are spare.
        open.truncate(5);
        assert_eq!(w.retarget(), None);
        open.truncate(2);
        assert_eq!(
            w.retarget(),
            Some(4 * M),
            "never under the configured window"
        );
    }

    #[test]
    fn growth_stops_at_the_cap() {
        let mut w = RecvWindow::new(M, 4 * M, most(), None);
        let c = w.counter();
        let _open: Vec<Receiving> = (0..1000).map(|_| c.count()).collect();
        assert_eq!(w.retarget(), Some(most()));
    }

    #[test]
    fn a_servers_connections_grow_out_of_one_pool_and_give_it_back() {
        let pool = Pool::new(Some(10 * M as usize));
        let mut a = RecvWindow::new(M, 4 * M, most(), Some(pool.clone()));
        let mut b = RecvWindow::new(M, 4 * M, most(), Some(pool.clone()));
        let (ca, cb) = (a.counter(), b.counter());
        let _on_a: Vec<Receiving> = (0..11).map(|_| ca.count()).collect();
        let _on_b: Vec<Receiving> = (0..11).map(|_| cb.count()).collect();
        assert_eq!(a.retarget(), Some(12 * M), "8 MiB of the pool");
        assert_eq!(b.retarget(), Some(6 * M), "what was left: 2 MiB");
        drop(a);
        // A's growth is back in the pool: B takes what it still wants.
        assert_eq!(b.retarget(), Some(12 * M));
    }

    #[test]
    fn a_cap_under_the_configured_window_leaves_it_as_it_is() {
        let mut w = RecvWindow::new(M, 4 * M, 0, None);
        let c = w.counter();
        let _open: Vec<Receiving> = (0..10).map(|_| c.count()).collect();
        assert_eq!(w.retarget(), None, "no growth: the configured 4 MiB stays");
    }

    #[test]
    fn no_cap_is_the_largest_window_http2_allows() {
        assert_eq!(cap(None), LARGEST);
        assert_eq!(cap(Some(usize::MAX)), LARGEST);
        assert_eq!(cap(Some(5 * M as usize)), 5 * M);
        let mut w = RecvWindow::new(M, 4 * M, cap(None), Some(Pool::new(None)));
        let c = w.counter();
        let _open: Vec<Receiving> = (0..4096).map(|_| c.count()).collect();
        assert_eq!(w.retarget(), Some(LARGEST));
    }
}
