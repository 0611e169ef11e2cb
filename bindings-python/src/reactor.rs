//! Waking asyncio from the core's threads without taking the GIL there.
//!
//! A `Notify` is the waker the binding hands to the core's `poll_*` functions. When the
//! core wakes it (on a tokio thread), it moves the futures parked on it to their event
//! loop's `Reactor` queue and writes one byte to the reactor's socket, only if the queue
//! was idle. The loop watches that socket (`add_reader`) and resolves every queued future
//! in one `drain`, with the GIL it already holds: one wake-up per batch, no GIL contention
//! on tokio threads.

use pyo3::prelude::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Wake, Waker};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct ReactorCore {
    /// The core's runtime, looked up once per loop (at its first call, so that importing
    /// the package starts no threads): the lookup checks the process id, a system call, to
    /// notice a fork, and a loop does not outlive a fork.
    runtime: OnceLock<tokio::runtime::Handle>,
    rx: UnixStream,
    tx: UnixStream,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    futs: Vec<Py<PyAny>>,
    /// A byte is (or is about to be) in the socket: later pushes need not write one.
    armed: bool,
}

impl ReactorCore {
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        self.runtime.get_or_init(rillrpc::runtime::private_handle)
    }

    /// Queues a future to be resolved on its loop. Callable from any thread, GIL or not.
    pub fn push(&self, fut: Py<PyAny>) {
        let write = {
            let mut q = lock(&self.queue);
            q.futs.push(fut);
            !std::mem::replace(&mut q.armed, true)
        };
        if write {
            // A full socket buffer means a wake-up is already pending: nothing is lost.
            let _ = (&self.tx).write(&[1]);
        }
    }
}

/// One per asyncio event loop (see `rillrpc._loop`).
#[pyclass(module = "rillrpc._native", frozen)]
pub struct Reactor {
    pub core: Arc<ReactorCore>,
}

#[pymethods]
impl Reactor {
    #[new]
    fn new() -> PyResult<Reactor> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Reactor {
            core: Arc::new(ReactorCore {
                runtime: OnceLock::new(),
                rx,
                tx,
                queue: Mutex::new(Queue::default()),
            }),
        })
    }

    /// The descriptor the event loop watches for readability.
    fn fileno(&self) -> i32 {
        self.core.rx.as_raw_fd()
    }

    /// Resolves (with `None`) every future queued since the last drain. Run by the loop.
    fn drain(&self, py: Python<'_>) {
        let c = &self.core;
        // Read first, then disarm under the lock: a push that saw `armed` set before this
        // drain disarms is in the queue taken below, and any later push writes a new byte.
        let mut buf = [0u8; 256];
        while let Ok(n) = (&c.rx).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
        let futs = {
            let mut q = lock(&c.queue);
            q.armed = false;
            std::mem::take(&mut q.futs)
        };
        for f in futs {
            resolve(py, &f);
        }
    }
}

/// `fut.set_result(None)` unless the future is already done (cancelled, typically).
pub fn resolve(py: Python<'_>, fut: &Py<PyAny>) {
    let f = fut.bind(py);
    let done = f
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true);
    if !done {
        if let Err(e) = f.call_method1("set_result", (py.None(),)) {
            e.write_unraisable(py, Some(f));
        }
    }
}

/// The waker of one native call or server. Every wake bumps `epoch`, so a Python task that
/// polled (and saw Pending) at epoch `e` can tell whether a wake came before it parked.
pub struct Notify {
    epoch: AtomicU64,
    parked: Mutex<Vec<(Arc<ReactorCore>, Py<PyAny>)>>,
}

impl Notify {
    pub fn new() -> (Arc<Notify>, Waker) {
        let p = Arc::new(Notify {
            epoch: AtomicU64::new(0),
            parked: Mutex::new(Vec::new()),
        });
        let w = Waker::from(p.clone());
        (p, w)
    }

    /// Read before polling the core.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Parks `fut` until the next wake. False when a wake already happened since `epoch`
    /// was read (the caller polls again instead of waiting).
    pub fn park(&self, fut: Py<PyAny>, reactor: &Reactor, epoch: u64) -> bool {
        let mut parked = lock(&self.parked);
        if self.epoch.load(Ordering::Acquire) != epoch {
            return false;
        }
        parked.push((reactor.core.clone(), fut));
        true
    }
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let parked = {
            let mut p = lock(&self.parked);
            self.epoch.fetch_add(1, Ordering::AcqRel);
            std::mem::take(&mut *p)
        };
        for (r, f) in parked {
            r.push(f);
        }
    }
}
