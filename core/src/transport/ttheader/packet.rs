//! The TTHeader packet, sans I/O: what Kitex writes around every PingPong message and every
//! TTHeader Streaming frame (`cloudwego/gopkg` `protocol/ttheader`, `interop/kitex/WIRE.md`
//! §1.1). All integers are big-endian:
//!
//! ```text
//! LENGTH u32 (bytes after it) | MAGIC 0x1000 | FLAGS u16 | SEQ ID i32 | HEADER SIZE u16 (words)
//! PROTOCOL ID u8 | NUM TRANSFORMS u8 | transform ids | info blocks | zero padding to 4
//! payload, to the end of LENGTH
//! ```
//!
//! An info block is an id byte and its data: `0x01` string pairs, `0x10` pairs keyed by a
//! u16, `0x11` an ACL token (u16 count, then u16-length strings); a zero byte is padding.
//! Strings stay `Bytes` slices of the packet: a peer's metadata is not copied to be read.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;

/// `TTHeaderMagic` (0x10000000), whose high half the packet carries.
pub(crate) const MAGIC: u16 = 0x1000;
/// `HeaderFlagsStreaming`: the packet is a TTHeader Streaming frame.
pub(crate) const FLAG_STREAMING: u16 = 0x0002;
/// LENGTH, MAGIC, FLAGS, SEQ ID and HEADER SIZE.
pub(crate) const FIXED_LEN: usize = 14;
/// gopkg's `MaxHeaderSize`: HEADER SIZE counts 4-byte words in a u16.
const MAX_HEADER_LEN: usize = 4 * u16::MAX as usize;

const INFO_PADDING: u8 = 0x00;
const INFO_KEY_VALUE: u8 = 0x01;
const INFO_INT_KEY_VALUE: u8 = 0x10;
const INFO_ACL_TOKEN: u8 = 0x11;

/// What a packet's payload is encoded with (gopkg `ProtocolID`; Kitex refuses the others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ProtocolId {
    /// PingPong: a Thrift Binary TMessage (a Framed one inside, for Kitex's default). Also
    /// gopkg's `ProtocolIDDefault`, which Kitex writes for a KitexProtobuf payload too.
    #[default]
    ThriftBinary = 0x00,
    ThriftCompactV2 = 0x03,
    KitexProtobuf = 0x04,
    /// TTHeader Streaming: a bare Thrift Binary struct.
    ThriftStruct = 0x10,
    ProtobufStruct = 0x11,
}

impl ProtocolId {
    fn from_byte(b: u8) -> Option<ProtocolId> {
        Some(match b {
            0x00 => ProtocolId::ThriftBinary,
            0x03 => ProtocolId::ThriftCompactV2,
            0x04 => ProtocolId::KitexProtobuf,
            0x10 => ProtocolId::ThriftStruct,
            0x11 => ProtocolId::ProtobufStruct,
            _ => return None,
        })
    }
}

/// One TTHeader packet. Pairs keep the order they were read or are to be written in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Packet {
    pub(crate) flags: u16,
    /// PingPong: the call's sequence number; TTHeader Streaming: the stream id.
    pub(crate) seq_id: i32,
    pub(crate) protocol: ProtocolId,
    /// INFO_INTKEYVALUE pairs (`metakey.go`'s ids: 9 ToMethod, 27 FrameType, ...).
    pub(crate) ints: Vec<(u16, Bytes)>,
    /// INFO_KEYVALUE pairs: metainfo, metadata, biz status.
    pub(crate) strs: Vec<(Bytes, Bytes)>,
    /// INFO_ACL_TOKEN (Kitex's `RPC_TRANSIT_gdpr-token`).
    pub(crate) acl_token: Option<Bytes>,
    pub(crate) payload: Bytes,
}

