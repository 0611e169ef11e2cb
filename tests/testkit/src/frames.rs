//! Counting HTTP/2 frames as they cross a connection, in both directions.
//!
//! How messages are framed on the wire is invisible to the peers' APIs, yet it decides
//! whether a peer keeps the connection: h2 (0.4.20, tonic's) charges every small DATA frame
//! it has received but not yet handed to its application against a budget, and past it
//! closes the connection with GOAWAY(ENHANCE_YOUR_CALM, "too_many_data_frames") (issue 17:
//! one 23-byte DATA frame per streamed message). [`Counted`] wraps a connection's socket and
//! reads the frame headers going by; tonic runs on top of it unchanged, as server
//! ([`FrameLog::incoming`]) or as client ([`FrameLog::connector`]).
//!
//! "in" is what this side read from its peer, "out" what it wrote. Inbound frames are
//! counted before the bytes reach h2, so once the application has seen a message its frame
//! is counted; outbound ones just after the write returns, so the peer may see a frame a
//! moment before this side's count does. Tests judge a sender by the receiver's "in".

use std::fmt;
use std::future::Future;
use std::io;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt};

/// What a client writes before its first frame (RFC 9113, 3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;

/// Frame types 0x0..=0x9 are counted each on its own; every other type in the last slot.
const KINDS: usize = 11;
const HEAD_LEN: usize = 9;
/// A GOAWAY's last-stream-id and error code, and this much of its debug data, are kept.
const GOAWAY_KEEP: usize = 8 + 64;

fn kind_slot(kind: u8) -> usize {
    (kind as usize).min(KINDS - 1)
}

/// A GOAWAY seen in one direction: the first one with an error code, else the last one
/// (a graceful close sends GOAWAY(NO_ERROR), an error GOAWAY is what tests look for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoAway {
    pub last_stream_id: u32,
    pub code: u32,
    /// Its debug data, cut at 64 bytes.
    pub debug: Vec<u8>,
}

/// One direction's counters, updated by the parser, readable from any thread meanwhile.
#[derive(Debug, Default)]
pub struct DirCounts {
    frames: [AtomicU64; KINDS],
    data_bytes: AtomicU64,
    goaway: Mutex<Option<GoAway>>,
    malformed: AtomicBool,
}

impl DirCounts {
    pub fn snapshot(&self) -> Dir {
        let mut frames = [0u64; KINDS];
        for (f, c) in frames.iter_mut().zip(&self.frames) {
            *f = c.load(Ordering::Relaxed);
        }
        Dir {
            frames,
            data_bytes: self.data_bytes.load(Ordering::Relaxed),
            goaway: self
                .goaway
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }
}

/// One direction's counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dir {
    /// Frames by type (index = type; types above 0x9 share the last slot).
    pub frames: [u64; KINDS],
    /// DATA frame payload bytes (padding included).
    pub data_bytes: u64,
    /// See [`GoAway`] for which one.
    pub goaway: Option<GoAway>,
    /// The bytes did not start with the client preface where one was due: counts after
    /// that point mean nothing.
    pub malformed: bool,
}

impl Dir {
    pub fn frames_of(&self, kind: u8) -> u64 {
        self.frames[kind_slot(kind)]
    }
    pub fn data(&self) -> u64 {
        self.frames_of(DATA)
    }
    pub fn goaways(&self) -> u64 {
        self.frames_of(GOAWAY)
    }
    /// A GOAWAY with an error code (not NO_ERROR) went this way.
    pub fn goaway_error(&self) -> Option<&GoAway> {
        self.goaway.as_ref().filter(|g| g.code != 0)
    }
    pub fn total(&self) -> u64 {
        self.frames.iter().sum()
    }

    /// What happened since `earlier` (the last GOAWAY is kept as it is).
    pub fn since(&self, earlier: &Dir) -> Dir {
        let mut frames = self.frames;
        for (f, e) in frames.iter_mut().zip(earlier.frames) {
            *f -= e;
        }
        Dir {
            frames,
            data_bytes: self.data_bytes - earlier.data_bytes,
            goaway: self.goaway.clone(),
            malformed: self.malformed,
        }
    }
}

