//! TTHeader: the framing of Kitex's transports outside HTTP. One packet layout
//! ([`packet`], sans I/O) carries both: Thrift PingPong, one TMessage per packet, and
//! TTHeader Streaming (Kitex's StreamX), the frames of many streams on one connection
//! ([`frame`]), each packet flagged streaming and naming its stream by its sequence id;
//! [`conn`] runs such a connection, [`pingpong`] a PingPong one (TTHeader, Framed or
//! Buffered). `interop/kitex/WIRE.md` shows both on the wire as Kitex v0.16.3 sends them.

pub(crate) mod buffered;
mod conn;
mod frame;
mod packet;
pub(crate) mod pingpong;
#[cfg(test)]
mod tests;

pub(crate) use conn::{run, Conn, Gone, Inbound, Stream, HEADER_ROOM};
pub(crate) use frame::{frame, key, FrameType};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use packet::decode;
#[cfg(test)]
pub(crate) use packet::Malformed;
pub(crate) use packet::{
    encode, first_payload, split_payload, Packet, ProtocolId, FLAG_STREAMING, MAGIC,
};
