//! The length-prefixed envelope: gRPC's "Length-Prefixed-Message → Compressed-Flag
//! Message-Length Message", a 1-byte flag and a 4-byte big-endian length before every
//! message (gRPC-Web and Connect streaming frame their messages the same way).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use std::io::{Read, Write};

use crate::status::{Code, Status};

/// Bytes of the prefix before each message.
pub const PREFIX_LEN: usize = 5;

/// Received messages larger than this fail with RESOURCE_EXHAUSTED unless configured
/// otherwise (grpc-go, grpcio and grpc-js all default to 4 MiB).
pub const DEFAULT_MAX_RECV_MESSAGE: usize = 4 * 1024 * 1024;

/// A message compression algorithm (`grpc-encoding`, `connect-content-encoding`,
/// `content-encoding`), by the names gRPC and Connect peers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Identity,
    Gzip,
    /// zlib's format (RFC 1950), as HTTP's "deflate" is.
    Deflate,
    /// Brotli ("br").
    Brotli,
    Zstd,
}

impl Encoding {
    pub const ALL: [Encoding; 5] = [
        Encoding::Identity,
        Encoding::Gzip,
        Encoding::Deflate,
        Encoding::Brotli,
        Encoding::Zstd,
    ];

    pub fn from_name(name: &str) -> Option<Encoding> {
        match name.trim() {
            "identity" => Some(Encoding::Identity),
            "gzip" => Some(Encoding::Gzip),
            "deflate" => Some(Encoding::Deflate),
            "br" => Some(Encoding::Brotli),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
        }
    }
}

/// What we take, in the order we prefer to answer in.
pub(crate) const ACCEPTED: &str = "gzip,zstd,br,deflate,identity";

/// The encoding a Connect request names for its messages; one this side cannot decode is
/// UNIMPLEMENTED with the ones it can, as connect-go answers.
pub(crate) fn requested(name: &str) -> Result<Encoding, Status> {
    Encoding::from_name(name).ok_or_else(|| {
        Status::new(
            Code::Unimplemented,
            format!("unknown compression {name:?}: supported encodings are {ACCEPTED}"),
        )
    })
}

/// The encodings a peer says it takes (`grpc-accept-encoding` and its kin).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Accepts(u8);

impl Accepts {
    pub(crate) fn parse<'a>(values: impl Iterator<Item = &'a http::HeaderValue>) -> Accepts {
        let mut bits = 0;
        for name in values
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            if let Some(e) = Encoding::from_name(name) {
                bits |= 1 << e as u8;
            }
        }
        Accepts(bits)
    }

    pub(crate) fn contains(self, e: Encoding) -> bool {
        e == Encoding::Identity || self.0 & (1 << e as u8) != 0
    }
}

/// Frames one message into `buf`. With `compress` set to gzip the message is compressed and
/// flagged; identity messages are never flagged.
pub(crate) fn encode(buf: &mut BytesMut, msg: &[u8], compress: Encoding) -> Result<(), Status> {
    match compress {
        Encoding::Identity => {
            buf.reserve(PREFIX_LEN + msg.len());
            buf.extend_from_slice(&prefix(msg.len())?);
            buf.extend_from_slice(msg);
            Ok(())
        }
        enc => encode_compressed(buf, msg, enc),
    }
}

