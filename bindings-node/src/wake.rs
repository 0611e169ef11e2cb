//! Wake-ups from the core's threads to the JS thread. Every native object that can park owns
//! a `Notify`; its waker queues the slot's id and, at most once until JS drains the queue,
//! calls one process-wide threadsafe function. JS then re-polls every object that was woken.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, JsValue};
use napi_derive::napi;
use std::cell::Cell;
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

/// The reactor callback as the JS thread itself may call it, from a libuv callback of
/// ours (see `hosted`), without the threadsafe function's trip around the loop.
#[derive(Clone, Copy)]
struct Direct {
    env: sys::napi_env,
    func: sys::napi_ref,
    ctx: sys::napi_async_context,
}

thread_local! {
    static DIRECT: Cell<Option<Direct>> = const { Cell::new(None) };
}

/// Registers the JS function called after wake-ups; it calls `takeReady()`. Weak (unref'd):
/// an idle process exits; `hold`/`release` keep it alive while something is in flight.
#[napi]
pub fn init_reactor(env: &Env, callback: Function<(), ()>) -> Result<()> {
    let raw = callback.raw();
    let tsfn = callback
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    *lock(&REACTOR.tsfn) = Some(tsfn);
    let env = env.raw();
    let mut func = std::ptr::null_mut();
    let mut name = std::ptr::null_mut();
    let mut ctx = std::ptr::null_mut();
    // SAFETY: called on the JS thread with its env; `raw` is the live callback argument;
    // the out-pointers are valid. The reference and context live as long as the process's
    // reactor (never released: one per environment).
    let ok = unsafe {
        sys::napi_create_reference(env, raw, 1, &mut func) == sys::Status::napi_ok
            && sys::napi_create_string_utf8(env, c"rillrpc".as_ptr(), 7, &mut name)
                == sys::Status::napi_ok
            && sys::napi_async_init(env, std::ptr::null_mut(), name, &mut ctx)
                == sys::Status::napi_ok
    };
    if ok {
        DIRECT.with(|d| d.set(Some(Direct { env, func, ctx })));
    }
    Ok(())
}

/// Wake-ups held back while the JS thread polls something itself (see `hosted`): they are
/// delivered by one direct call of the reactor callback when it is done, instead of a trip
/// through the threadsafe function.
pub(crate) struct Batch {
    direct: Option<Direct>,
}

impl Batch {
    /// Starts holding back wake-ups, when this thread can call JS directly.
    pub(crate) fn begin() -> Batch {
        let direct = DIRECT.with(|d| d.get());
        if direct.is_some() {
            REACTOR.scheduled.store(true, Ordering::SeqCst);
        }
        Batch { direct }
    }

    /// Delivers what was woken meanwhile.
    pub(crate) fn finish(self) {
        let Some(d) = self.direct else { return };
        if settle() {
            return;
        }
        // SAFETY: on the JS thread that made `d`, from a libuv callback (no JS on the stack),
        // which is what napi_make_callback is for; every napi_value lives in the handle
        // scope opened here.
        let called = unsafe { call_direct(d) };
        if !called {
            // Could not enter JS: let the threadsafe function deliver them.
            REACTOR.scheduled.store(false, Ordering::SeqCst);
            schedule();
        }
    }
}

/// # Safety
/// On the JS thread of `d.env`, with no JS frame on the stack.
unsafe fn call_direct(d: Direct) -> bool {
    let mut scope = std::ptr::null_mut();
    if sys::napi_open_handle_scope(d.env, &mut scope) != sys::Status::napi_ok {
        return false;
    }
    let mut func = std::ptr::null_mut();
    let mut global = std::ptr::null_mut();
    let mut result = std::ptr::null_mut();
    let mut called = false;
    if sys::napi_get_reference_value(d.env, d.func, &mut func) == sys::Status::napi_ok
        && !func.is_null()
        && sys::napi_get_global(d.env, &mut global) == sys::Status::napi_ok
    {
        let st =
            sys::napi_make_callback(d.env, d.ctx, global, func, 0, std::ptr::null(), &mut result);
        called = true;
        if st == sys::Status::napi_pending_exception {
            // The reactor catches handlers' errors; anything else is uncaught, as it would
            // be from a socket's callback.
            let mut e = std::ptr::null_mut();
            if sys::napi_get_and_clear_last_exception(d.env, &mut e) == sys::Status::napi_ok {
                sys::napi_fatal_exception(d.env, e);
            }
        }
    }
    sys::napi_close_handle_scope(d.env, scope);
    called
}

/// Ends a drain of `ready`: clears `scheduled` if nothing is waiting and returns true;
/// false when something is (the caller drains it). A wake that pushed between the check and
/// the clear saw `scheduled` set and called nobody, hence the second look.
fn settle() -> bool {
    if !lock(&REACTOR.ready).is_empty() {
        return false;
    }
    REACTOR.scheduled.store(false, Ordering::SeqCst);
    lock(&REACTOR.ready).is_empty()
}

/// Asks the JS thread to drain `ready`, unless it was asked already.
fn schedule() {
    if !REACTOR.scheduled.swap(true, Ordering::SeqCst) {
        if let Some(t) = lock(&REACTOR.tsfn).as_ref() {
            t.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// The ids of the slots woken since the last call. Hosted connections among them are
/// polled here instead; what they wake (their calls) is in the same answer.
#[napi]
pub fn take_ready() -> Vec<u32> {
    let mut out = Vec::new();
    loop {
        // While this drains, wakes need not call JS again: this loop picks them up.
        REACTOR.scheduled.store(true, Ordering::SeqCst);
        let ids = std::mem::take(&mut *lock(&REACTOR.ready));
        if ids.is_empty() {
            if settle() {
                return out;
            }
            continue;
        }
        for id in ids {
            #[cfg(unix)]
            if crate::hosted::drive(id) {
                continue;
            }
            out.push(id);
        }
    }
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
pub(crate) struct Notify {
    id: u32,
    /// Set before every poll that may park; a wake-up is forwarded only while set, so a
    /// burst of wakes costs one JS callback.
    armed: AtomicBool,
}

impl Notify {
    pub(crate) fn new() -> Arc<Notify> {
        Arc::new(Notify {
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

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        lock(&REACTOR.ready).push(self.id);
        schedule();
    }
}

/// Runs `f` with a context whose waker belongs to `slot`.
pub(crate) fn with_cx<R>(slot: &Arc<Notify>, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
    let w = slot.waker();
    let mut cx = Context::from_waker(&w);
    f(&mut cx)
}