/// Reads HTTP/2 frame headers out of one direction's byte stream, however it is cut into
/// reads or writes, and counts them. Payloads are skipped, except a GOAWAY's first bytes.
#[derive(Debug)]
pub struct FrameParser {
    /// Bytes of the client preface still to come before the first frame.
    preface_left: usize,
    head: [u8; HEAD_LEN],
    head_len: usize,
    payload_left: usize,
    kind: u8,
    kept: Vec<u8>,
}

impl FrameParser {
    /// A direction that starts with a frame: a server's writes, a client's reads.
    pub fn new() -> FrameParser {
        FrameParser {
            preface_left: 0,
            head: [0; HEAD_LEN],
            head_len: 0,
            payload_left: 0,
            kind: 0,
            kept: Vec::new(),
        }
    }

    /// A direction that starts with the client preface: a client's writes, a server's reads.
    pub fn after_preface() -> FrameParser {
        FrameParser {
            preface_left: PREFACE.len(),
            ..FrameParser::new()
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8], counts: &DirCounts) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let at = PREFACE.len() - self.preface_left;
                let n = self.preface_left.min(bytes.len());
                if bytes[..n] != PREFACE[at..at + n] {
                    counts.malformed.store(true, Ordering::Relaxed);
                }
                self.preface_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.head_len < HEAD_LEN {
                let n = (HEAD_LEN - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                bytes = &bytes[n..];
                if self.head_len == HEAD_LEN {
                    self.start_frame(counts);
                }
                continue;
            }
            let n = self.payload_left.min(bytes.len());
            if self.kind == GOAWAY {
                let room = GOAWAY_KEEP.saturating_sub(self.kept.len()).min(n);
                self.kept.extend_from_slice(&bytes[..room]);
            }
            self.payload_left -= n;
            bytes = &bytes[n..];
            if self.payload_left == 0 {
                self.end_frame(counts);
            }
        }
    }

    fn start_frame(&mut self, counts: &DirCounts) {
        let h = &self.head;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        self.kind = h[3];
        self.payload_left = len;
        self.kept.clear();
        counts.frames[kind_slot(self.kind)].fetch_add(1, Ordering::Relaxed);
        if self.kind == DATA {
            counts.data_bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
        // A frame without payload (an empty DATA frame, a SETTINGS ack) ends with its head.
        if len == 0 {
            self.end_frame(counts);
        }
    }

    fn end_frame(&mut self, counts: &DirCounts) {
        if self.kind == GOAWAY && self.kept.len() >= 8 {
            let k = &self.kept;
            let g = GoAway {
                last_stream_id: u32::from_be_bytes([k[0], k[1], k[2], k[3]]) & 0x7fff_ffff,
                code: u32::from_be_bytes([k[4], k[5], k[6], k[7]]),
                debug: k[8..].to_vec(),
            };
            let mut slot = counts.goaway.lock().unwrap_or_else(|p| p.into_inner());
            // A connection that closes gracefully after an error still shows the error.
            if slot.as_ref().is_none_or(|old| old.code == 0) {
                *slot = Some(g);
            }
        }
        self.head_len = 0;
    }
}

impl Default for FrameParser {
    fn default() -> FrameParser {
        FrameParser::new()
    }
}

/// Both directions of one connection.
#[derive(Debug, Default)]
pub struct ConnCounts {
    peer: Option<SocketAddr>,
    inbound: DirCounts,
    outbound: DirCounts,
    closed: AtomicBool,
}

impl ConnCounts {
    pub fn new(peer: Option<SocketAddr>) -> ConnCounts {
        ConnCounts {
            peer,
            ..ConnCounts::default()
        }
    }
    pub fn snapshot(&self) -> FrameStats {
        FrameStats {
            peer: self.peer,
            inbound: self.inbound.snapshot(),
            outbound: self.outbound.snapshot(),
        }
    }
    /// The socket was dropped: the counts are final.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A connection's frame counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub peer: Option<SocketAddr>,
    pub inbound: Dir,
    pub outbound: Dir,
}

impl FrameStats {
    /// What happened on the connection since `earlier`, a snapshot of the same connection.
    pub fn since(&self, earlier: &FrameStats) -> FrameStats {
        FrameStats {
            peer: self.peer,
            inbound: self.inbound.since(&earlier.inbound),
            outbound: self.outbound.since(&earlier.outbound),
        }
    }
}

