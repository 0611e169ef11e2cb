//! The connections still in their handshake (TLS, then the first bytes that name the
//! protocol), oldest first: the ones the server closes when it runs out of file
//! descriptors or connection slots. Such a peer has no call in flight, so closing it loses
//! no work; left alone, a flood of connections that never finish their handshake holds
//! every descriptor until each one's `handshake_timeout`, and no new client gets in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
pub(super) struct Handshakes {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// By age: ids only grow.
    open: BTreeMap<u64, Arc<Notify>>,
}

/// One connection's place among the handshakes; leaving it (drop) means the handshake is
/// over.
pub(super) struct Handshake {
    all: Arc<Handshakes>,
    id: u64,
    evicted: Arc<Notify>,
}

impl Handshakes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn enter(self: &Arc<Handshakes>) -> Handshake {
        let evicted = Arc::new(Notify::new());
        let mut st = self.lock();
        let id = st.next;
        st.next += 1;
        st.open.insert(id, evicted.clone());
        Handshake {
            all: self.clone(),
            id,
            evicted,
        }
    }

    /// Tells up to `n` of the oldest handshakes to end: how many were told.
    pub(super) fn evict_oldest(&self, n: usize) -> usize {
        let mut told = 0;
        let mut st = self.lock();
        while told < n {
            let Some((_, evicted)) = st.open.pop_first() else {
                break;
            };
            // A permit is stored if the connection is not waiting yet.
            evicted.notify_one();
            told += 1;
        }
        told
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().open.len()
    }
}

impl Handshake {
    /// Ready when the server needs this connection's place.
    pub(super) async fn evicted(&self) {
        self.evicted.notified().await
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.all.lock().open.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_oldest_handshakes_are_evicted_first_and_finished_ones_are_not() {
        let all = Arc::new(Handshakes::default());
        let (a, b, c) = (all.enter(), all.enter(), all.enter());
        drop(b);
        assert_eq!(all.len(), 2);
        assert_eq!(all.evict_oldest(1), 1);
        // `a` was told before it waited: the permit is kept for it.
        tokio::time::timeout(Duration::from_secs(5), a.evicted())
            .await
            .expect("the oldest is evicted");
        let waiting = tokio::time::timeout(Duration::from_millis(50), c.evicted()).await;
        assert!(waiting.is_err(), "a younger one stays");
        assert_eq!(all.evict_oldest(5), 1);
        tokio::time::timeout(Duration::from_secs(5), c.evicted())
            .await
            .expect("then the next");
        assert_eq!(all.evict_oldest(1), 0);
    }
}
