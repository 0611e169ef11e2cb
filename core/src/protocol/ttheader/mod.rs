//! How a call looks on Kitex's TTHeader transports: on a TTHeader Streaming stream
//! (StreamX), its head, messages, end and cancellation as the transport's frames
//! ([`stream`]); as a Thrift PingPong request, one TMessage each way ([`pingpong`]). Both
//! carry metadata as string pairs ([`metainfo`]) and say errors with Thrift's
//! `TApplicationException` ([`exception`]).

mod exception;
pub(crate) mod metainfo;
pub(crate) mod pingpong;
pub(crate) mod stream;
