//! What a client may choose for one call.

use std::time::Duration;

use super::idempotency::Idempotency;
use crate::metadata::Metadata;
use crate::protocol::envelope::Encoding;

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
    /// The method's idempotency: a unary call to a method without side effects goes as
    /// an HTTP GET when the channel speaks Connect with `ChannelOptions::http_get` on.
    pub idempotency: Idempotency,
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

    pub fn idempotency(mut self, level: Idempotency) -> CallOptions {
        self.idempotency = level;
        self
    }
}
