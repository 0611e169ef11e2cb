//! PingPong connections (Kitex's default, non-streaming transport): one Thrift message per
//! request, in a TTHeader packet without the streaming flag (`TTHeader`, and with a Framed
//! length inside it: `TTHeaderFramed`), in a bare Framed frame, or bare (Buffered: Kitex's
//! `PurePayload`, Apache Thrift's `TBufferedTransport`), each answered in the framing it
//! came in (WIRE.md §1). Kitex's Protobuf messages (`KitexProtobuf`, what a Kitex client of
//! a protobuf service sends by default, WIRE.md §1.6) come in a TTHeader packet, always
//! with a Framed length inside, or Framed alone; never Buffered. A Kitex client sends one
//! request at a time on a connection; requests are served in turn, so answers keep their
//! order for a client that sends more.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use super::buffered::{self, Walk, VERSION_1};
use super::frame::key;
use super::packet::{self, Malformed, Packet, ProtocolId, MAGIC};

/// The first two bytes of a KitexProtobuf message (Kitex's `ProtobufV1Magic`, 0x90010000,
/// whose low half is the message type), where a Thrift one has `80 01`.
pub(crate) const KITEX_PROTOBUF: [u8; 2] = [0x90, 0x01];

/// How a request came, and so how its answer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// A TTHeader packet of protocol id `protocol` (answered with the same); `framed`: its
    /// payload is a Framed message (a u32 length first).
    Ttheader { framed: bool, protocol: ProtocolId },
    /// A u32 length, then the message (Thrift or KitexProtobuf, as its first bytes say).
    Framed,
    /// The message alone: its end is found by walking it (`buffered`).
    Buffered,
}

/// One request: its framing, its TTHeader packet (metainfo, service name; empty when
/// Framed) and the Thrift message it carries (a TMessage and its args struct).
pub(crate) struct Request {
    pub(crate) framing: Framing,
    pub(crate) packet: Packet,
    pub(crate) message: Bytes,
}

/// One answer: the Thrift message, and for TTHeader the string and int pairs of its packet.
#[derive(Default)]
pub(crate) struct Reply {
    pub(crate) strs: Vec<(Bytes, Bytes)>,
    pub(crate) ints: Vec<(u16, Bytes)>,
    pub(crate) message: Bytes,
}

/// Serves requests until the client closes the connection, it breaks, bytes cannot be read
/// as a request (TTHeader and Framed cannot skip one), a request goes unanswered, or,
/// between requests, `drained` is ready or no request came for `idle` (a request in
/// progress is answered first). `on_request` hands each one to its call and returns where
/// its answer comes.
pub(crate) async fn run<T>(
    mut io: T,
    max: usize,
    mut on_request: impl FnMut(Request) -> oneshot::Receiver<Reply>,
    drained: impl std::future::Future<Output = ()>,
    idle: Option<std::time::Duration>,
) -> Result<(), String>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    tokio::pin!(drained);
    let mut buf = BytesMut::with_capacity(4096);
    let mut reader = Reader::default();
    loop {
        let quiet = async {
            match idle {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(quiet);
        let req = loop {
            match reader.next(&mut buf, max).map_err(|e| e.to_string())? {
                Some(r) => break r,
                None => {
                    buf.reserve(4096);
                    let n = tokio::select! {
                        n = io.read_buf(&mut buf) => n.map_err(|e| e.to_string())?,
                        _ = &mut drained, if buf.is_empty() => return Ok(()),
                        _ = &mut quiet, if buf.is_empty() => return Ok(()),
                    };
                    if n == 0 {
                        return match buf.is_empty() {
                            true => Ok(()),
                            false => Err("the connection closed mid-request".into()),
                        };
                    }
                }
            }
        };
        let (framing, seq_id) = (req.framing, req.packet.seq_id);
        let reply = on_request(req)
            .await
            .map_err(|_| "a request was left unanswered".to_owned())?;
        let out = encode(framing, seq_id, reply).map_err(|e| e.to_string())?;
        io.write_all(&out).await.map_err(|e| e.to_string())?;
        io.flush().await.map_err(|e| e.to_string())?;
    }
}

/// Why bytes are not a PingPong request.
#[derive(Debug)]
pub(crate) enum Bad {
    Packet(Malformed),
    /// A TTHeader Streaming frame on a PingPong connection.
    Streaming,
    /// Neither a TTHeader packet nor a Framed Thrift or KitexProtobuf message.
    Unknown([u8; 2]),
    /// A TTHeader packet whose payload is neither Thrift Binary nor KitexProtobuf.
    Protocol(ProtocolId),
    /// A Framed length over the limit.
    TooLarge {
        len: usize,
        max: usize,
    },
    /// A TTHeader payload that is neither a Thrift message nor a Framed message.
    Payload,
    /// A TTHeader payload whose Framed length disagrees with it.
    FramedLength,
    /// Bytes that begin as a Buffered message and are not one.
    Buffered(buffered::Bad),
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Packet(m) => m.fmt(f),
            Bad::Streaming => f.write_str("a TTHeader Streaming frame on a PingPong connection"),
            Bad::Unknown(b) => write!(
                f,
                "neither TTHeader nor a Framed Thrift or KitexProtobuf message: bytes 4..6 \
                 are {:02x} {:02x}",
                b[0], b[1]
            ),
            Bad::Protocol(p) => write!(f, "a PingPong request in TTHeader protocol {p:?}"),
            Bad::TooLarge { len, max } => {
                write!(
                    f,
                    "a Framed message of {len} bytes is over the limit of {max}"
                )
            }
            Bad::Payload => f.write_str("a TTHeader payload that is no Thrift or Framed message"),
            Bad::FramedLength => f.write_str("a TTHeader payload whose Framed length is wrong"),
            Bad::Buffered(b) => b.fmt(f),
        }
    }
}

