//! Server connections hosted by a binding's event loop instead of the runtime.
//!
//! A server connection normally lives on a runtime thread: the reactor sees its input, a
//! worker reads it, and the binding's thread (JavaScript's, for Node) is woken to handle
//! the call. That is two thread wake-ups per request where a server written in the
//! binding's language has one, and on a loaded machine a wake-up costs more than the
//! request's work. A hosted connection is read by the binding's own thread: its socket is
//! registered with no reactor; the binding's loop watches the descriptor and polls the
//! connection when it is ready or woken, so a request is read, handled and answered on one
//! thread (answers leave through the driver's kicks, see `driver`).
//!
//! The contract with the host:
//! - watch (a duplicate of) `fd()` for what `interest()` returns, after every poll;
//! - call `poll` when a watched readiness arrives (after `readable`, if it was input), and
//!   when the waker given to the last `poll` is woken (timers, other threads' sends,
//!   shutdown);
//! - stop once `poll` is ready, and drop the connection (dropping it earlier closes it).

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

use crate::transport::driver::Driver;
use crate::transport::socket::{Readiness, READ, WRITE};

/// A server connection for a binding's event loop to drive (see the module docs and
/// `ServerBuilder::host_connections`).
pub struct HostedConnection {
    driver: Arc<Driver>,
    ready: Arc<Readiness>,
    fd: RawFd,
}

/// The readiness a hosted connection waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

impl HostedConnection {
    pub(crate) fn new(driver: Arc<Driver>, ready: Arc<Readiness>, fd: RawFd) -> HostedConnection {
        HostedConnection { driver, ready, fd }
    }

    /// The socket's descriptor, to watch only. It is closed when the connection ends, which
    /// may happen on another thread: watch a duplicate (`dup(2)`), so that the number cannot
    /// be reused under the watcher.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Reads what arrived, hands it to its calls, writes what is due. Ready once the
    /// connection has ended; otherwise `cx`'s waker is woken when it needs polling for any
    /// other reason than the readiness of its socket.
    pub fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.ready.set_hosting(true);
        let r = {
            // The connection spawns tasks and starts timers as it dispatches calls.
            let _rt = self.driver.enter();
            self.driver.poll_task(cx)
        };
        self.ready.set_hosting(false);
        r
    }

    /// The host saw the socket readable. Until it says so, the connection does not try to
    /// read once a read found the socket empty.
    pub fn readable(&self) {
        self.ready.set_readable();
    }

    /// What to watch the socket for until the next poll.
    pub fn interest(&self) -> Interest {
        let w = self.ready.sync();
        Interest {
            readable: w & READ != 0,
            writable: w & WRITE != 0,
        }
    }
}

/// The receiving end of the connections a server or channel hands out.
pub(crate) type Handout = Mutex<mpsc::UnboundedReceiver<HostedConnection>>;

/// The next connection handed out, for `Server/Channel::poll_connection`: `Ready(None)`
/// when the owner hosts nothing (`handout` is `None`) or hands out no more.
pub(crate) fn poll_handout(
    handout: Option<&Handout>,
    cx: &mut Context<'_>,
) -> Poll<Option<HostedConnection>> {
    let Some(rx) = handout else {
        return Poll::Ready(None);
    };
    match rx.try_lock() {
        Ok(mut rx) => rx.poll_recv(cx),
        Err(_) => {
            // Another thread is polling: look again soon rather than block.
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Drop for HostedConnection {
    fn drop(&mut self) {
        // The host owns the connection, as the task that polls an ordinary one does.
        self.driver.close();
    }
}

impl std::fmt::Debug for HostedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedConnection")
            .field("fd", &self.fd)
            .finish()
    }
}