impl Packet {
    /// The value of int key `key`; the last one if a peer sent it twice, as a Go map reads.
    pub(crate) fn int(&self, key: u16) -> Option<&Bytes> {
        self.ints
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The value of string key `key` (the last one, as `int`).
    pub(crate) fn str(&self, key: &str) -> Option<&Bytes> {
        let key = key.as_bytes();
        self.strs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn is_streaming(&self) -> bool {
        self.flags & FLAG_STREAMING != 0
    }
}

/// Why bytes are not a TTHeader packet we take. Each ends the connection: TTHeader has no
/// way to skip a packet it cannot frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Bytes 4..6 are not the magic.
    NotTtheader([u8; 2]),
    /// LENGTH is too short for the fixed fields.
    Short(u32),
    /// LENGTH is over the limit the reader was given.
    TooLarge {
        len: usize,
        max: usize,
    },
    /// HEADER SIZE is under 2 bytes (protocol id and transform count) or past LENGTH.
    HeaderSize(usize),
    Protocol(u8),
    /// A transform (zlib, snappy): Kitex defines the ids and applies none; we neither.
    Transform(u8),
    UnknownInfo(u8),
    /// An info block runs past the header.
    Truncated(&'static str),
    /// More than a u16 of pairs, or a string or header longer than the layout can say.
    Unencodable(&'static str),
    /// TTHeader Streaming: a packet without the streaming flag.
    NotStreaming,
    /// TTHeader Streaming: no FrameType key, or not one of `1`..`5`.
    FrameType(Option<Bytes>),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::NotTtheader(m) => write!(f, "not TTHeader: magic {:02x} {:02x}", m[0], m[1]),
            Malformed::Short(n) => {
                write!(f, "TTHeader length {n} is shorter than its fixed fields")
            }
            Malformed::TooLarge { len, max } => {
                write!(
                    f,
                    "TTHeader packet of {len} bytes is over the limit of {max}"
                )
            }
            Malformed::HeaderSize(n) => {
                write!(f, "TTHeader header size {n} does not fit the packet")
            }
            Malformed::Protocol(p) => write!(f, "TTHeader protocol id {p:#04x} is not supported"),
            Malformed::Transform(t) => write!(f, "TTHeader transform {t:#04x} is not supported"),
            Malformed::UnknownInfo(i) => write!(f, "TTHeader info id {i:#04x} is unknown"),
            Malformed::Truncated(what) => write!(f, "TTHeader {what} runs past the header"),
            Malformed::Unencodable(what) => write!(f, "TTHeader cannot carry {what}"),
            Malformed::NotStreaming => {
                f.write_str("a TTHeader Streaming frame without the streaming flag")
            }
            Malformed::FrameType(None) => {
                f.write_str("a TTHeader Streaming frame without a frame type")
            }
            Malformed::FrameType(Some(t)) => {
                write!(f, "TTHeader Streaming frame type {t:?} is unknown")
            }
        }
    }
}

impl std::error::Error for Malformed {}

/// Takes the next whole packet off the front of `buf`; `Ok(None)` until all its bytes are
/// in. A LENGTH over `max` is refused as soon as it is read, before its bytes are waited
/// for, so a peer cannot make the reader buffer more than `max`.
pub(crate) fn decode(buf: &mut BytesMut, max: usize) -> Result<Option<Packet>, Malformed> {
    let Some(h) = head(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < h.total {
        buf.reserve(h.total - buf.len());
        return Ok(None);
    }
    let protocol = h.check(buf)?;
    h.packet(buf, protocol).map(Some)
}

/// The fixed fields of the packet at the front of a buffer, read in place and checked
/// (`head`, then `check` once the packet is all in).
pub(crate) struct Head {
    /// The packet's bytes, LENGTH's own included.
    pub(crate) total: usize,
    pub(crate) flags: u16,
    pub(crate) seq_id: i32,
    /// HEADER SIZE in bytes: the protocol id, the transforms, the info blocks, padding.
    header_len: usize,
}

/// The fixed fields of the packet `buf` begins with: `Ok(None)` until they are all in. A
/// LENGTH over `max` is refused as soon as it is read, before its bytes are waited for,
/// so a peer cannot make the reader buffer more than `max`.
pub(crate) fn head(buf: &[u8], max: usize) -> Result<Option<Head>, Malformed> {
    if buf.len() >= 6 && buf[4..6] != MAGIC.to_be_bytes() {
        return Err(Malformed::NotTtheader([buf[4], buf[5]]));
    }
    if buf.len() < FIXED_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if (len as usize) < FIXED_LEN - 4 {
        return Err(Malformed::Short(len));
    }
    let total = 4 + len as usize;
    if total > max {
        return Err(Malformed::TooLarge { len: total, max });
    }
    let header_len = 4 * usize::from(u16::from_be_bytes([buf[12], buf[13]]));
    if header_len < 2 || FIXED_LEN + header_len > total {
        return Err(Malformed::HeaderSize(header_len));
    }
    Ok(Some(Head {
        total,
        flags: u16::from_be_bytes([buf[6], buf[7]]),
        seq_id: i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        header_len,
    }))
}

impl Head {
    /// Checks the header's first bytes of `packet` (all `total` of its bytes): a protocol
    /// we take, and no transforms.
    pub(crate) fn check(&self, packet: &[u8]) -> Result<ProtocolId, Malformed> {
        let protocol = ProtocolId::from_byte(packet[14]).ok_or(Malformed::Protocol(packet[14]))?;
        if packet[15] > 0 {
            return Err(match self.header_len {
                2 => Malformed::Truncated("transform list"),
                _ => Malformed::Transform(packet[16]),
            });
        }
        Ok(protocol)
    }

    /// The info blocks of `packet` (all `total` of its bytes).
    pub(crate) fn info<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        &packet[FIXED_LEN + 2..FIXED_LEN + self.header_len]
    }

    /// Takes the packet, checked (its `protocol`), off the front of `buf`, its pairs
    /// slices of the bytes read.
    pub(crate) fn packet(
        self,
        buf: &mut BytesMut,
        protocol: ProtocolId,
    ) -> Result<Packet, Malformed> {
        let mut rest = buf.split_to(self.total);
        rest.advance(FIXED_LEN + 2);
        let h = rest.split_to(self.header_len - 2).freeze();
        let mut p = Packet {
            flags: self.flags,
            seq_id: self.seq_id,
            protocol,
            payload: rest.freeze(),
            ..Packet::default()
        };
        walk(&h, |i| match i {
            Info::Str(k, v) => p.strs.push((h.slice_ref(k), h.slice_ref(v))),
            Info::Int(k, v) => p.ints.push((k, h.slice_ref(v))),
            Info::Acl(t) => p.acl_token = Some(h.slice_ref(t)),
        })?;
        Ok(p)
    }
}

/// Takes the first packet off `run`, whole packets one after another whose heads were
/// read and checked already (`head`, `Head::check`), and gives its payload: `None` once
/// `run` is empty, or if it does not hold whole packets after all.
#[inline]
pub(crate) fn split_payload(run: &mut Bytes) -> Option<Bytes> {
    let (start, total) = first_payload(run)?;
    let mut p = run.split_to(total);
    p.advance(start);
    Some(p)
}

/// Where the payload of `run`'s first packet starts, and where the packet ends (see
/// `split_payload`).
#[inline]
pub(crate) fn first_payload(run: &[u8]) -> Option<(usize, usize)> {
    let b = run.get(..FIXED_LEN)?;
    let total = 4 + u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let start = FIXED_LEN + 4 * usize::from(u16::from_be_bytes([b[12], b[13]]));
    if total > run.len() || start > total {
        return None;
    }
    Some((start, total))
}

/// The value of int key `key` in info blocks `info` (the last one, as `Packet::int`), the
/// blocks checked on the way.
pub(crate) fn int_in(info: &[u8], key: u16) -> Result<Option<&[u8]>, Malformed> {
    let mut found = None;
    walk(info, |i| {
        if let Info::Int(k, v) = i {
            if k == key {
                found = Some(v);
            }
        }
    })?;
    Ok(found)
}

/// One pair of an info block.
enum Info<'a> {
    Str(&'a [u8], &'a [u8]),
    Int(u16, &'a [u8]),
    Acl(&'a [u8]),
}

/// The info blocks, to the end of the header. A zero id byte is padding; gopkg reads on
/// past it, so a block after padding is still read.
fn walk<'a>(mut h: &'a [u8], mut on: impl FnMut(Info<'a>)) -> Result<(), Malformed> {
    while let Some((&id, rest)) = h.split_first() {
        h = rest;
        match id {
            INFO_PADDING => {}
            INFO_KEY_VALUE => {
                for _ in 0..count(&mut h, "string pairs")? {
                    let k = string(&mut h, "string key")?;
                    let v = string(&mut h, "string value")?;
                    on(Info::Str(k, v));
                }
            }
            INFO_INT_KEY_VALUE => {
                for _ in 0..count(&mut h, "int pairs")? {
                    if h.len() < 2 {
                        return Err(Malformed::Truncated("int key"));
                    }
                    let k = u16::from_be_bytes([h[0], h[1]]);
                    h = &h[2..];
                    on(Info::Int(k, string(&mut h, "int value")?));
                }
            }
            INFO_ACL_TOKEN => on(Info::Acl(string(&mut h, "ACL token")?)),
            other => return Err(Malformed::UnknownInfo(other)),
        }
    }
    Ok(())
}

fn count(h: &mut &[u8], what: &'static str) -> Result<u16, Malformed> {
    if h.len() < 2 {
        return Err(Malformed::Truncated(what));
    }
    let n = u16::from_be_bytes([h[0], h[1]]);
    *h = &h[2..];
    Ok(n)
}

fn string<'a>(h: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], Malformed> {
    let n = usize::from(count(h, what)?);
    if h.len() < n {
        return Err(Malformed::Truncated(what));
    }
    let (s, rest) = h.split_at(n);
    *h = rest;
    Ok(s)
}

/// Appends `p` to `dst`: string pairs, then int pairs, then the ACL token (the order
/// Kitex writes), blocks with no pairs left out, zero padding to a 4-byte boundary.
pub(crate) fn encode(p: &Packet, dst: &mut BytesMut) -> Result<(), Malformed> {
    let start = dst.len();
    dst.put_u32(0); // LENGTH, once known
    dst.put_u16(MAGIC);
    dst.put_u16(p.flags);
    dst.put_i32(p.seq_id);
    dst.put_u16(0); // HEADER SIZE, once known
    let header_at = dst.len();
    dst.put_u8(p.protocol as u8);
    dst.put_u8(0); // no transforms
    let written = write_info(p, dst);
    if let Err(e) = written {
        dst.truncate(start);
        return Err(e);
    }
    let pad = (4 - (dst.len() - header_at) % 4) % 4;
    dst.put_bytes(0, pad);
    let header_len = dst.len() - header_at;
    let total = dst.len() - start + p.payload.len();
    if header_len > MAX_HEADER_LEN || total - 4 > u32::MAX as usize {
        dst.truncate(start);
        return Err(Malformed::Unencodable("a header or packet this large"));
    }
    dst[start..start + 4].copy_from_slice(&((total - 4) as u32).to_be_bytes());
    dst[header_at - 2..header_at].copy_from_slice(&((header_len / 4) as u16).to_be_bytes());
    dst.extend_from_slice(&p.payload);
    Ok(())
}

fn write_info(p: &Packet, dst: &mut BytesMut) -> Result<(), Malformed> {
    if !p.strs.is_empty() {
        dst.put_u8(INFO_KEY_VALUE);
        put_count(dst, p.strs.len())?;
        for (k, v) in &p.strs {
            put_string(dst, k)?;
            put_string(dst, v)?;
        }
    }
    if !p.ints.is_empty() {
        dst.put_u8(INFO_INT_KEY_VALUE);
        put_count(dst, p.ints.len())?;
        for (k, v) in &p.ints {
            dst.put_u16(*k);
            put_string(dst, v)?;
        }
    }
    if let Some(t) = &p.acl_token {
        dst.put_u8(INFO_ACL_TOKEN);
        put_string(dst, t)?;
    }
    Ok(())
}

fn put_count(dst: &mut BytesMut, n: usize) -> Result<(), Malformed> {
    let n = u16::try_from(n).map_err(|_| Malformed::Unencodable("more than 65535 pairs"))?;
    dst.put_u16(n);
    Ok(())
}

fn put_string(dst: &mut BytesMut, s: &[u8]) -> Result<(), Malformed> {
    let n = u16::try_from(s.len())
        .map_err(|_| Malformed::Unencodable("a key or value over 65535 bytes"))?;
    dst.put_u16(n);
    dst.extend_from_slice(s);
    Ok(())
}
