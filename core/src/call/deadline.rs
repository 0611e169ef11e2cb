//! The deadlines of calls whose writer task has not started: one task watches them all.
//!
//! A call written at once from its caller's thread (a unary request, a server's single
//! answer) needs no writer task, but for its deadline. Spawning a task per call only to
//! watch a timer made every call with a deadline hand off to a runtime thread and back:
//! a third fewer calls a second than the same calls without one. A watch here costs an
//! entry in an ordered map instead, put in when the call starts and taken out when it is
//! dropped; the watcher wakes only for the earliest deadline, and a call whose deadline
//! passes is aborted as its writer would have aborted it (`writer::deadline_passed`).
//!
//! Each thread that starts calls has its own watcher for each runtime it starts them on,
//! spawned on that runtime (or on the private runtime, for calls made outside any): a
//! watcher never depends on a runtime other than the one its calls would have spawned
//! their writers on, even on a thread that drives two runtimes by turns.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::runtime::Id;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::queue::SendQueue;
use super::writer::{deadline_passed, Role};
use crate::runtime;

/// The deadlines one watcher keeps.
struct Deadlines {
    st: Mutex<Watched>,
    /// A deadline earlier than the one the watcher sleeps until, or the watcher gone.
    earlier: Notify,
    /// `fork::generation` when the watcher was spawned: a forked child has no watcher task.
    forks: u64,
}

#[derive(Default)]
struct Watched {
    calls: BTreeMap<(Instant, u64), (Weak<SendQueue>, Role)>,
    /// Tells apart the calls of one instant.
    next: u64,
    /// What the watcher sleeps until: `None` while it waits for a first deadline.
    armed: Option<Instant>,
    /// The watcher task runs (it is dropped with its runtime).
    running: bool,
}

/// A call's place among the watched deadlines: taken out when the call is dropped.
pub(crate) struct Watch {
    of: Arc<Deadlines>,
    key: (Instant, u64),
}

thread_local! {
    /// This thread's watchers, by the runtime their calls were made in (`None`: outside
    /// any, on the private runtime). Nearly always one.
    static LOCAL: RefCell<Vec<(Option<Id>, Arc<Deadlines>)>> = const { RefCell::new(Vec::new()) };
}

/// Watches `queue`'s deadline: once it passes, the call is aborted as its writer would
/// abort it for `role`.
pub(crate) fn watch(deadline: Instant, queue: &Arc<SendQueue>, role: Role) -> Watch {
    let inside = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
    let forks = crate::fork::generation();
    let of = LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        if let Some((_, d)) = l.iter().find(|(r, d)| *r == inside && d.forks == forks) {
            return d.clone();
        }
        // A watcher whose runtime is gone (or of the parent, before a fork) watches
        // nothing more: its place goes.
        l.retain(|(_, d)| d.forks == forks && d.lock().running);
        let d = Arc::new(Deadlines {
            st: Mutex::new(Watched::default()),
            earlier: Notify::new(),
            forks,
        });
        l.push((inside, d.clone()));
        d
    });
    let mut st = of.lock();
    let key = (deadline, st.next);
    st.next += 1;
    st.calls.insert(key, (Arc::downgrade(queue), role));
    let start = !std::mem::replace(&mut st.running, true);
    let earlier = st.armed.is_none_or(|a| deadline < a);
    drop(st);
    if start {
        runtime::handle().spawn(watcher(Running(of.clone())));
    } else if earlier {
        of.earlier.notify_one();
    }
    Watch { of, key }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.of.lock().calls.remove(&self.key);
    }
}

impl Deadlines {
    fn lock(&self) -> MutexGuard<'_, Watched> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Marks the watcher gone when its task is dropped (its runtime shut down, or never
/// polled it): the next watch spawns another.
struct Running(Arc<Deadlines>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.running = false;
        st.armed = None;
    }
}

async fn watcher(running: Running) {
    let of = &running.0;
    let mut due = Vec::new();
    loop {
        let next = {
            let mut st = of.lock();
            let now = Instant::now();
            while let Some(e) = st.calls.first_entry() {
                if e.key().0 > now {
                    break;
                }
                due.push(e.remove());
            }
            let next = st.calls.keys().next().map(|k| k.0);
            st.armed = next;
            next
        };
        // Aborted with the lock let go: an abort may write the call's end from here.
        for (queue, role) in due.drain(..) {
            if let Some(q) = queue.upgrade() {
                deadline_passed(&q, role);
            }
        }
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = of.earlier.notified() => {}
                }
            }
            None => of.earlier.notified().await,
        }
    }
}
