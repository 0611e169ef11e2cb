// The crate's front page is its README, as crates.io shows it; its example compiles as a
// doctest.
#![doc = include_str!("../README.md")]

mod call;
mod channel;
pub mod codec;
mod driver;
mod error;
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
pub use outbound::TrySendError;
pub use server::{Server, ServerBuilder, ServerOptions};
pub use server_call::ServerCall;
pub use status::{Code, Status};
pub use transport::{ClientTls, ServerTls};

/// The library version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
