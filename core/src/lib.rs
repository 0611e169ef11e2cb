// The crate's front page is its README, as crates.io shows it; its example compiles as a
// doctest.
//
// Inside, the layers point down only (tests/layers.rs checks it): `client` and `server` on
// top, the protocol-free call machinery (`call`) beneath them, how a call looks on the wire
// (`protocol`) beneath that, and connections and streams (`transport`) at the bottom.
// `status`, `metadata`, `error` and `runtime` are the vocabulary every layer shares.
#![doc = include_str!("../README.md")]

mod biz;
mod call;
mod client;
mod error;
pub mod fork;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod metadata;
mod named;
mod protocol;
pub mod runtime;
mod server;
pub mod status;
mod transport;

pub use biz::BizStatus;
pub use bytes::Bytes;
pub use call::{
    Batched, Call, CallOptions, Idempotency, Inbox, Receive, SendHalf, Sending, ServerCall, Shape,
    TrySendError,
};
pub use client::{Channel, ChannelOptions, HttpVersion};
pub use error::{Error, ErrorKind};
pub use metadata::{InvalidMetadata, Metadata, MetadataValue};
pub use named::{by_name, Named};
pub use protocol::cors::Cors;
pub use protocol::envelope::{Encoding, DEFAULT_MAX_RECV_MESSAGE};
pub use protocol::Protocol;
pub use server::{Server, ServerBuilder, ServerOptions};
pub use status::{Code, Status};
pub use transport::{ClientTls, HostedConnection, Interest, ServerTls};

/// The library version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
