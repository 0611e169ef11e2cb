//! Telling the protocols of one port apart by a connection's first bytes: an HTTP/2 client
//! opens with the connection preface (RFC 9113 §3.4, "prior knowledge"), an HTTP/1.1 one
//! with a request line, and a Kitex one with a TTHeader packet, streaming if flagged so (as
//! Kitex's own server tells them apart, `ttheader.IsStreaming`: bytes 4..6 the magic
//! `10 00`, bytes 6..8 flags with bit `0x0002`) and Thrift PingPong otherwise, or with a
//! Framed Thrift (or KitexProtobuf) message or a bare (Buffered) one, `80 01` first
//! (PingPong too). The bytes read to decide are replayed to whichever serves it.

use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// "the connection preface starts with the string PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    Http2,
    Http1,
    /// TTHeader Streaming (Kitex's StreamX).
    Ttheader,
    /// Thrift PingPong: TTHeader packets without the streaming flag, Framed messages or
    /// Buffered ones.
    PingPong,
}

/// The bytes that tell a TTHeader packet: LENGTH, MAGIC and FLAGS.
const TTHEADER_SNIFF: usize = 8;

/// Reads until the first bytes are the whole preface, or begin an HTTP/1.1 request line
/// (a method, a space, then a target: `/`, `*` or an absolute URI). Anything else is left
/// to HTTP/2, whose handshake refuses it as a bad preface (RFC 9113 §3.4: "MUST treat an
/// invalid connection preface as a connection error"), as does a connection that ends
/// first.
pub(crate) async fn sniff<T: AsyncRead + Unpin>(mut io: T) -> io::Result<(Version, Rewind<T>)> {
    let mut seen = BytesMut::with_capacity(PREFACE.len());
    let version = loop {
        let n = seen.len();
        if let Some(v) = ttheader(&seen) {
            break v;
        }
        if seen[..] == PREFACE[..] {
            break Version::Http2;
        }
        if seen[..] != PREFACE[..n] && !maybe_ttheader(&seen) {
            if let Some(v) = request_line(&seen) {
                break v;
            }
        }
        if n == PREFACE.len() {
            break Version::Http2;
        }
        let mut chunk = [0u8; 24];
        let want = PREFACE.len() - n;
        let got = io.read(&mut chunk[..want]).await?;
        if got == 0 {
            break Version::Http2;
        }
        seen.extend_from_slice(&chunk[..got]);
    };
    Ok((version, Rewind { seen, io }))
}

/// Whether the first bytes may still begin a TTHeader packet (its LENGTH's first byte is
/// zero for any packet under 16 MiB) or a Buffered Thrift message (`80 01`), which neither
/// a preface nor a request line begins with.
fn maybe_ttheader(seen: &[u8]) -> bool {
    match seen.first() {
        Some(0) => seen.len() < TTHEADER_SNIFF,
        Some(0x80) => seen.len() < 2,
        _ => false,
    }
}

/// What the first bytes say once they can be Kitex's: TTHeader Streaming when the magic
/// and the streaming flag are there, PingPong for the magic alone or a Framed message (a
/// length, then a strict Thrift Binary TMessage's `80 01` or a KitexProtobuf message's
/// `90 01`).
fn ttheader(seen: &[u8]) -> Option<Version> {
    use super::ttheader::{buffered, pingpong, FLAG_STREAMING, MAGIC};
    if buffered::begins(seen) {
        return Some(Version::PingPong);
    }
    if seen.len() < TTHEADER_SNIFF || seen[0] != 0 {
        return None;
    }
    if seen[4..6] == buffered::VERSION_1 || seen[4..6] == pingpong::KITEX_PROTOBUF {
        return Some(Version::PingPong);
    }
    if seen[4..6] != MAGIC.to_be_bytes() {
        return None;
    }
    let flags = u16::from_be_bytes([seen[6], seen[7]]);
    Some(if flags & FLAG_STREAMING != 0 {
        Version::Ttheader
    } else {
        Version::PingPong
    })
}

/// What the start of a request that is not the preface says: HTTP/1.1 once a method token
/// and a space are followed by a target's first byte; HTTP/2 (to be refused) once it
/// cannot be a request line; `None` while it could still be one.
fn request_line(seen: &[u8]) -> Option<Version> {
    if seen.starts_with(b"PRI ") {
        // A preface gone wrong, not a request.
        return Some(Version::Http2);
    }
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let method = seen.iter().take_while(|&&b| is_tchar(b)).count();
    match seen.get(method) {
        None => None,
        Some(b' ') if method > 0 => match seen.get(method + 1) {
            None => None,
            Some(b'/' | b'*' | b'h' | b'H') => Some(Version::Http1),
            Some(_) => Some(Version::Http2),
        },
        Some(_) => Some(Version::Http2),
    }
}

