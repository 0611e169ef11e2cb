//! TTHeader Streaming's frames: the kinds a packet's int key 27 names, the int keys every
//! frame carries, and a frame's packet as Kitex builds it (ttstream `frame.go`).

use bytes::Bytes;

use super::packet::{int_in, Malformed, Packet, ProtocolId, FLAG_STREAMING};

/// The int keys of the INFO_INTKEYVALUE block that the frames here carry (gopkg
/// `metakey.go` lists the rest).
pub(crate) mod key {
    pub(crate) const TO_METHOD: u16 = 9;
    /// PingPong's message type; read by the tests until PingPong is served.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) const MSG_TYPE: u16 = 22;
    pub(crate) const FRAME_TYPE: u16 = 27;
}

/// A TTHeader Streaming frame's kind: int key 27, one ASCII digit (ttstream `frame.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameType {
    /// Custom meta handlers' frames; Kitex's own handlers send none.
    Meta,
    /// A direction's head: metainfo and metadata in the string pairs, no payload.
    Header,
    /// One message: a bare Thrift Binary struct.
    Data,
    /// The end of a direction: the client's half-close, the server's end of the stream
    /// with its trailer pairs (a biz status, or an exception as its payload).
    Trailer,
    /// Cancellation: the stream ends at once, the reason an exception in the payload.
    Rst,
}

impl FrameType {
    pub(crate) fn digit(self) -> &'static [u8] {
        match self {
            FrameType::Meta => b"1",
            FrameType::Header => b"2",
            FrameType::Data => b"3",
            FrameType::Trailer => b"4",
            FrameType::Rst => b"5",
        }
    }

    /// The kind of streaming frame `p` is.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn of(p: &Packet) -> Result<FrameType, Malformed> {
        if !p.is_streaming() {
            return Err(Malformed::NotStreaming);
        }
        FrameType::named(p.int(key::FRAME_TYPE).map(|t| &t[..]))
    }

    /// The kind of streaming frame a packet of `flags` and info blocks `info` is.
    pub(crate) fn of_info(flags: u16, info: &[u8]) -> Result<FrameType, Malformed> {
        if flags & FLAG_STREAMING == 0 {
            return Err(Malformed::NotStreaming);
        }
        FrameType::named(int_in(info, key::FRAME_TYPE)?)
    }

    fn named(t: Option<&[u8]>) -> Result<FrameType, Malformed> {
        Ok(match t {
            Some(b"1") => FrameType::Meta,
            Some(b"2") => FrameType::Header,
            Some(b"3") => FrameType::Data,
            Some(b"4") => FrameType::Trailer,
            Some(b"5") => FrameType::Rst,
            _ => return Err(Malformed::FrameType(t.map(Bytes::copy_from_slice))),
        })
    }
}

/// A TTHeader Streaming frame of `kind` on stream `stream_id` of `method`, with no pairs
/// of its own yet: the two int keys Kitex puts on every frame, FrameType and ToMethod.
pub(crate) fn frame(kind: FrameType, stream_id: i32, method: Bytes, payload: Bytes) -> Packet {
    Packet {
        flags: FLAG_STREAMING,
        seq_id: stream_id,
        protocol: ProtocolId::ThriftStruct,
        ints: vec![
            (key::FRAME_TYPE, Bytes::from_static(kind.digit())),
            (key::TO_METHOD, method),
        ],
        payload,
        ..Packet::default()
    }
}
