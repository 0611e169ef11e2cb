//! How a call looks on a TTHeader Streaming stream (Kitex's StreamX): its head, messages,
//! end and cancellation as the transport's frames ([`stream`]), and Thrift's
//! `TApplicationException`, which says an error in them ([`exception`]).

mod exception;
pub(crate) mod stream;