/// A connection whose first bytes, already read, are read again.
pub(crate) struct Rewind<T> {
    seen: BytesMut,
    io: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.seen.is_empty() {
            let n = self.seen.len().min(buf.remaining());
            buf.put_slice(&self.seen[..n]);
            self.seen.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn sniffed(first: &[u8]) -> (Version, Vec<u8>) {
        let (mut a, b) = tokio::io::duplex(1024);
        a.write_all(first).await.unwrap();
        drop(a);
        let (v, mut r) = sniff(b).await.unwrap();
        let mut all = Vec::new();
        r.read_to_end(&mut all).await.unwrap();
        (v, all)
    }

    #[tokio::test]
    async fn the_preface_is_http2_and_is_read_again() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        assert_eq!(sniffed(&bytes).await, (Version::Http2, bytes));
    }

    #[tokio::test]
    async fn a_request_line_is_http1_and_is_read_again() {
        let req = b"POST /echo.TestService/PingPong HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(sniffed(req).await, (Version::Http1, req.to_vec()));
        assert_eq!(sniffed(b"OPTIONS * HTTP/1.1\r\n").await.0, Version::Http1);
        assert_eq!(
            sniffed(b"GET http://x/ HTTP/1.1\r\n").await.0,
            Version::Http1
        );
    }

    /// Kitex's first TTHeader Streaming frame (WIRE.md §2.1), its LENGTH, MAGIC, FLAGS with
    /// the streaming bit, stream id 1, then the rest of its header.
    #[tokio::test]
    async fn a_ttheader_streaming_frame_is_ttheader_and_is_read_again() {
        let frame = b"\x00\x00\x00\x3a\x10\x00\x00\x02\x00\x00\x00\x01\x00\x0c\x10\x00";
        assert_eq!(sniffed(frame).await, (Version::Ttheader, frame.to_vec()));
        // The same packet without the streaming flag is PingPong, as is a Framed message.
        let pingpong = b"\x00\x00\x00\x3a\x10\x00\x00\x00\x00\x00\x00\x01\x00\x0c\x10\x00";
        assert_eq!(sniffed(pingpong).await.0, Version::PingPong);
        let framed = b"\x00\x00\x00\x2c\x80\x01\x00\x01\x00\x00\x00\x08PingPong";
        assert_eq!(sniffed(framed).await.0, Version::PingPong);
        // A Framed KitexProtobuf message: a length, then Kitex's `90 01` magic, CALL.
        let protobuf = b"\x00\x00\x00\x16\x90\x01\x00\x01\x00\x00\x00\x08PingPong";
        assert_eq!(sniffed(protobuf).await.0, Version::PingPong);
        // A Buffered message (WIRE.md §1.5): a TMessage from its first byte.
        let buffered = b"\x80\x01\x00\x01\x00\x00\x00\x08PingPong";
        assert_eq!(
            sniffed(buffered).await,
            (Version::PingPong, buffered.to_vec())
        );
        assert_eq!(sniffed(b"\x80\x01").await.0, Version::PingPong);
        // `80` then anything else, or `80` alone before the connection ends, is neither.
        assert_eq!(sniffed(b"\x80\x02\x00\x01").await.0, Version::Http2);
        assert_eq!(sniffed(b"\x80").await.0, Version::Http2);
        // A zero first byte that is no TTHeader.
        assert_eq!(
            sniffed(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.0,
            Version::Http2
        );
    }

    /// Regression (h2spec http2/3.5/2, "Sends invalid connection preface"): bytes that are
    /// neither the preface nor a request line were answered as HTTP/1.1 (a 400), where
    /// HTTP/2 must treat them as a connection error.
    #[tokio::test]
    async fn bytes_that_are_neither_go_to_http2_to_be_refused() {
        for bad in [
            &b"INVALID CONNECTION PREFACE\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
            b"HELLO\r\n\r\n",
            b"\x00\x00\x00\x04",
        ] {
            assert_eq!(sniffed(bad).await.0, Version::Http2, "{bad:?}");
        }
    }
}