/// Takes a connection's requests off the front of its bytes, as they come.
#[derive(Default)]
pub(crate) struct Reader {
    /// The walk through a Buffered request whose end has not come yet.
    walk: Option<Walk>,
}

impl Reader {
    /// Takes the next whole request off the front of `buf`; `Ok(None)` until it is all in.
    pub(crate) fn next(&mut self, buf: &mut BytesMut, max: usize) -> Result<Option<Request>, Bad> {
        // A Framed length (under 2 GiB) and a TTHeader LENGTH never begin `80 01`.
        if self.walk.is_none() && !buffered::begins(buf) {
            return next_framed(buf, max);
        }
        let walk = self.walk.get_or_insert_with(Walk::default);
        let Some(n) = walk.resume(buf, max).map_err(Bad::Buffered)? else {
            return Ok(None);
        };
        self.walk = None;
        Ok(Some(Request {
            framing: Framing::Buffered,
            packet: Packet::default(),
            message: buf.split_to(n).freeze(),
        }))
    }
}

/// Takes the answer to a request in a TTHeader packet off the front of `buf`: a packet or
/// a Framed message, never a Buffered one (Reader's walk).
pub(crate) fn next_answer(buf: &mut BytesMut, max: usize) -> Result<Option<Request>, Bad> {
    next_framed(buf, max)
}

/// `next`, for what is not Buffered: a TTHeader packet or a Framed message.
fn next_framed(buf: &mut BytesMut, max: usize) -> Result<Option<Request>, Bad> {
    if buf.len() < 6 {
        return Ok(None);
    }
    if buf[4..6] == MAGIC.to_be_bytes() {
        let Some(p) = packet::decode(buf, max).map_err(Bad::Packet)? else {
            return Ok(None);
        };
        if p.is_streaming() {
            return Err(Bad::Streaming);
        }
        // Kitex writes protocol id 00 whatever the payload (`getProtocolID`: 04 would fail
        // older Kitex's check) and tells the payload by its first bytes.
        if !matches!(
            p.protocol,
            ProtocolId::ThriftBinary | ProtocolId::KitexProtobuf
        ) {
            return Err(Bad::Protocol(p.protocol));
        }
        let mut message = p.payload.clone();
        let framed = is_framed(&message).ok_or(Bad::Payload)?;
        if framed && message.get_u32() as usize != message.len() {
            return Err(Bad::FramedLength);
        }
        return Ok(Some(Request {
            framing: Framing::Ttheader {
                framed,
                protocol: p.protocol,
            },
            packet: p,
            message,
        }));
    }
    if buf[4..6] != VERSION_1 && buf[4..6] != KITEX_PROTOBUF {
        return Err(Bad::Unknown([buf[4], buf[5]]));
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(Bad::TooLarge { len, max });
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(Request {
        framing: Framing::Framed,
        packet: Packet::default(),
        message: buf.split_to(len).freeze(),
    }))
}

/// Whether a TTHeader payload is a Framed message (a length, then `80 01` or `90 01`) or
/// a bare Thrift one (`80 01` first), as Kitex's `checkPayload` tells them by their bytes
/// (its TransportType key is not read); `None` if it is neither. A length never begins
/// `80 01`: that would be 2 GiB.
fn is_framed(payload: &[u8]) -> Option<bool> {
    if buffered::begins(payload) {
        return Some(false);
    }
    let magic = payload.get(4..6)?;
    (magic == VERSION_1 || magic == KITEX_PROTOBUF).then_some(true)
}

/// The answer to a request of `framing` and sequence id `seq_id`.
pub(crate) fn encode(framing: Framing, seq_id: i32, reply: Reply) -> Result<Bytes, Malformed> {
    let mut out = BytesMut::new();
    let framed_len = || (reply.message.len() as u32).to_be_bytes();
    match framing {
        Framing::Framed => {
            out.put_slice(&framed_len());
            out.put_slice(&reply.message);
        }
        Framing::Buffered => out.put_slice(&reply.message),
        Framing::Ttheader { framed, protocol } => {
            let payload = match framed {
                true => Bytes::from([&framed_len()[..], &reply.message].concat()),
                false => reply.message.clone(),
            };
            let p = Packet {
                seq_id,
                protocol,
                strs: reply.strs,
                ints: reply.ints,
                payload,
                ..Packet::default()
            };
            packet::encode(&p, &mut out)?;
        }
    }
    Ok(out.freeze())
}

/// The int pair a reply names its TMessage type with (`MsgType`, as decimal text).
pub(crate) fn msg_type(t: u8) -> (u16, Bytes) {
    (key::MSG_TYPE, Bytes::from(t.to_string()))
}
