//! The Node binding of rillrpc. Rust exposes pull methods (`pollRecvBatch`, `trySend`, `pollSend`,
//! `pollAccept`) that JavaScript calls on its own thread; the Node streams, promises and
//! handlers are built in JavaScript (`lib/`) on top of them.
//!
//! Nothing here waits: a poll that finds nothing ready parks a waker, and the waker asks the
//! JS thread (one threadsafe function for the whole process) to poll again. One wake-up then
//! delivers every message that is ready.

#![deny(clippy::all)]
// Under `cargo test` the #[napi] exports are not registered, so they look unused.
#![cfg_attr(test, allow(dead_code))]

mod call;
#[cfg(unix)]
mod hosted;
mod meta;
mod send;
mod server;
mod wake;

use napi_derive::napi;

/// The version of the rillrpc core.
#[napi]
pub fn version() -> String {
    rillrpc::VERSION.to_string()
}

/// Sets the number of threads of the core's runtime; only before the first channel or
/// server. Returns false once the runtime has started.
#[napi]
pub fn configure_worker_threads(n: u32) -> bool {
    rillrpc::runtime::configure_worker_threads(n.max(1) as usize)
}
