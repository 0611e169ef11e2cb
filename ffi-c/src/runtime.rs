//! The library's runtime and version.

use std::ffi::c_char;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;

use crate::result::{guard, rill_result, Fail, RILL_OK};

/// Sets the number of worker threads of the library's private runtime (default: the
/// number of CPUs, at most 4). Call it before any other function that does I/O.
/// RILL_ERR_INVALID_ARGUMENT for 0, RILL_ERR_WRONG_STATE once the runtime has started.
#[no_mangle]
pub extern "C" fn rill_runtime_configure(worker_threads: u32) -> rill_result {
    guard(|| {
        if worker_threads == 0 || worker_threads > 1024 {
            return Err(Fail::invalid(format!(
                "worker_threads must be 1..=1024, got {worker_threads}"
            )));
        }
        if !rillrpc::runtime::configure_worker_threads(worker_threads as usize) {
            return Err(Fail::state("the runtime has already started"));
        }
        Ok(RILL_OK)
    })
}

/// `rillrpc::fork::generation`: what the handle registry tells its parent's objects by.
pub(crate) fn forks() -> u64 {
    rillrpc::fork::generation()
}

/// Why a handle made before a fork fails in the child.
pub(crate) fn made_before_fork() -> String {
    rillrpc::fork::made_before_fork().message().to_owned()
}

/// The library version, e.g. "0.1.0". A static string: never free it.
#[no_mangle]
pub extern "C" fn rill_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Starts the core's private runtime (if it is not running in this process yet) with
/// SIGPIPE blocked in its threads. The engine writes sockets with `writev`, which raises
/// SIGPIPE when the peer has gone; a Rust program ignores that signal, a C program would
/// die of it. Blocking it in the runtime's threads only (they inherit the mask of the
/// thread that starts them) leaves the host program's own signal handling alone: the write
/// fails with EPIPE and the call ends as UNAVAILABLE.
pub(crate) fn start() {
    // `fork::generation` + 1 of the process the runtime started in (0: none yet).
    static STARTED_IN: AtomicU64 = AtomicU64::new(0);
    static LOCK: Mutex<()> = Mutex::new(());
    let this = forks() + 1;
    if STARTED_IN.load(SeqCst) == this {
        return;
    }
    let _g = crate::registry::lock(&LOCK);
    if STARTED_IN.load(SeqCst) == this {
        return;
    }
    // SAFETY: sigset_t values are plain data initialized by sigemptyset/pthread_sigmask;
    // pthread_sigmask changes the calling thread's mask only, and restores it below.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let _ = rillrpc::runtime::private_handle();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    STARTED_IN.store(this, SeqCst);
}