/// The line the echo programs print per connection (the Python and Node tests parse it):
/// `frames peer=ADDR in_data=N in_data_bytes=N out_data=N out_data_bytes=N in_frames=N
/// out_frames=N goaway_in=N goaway_out=N`, then for a direction that saw a GOAWAY
/// `goaway_in_code=N goaway_in_debug=TEXT` (or `_out_`), and `malformed=in|out` if so.
impl fmt::Display for FrameStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = self.peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let (i, o) = (&self.inbound, &self.outbound);
        write!(
            f,
            "frames peer={peer} in_data={} in_data_bytes={} out_data={} out_data_bytes={} \
             in_frames={} out_frames={} goaway_in={} goaway_out={}",
            i.data(),
            i.data_bytes,
            o.data(),
            o.data_bytes,
            i.total(),
            o.total(),
            i.goaways(),
            o.goaways()
        )?;
        for (name, d) in [("in", i), ("out", o)] {
            if let Some(g) = &d.goaway {
                // One token: anything but a plain printable character becomes '_'.
                let debug: String = g
                    .debug
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() && b != b'=' {
                            b as char
                        } else {
                            '_'
                        }
                    })
                    .collect();
                write!(
                    f,
                    " goaway_{name}_code={} goaway_{name}_debug={}",
                    g.code,
                    if debug.is_empty() { "-" } else { &debug }
                )?;
            }
            if d.malformed {
                write!(f, " malformed={name}")?;
            }
        }
        Ok(())
    }
}

type OnClose = Arc<dyn Fn(&FrameStats) + Send + Sync>;

/// A socket whose frames are counted as they are read and written.
pub struct Counted<IO> {
    io: IO,
    reads: FrameParser,
    writes: FrameParser,
    counts: Arc<ConnCounts>,
    on_close: Option<OnClose>,
}

impl<IO> Counted<IO> {
    /// The server's end of a connection: what it reads starts with the client preface.
    pub fn server(io: IO, peer: Option<SocketAddr>) -> Counted<IO> {
        Counted::new(io, peer, FrameParser::after_preface(), FrameParser::new())
    }

    /// The client's end: what it writes starts with the client preface.
    pub fn client(io: IO, peer: Option<SocketAddr>) -> Counted<IO> {
        Counted::new(io, peer, FrameParser::new(), FrameParser::after_preface())
    }

    fn new(
        io: IO,
        peer: Option<SocketAddr>,
        reads: FrameParser,
        writes: FrameParser,
    ) -> Counted<IO> {
        Counted {
            io,
            reads,
            writes,
            counts: Arc::new(ConnCounts::new(peer)),
            on_close: None,
        }
    }

