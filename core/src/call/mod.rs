//! The call machinery, the same for every protocol: a client call and a server call over
//! one bounded send queue, one receive side, one writer task, deadlines, cancellation,
//! batches and direct writes.
//!
//! A call speaks messages, metadata, a final `Status` and an abort reason of its own;
//! how they look on the wire is the `protocol`'s business, and a call never sees HTTP
//! headers, h2's types or a protocol's header names.

mod client;
mod deadline;
mod flow;
mod idempotency;
mod options;
mod queue;
mod receive;
mod send;
mod server;
mod shape;
mod writer;

pub use client::Call;
pub use idempotency::Idempotency;
pub use options::CallOptions;
pub use queue::{Batched, TrySendError};
pub use receive::{Inbox, Receive};
pub use send::{SendHalf, Sending};
pub use server::ServerCall;
pub use shape::Shape;

pub(crate) use client::Start;
pub(crate) use server::Accepted;
pub(crate) use writer::Open;
