//! rillrpc: one streaming-RPC engine for every language.
//!
//! The core speaks gRPC over HTTP/2 (tokio + h2) as client and server, in all four call
//! shapes, over one call API: `open`, `send`, `recv`, `close_send`, `finish`, `cancel` on the
//! client, a pull-model `accept` on the server. Bindings (C, Python, Node, mobile) are thin
//! layers over these types.

mod call;
mod channel;
pub mod codec;
mod driver;
mod error;
mod goaway;
mod hosted;
mod inbound;
pub mod metadata;
mod outbound;
pub mod runtime;
mod server;
mod server_call;
mod socket;
pub mod status;
mod timeout;
mod transport;

pub use bytes::Bytes;
pub use call::{Call, CallOptions, Shape};
pub use channel::{Channel, ChannelOptions};
pub use codec::Encoding;
pub use error::{Error, ErrorKind};
pub use hosted::{HostedConnection, Interest};
pub use metadata::{InvalidMetadata, Metadata, MetadataValue};
pub use outbound::{Batched, TrySendError};
pub use server::{Server, ServerBuilder, ServerOptions};
pub use server_call::ServerCall;
pub use status::{Code, Status};
pub use transport::{ClientTls, ServerTls};

/// The library version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
