//! Notices what the server says on a client connection as its bytes arrive: that it has
//! spoken at all (its connection preface), and its GOAWAY.
//!
//! RFC 9113 §3.4: "The server connection preface consists of a potentially empty SETTINGS
//! frame that MUST be the first frame the server sends in the HTTP/2 connection." h2's
//! handshake returns once our own preface is written; a connection is ready only once the
//! server's has come (as grpc-go has it), or calls would wait on a peer that accepted the
//! TCP connection and says nothing (a proxy whose backend is down, a frozen server's
//! listen backlog).
//!
//! h2 tells its user nothing of a GOAWAY until streams fail: new streams would still be
//! opened on a connection the server is draining (and that it ignores), and a call cut by
//! the server's close would end as "broken pipe". Watching the bytes h2 reads, the channel
//! learns of the GOAWAY before h2 acts on it, opens later calls on a new connection, and
//! ends the calls the GOAWAY cut with the server's reason and debug text.
//!
//! RFC 9113 §6.8: "GOAWAY ... Type=0x07 ... Last-Stream-ID (31), Error Code (32),
//! Additional Debug Data (..)"; the frame header is "Length (24), Type (8), Flags (8),
//! Reserved (1), Stream Identifier (31)".

use bytes::Bytes;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

use super::merge::{self, Merger};
use crate::status::Status;

const FRAME_HEADER: usize = 9;
const GOAWAY: u8 = 0x7;
/// Debug data kept of a GOAWAY: enough for any reason a server writes.
const DEBUG_KEPT: usize = 256;

/// What the server said in its GOAWAY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Said {
    pub(crate) last_stream_id: u32,
    pub(crate) code: u32,
    pub(crate) debug: Bytes,
}

/// The GOAWAY of one connection, once seen.
#[derive(Default)]
pub(crate) struct GoAway {
    seen: AtomicBool,
    said: Mutex<Option<Said>>,
    /// Whether the server has sent anything yet (its preface comes first), or closed
    /// without a word.
    heard: AtomicU8,
    first_words: Notify,
}

const SILENT: u8 = 0;
const SPOKE: u8 = 1;
const CLOSED: u8 = 2;

impl GoAway {
    /// Waits for the server's first bytes, its connection preface: false if the
    /// connection closed (or failed) before any came.
    pub(crate) async fn heard(&self) -> bool {
        loop {
            match self.heard.load(Ordering::Acquire) {
                SILENT => self.first_words.notified().await,
                h => return h == SPOKE,
            }
        }
    }

    fn first_read(&self, state: u8) {
        let was = self
            .heard
            .compare_exchange(SILENT, state, Ordering::AcqRel, Ordering::Acquire);
        if was.is_ok() {
            // One waiter at most (the handshake); the permit keeps for it if it comes
            // later.
            self.first_words.notify_one();
        }
    }

    /// True once the server sent GOAWAY: no new stream may start on this connection.
    pub(crate) fn seen(&self) -> bool {
        self.seen.load(Ordering::Acquire)
    }

    pub(crate) fn said(&self) -> Option<Said> {
        if !self.seen() {
            return None;
        }
        self.said.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, said: Said) {
        let mut slot = self.said.lock().unwrap_or_else(|p| p.into_inner());
        // A second GOAWAY narrows the first (graceful shutdown sends two); keep the last.
        *slot = Some(said);
        self.seen.store(true, Ordering::Release);
    }

    /// The status of a call that a transport failure ended on this connection, once the
    /// server had sent GOAWAY: the server's reason instead of the socket's.
    pub(crate) fn explain(&self, s: Status) -> Status {
        explain(Some(self), s)
    }
}

/// A transport failure's status on a connection (if known), explained by the server's
/// GOAWAY when it sent one.
pub(crate) fn explain(goaway: Option<&GoAway>, s: Status) -> Status {
    match goaway.and_then(GoAway::said) {
        Some(g) => Status::unavailable(format!(
            "the server closed the connection (GOAWAY {}{}): {}",
            reason_name(g.code),
            if g.debug.is_empty() {
                String::new()
            } else {
                format!(" {:?}", String::from_utf8_lossy(&g.debug))
            },
            s.message()
        )),
        None => s,
    }
}

fn reason_name(code: u32) -> String {
    format!("{:?}", h2::Reason::from(code))
}

/// Finds GOAWAY frames in the bytes a connection reads.
#[derive(Default)]
struct Scanner {
    head: [u8; FRAME_HEADER],
    have: usize,
    /// Payload bytes of the current frame not seen yet.
    left: usize,
    /// The payload of the GOAWAY being read: what is kept of it so far.
    goaway: Option<Vec<u8>>,
}

