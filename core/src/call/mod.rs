//! The call machinery, the same for every protocol: a client call and a server call over
//! one bounded send queue, one receive side, one writer task, deadlines, cancellation,
//! batches and direct writes.
//!
//! A call speaks messages, metadata, a final `Status` and an abort reason of its own;
//! how they look on the wire is the `protocol`'s business, and a call never sees HTTP
//! headers, h2's types or a protocol's header names.

mod client;
mod flow;
mod queue;
mod receive;
mod send;
mod server;
mod writer;

pub use client::Call;
pub use queue::{Batched, TrySendError};
pub use send::SendHalf;
pub use server::ServerCall;

pub(crate) use client::Start;
pub(crate) use server::Accepted;

use std::time::Duration;

use crate::metadata::Metadata;
use crate::protocol::envelope::Encoding;

/// How much a call may queue for sending before `send` waits.
pub(crate) const SEND_QUEUE_BYTES: usize = 256 * 1024;

/// The shape of a call: how many messages each side sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Shape {
    Unary = 0,
    ClientStreaming = 1,
    ServerStreaming = 2,
    Bidi = 3,
}

impl Shape {
    /// True when the client sends exactly one message.
    pub fn single_request(self) -> bool {
        matches!(self, Shape::Unary | Shape::ServerStreaming)
    }

    /// True when the server sends exactly one message.
    pub fn single_response(self) -> bool {
        matches!(self, Shape::Unary | Shape::ClientStreaming)
    }
}

/// The numbers every binding passes across its boundary: 0 unary, 1 client streaming,
/// 2 server streaming, 3 bidirectional.
impl TryFrom<u32> for Shape {
    type Error = crate::Error;

    fn try_from(n: u32) -> Result<Shape, crate::Error> {
        match n {
            0 => Ok(Shape::Unary),
            1 => Ok(Shape::ClientStreaming),
            2 => Ok(Shape::ServerStreaming),
            3 => Ok(Shape::Bidi),
            n => Err(crate::Error::invalid(format!(
                "call shape {n} is not one of 0 (unary), 1 (client streaming), 2 (server \
                 streaming), 3 (bidi)"
            ))),
        }
    }
}

/// Per-call options.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Sent as `grpc-timeout`; both sides end the call as DEADLINE_EXCEEDED when it passes.
    pub timeout: Option<Duration>,
    pub metadata: Metadata,
    /// Compress every request message with this encoding (gzip).
    pub compression: Option<Encoding>,
    /// Largest response message accepted (default 4 MiB).
    pub max_recv_message_size: Option<usize>,
    /// Largest request message sent (default unlimited).
    pub max_send_message_size: Option<usize>,
    /// `proto`, `thrift`, `json`, ...: the content type becomes `application/grpc+<subtype>`.
    pub content_subtype: Option<String>,
    /// Wait for the channel to connect instead of failing fast with UNAVAILABLE.
    pub wait_for_ready: bool,
}

impl CallOptions {
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    pub fn timeout(mut self, t: Duration) -> CallOptions {
        self.timeout = Some(t);
        self
    }

    pub fn metadata(mut self, md: Metadata) -> CallOptions {
        self.metadata = md;
        self
    }

    pub fn compression(mut self, enc: Encoding) -> CallOptions {
        self.compression = Some(enc);
        self
    }

    pub fn max_recv_message_size(mut self, n: usize) -> CallOptions {
        self.max_recv_message_size = Some(n);
        self
    }

    pub fn max_send_message_size(mut self, n: usize) -> CallOptions {
        self.max_send_message_size = Some(n);
        self
    }

    pub fn content_subtype(mut self, s: impl Into<String>) -> CallOptions {
        self.content_subtype = Some(s.into());
        self
    }

    pub fn wait_for_ready(mut self, yes: bool) -> CallOptions {
        self.wait_for_ready = yes;
        self
    }
}