/// Kept out of line: a compressor's state is tens of KiB on the stack, and inlined into
/// `encode` it made every uncompressed message probe that much stack too.
#[cold]
#[inline(never)]
fn encode_compressed(buf: &mut BytesMut, msg: &[u8], enc: Encoding) -> Result<(), Status> {
    let start = buf.len();
    buf.put_u8(1);
    buf.put_u32(0);
    deflate_into(buf, msg, enc)?;
    let len = frame_len(buf.len() - start - PREFIX_LEN)?;
    buf[start + 1..start + PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends `msg` compressed with `enc` (not identity).
fn deflate_into(buf: &mut BytesMut, msg: &[u8], enc: Encoding) -> Result<(), Status> {
    let fail = |e: std::io::Error| Status::internal(format!("{}: {e}", enc.name()));
    let w = buf.writer();
    match enc {
        Encoding::Identity => unreachable!("identity is not compressed"),
        Encoding::Gzip => {
            let mut c = GzEncoder::new(w, flate2::Compression::fast());
            c.write_all(msg)
                .and_then(|()| c.finish().map(drop))
                .map_err(fail)
        }
        Encoding::Deflate => {
            let mut c = ZlibEncoder::new(w, flate2::Compression::fast());
            c.write_all(msg)
                .and_then(|()| c.finish().map(drop))
                .map_err(fail)
        }
        Encoding::Brotli => {
            // Quality 4 of 11: brotli's fast end, still well ahead of gzip's ratio.
            let mut c = brotli::CompressorWriter::new(w, 4096, 4, 22);
            c.write_all(msg).map_err(fail)?;
            // Finishes the stream (writing into memory cannot fail).
            c.into_inner();
            Ok(())
        }
        Encoding::Zstd => {
            let mut c = zstd::stream::write::Encoder::new(w, 1).map_err(fail)?;
            c.write_all(msg)
                .and_then(|()| c.finish().map(drop))
                .map_err(fail)
        }
    }
}

/// Appends `msg` compressed with `enc` (as it is for identity), with no envelope: a body
/// that is one message.
pub(crate) fn compress(buf: &mut BytesMut, msg: &[u8], enc: Encoding) -> Result<(), Status> {
    match enc {
        Encoding::Identity => buf.extend_from_slice(msg),
        enc => deflate_into(buf, msg, enc)?,
    }
    Ok(())
}

/// Decompresses a whole message received with `enc`, refusing one larger than
/// `max_message` once decompressed.
pub(crate) fn decompress(enc: Encoding, msg: &[u8], max_message: usize) -> Result<Bytes, Status> {
    match enc {
        Encoding::Identity => Ok(Bytes::copy_from_slice(msg)),
        enc => inflate(enc, msg, max_message),
    }
}

/// The prefix alone, for a large message sent as its own chunk without copying it.
pub(crate) fn prefix(len: usize) -> Result<[u8; PREFIX_LEN], Status> {
    let l = frame_len(len)?.to_be_bytes();
    Ok([0, l[0], l[1], l[2], l[3]])
}

fn frame_len(len: usize) -> Result<u32, Status> {
    u32::try_from(len).map_err(|_| {
        Status::new(
            Code::ResourceExhausted,
            format!("message of {len} bytes does not fit a gRPC frame"),
        )
    })
}

/// Messages up to this size are copied out of the received chunk rather than sliced from
/// it: a slice shares the chunk's reference count with the connection's reader, which
/// splits its frames off the same buffer on another thread, and that count's cache line
/// moving between the two costs more per small message than a copy.
const COPY_MAX: usize = 128;

/// The most of a chunk one copy takes: small messages are sliced from a copy of the
/// chunk's next bytes (prefixes and all), up to this many, taken in one `memcpy`. One
/// allocation serves a run of messages (a burst of 16-byte messages has about 195 to a
/// copy) instead of one each, its reference count stays with the thread that reads the
/// messages, and a small message kept long keeps at most this much alive.
const COPIES_MAX: usize = 4 * 1024;

/// Splits a received byte stream into messages. Whole messages inside one received chunk
/// are handed out as slices of it (no copy) unless they are small (`COPY_MAX`), which are
/// sliced from a copy of it; only a message that straddles chunks is gathered into an
/// accumulator.
pub(crate) struct Decoder {
    cur: Bytes,
    held: Held,
    max_message: usize,
    encoding: Encoding,
    /// Whether the last message handed out arrived with the compressed flag set.
    last_compressed: bool,
    /// Messages completed since the last chunk was pushed.
    chunk_messages: u32,
    /// The flag of the frame that ends the stream in the body (gRPC-Web's trailers 0x80,
    /// Connect's end-stream 0x02); 0 where none does (gRPC, and any request).
    end_flag: u8,
    /// That frame, once read: nothing may follow it. Boxed: only gRPC-Web and Connect
    /// streams have one, once per call.
    end: Option<Box<Bytes>>,
    /// The bytes at the start of `cur` (prefix and message) of the message last lent out
    /// in place (`lend_whole`), passed over by the next call that reads `cur`, once the
    /// borrow has ended.
    lent: usize,
}

/// What a decoder holds besides the current chunk. (One field for the three: a stream
/// holds a decoder, and a handler's future holds its stream more than once.)
enum Held {
    /// A copy of the start of the current chunk (never longer), which small messages are
    /// sliced from; empty, and holding no buffer, once it is used up, so that an idle
    /// stream holds none.
    Copies(Bytes),
    /// The first bytes of a prefix that straddles chunks.
    Prefix(BytesMut),
    /// The first bytes of a message that straddles chunks, and its prefix's flags and
    /// length (a u32 on the wire). The message takes the buffer along when it is whole.
    Message(BytesMut, u8, u32),
}

impl Decoder {
    pub(crate) fn new(max_message: usize) -> Decoder {
        Decoder {
            cur: Bytes::new(),
            held: Held::Copies(Bytes::new()),
            max_message,
            encoding: Encoding::Identity,
            last_compressed: false,
            chunk_messages: 0,
            end_flag: 0,
            end: None,
            lent: 0,
        }
    }

    pub(crate) fn max_message(&self) -> usize {
        self.max_message
    }

    /// Reads frames flagged `flag` as the end of the stream (see `take_end`).
    pub(crate) fn set_end_flag(&mut self, flag: u8) {
        self.end_flag = flag;
    }

    /// The frame that ended the stream, once: `next` has returned `None` since it came.
    pub(crate) fn take_end(&mut self) -> Option<Bytes> {
        self.end.take().map(|b| *b)
    }

    /// Whether the frame that ends the stream has arrived.
    pub(crate) fn ended(&self) -> bool {
        self.end.is_some()
    }

    /// The encoding the peer declared in `grpc-encoding`, used for flagged messages.
    pub(crate) fn set_encoding(&mut self, encoding: Encoding) {
        self.encoding = encoding;
    }

    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.settle();
        self.chunk_messages = 0;
        if self.cur.is_empty() {
            self.cur = chunk;
        } else {
            // Only reached when a caller pushes twice without draining; keep the order.
            let mut joined = BytesMut::with_capacity(self.cur.len() + chunk.len());
            joined.extend_from_slice(&self.cur);
            joined.extend_from_slice(&chunk);
            // A copy of the old start is one of the new start still.
            self.cur = joined.freeze();
        }
    }

    /// How many messages the last chunk pushed has completed so far.
    pub(crate) fn chunk_messages(&self) -> u32 {
        self.chunk_messages
    }

    /// Whether the last message `next` returned arrived compressed on the wire.
    pub(crate) fn last_compressed(&self) -> bool {
        self.last_compressed
    }

    /// True when bytes of an unfinished message are held: at end of stream that is a
    /// truncated message.
    pub(crate) fn has_partial(&self) -> bool {
        self.cur.len() > self.lent || !matches!(self.held, Held::Copies(_))
    }

    /// The next message when it is the common case, whole in the current chunk,
    /// uncompressed and within the size limit; `None` leaves every other case to `next`.
    /// Nothing here can fail, so the message is returned bare: each `Result` layer it
    /// would pass through on the way to the handler costs a stalled copy of it.
    #[inline]
    pub(crate) fn next_whole(&mut self) -> Option<Bytes> {
        self.settle();
        let len = self.whole_len()?;
        self.skip(PREFIX_LEN);
        self.handed_out(false);
        Some(self.take(len))
    }

    /// `next_whole` without a `Bytes` of its own: true when the next message is whole in
    /// the current chunk and more bytes follow it there, and is now lent (`lent_message`)
    /// until the next call that reads the chunk. A message handed out as `Bytes` takes a
    /// reference on its buffer, counted atomically, and gives it back when dropped; a
    /// handler that decodes each message and lets it go pays for neither. The chunk's last
    /// message is left to `next_whole`: what follows it decides whether it was sent alone
    /// (see the stream's `answerable`), and finding out may bring the next chunk.
    #[inline]
    pub(crate) fn lend_whole(&mut self) -> bool {
        self.settle();
        match self.whole_len() {
            Some(len) if self.cur.len() > PREFIX_LEN + len => {
                self.handed_out(false);
                self.lent = PREFIX_LEN + len;
                true
            }
            _ => false,
        }
    }

    /// The message `lend_whole` lent.
    #[inline]
    pub(crate) fn lent_message(&self) -> &[u8] {
        &self.cur[PREFIX_LEN..self.lent]
    }

    /// The length of the next message when it is the common case: whole in the current
    /// chunk, uncompressed and within the size limit.
    #[inline]
    fn whole_len(&self) -> Option<usize> {
        if !matches!(self.held, Held::Copies(_)) || self.end.is_some() {
            return None;
        }
        let p = self.cur.get(..PREFIX_LEN)?;
        let len = length(p);
        if p[0] != 0 || len > self.max_message || self.cur.len() - PREFIX_LEN < len {
            return None;
        }
        Some(len)
    }

    /// Passes over the message lent last, if any: its borrow has ended.
    #[inline]
    fn settle(&mut self) {
        if self.lent != 0 {
            let n = std::mem::take(&mut self.lent);
            self.skip(n);
        }
    }

    /// The next whole message, if one is buffered.
    pub(crate) fn next(&mut self) -> Result<Option<Bytes>, Status> {
        self.settle();
        if self.end.is_some() {
            if self.has_partial() {
                return Err(Status::internal(
                    "malformed stream: data after the frame that ends it",
                ));
            }
            return Ok(None);
        }
        if let Held::Copies(_) = self.held {
            // Parse straight out of the current chunk.
            if self.cur.len() < PREFIX_LEN {
                if !self.cur.is_empty() {
                    self.held = Held::Prefix(BytesMut::from(&self.cur[..]));
                    self.cur = Bytes::new();
                }
                return Ok(None);
            }
            let (flags, len) = self.header(&self.cur[..PREFIX_LEN])?;
            self.skip(PREFIX_LEN);
            if self.cur.len() >= len {
                let msg = self.take(len);
                return self.finish_message(flags, msg);
            }
            self.held = Held::Message(BytesMut::new(), flags, len as u32);
        }
        if let Held::Prefix(acc) = &mut self.held {
            let n = (PREFIX_LEN - acc.len()).min(self.cur.len());
            acc.extend_from_slice(&self.cur[..n]);
            self.cur.advance(n);
            if acc.len() < PREFIX_LEN {
                return Ok(None);
            }
            let prefix: [u8; PREFIX_LEN] = acc[..].try_into().expect("a whole prefix");
            let (flags, len) = self.header(&prefix)?;
            self.held = Held::Message(BytesMut::new(), flags, len as u32);
        }
        let Held::Message(acc, flags, len) = &mut self.held else {
            unreachable!("a copy and a prefix end above");
        };
        let (flags, len) = (*flags, *len as usize);
        let n = (len - acc.len()).min(self.cur.len());
        if acc.is_empty() {
            if n == len {
                // Only its prefix came before: the message is whole in this chunk.
                self.held = Held::Copies(Bytes::new());
                let msg = self.take(len);
                return self.finish_message(flags, msg);
            }
            acc.reserve(len);
        }
        acc.extend_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        if acc.len() < len {
            return Ok(None);
        }
        // The whole buffer goes with the message: an idle stream holds none.
        let msg = std::mem::take(acc).freeze();
        self.held = Held::Copies(Bytes::new());
        self.finish_message(flags, msg)
    }

    /// The next `len` bytes of the current chunk as a message of its own: sliced from
    /// the chunk when large, else from its copy (taken now if it falls short).
    #[inline]
    fn take(&mut self, len: usize) -> Bytes {
        if len > COPY_MAX {
            self.uncopy(len);
            return self.cur.split_to(len);
        }
        let msg = match &mut self.held {
            Held::Copies(copies) if copies.len() >= len => copies.split_to(len),
            _ => {
                let mut copies = self.copy(len);
                let msg = copies.split_to(len);
                self.held = Held::Copies(copies);
                msg
            }
        };
        self.cur.advance(len);
        msg
    }

    /// A copy of the start of the current chunk, for a small message of `len` and the
    /// ones after it.
    #[cold]
    fn copy(&self, len: usize) -> Bytes {
        let n = if self.cur.len() - len < PREFIX_LEN {
            // The chunk's last message: a buffer of its own, one allocation.
            len
        } else {
            self.cur.len().min(COPIES_MAX).max(len)
        };
        Bytes::copy_from_slice(&self.cur[..n])
    }

    /// Passes over the next `n` bytes of the current chunk (and of its copy).
    #[inline]
    fn skip(&mut self, n: usize) {
        self.cur.advance(n);
        self.uncopy(n);
    }

    /// Drops the first `n` bytes of the chunk's copy, and the copy once none of it is
    /// left: an emptied `Bytes` still holds its buffer.
    #[inline]
    fn uncopy(&mut self, n: usize) {
        if let Held::Copies(copies) = &mut self.held {
            if n < copies.len() {
                copies.advance(n);
            } else {
                *copies = Bytes::new();
            }
        }
    }

    #[inline]
    fn header(&self, p: &[u8]) -> Result<(u8, usize), Status> {
        let flags = p[0];
        if flags & !(1 | self.end_flag) != 0 {
            return Err(bad_flags(flags));
        }
        let len = length(p);
        if len > self.max_message {
            return Err(too_large(len, self.max_message));
        }
        Ok((flags, len))
    }

    #[inline]
    fn finish_message(&mut self, flags: u8, msg: Bytes) -> Result<Option<Bytes>, Status> {
        if flags == 0 {
            // Every message of an uncompressed stream.
            self.handed_out(false);
            return Ok(Some(msg));
        }
        self.finish_flagged(flags, msg)
    }

    #[cold]
    fn finish_flagged(&mut self, flags: u8, msg: Bytes) -> Result<Option<Bytes>, Status> {
        let compressed = flags & 1 != 0;
        let msg =
            if !compressed {
                msg
            } else {
                match self.encoding {
                    // The spec: "A Compressed-Flag value of 1 indicates that the binary octet
                    // sequence of Message is compressed using the mechanism declared by the
                    // Message-Encoding header. ... if Message-Encoding is not set, it is an error
                    // (INTERNAL)."
                    Encoding::Identity => return Err(Status::internal(
                        "compressed flag set on a message but the peer declared no grpc-encoding",
                    )),
                    enc => inflate(enc, &msg, self.max_message)?,
                }
            };
        if flags & self.end_flag != 0 {
            self.end = Some(Box::new(msg));
            return Ok(None);
        }
        self.handed_out(compressed);
        Ok(Some(msg))
    }

    /// A message goes out: counted against its chunk, its compression noted.
    #[inline]
    fn handed_out(&mut self, compressed: bool) {
        self.chunk_messages += 1;
        self.last_compressed = compressed;
    }
}

/// The message length a prefix gives (big-endian, after the flags byte).
#[inline]
fn length(prefix: &[u8]) -> usize {
    u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize
}

#[cold]
fn bad_flags(flags: u8) -> Status {
    Status::internal(format!(
        "malformed message: compressed-flag byte is {flags}, the spec allows only 0 or 1"
    ))
}

#[cold]
fn too_large(len: usize, max: usize) -> Status {
    Status::new(
        Code::ResourceExhausted,
        format!("received message larger than max ({len} vs. {max})"),
    )
}

/// Out of line for the same reason as `encode_compressed`. Reads at most one byte past
/// `max_message`, so a small message that inflates without end (a "zip bomb") costs that
/// much and no more.
#[cold]
#[inline(never)]
fn inflate(enc: Encoding, msg: &[u8], max_message: usize) -> Result<Bytes, Status> {
    let mut out = Vec::with_capacity(msg.len() * 2);
    let limit = max_message as u64 + 1;
    let fail =
        |e: std::io::Error| Status::internal(format!("{} decompression failed: {e}", enc.name()));
    match enc {
        Encoding::Identity => {
            out.extend_from_slice(msg);
            Ok(())
        }
        Encoding::Gzip => GzDecoder::new(msg)
            .take(limit)
            .read_to_end(&mut out)
            .map(drop),
        Encoding::Deflate => ZlibDecoder::new(msg)
            .take(limit)
            .read_to_end(&mut out)
            .map(drop),
        Encoding::Brotli => brotli::Decompressor::new(msg, 4096)
            .take(limit)
            .read_to_end(&mut out)
            .map(drop),
        Encoding::Zstd => zstd::stream::read::Decoder::new(msg)
            .and_then(|d| d.take(limit).read_to_end(&mut out))
            .map(drop),
    }
    .map_err(fail)?;
    if out.len() > max_message {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!("received message after decompression larger than max ({max_message})"),
        ));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msgs: &[&[u8]]) -> Bytes {
        let mut b = BytesMut::new();
        for m in msgs {
            encode(&mut b, m, Encoding::Identity).unwrap();
        }
        b.freeze()
    }

    #[test]
    fn prefix_bytes_are_flag_then_big_endian_length() {
        let b = framed(&[b"hi"]);
        assert_eq!(&b[..], &[0x00, 0x00, 0x00, 0x00, 0x02, b'h', b'i']);
    }

    #[test]
    fn whole_large_messages_in_one_chunk_are_sliced_without_copy_small_ones_copied() {
        let big = vec![7u8; COPY_MAX + 1];
        let chunk = framed(&[&big, b"bc", b""]);
        let base = chunk.as_ptr() as usize;
        let mut d = Decoder::new(1000);
        d.push(chunk);
        let a = d.next().unwrap().unwrap();
        assert_eq!(&a[..], &big[..]);
        assert_eq!(a.as_ptr() as usize, base + PREFIX_LEN);
        let bc = d.next().unwrap().unwrap();
        assert_eq!(&bc[..], b"bc");
        let at = base + 2 * PREFIX_LEN + big.len();
        assert_ne!(bc.as_ptr() as usize, at, "a small message is a copy");
        assert_eq!(&d.next().unwrap().unwrap()[..], b"");
        assert!(d.next().unwrap().is_none());
        assert!(!d.has_partial());
    }

    /// A chunk's small messages are sliced from one copy of it, taken once (prefixes
    /// and all), and the decoder lets the copy go with the chunk.
    #[test]
    fn a_chunks_small_messages_share_one_copy_the_decoder_then_lets_go() {
        let big = vec![7u8; COPY_MAX + 1];
        let chunk = framed(&[b"ab", b"cde", &big, b"f", b"gh"]);
        let mut d = Decoder::new(1000);
        d.push(chunk.clone());
        let mut got: Vec<Bytes> = std::iter::from_fn(|| d.next().unwrap()).collect();
        let want: [&[u8]; 5] = [b"ab", b"cde", &big, b"f", b"gh"];
        assert_eq!(got, want);
        let at = |m: &Bytes| m.as_ptr() as usize;
        let in_chunk = |m: &Bytes| (at(&chunk)..at(&chunk) + chunk.len()).contains(&at(m));
        assert!(
            in_chunk(&got[2]),
            "a large message is sliced from the chunk"
        );
        // Where each message's bytes start in the chunk, past the first's prefix.
        let offsets = [
            0,
            7,
            15,
            15 + PREFIX_LEN + big.len(),
            15 + 2 * PREFIX_LEN + big.len() + 1,
        ];
        for i in [0, 1, 3, 4] {
            assert!(!in_chunk(&got[i]), "message {i} is a copy");
            assert_eq!(
                at(&got[i]) - at(&got[0]),
                offsets[i],
                "message {i} sits in the copy where it sat in the chunk"
            );
        }
        drop(got.drain(1..));
        assert!(
            got[0].is_unique(),
            "the decoder let the copy go with the chunk"
        );
    }

    /// Regression guard for what the copy is for: a small message kept by its reader
    /// keeps alive a copy of at most `COPIES_MAX` bytes, never the peer's whole chunk.
    #[test]
    fn a_kept_small_message_pins_a_few_kilobytes_not_the_chunk() {
        let msgs: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        let chunk = framed(&refs);
        assert!(chunk.len() > 4 * COPIES_MAX);
        let mut d = Decoder::new(1000);
        d.push(chunk.clone());
        let got: Vec<Bytes> = std::iter::from_fn(|| d.next().unwrap()).collect();
        assert_eq!(got, msgs);
        // Messages of one copy sit 9 bytes apart (4 of message, 5 of prefix); a copy
        // ends where that spacing breaks.
        let mut first = got[0].as_ptr() as usize;
        let mut copies = 1;
        for w in got.windows(2) {
            let (a, b) = (w[0].as_ptr() as usize, w[1].as_ptr() as usize);
            if b != a + 9 {
                copies += 1;
                first = b;
            }
            assert!(
                b + 4 - first <= COPIES_MAX,
                "a copy holds at most COPIES_MAX"
            );
        }
        assert!(copies >= chunk.len() / COPIES_MAX, "{copies} copies");
    }

    /// Regression: a chunk whose copy ran out on a large message (sliced from the chunk,
    /// not the copy) left the decoder holding an empty handle on the copy, and an idle
    /// stream kept its 4 KiB alive.
    #[test]
    fn a_copy_used_up_by_a_large_message_is_let_go() {
        let big = vec![7u8; COPY_MAX + 1];
        let mut d = Decoder::new(1000);
        d.push(framed(&[b"ab", &big]));
        let small = d.next().unwrap().unwrap();
        assert_eq!(d.next().unwrap().unwrap(), big);
        assert!(d.next().unwrap().is_none());
        assert!(small.is_unique(), "the decoder let the copy go");
    }

    /// Regression: the chunk's copy as a field beside the accumulator made every stream
    /// larger (an idle server stream by 129 bytes, as a handler's future holds its
    /// stream's decoder more than once).
    #[test]
    fn what_the_decoder_holds_besides_its_chunk_is_one_buffer_and_a_prefix() {
        assert!(std::mem::size_of::<Held>() <= std::mem::size_of::<BytesMut>() + 8);
    }

    /// A message that straddles chunks is gathered into a buffer the message then owns
    /// whole: the decoder keeps no spare room of it.
    #[test]
    fn a_message_gathered_across_chunks_takes_its_buffer_along() {
        let all = framed(&[b"straddling", b"x"]);
        let mut d = Decoder::new(100);
        d.push(all.slice(..8));
        assert!(d.next().unwrap().is_none());
        d.push(all.slice(8..));
        assert_eq!(&d.next().unwrap().unwrap()[..], b"straddling");
        assert!(matches!(&d.held, Held::Copies(c) if c.is_empty()));
        assert_eq!(&d.next().unwrap().unwrap()[..], b"x");
        assert!(d.next().unwrap().is_none());
        assert!(!d.has_partial());
    }

    /// The fast path takes only an uncompressed whole message within the limit; every
    /// other case stays for `next`, which reports it.
    #[test]
    fn next_whole_takes_only_the_plain_case_and_leaves_the_rest_to_next() {
        let mut d = Decoder::new(4);
        d.push(Bytes::from_static(&[
            0, 0, 0, 0, 2, b'h', b'i', // plain
            1, 0, 0, 0, 1, b'z', // compressed, with no grpc-encoding declared
        ]));
        assert_eq!(d.next_whole().unwrap(), "hi");
        assert!(d.next_whole().is_none());
        assert_eq!(d.next().unwrap_err().code(), Code::Internal);

        let mut d = Decoder::new(4);
        d.push(Bytes::from_static(&[0, 0, 0, 0, 5, 1, 2, 3, 4, 5]));
        assert!(d.next_whole().is_none(), "over the limit");
        assert_eq!(d.next().unwrap_err().code(), Code::ResourceExhausted);

        let mut d = Decoder::new(4);
        d.push(Bytes::from_static(&[0, 0, 0, 0, 3, b'a']));
        assert!(d.next_whole().is_none(), "not whole yet");
        assert!(d.next().unwrap().is_none());
        d.push(Bytes::from_static(b"bc"));
        assert!(d.next_whole().is_none(), "gathered by next");
        assert_eq!(d.next().unwrap().unwrap(), "abc");
    }

    /// A lent message is passed over by whatever reads next, never read twice; the last
    /// message of a chunk is not lent (what follows it decides whether it came alone), and
    /// the bytes a lent message leaves are no partial message.
    #[test]
    fn lent_messages_are_passed_over_by_the_next_read_and_the_chunks_last_is_not_lent() {
        let mut d = Decoder::new(1 << 10);
        d.push(Bytes::from_static(&[
            0, 0, 0, 0, 2, b'h', b'i', // lent
            0, 0, 0, 0, 3, b'y', b'o', b'u', // lent
            0, 0, 0, 0, 1, b'!', // the chunk's last
        ]));
        assert!(d.lend_whole());
        assert_eq!(d.lent_message(), b"hi");
        assert!(d.has_partial(), "two messages wait behind the lent one");
        assert!(d.lend_whole());
        assert_eq!(d.lent_message(), b"you");
        assert!(
            !d.lend_whole(),
            "the chunk's last message is left to next_whole"
        );
        assert_eq!(d.next_whole().unwrap(), "!");
        assert!(!d.has_partial());
        assert_eq!(d.chunk_messages(), 3);

        // `next` and `push` pass over a lent message too.
        let mut d = Decoder::new(1 << 10);
        d.push(framed(&[b"a", b"bc"]));
        assert!(d.lend_whole());
        assert_eq!(d.next().unwrap().unwrap(), "bc");
        assert!(!d.has_partial());
        d.push(framed(&[b"d", b"e"]));
        assert!(d.lend_whole());
        assert_eq!(d.lent_message(), b"d");
        // A prefix cut short after a lent message: the rest comes in the next chunk.
        d.push(Bytes::from_static(&[0, 0]));
        assert_eq!(d.next().unwrap().unwrap(), "e");
        assert!(d.next().unwrap().is_none());
        assert!(d.has_partial(), "two bytes of a prefix");
        d.push(Bytes::from_static(&[0, 0, 1, b'f']));
        assert_eq!(d.next().unwrap().unwrap(), "f");
    }

    /// Only what `next_whole` would hand out as it is gets lent: a compressed message, one
    /// over the limit or one not yet whole is left to `next`, which reports it.
    #[test]
    fn only_plain_whole_messages_within_the_limit_are_lent() {
        let mut d = Decoder::new(4);
        d.push(Bytes::from_static(&[
            1, 0, 0, 0, 1, b'z', // compressed, with no grpc-encoding declared
            0, 0, 0, 0, 1, b'a',
        ]));
        assert!(!d.lend_whole());
        assert_eq!(d.next().unwrap_err().code(), Code::Internal);

        let mut d = Decoder::new(4);
        d.push(Bytes::from_static(&[0, 0, 0, 0, 5, 1, 2, 3, 4, 5, 0]));
        assert!(!d.lend_whole(), "over the limit");
        assert_eq!(d.next().unwrap_err().code(), Code::ResourceExhausted);

        let mut d = Decoder::new(4);
        d.push(Bytes::from_static(&[0, 0, 0, 0, 3, b'a', b'b']));
        assert!(!d.lend_whole(), "not whole yet");
        assert!(d.next().unwrap().is_none());
    }

    #[test]
    fn messages_split_at_every_byte_reassemble() {
        let all = framed(&[b"hello", b"", b"world!"]);
        for cut in 0..all.len() {
            for cut2 in cut..all.len() {
                let mut d = Decoder::new(100);
                let mut got = Vec::new();
                for part in [all.slice(..cut), all.slice(cut..cut2), all.slice(cut2..)] {
                    d.push(part);
                    while let Some(m) = d.next().unwrap() {
                        got.push(m);
                    }
                }
                assert_eq!(
                    got,
                    vec![
                        Bytes::from_static(b"hello"),
                        Bytes::new(),
                        Bytes::from_static(b"world!")
                    ],
                    "cuts {cut} {cut2}"
                );
                assert!(!d.has_partial());
            }
        }
    }

    #[test]
    fn oversized_length_prefix_is_resource_exhausted() {
        let mut d = Decoder::new(4);
        d.push(Bytes::from_static(&[0, 0, 0, 0, 5, 1, 2, 3, 4, 5]));
        assert_eq!(d.next().unwrap_err().code(), Code::ResourceExhausted);
    }

    #[test]
    fn bad_flag_byte_is_internal() {
        let mut d = Decoder::new(100);
        d.push(Bytes::from_static(&[7, 0, 0, 0, 0]));
        let err = d.next().unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert!(err.message().contains("compressed-flag"));
    }

    #[test]
    fn compressed_flag_without_encoding_is_internal() {
        let mut d = Decoder::new(100);
        d.push(Bytes::from_static(&[1, 0, 0, 0, 1, 9]));
        assert_eq!(d.next().unwrap_err().code(), Code::Internal);
    }

    #[test]
    fn gzip_round_trip() {
        let mut b = BytesMut::new();
        let msg = vec![b'x'; 10_000];
        encode(&mut b, &msg, Encoding::Gzip).unwrap();
        assert_eq!(b[0], 1);
        assert!(b.len() < 1000);
        let mut d = Decoder::new(1 << 20);
        d.set_encoding(Encoding::Gzip);
        d.push(b.freeze());
        assert_eq!(d.next().unwrap().unwrap().len(), 10_000);
    }

    #[test]
    fn gzip_bomb_is_stopped_at_the_limit() {
        let mut b = BytesMut::new();
        encode(&mut b, &vec![0u8; 100_000], Encoding::Gzip).unwrap();
        let mut d = Decoder::new(1000);
        d.set_encoding(Encoding::Gzip);
        d.push(b.freeze());
        assert_eq!(d.next().unwrap_err().code(), Code::ResourceExhausted);
    }

    #[test]
    fn every_encoding_round_trips_and_stops_at_the_limit() {
        let msg: Vec<u8> = (0..4000u32).flat_map(|i| (i % 7).to_be_bytes()).collect();
        for enc in Encoding::ALL {
            assert_eq!(Encoding::from_name(enc.name()), Some(enc));
            let mut b = BytesMut::new();
            encode(&mut b, &msg, enc).unwrap();
            assert_eq!(b[0], u8::from(enc != Encoding::Identity), "{enc:?}");
            let mut d = Decoder::new(1 << 20);
            d.set_encoding(enc);
            d.push(b.freeze());
            assert_eq!(d.next().unwrap().unwrap(), &msg[..], "{enc:?}");
            // The same message against a limit below its size: refused, not inflated whole
            // (an identity message's length is checked in its prefix instead).
            if enc == Encoding::Identity {
                continue;
            }
            let mut b = BytesMut::new();
            compress(&mut b, &msg, enc).unwrap();
            let e = decompress(enc, &b, 1000).unwrap_err();
            assert_eq!(e.code(), Code::ResourceExhausted, "{enc:?}");
        }
    }

    #[test]
    fn accepted_encodings_are_read_from_every_value() {
        let vals = [
            http::HeaderValue::from_static("gzip, br"),
            http::HeaderValue::from_static("zstd,snappy"),
        ];
        let a = Accepts::parse(vals.iter());
        for (e, want) in [
            (Encoding::Identity, true),
            (Encoding::Gzip, true),
            (Encoding::Brotli, true),
            (Encoding::Zstd, true),
            (Encoding::Deflate, false),
        ] {
            assert_eq!(a.contains(e), want, "{e:?}");
        }
    }
}
