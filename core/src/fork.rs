//! Values a forked child inherits from its parent: channels, servers and calls.
//!
//! After `fork()` the child holds a copy of its parent's memory but only the thread that
//! forked. A call made in the parent still points at the parent's runtime, whose threads
//! are not in the child, and at locks those threads may have held at the instant of the
//! fork: held forever in the child. Using such a call there, or only dropping it (a drop
//! cancels the call, which wakes its writer on that runtime), can block the child for
//! good. So a value made before a fork is neither used nor dropped in the child: using it
//! fails with `FAILED_PRECONDITION`, and dropping it leaks it. The child makes its own.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use crate::status::{Code, Status};

/// How many forks led to this process: bumped in each child, as it starts.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn forked() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// The count of forks that led to this process, with the counter armed: a value made with
/// one count belongs to another process if the count has changed since.
pub fn generation() -> u64 {
    static ARMED: Once = Once::new();
    ARMED.call_once(|| {
        // SAFETY: `forked` is a plain function that only touches an atomic, which is
        // async-signal-safe as a child handler must be; registration has no other effect.
        let r = unsafe { libc::pthread_atfork(None, None, Some(forked)) };
        assert_eq!(r, 0, "rillrpc: pthread_atfork failed");
    });
    FORKS.load(Ordering::Relaxed)
}

/// The error of a value used in a child forked after the value was made.
pub fn made_before_fork() -> Status {
    Status::new(
        Code::FailedPrecondition,
        "made before this process was forked from its parent: the threads that ran it are \
         not in this process; make a new one here",
    )
}

/// A value that belongs to the process that made it (see the module's text).
pub struct ProcessLocal<T> {
    value: ManuallyDrop<T>,
    made: u64,
}

impl<T> ProcessLocal<T> {
    pub fn new(value: T) -> ProcessLocal<T> {
        ProcessLocal {
            value: ManuallyDrop::new(value),
            made: generation(),
        }
    }

    /// The value, unless this process is a child forked after it was made.
    pub fn get(&self) -> Result<&T, Status> {
        if self.inherited() {
            return Err(made_before_fork());
        }
        Ok(&self.value)
    }

    /// Made in a process this one was forked from.
    pub fn inherited(&self) -> bool {
        FORKS.load(Ordering::Relaxed) != self.made
    }
}

impl<T> Drop for ProcessLocal<T> {
    fn drop(&mut self) {
        if !self.inherited() {
            // SAFETY: `value` is dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ProcessLocal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.get() {
            Ok(v) => v.fmt(f),
            Err(_) => f.write_str("<inherited from the parent process>"),
        }
    }
}