impl Scanner {
    /// Feeds bytes read from the server; returns each GOAWAY completed in them.
    fn feed(&mut self, mut buf: &[u8], found: &mut impl FnMut(Said)) {
        while !buf.is_empty() {
            if self.left == 0 && self.goaway.is_none() {
                let take = (FRAME_HEADER - self.have).min(buf.len());
                self.head[self.have..self.have + take].copy_from_slice(&buf[..take]);
                self.have += take;
                buf = &buf[take..];
                if self.have < FRAME_HEADER {
                    return;
                }
                self.have = 0;
                let h = &self.head;
                self.left = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                if h[3] == GOAWAY {
                    self.goaway = Some(Vec::with_capacity(self.left.min(8 + DEBUG_KEPT)));
                }
            }
            let take = self.left.min(buf.len());
            if let Some(g) = self.goaway.as_mut() {
                let keep = (8 + DEBUG_KEPT).saturating_sub(g.len()).min(take);
                g.extend_from_slice(&buf[..keep]);
            }
            self.left -= take;
            buf = &buf[take..];
            if self.left == 0 {
                if let Some(g) = self.goaway.take() {
                    // A GOAWAY shorter than 8 bytes is h2's to reject (FRAME_SIZE_ERROR).
                    if g.len() >= 8 {
                        found(Said {
                            last_stream_id: u32::from_be_bytes([g[0], g[1], g[2], g[3]])
                                & 0x7fff_ffff,
                            code: u32::from_be_bytes([g[4], g[5], g[6], g[7]]),
                            debug: Bytes::copy_from_slice(&g[8..]),
                        });
                    }
                }
            }
        }
    }
}

/// How long a write that found the connection closed waits for the rest of what the
/// server sent to be readable. The bytes are in the socket already; only the runtime's
/// reactor may not have seen them yet.
const LAST_WORDS_WAIT: Duration = Duration::from_millis(100);

/// A client connection's IO, watched for the server's GOAWAY.
pub(crate) struct Watched<T> {
    io: T,
    scanner: Scanner,
    /// Merges the server's small DATA frames before h2 reads them (see `merge`).
    merger: Merger,
    goaway: Arc<GoAway>,
    /// A write found the connection closed: its error, held back from h2 while what the
    /// server sent before it closed is read.
    closing: Option<Closing>,
}

struct Closing {
    error: io::Error,
    until: Pin<Box<Sleep>>,
}

impl<T> Watched<T> {
    pub(crate) fn new(io: T, goaway: Arc<GoAway>) -> Watched<T> {
        Watched {
            io,
            scanner: Scanner::default(),
            merger: Merger::default(),
            goaway,
            closing: None,
        }
    }

    fn observe(&mut self, bytes: &[u8]) {
        let goaway = &self.goaway;
        goaway.first_read(if bytes.is_empty() { CLOSED } else { SPOKE });
        self.scanner.feed(bytes, &mut |said| goaway.record(said));
    }
}

impl<T> Drop for Watched<T> {
    /// The connection is gone: a handshake still waiting for the server's first words
    /// hears that none will come. (A connection that failed on its first write, the server
    /// having closed it before our preface, was never read again, and the handshake waited
    /// for the connect timeout: a client without the certificate a server asks for hung.)
    fn drop(&mut self) {
        self.goaway.first_read(CLOSED);
    }
}

