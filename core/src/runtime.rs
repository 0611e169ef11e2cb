//! The core's private tokio runtime: created on first use, created anew in a child process
//! after `fork()` (a forked child inherits the runtime's memory but none of its threads).

use once_cell::sync::OnceCell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::runtime::{Handle, Runtime};

struct Private {
    /// `fork::generation` when it started: another count is a forked child's.
    forks: u64,
    runtime: Runtime,
}

/// The running private runtime: a leaked `Private`, or null before the first one starts.
/// Read without a lock at every call from outside a runtime; a lock held by a parent's
/// thread at the instant of a `fork()` would stay held in the child.
static CURRENT: AtomicPtr<Private> = AtomicPtr::new(std::ptr::null_mut());
/// Taken only to start a runtime.
static STARTING: Mutex<()> = Mutex::new(());
static WORKERS: AtomicUsize = AtomicUsize::new(0);
static STARTED: OnceCell<()> = OnceCell::new();

/// Sets the number of worker threads of the private runtime. Only takes effect before the
/// runtime first starts; returns false afterwards.
pub fn configure_worker_threads(n: usize) -> bool {
    if STARTED.get().is_some() {
        return false;
    }
    WORKERS.store(n, Ordering::SeqCst);
    true
}

/// The handle tasks are spawned on: the caller's own runtime when called from inside one
/// (Rust users driving the core themselves), otherwise the private runtime.
pub fn handle() -> Handle {
    if let Ok(h) = Handle::try_current() {
        return h;
    }
    private_handle()
}

/// The private runtime's handle, whatever the caller's context.
pub fn private_handle() -> Handle {
    let forks = crate::fork::generation();
    // SAFETY: CURRENT is null or a `Private` leaked by `start`, never freed.
    match unsafe { CURRENT.load(Ordering::Acquire).as_ref() } {
        Some(p) if p.forks == forks => p.runtime.handle().clone(),
        _ => start(forks),
    }
}

#[cold]
fn start(forks: u64) -> Handle {
    let _starting = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: as in `private_handle`.
    if let Some(p) = unsafe { CURRENT.load(Ordering::Acquire).as_ref() } {
        if p.forks == forks {
            return p.runtime.handle().clone();
        }
    }
    // After fork the parent's runtime is unusable here: its threads do not exist in the
    // child. It is leaked rather than dropped, since dropping would try to join threads
    // that are not there.
    let _ = STARTED.set(());
    let workers = match WORKERS.load(Ordering::SeqCst) {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(4),
        n => n,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("rillrpc")
        .enable_all()
        .build()
        .expect("rillrpc: cannot start the tokio runtime");
    let p: &'static Private = Box::leak(Box::new(Private { forks, runtime }));
    CURRENT.store(std::ptr::from_ref(p).cast_mut(), Ordering::Release);
    p.runtime.handle().clone()
}

/// Runs a future to completion on the private runtime, blocking the calling thread. Must
/// not be called from inside an async context.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let h = private_handle();
    h.block_on(f)
}
