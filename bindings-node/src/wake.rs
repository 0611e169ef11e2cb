//! Wake-ups from the core's threads to the JS thread. Every native object that can park owns
//! a `Slot`; its waker queues the slot's id and, at most once until JS drains the queue,
//! calls one process-wide threadsafe function. JS then re-polls every object that was woken.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

type Tsfn = ThreadsafeFunction<(), (), (), Status, false, true>;

struct Reactor {
    tsfn: Mutex<Option<Tsfn>>,
    ready: Mutex<Vec<u32>>,
    /// The threadsafe function was called and JS has not drained `ready` yet.
    scheduled: AtomicBool,
    /// Objects that want the process kept alive (calls in flight, listening servers).
    holds: AtomicUsize,
    next_id: AtomicU32,
}

static REACTOR: Reactor = Reactor {
    tsfn: Mutex::new(None),
    ready: Mutex::new(Vec::new()),
    scheduled: AtomicBool::new(false),
    holds: AtomicUsize::new(0),
    next_id: AtomicU32::new(1),
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers the JS function called after wake-ups; it calls `takeReady()`. Weak (unref'd):
/// an idle process exits; `hold`/`release` keep it alive while something is in flight.
#[napi]
pub fn init_reactor(callback: Function<(), ()>) -> Result<()> {
    let tsfn = callback
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    *lock(&REACTOR.tsfn) = Some(tsfn);
    Ok(())
}

/// The ids of the slots woken since the last call.
#[napi]
pub fn take_ready() -> Vec<u32> {
    REACTOR.scheduled.store(false, Ordering::SeqCst);
    std::mem::take(&mut *lock(&REACTOR.ready))
}

/// Keeps the process alive until the matching `release`.
#[napi]
#[allow(deprecated)]
pub fn hold(env: &Env) -> Result<()> {
    if REACTOR.holds.fetch_add(1, Ordering::SeqCst) == 0 {
        if let Some(t) = lock(&REACTOR.tsfn).as_mut() {
            t.refer(env)?;
        }
    }
    Ok(())
}

#[napi]
#[allow(deprecated)]
pub fn release(env: &Env) -> Result<()> {
    let prev = REACTOR
        .holds
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if prev == Ok(1) {
        if let Some(t) = lock(&REACTOR.tsfn).as_mut() {
            t.unref(env)?;
        }
    }
    Ok(())
}

/// The wake-up target of one native object.
pub(crate) struct Slot {
    id: u32,
    /// Set before every poll that may park; a wake-up is forwarded only while set, so a
    /// burst of wakes costs one JS callback.
    armed: AtomicBool,
}

impl Slot {
    pub(crate) fn new() -> Arc<Slot> {
        Arc::new(Slot {
            id: REACTOR.next_id.fetch_add(1, Ordering::Relaxed),
            armed: AtomicBool::new(false),
        })
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// A waker for one poll; arms the slot first so a wake racing the poll is not lost.
    pub(crate) fn waker(self: &Arc<Self>) -> Waker {
        self.armed.store(true, Ordering::SeqCst);
        Waker::from(self.clone())
    }
}

impl Wake for Slot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        lock(&REACTOR.ready).push(self.id);
        if !REACTOR.scheduled.swap(true, Ordering::SeqCst) {
            if let Some(t) = lock(&REACTOR.tsfn).as_ref() {
                t.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
    }
}

/// Runs `f` with a context whose waker belongs to `slot`.
pub(crate) fn with_cx<R>(slot: &Arc<Slot>, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
    let w = slot.waker();
    let mut cx = Context::from_waker(&w);
    f(&mut cx)
}