impl<T: AsyncRead + Unpin> Watched<T> {
    /// A write to the connection, `write` on `io`. One that finds the connection closed
    /// gives h2 its error only once what the server sent before it closed (its GOAWAY, if
    /// any) is read, since h2, failing on the write, would never read it.
    fn write_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if let Some(closing) = self.closing.take() {
            return self.poll_last_words(cx, closing).map(Err);
        }
        match write(Pin::new(&mut self.io), cx) {
            Poll::Ready(Err(error)) if is_closed(&error) => {
                let until = Box::pin(tokio::time::sleep(LAST_WORDS_WAIT));
                self.poll_last_words(cx, Closing { error, until }).map(Err)
            }
            r => r,
        }
    }

    /// Reads the server's last bytes; then the failed write's error. A reader polled with
    /// no waker would see only what the reactor has seen, which, with the bytes in the
    /// socket already, may be nothing yet.
    fn poll_last_words(&mut self, cx: &mut Context<'_>, mut closing: Closing) -> Poll<io::Error> {
        let mut space = [0u8; 4096];
        for _ in 0..16 {
            let mut buf = ReadBuf::new(&mut space);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let n = buf.filled().len();
                    self.observe(&space[..n]);
                }
                Poll::Pending if closing.until.as_mut().poll(cx).is_pending() => {
                    self.closing = Some(closing);
                    return Poll::Pending;
                }
                _ => break,
            }
        }
        Poll::Ready(closing.error)
    }
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.io).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) => {
                let s = &me.scanner;
                let at = merge::next_head(&s.head, s.have, s.left, &buf.filled()[before..]);
                me.merger.merge_read(buf, before, at);
                me.observe(&buf.filled()[before..])
            }
            Poll::Ready(Err(_)) => me.goaway.first_read(CLOSED),
            Poll::Pending => {}
        }
        r
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_with(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_with(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().write_with(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn found(scanner: &mut Scanner, parts: &[&[u8]]) -> Vec<Said> {
        let mut out = Vec::new();
        for p in parts {
            scanner.feed(p, &mut |s| out.push(s));
        }
        out
    }

    /// SETTINGS (empty), a DATA frame of 3 bytes on stream 1, then GOAWAY: last stream 3,
    /// ENHANCE_YOUR_CALM (0xb), debug "too_many_data_frames".
    fn wire() -> Vec<u8> {
        let mut w = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
        w.extend_from_slice(&[0, 0, 3, 0x0, 0, 0, 0, 0, 1, b'a', b'b', b'c']);
        let debug = b"too_many_data_frames";
        w.extend_from_slice(&[0, 0, 8 + debug.len() as u8, 0x7, 0, 0, 0, 0, 0]);
        w.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 0xb]);
        w.extend_from_slice(debug);
        w
    }

    #[test]
    fn a_goaway_is_found_in_one_read() {
        let said = found(&mut Scanner::default(), &[&wire()]);
        assert_eq!(
            said,
            [Said {
                last_stream_id: 3,
                code: 0xb,
                debug: Bytes::from_static(b"too_many_data_frames"),
            }]
        );
    }

    #[test]
    fn a_goaway_is_found_whatever_the_reads_cut() {
        let w = wire();
        for cut in 0..w.len() {
            for cut2 in cut..w.len() {
                let said = found(
                    &mut Scanner::default(),
                    &[&w[..cut], &w[cut..cut2], &w[cut2..]],
                );
                assert_eq!(said.len(), 1, "cuts {cut} {cut2}");
                assert_eq!(said[0].debug, &b"too_many_data_frames"[..]);
            }
        }
    }

    #[test]
    fn goaway_bytes_inside_a_data_frame_are_not_a_goaway() {
        // A DATA frame whose payload looks like a GOAWAY frame header.
        let mut w = vec![0, 0, 17, 0x0, 0, 0, 0, 0, 1];
        w.extend_from_slice(&[0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert!(found(&mut Scanner::default(), &[&w]).is_empty());
    }

    #[test]
    fn long_debug_data_is_cut_and_the_next_frame_still_read() {
        let mut w = vec![0, 0x04, 0x08, 0x7, 0, 0, 0, 0, 0]; // 1032-byte GOAWAY
        w.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        w.extend_from_slice(&[b'x'; 1024]);
        w.extend_from_slice(&[0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
        let said = found(&mut Scanner::default(), &[&w]);
        assert_eq!(said.len(), 2);
        assert_eq!(said[0].debug.len(), DEBUG_KEPT);
        assert_eq!((said[1].last_stream_id, said[1].code), (1, 2));
    }

    /// Regression (stop 41's CI; here 1 run of the goaway test in a few hundred): a server
    /// wrote its GOAWAY and closed; our next write failed before the runtime had seen the
    /// socket readable, so the look at what was left to read found nothing, and the call
    /// the GOAWAY cut ended as "broken pipe" instead of with the server's reason.
    #[tokio::test(flavor = "current_thread")]
    async fn a_goaway_before_a_failed_write_is_read_though_the_runtime_has_not_seen_it() {
        use std::io::Write;
        use tokio::io::AsyncWriteExt;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(&wire()).unwrap();
        drop(server);
        let goaway = Arc::new(GoAway::default());
        let mut w = Watched::new(sock, goaway.clone());
        // The thread blocks: the runtime's reactor does not run until a write fails.
        let pause = std::time::Duration::from_millis(20);
        std::thread::sleep(pause);
        let mut failed = None;
        for _ in 0..100 {
            match w.write(b"x").await {
                Ok(_) => std::thread::sleep(pause),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let failed = failed.expect("a write to the closed connection fails");
        assert!(is_closed(&failed), "{failed}");
        let said = goaway.said().expect("the GOAWAY was read");
        assert_eq!((said.last_stream_id, said.code), (3, 0xb));
        assert_eq!(said.debug, &b"too_many_data_frames"[..]);
    }

    /// A socket the server has already reset: every write fails, and nothing comes to read.
    struct Reset;

    impl AsyncRead for Reset {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Reset {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Regression: a server that closed the connection before our preface (one rejecting a
    /// client without the certificate it asks for, on a loaded machine) failed h2 on its
    /// first write; nothing read again, and the handshake waited for the server's first
    /// words until the connect timeout. The C TLS test's call timed out 1 run in 40.
    #[tokio::test]
    async fn a_connection_that_failed_before_the_server_spoke_is_not_waited_for() {
        let goaway = Arc::new(GoAway::default());
        if let Ok((_, conn)) = h2::client::handshake(Watched::new(Reset, goaway.clone())).await {
            assert!(conn.await.is_err(), "every write fails");
        }
        let mut heard = std::pin::pin!(goaway.heard());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert_eq!(heard.as_mut().poll(&mut cx), Poll::Ready(false));
    }
}
