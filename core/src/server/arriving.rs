//! A call on its way to its handler.

use crate::call::ServerCall;

/// A call on its way to its handler, which gets it once a single-request call's request
/// is in, broken, or the call has ended (`ServerCall::poll_request_read`). Over HTTP/2 the
/// request mostly came with the call's headers; over HTTP/1.1 hyper reads a body only when
/// asked. Under `Server::serve` the handler's own task reads it first, as the handler would
/// have: no task and no wake-up more per call. (Read on hyper's connection task, the body
/// wakes that task from itself, and the handler then runs on another thread.)
pub(super) struct Arriving(pub(super) ServerCall);

impl Arriving {
    /// The call, if it has arrived already (its request came with its headers, or it
    /// needs none); else itself, to `arrive` later.
    pub(super) fn now(mut self) -> Now {
        let mut probe = std::task::Context::from_waker(std::task::Waker::noop());
        match self.0.poll_request_read(&mut probe).is_ready() {
            true => Now::Arrived(self.0),
            false => Now::Waiting(self),
        }
    }

    pub(super) async fn arrive(mut self) -> ServerCall {
        std::future::poll_fn(|cx| self.0.poll_request_read(cx)).await;
        self.0
    }
}

/// Where a call stands as it is handed over.
pub(super) enum Now {
    Arrived(ServerCall),
    Waiting(Arriving),
}
