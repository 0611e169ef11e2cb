//! Wake-ups. Every handle owns a `Notify`; the core's poll functions get a waker made from
//! it. A wake-up releases a thread blocked on the handle and, when the handle is attached
//! to a poller, queues the handle's tag there (once until the handle is polled again).

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Wake, Waker};
use std::time::Instant;

use crate::registry::lock;

#[derive(Default)]
pub(crate) struct Notify {
    woken: AtomicBool,
    waiters: AtomicUsize,
    m: Mutex<()>,
    cv: Condvar,
    queued: AtomicBool,
    poller: Mutex<Option<(Arc<Poller>, u64)>>,
}

impl Notify {
    pub fn new() -> (Arc<Notify>, Waker) {
        let n = Arc::new(Notify::default());
        let w = Waker::from(n.clone());
        (n, w)
    }

    /// Called before each poll of the core: wake-ups from now on count.
    pub fn begin(&self) {
        self.woken.store(false, SeqCst);
        self.queued.store(false, SeqCst);
    }

    /// Blocks until a wake-up since `begin`, or `deadline`; false on timeout.
    pub fn wait(&self, deadline: Option<Instant>) -> bool {
        self.waiters.fetch_add(1, SeqCst);
        let mut g = lock(&self.m);
        let ok = loop {
            if self.woken.load(SeqCst) {
                break true;
            }
            match deadline {
                None => g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break false;
                    }
                    g = self
                        .cv
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        };
        drop(g);
        self.waiters.fetch_sub(1, SeqCst);
        ok
    }

    /// Attaches (or with `None` detaches) a poller; the tag is queued at once so the owner
    /// tries the handle a first time.
    pub fn attach(&self, p: Option<(Arc<Poller>, u64)>) {
        let mut slot = lock(&self.poller);
        *slot = p;
        self.queued.store(false, SeqCst);
        if let Some((p, tag)) = &*slot {
            self.queued.store(true, SeqCst);
            p.push(*tag);
        }
    }
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, SeqCst);
        if self.waiters.load(SeqCst) > 0 {
            let _g = lock(&self.m);
            self.cv.notify_all();
        }
        // Once queued, later wake-ups before the next attempt have nothing to add.
        if !self.queued.swap(true, SeqCst) {
            if let Some((p, tag)) = &*lock(&self.poller) {
                p.push(*tag);
            }
        }
    }
}

/// A readiness queue for event loops: an eventfd that is readable while tags are queued.
///
/// The eventfd is written when the queue gets its first tag and reset when a drain empties
/// it, outside the queue's lock: a waker pushing a tag never waits for a syscall of the
/// event loop's thread, nor the other way round. Until someone asks for the fd it is left
/// alone: a program that waits with `wait` then pays a syscall only when it really sleeps.
pub(crate) struct Poller {
    fd: RawFd,
    queue: Mutex<Queue>,
    cv: Condvar,
    /// The eventfd is readable. Changed only under `fd_lock`, together with the fd.
    signalled: AtomicBool,
    fd_lock: Mutex<()>,
    /// The fd was handed out: it must follow the queue from now on.
    fd_used: AtomicBool,
}

#[derive(Default)]
struct Queue {
    tags: VecDeque<u64>,
    /// Threads in `wait`: only then does a push need the condvar.
    waiters: usize,
}

impl Poller {
    pub fn new() -> std::io::Result<Poller> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Poller {
            fd,
            queue: Mutex::new(Queue::default()),
            cv: Condvar::new(),
            signalled: AtomicBool::new(false),
            fd_lock: Mutex::new(()),
            fd_used: AtomicBool::new(false),
        })
    }

    /// The eventfd, readable from now on while tags are queued.
    pub fn fd(&self) -> RawFd {
        if !self.fd_used.swap(true, SeqCst) && !lock(&self.queue).tags.is_empty() {
            // Tags queued before: a push that comes now sees `fd_used` and signals too.
            self.signal();
        }
        self.fd
    }

    fn signal(&self) {
        let _g = lock(&self.fd_lock);
        if !self.signalled.load(SeqCst) {
            let one: u64 = 1;
            // SAFETY: `fd` is our eventfd, open while `self` lives; 8 bytes from a u64.
            // It can only fail when the counter would overflow, i.e. it is readable anyway.
            let _ = unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
            self.signalled.store(true, SeqCst);
        }
    }

    pub fn push(&self, tag: u64) {
        let wake = {
            let mut q = lock(&self.queue);
            q.tags.push_back(tag);
            q.waiters > 0
        };
        if wake {
            self.cv.notify_all();
        }
        // Already readable: whoever resets the fd looks at the queue afterwards and sees
        // this tag.
        if self.fd_used.load(SeqCst) && !self.signalled.load(SeqCst) {
            self.signal();
        }
    }

    /// Moves up to `out.len()` queued tags into `out`; the fd stops being readable once
    /// the queue is empty.
    pub fn drain(&self, out: &mut [u64]) -> usize {
        let (n, empty) = {
            let mut q = lock(&self.queue);
            let n = out.len().min(q.tags.len());
            for (slot, tag) in out.iter_mut().zip(q.tags.drain(..n)) {
                *slot = tag;
            }
            (n, q.tags.is_empty())
        };
        if empty && self.signalled.load(SeqCst) {
            {
                let _g = lock(&self.fd_lock);
                let mut v: u64 = 0;
                // SAFETY: our nonblocking eventfd; reading resets its counter (EAGAIN if 0).
                let _ = unsafe { libc::read(self.fd, (&mut v as *mut u64).cast(), 8) };
                self.signalled.store(false, SeqCst);
            }
            // A push that came meanwhile may have seen the fd still readable.
            if !lock(&self.queue).tags.is_empty() {
                self.signal();
            }
        }
        n
    }

    /// Like `drain`, waiting until a tag is queued or `deadline` passes.
    pub fn wait(&self, out: &mut [u64], deadline: Option<Instant>) -> usize {
        loop {
            let n = self.drain(out);
            if n > 0 || out.is_empty() {
                return n;
            }
            let mut q = lock(&self.queue);
            if !q.tags.is_empty() {
                continue;
            }
            q.waiters += 1;
            let mut q = match deadline {
                None => self.cv.wait(q).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        q.waiters -= 1;
                        return 0;
                    }
                    self.cv
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            q.waiters -= 1;
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // SAFETY: we own the fd and nobody uses it after the last reference goes.
        unsafe { libc::close(self.fd) };
    }
}