    pub fn counts(&self) -> Arc<ConnCounts> {
        self.counts.clone()
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO> Drop for Counted<IO> {
    fn drop(&mut self) {
        self.counts.closed.store(true, Ordering::Release);
        if let Some(f) = self.on_close.take() {
            f(&self.counts.snapshot());
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.reads
                .feed(&buf.filled()[before..], &this.counts.inbound);
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.writes.feed(&buf[..n], &this.counts.outbound);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            // Only what was written: a short write ends part-way through some slice.
            let mut left = n;
            for b in bufs {
                if left == 0 {
                    break;
                }
                let k = left.min(b.len());
                this.writes.feed(&b[..k], &this.counts.outbound);
                left -= k;
            }
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Counted<IO> {
    type ConnectInfo = IO::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Every connection counted through it (both ends' `Counted` sockets report here), and what
/// to do with a connection's counts when it closes.
#[derive(Clone, Default)]
pub struct FrameLog {
    conns: Arc<Mutex<Vec<Arc<ConnCounts>>>>,
    on_close: Option<OnClose>,
}

impl fmt::Debug for FrameLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameLog")
            .field("connections", &self.connections().len())
            .field("on_close", &self.on_close.is_some())
            .finish()
    }
}

impl FrameLog {
    pub fn new() -> FrameLog {
        FrameLog::default()
    }

    /// A log that prints each connection's line (see [`FrameStats`]'s `Display`) on stdout,
    /// flushed, as the connection closes.
    pub fn printing() -> FrameLog {
        FrameLog::new().on_close(|s| {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        })
    }

    pub fn on_close(mut self, f: impl Fn(&FrameStats) + Send + Sync + 'static) -> FrameLog {
        self.on_close = Some(Arc::new(f));
        self
    }

    /// Every connection so far, in the order they were made.
    pub fn connections(&self) -> Vec<Arc<ConnCounts>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The one connection made so far; panics if there were none or several.
    pub fn only(&self) -> Arc<ConnCounts> {
        let c = self.connections();
        assert_eq!(c.len(), 1, "want exactly one counted connection");
        c[0].clone()
    }

    fn register<IO>(&self, mut c: Counted<IO>) -> Counted<IO> {
        c.on_close = self.on_close.clone();
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(c.counts());
        c
    }

    pub fn server<IO>(&self, io: IO, peer: Option<SocketAddr>) -> Counted<IO> {
        self.register(Counted::server(io, peer))
    }

    pub fn client<IO>(&self, io: IO, peer: Option<SocketAddr>) -> Counted<IO> {
        self.register(Counted::client(io, peer))
    }

    /// The accepted connections of `listener`, counted, for tonic's `serve_with_incoming`.
    pub fn incoming(
        &self,
        listener: TcpListener,
    ) -> impl Stream<Item = io::Result<Counted<TcpStream>>> + Send + 'static {
        let log = self.clone();
        tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |r| {
            r.map(|s| {
                // As tonic's own listener does (`tcp_nodelay`), which a custom incoming skips.
                let _ = s.set_nodelay(true);
                let peer = s.peer_addr().ok();
                log.server(s, peer)
            })
        })
    }

    /// A connector for tonic's `Endpoint::connect_with_connector`: plain TCP, counted.
    pub fn connector(&self) -> Connector {
        Connector { log: self.clone() }
    }
}

/// Opens counted TCP connections for tonic's client (see [`FrameLog::connector`]).
#[derive(Clone, Debug)]
pub struct Connector {
    log: FrameLog,
}

type Connecting =
    Pin<Box<dyn Future<Output = io::Result<hyper_util::rt::TokioIo<Counted<TcpStream>>>> + Send>>;

impl tower_service::Service<http::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<Counted<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Connecting {
        let log = self.log.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']);
            let port = uri.port_u16().unwrap_or(80);
            let s = TcpStream::connect((host, port)).await?;
            s.set_nodelay(true)?;
            let peer = s.peer_addr().ok();
            Ok(hyper_util::rt::TokioIo::new(log.client(s, peer)))
        })
    }
}

/// A tonic channel to `http://addr` whose connection is counted in `log`.
pub async fn tonic_channel(
    addr: SocketAddr,
    log: &FrameLog,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_with_connector(log.connector())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame head: 24-bit length, type, flags, stream id.
    fn head(len: u32, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
        let l = len.to_be_bytes();
        let s = stream.to_be_bytes();
        vec![l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]]
    }

    fn parse(p: &mut FrameParser, chunks: &[&[u8]]) -> Dir {
        let c = DirCounts::default();
        for ch in chunks {
            p.feed(ch, &c);
        }
        c.snapshot()
    }

    #[test]
    fn counts_frames_by_type_and_data_payload_bytes() {
        let mut b = Vec::new();
        // SETTINGS with one setting (INITIAL_WINDOW_SIZE = 65535), then its ack.
        b.extend([0x00, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00]);
        b.extend([0x00, 0x04, 0x00, 0x00, 0xff, 0xff]);
        b.extend([0x00, 0x00, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00]);
        // HEADERS on stream 1 with a 3-byte block, END_HEADERS.
        b.extend([0x00, 0x00, 0x03, 0x01, 0x04, 0x00, 0x00, 0x00, 0x01]);
        b.extend([0x82, 0x86, 0x84]);
        // DATA on stream 1: one 23-byte gRPC message (5-byte prefix, 18-byte message).
        b.extend([0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]);
        b.extend([0x00, 0x00, 0x00, 0x00, 0x12, 0x0a, 0x10]);
        b.extend([b'x'; 16]);
        // DATA on stream 1, empty, END_STREAM.
        b.extend([0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01]);
        // WINDOW_UPDATE on the connection, +1000.
        b.extend([0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00]);
        b.extend([0x00, 0x00, 0x03, 0xe8]);
        let d = parse(&mut FrameParser::new(), &[&b]);
        assert_eq!(d.frames_of(SETTINGS), 2);
        assert_eq!(d.frames_of(HEADERS), 1);
        assert_eq!(d.data(), 2);
        assert_eq!(d.data_bytes, 23);
        assert_eq!(d.frames_of(WINDOW_UPDATE), 1);
        assert_eq!(d.total(), 6);
        assert_eq!(d.goaways(), 0);
        assert!(!d.malformed);
    }

    #[test]
    fn a_frame_head_split_across_reads_is_counted_once() {
        // DATA, 5 bytes, stream 3; its head arrives in three pieces, its payload in two.
        let data = [0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03];
        let mut p = FrameParser::new();
        let c = DirCounts::default();
        p.feed(&data[..2], &c);
        assert_eq!(c.snapshot().total(), 0);
        p.feed(&data[2..8], &c);
        assert_eq!(c.snapshot().total(), 0);
        p.feed(&data[8..], &c);
        assert_eq!(c.snapshot().data(), 1);
        p.feed(&[1, 2], &c);
        // The rest of the payload, and in the same read a PING's head and half its payload.
        p.feed(
            &[
                3, 4, 5, 0x00, 0x00, 0x08, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 9, 9, 9, 9,
            ],
            &c,
        );
        p.feed(&[9, 9, 9, 9], &c);
        let d = c.snapshot();
        assert_eq!(d.data(), 1);
        assert_eq!(d.data_bytes, 5);
        assert_eq!(d.frames_of(PING), 1);
        assert_eq!(d.total(), 2);
    }

    #[test]
    fn byte_at_a_time_counts_as_one_write_does() {
        let mut b = head(23, DATA, 0, 1);
        b.extend([0u8; 23]);
        b.extend(head(0, DATA, 1, 1));
        b.extend(head(8, PING, 1, 0));
        b.extend([0u8; 8]);
        let whole = parse(&mut FrameParser::new(), &[&b]);
        let bytes: Vec<&[u8]> = b.chunks(1).collect();
        let split = parse(&mut FrameParser::new(), &bytes);
        assert_eq!(whole, split);
        assert_eq!(whole.data(), 2);
        assert_eq!(whole.total(), 3);
    }

    #[test]
    fn the_client_preface_is_skipped_and_checked() {
        let mut b = PREFACE.to_vec();
        b.extend([0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00]);
        // Cut in the middle of the preface and right after it.
        let d = parse(
            &mut FrameParser::after_preface(),
            &[&b[..10], &b[10..24], &b[24..]],
        );
        assert_eq!(d.frames_of(SETTINGS), 1);
        assert_eq!(d.total(), 1);
        assert!(!d.malformed);

        // Without a preface, the first frame's head is taken for preface bytes.
        let d = parse(&mut FrameParser::after_preface(), &[&b[24..]]);
        assert!(d.malformed);
    }

    #[test]
    fn a_goaway_keeps_its_code_and_debug_data() {
        // GOAWAY: last stream 1, ENHANCE_YOUR_CALM (0xb), "too_many_data_frames".
        let debug = b"too_many_data_frames";
        let mut b = vec![
            0x00,
            0x00,
            8 + debug.len() as u8,
            0x07,
            0x00,
            0x00,
            0x00,
            0x00,
            0x00,
        ];
        b.extend([0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0b]);
        b.extend(debug);
        let d = parse(&mut FrameParser::new(), &[&b[..12], &b[12..20], &b[20..]]);
        assert_eq!(d.goaways(), 1);
        assert_eq!(
            d.goaway,
            Some(GoAway {
                last_stream_id: 1,
                code: 0xb,
                debug: debug.to_vec()
            })
        );
        let s = FrameStats {
            peer: Some("127.0.0.1:5555".parse().unwrap()),
            inbound: Dir::default(),
            outbound: d,
        };
        assert_eq!(
            s.to_string(),
            "frames peer=127.0.0.1:5555 in_data=0 in_data_bytes=0 out_data=0 out_data_bytes=0 \
             in_frames=0 out_frames=1 goaway_in=0 goaway_out=1 goaway_out_code=11 \
             goaway_out_debug=too_many_data_frames"
        );
    }

    #[test]
    fn an_error_goaway_is_not_hidden_by_a_graceful_one() {
        let mut b = Vec::new();
        // GOAWAY(last stream 3, ENHANCE_YOUR_CALM), then GOAWAY(last stream 3, NO_ERROR).
        b.extend([0x00, 0x00, 0x08, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00]);
        b.extend([0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x0b]);
        b.extend([0x00, 0x00, 0x08, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00]);
        b.extend([0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00]);
        let d = parse(&mut FrameParser::new(), &[&b]);
        assert_eq!(d.goaways(), 2);
        assert_eq!(d.goaway_error().map(|g| g.code), Some(0xb));

        // A graceful close alone is no error.
        let d = parse(&mut FrameParser::new(), &[&b[17..]]);
        assert_eq!(d.goaways(), 1);
        assert_eq!(d.goaway.as_ref().map(|g| g.code), Some(0));
        assert_eq!(d.goaway_error(), None);
    }

    #[test]
    fn since_subtracts_an_earlier_snapshot() {
        let c = DirCounts::default();
        let mut p = FrameParser::new();
        let mut one = head(3, DATA, 0, 1);
        one.extend([1, 2, 3]);
        p.feed(&one, &c);
        let before = c.snapshot();
        p.feed(&one, &c);
        p.feed(&one, &c);
        let d = c.snapshot().since(&before);
        assert_eq!(d.data(), 2);
        assert_eq!(d.data_bytes, 6);
    }

    #[tokio::test]
    async fn counted_io_counts_vectored_writes_and_reads_of_both_ends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, b) = tokio::io::duplex(64);
        let mut client = Counted::client(a, None);
        let mut server = Counted::server(b, None);
        let mut data = head(4, DATA, 0, 1);
        data.extend([1, 2, 3, 4]);
        // The preface, a SETTINGS head and two DATA frames, cut across the slices of one
        // vectored write and then written again to the end.
        let mut all = PREFACE.to_vec();
        all.extend(head(0, SETTINGS, 0, 0));
        all.extend(&data);
        all.extend(&data);
        let slices = [
            io::IoSlice::new(&all[..20]),
            io::IoSlice::new(&all[20..30]),
            io::IoSlice::new(&all[30..]),
        ];
        let n = client.write_vectored(&slices).await.unwrap();
        client.write_all(&all[n..]).await.unwrap();
        let mut got = vec![0; all.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, all);
        let (c, s) = (client.counts().snapshot(), server.counts().snapshot());
        assert_eq!(c.outbound, s.inbound);
        assert_eq!(s.inbound.frames_of(SETTINGS), 1);
        assert_eq!(s.inbound.data(), 2);
        assert_eq!(s.inbound.data_bytes, 8);
        assert!(!s.inbound.malformed);

        // The other way: a server's frames start at once.
        server.write_all(&data).await.unwrap();
        let mut got = vec![0; data.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(client.counts().snapshot().inbound.data(), 1);
        assert_eq!(server.counts().snapshot().outbound.data(), 1);

        let log = FrameLog::new();
        let closed = Arc::new(Mutex::new(None));
        let seen = closed.clone();
        let log = log.on_close(move |s| *seen.lock().unwrap() = Some(s.inbound.data()));
        let (a, _b) = tokio::io::duplex(64);
        let conn = log.server(a, None);
        assert!(!log.only().is_closed());
        drop(conn);
        assert!(log.only().is_closed());
        assert_eq!(*closed.lock().unwrap(), Some(0));
    }

    #[tokio::test]
    async fn counts_both_ends_of_a_tonic_call() {
        use crate::{EchoRequest, TestServiceClient, TestServiceServer, TonicEcho};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_log = FrameLog::new();
        let incoming = server_log.incoming(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TestServiceServer::new(TonicEcho))
                .serve_with_incoming(incoming),
        );
        let client_log = FrameLog::new();
        let mut c = TestServiceClient::new(tonic_channel(addr, &client_log).await.unwrap());
        let r = c
            .ping_pong(EchoRequest {
                payload: b"hi".to_vec(),
                count: 0,
            })
            .await
            .unwrap();
        assert_eq!(r.into_inner().payload, b"hi");
        let (client, server) = (client_log.only().snapshot(), server_log.only().snapshot());
        // One request message and one response message, seen the same from both ends (the
        // server's own count of its response may lag its write: not looked at).
        assert_eq!(client.outbound.data_bytes, 5 + 4);
        assert_eq!(server.inbound.data_bytes, 5 + 4);
        assert_eq!(client.inbound.data_bytes, 5 + 4);
        assert!(client.outbound.data() >= 1 && server.inbound.data() >= 1);
        assert_eq!(client.outbound.frames_of(HEADERS), 1);
        assert!(!client.outbound.malformed && !server.inbound.malformed);
    }
}
