//! An HTTP/2 server connection's bytes, followed frame by frame between the socket and h2,
//! for what h2 keeps to itself: the PINGs a client sends (h2 answers them and tells no one,
//! so a server that enforces a keepalive policy must count them here), whether the server
//! has sent HEADERS or DATA since the last one (grpc-go forgives pings then), and how long
//! a request's header block takes to arrive (h2 waits for it as long as the peer likes, so
//! a client sending HEADERS a byte at a time would hold its connection for ever).
//!
//! Only the 9-byte frame heads are read; payloads are skipped by their length, so the cost
//! is a few comparisons per frame whatever its size. On the way in, runs of small DATA
//! frames are merged, a frame per stream (`merge`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use super::budget::Ledger;
use super::merge::{self, Merger, HEAD};

/// The client's connection preface, which comes before its first frame (§3.4).
const PREFACE: u32 = 24;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const PING: u8 = 0x6;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
/// PING's ACK flag: a PING with it answers one of ours.
const ACK: u8 = 0x1;

/// What the watcher saw that the connection's owner acts on: the client's PINGs, the
/// server's HEADERS and DATA since the last of them, and whether the client sent anything
/// since the owner last asked (keepalive pings only a connection that has gone quiet).
#[derive(Default)]
pub(crate) struct Seen {
    pings: AtomicU32,
    sent_since: AtomicBool,
    read_since: AtomicBool,
    pinged: Notify,
}

impl Seen {
    /// Waits for a PING from the client: how many came since the last wait, and whether
    /// the server sent HEADERS or DATA in the meantime.
    pub(crate) async fn pings(&self) -> (u32, bool) {
        loop {
            let n = self.pings.swap(0, Ordering::Relaxed);
            if n > 0 {
                return (n, self.sent_since.swap(false, Ordering::Relaxed));
            }
            self.pinged.notified().await;
        }
    }

    /// Whether the client sent anything since the last time this was asked.
    pub(crate) fn heard_since(&self) -> bool {
        self.read_since.swap(false, Ordering::Relaxed)
    }
}

/// Where one direction of a connection is: inside a frame's head (`got` of its 9 bytes
/// seen) or inside its payload (`left` bytes still to skip).
struct Frames {
    head: [u8; HEAD],
    got: usize,
    left: u32,
}

/// One step through a direction's bytes.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A frame's head is complete: its type and flags.
    Head(u8, u8),
    /// A frame's last byte was taken (right after its head when it has no payload).
    End,
}

impl Frames {
    /// A direction whose first `skip` bytes are not frames.
    fn after(skip: u32) -> Frames {
        Frames {
            head: [0; HEAD],
            got: 0,
            left: skip,
        }
    }

    /// Takes bytes from the front of `bytes` up to the next step, if they hold one.
    fn step(&mut self, bytes: &mut &[u8]) -> Option<Step> {
        if self.left > 0 {
            let n = bytes.len().min(self.left as usize);
            *bytes = &bytes[n..];
            self.left -= n as u32;
            return (self.left == 0 && n > 0).then_some(Step::End);
        }
        let n = bytes.len().min(HEAD - self.got);
        self.head[self.got..self.got + n].copy_from_slice(&bytes[..n]);
        *bytes = &bytes[n..];
        self.got += n;
        if self.got < HEAD {
            return None;
        }
        self.got = 0;
        let h = self.head;
        self.left = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        Some(Step::Head(h[3], h[4]))
    }

    #[cfg(test)]
    fn step_all(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            self.step(&mut bytes);
        }
    }

    /// Where the first frame to begin in `bytes` (the bytes that come next) begins, if
    /// its head does.
    fn next_head(&self, bytes: &[u8]) -> Option<usize> {
        merge::next_head(&self.head, self.got, self.left as usize, bytes)
    }

    /// The stream of the frame whose head was taken last.
    fn stream(&self) -> u32 {
        u32::from_be_bytes([self.head[5], self.head[6], self.head[7], self.head[8]]) & 0x7fff_ffff
    }
}

/// The client's direction: its PINGs, and whether a header block is still arriving.
struct Inbound {
    frames: Frames,
    /// Inside a header block (a HEADERS frame and the CONTINUATIONs after it).
    in_block: bool,
    /// The current frame ends the block (END_HEADERS).
    last_of_block: bool,
}

impl Inbound {
    /// Follows `bytes`: the PINGs among them. A stream the client resets is gone from
    /// `ledger` with what h2 held of it (h2 drops a reset stream's queue).
    fn follow(&mut self, mut bytes: &[u8], ledger: Option<&Ledger>) -> u32 {
        let mut pings = 0;
        while !bytes.is_empty() {
            let mut step = self.frames.step(&mut bytes);
            if let Some(Step::Head(kind, flags)) = step {
                match kind {
                    PING if flags & ACK == 0 => pings += 1,
                    RST_STREAM => {
                        if let Some(l) = ledger {
                            l.reset(self.frames.stream());
                        }
                    }
                    HEADERS | CONTINUATION => {
                        self.in_block = true;
                        self.last_of_block = flags & END_HEADERS != 0;
                    }
                    _ => {}
                }
                if self.frames.left == 0 {
                    step = Some(Step::End);
                }
            }
            if step == Some(Step::End) && self.last_of_block {
                self.in_block = false;
                self.last_of_block = false;
            }
        }
        pings
    }
}

/// Follows the server's direction: whether HEADERS or DATA went out in `bytes`; each DATA
/// frame's payload is written to its stream's count in `ledger` (whole as its head goes:
/// h2 has taken it from the stream's buffer by then), and a stream the server resets is
/// gone from it (h2 dropped its queue when the reset was sent).
fn sent_call_frames(frames: &mut Frames, mut bytes: &[u8], ledger: Option<&Ledger>) -> bool {
    let mut sent = false;
    while !bytes.is_empty() {
        match frames.step(&mut bytes) {
            Some(Step::Head(DATA, _)) => {
                sent = true;
                if let Some(l) = ledger {
                    l.written(frames.stream(), frames.left.into());
                }
            }
            Some(Step::Head(HEADERS, _)) => sent = true,
            Some(Step::Head(RST_STREAM, _)) => {
                if let Some(l) = ledger {
                    l.reset(frames.stream());
                }
            }
            _ => {}
        }
    }
    sent
}

/// A connection's bytes on their way between the socket and h2 (see the module doc).
pub(crate) struct Watched<T> {
    io: T,
    inbound: Inbound,
    /// Merges the client's small DATA frames before h2 reads them (see `merge`).
    merger: Merger,
    outbound: Frames,
    /// The connection's send budget, told what each stream's DATA wrote.
    ledger: Option<Arc<Ledger>>,
    seen: Arc<Seen>,
    /// How long a header block may take, from the first read that left it unfinished.
    head_timeout: Duration,
    /// When the unfinished header block must be in (`None`: no block is unfinished).
    head_by: Option<Pin<Box<Sleep>>>,
}

impl<T> Watched<T> {
    pub(crate) fn new(
        io: T,
        head_timeout: Duration,
        ledger: Option<Arc<Ledger>>,
    ) -> (Watched<T>, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let w = Watched {
            io,
            inbound: Inbound {
                frames: Frames::after(PREFACE),
                in_block: false,
                last_of_block: false,
            },
            merger: Merger::default(),
            outbound: Frames::after(0),
            ledger,
            seen: seen.clone(),
            head_timeout,
            head_by: None,
        };
        (w, seen)
    }

    /// After a read: starts the header block's clock when the read left one unfinished,
    /// stops it when none is; whether the block's time is up.
    fn head_late(&mut self) -> bool {
        if !self.inbound.in_block {
            self.head_by = None;
            return false;
        }
        match &self.head_by {
            Some(s) => s.is_elapsed(),
            None => {
                let by = Instant::now() + self.head_timeout;
                self.head_by = Some(Box::pin(tokio::time::sleep_until(by)));
                false
            }
        }
    }
}

fn head_timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client took too long to send a request's headers",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut me.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    me.seen.read_since.store(true, Ordering::Relaxed);
                    let at = me.inbound.frames.next_head(&buf.filled()[before..]);
                    me.merger.merge_read(buf, before, at);
                }
                let pings = me
                    .inbound
                    .follow(&buf.filled()[before..], me.ledger.as_deref());
                if pings > 0 {
                    me.seen.pings.fetch_add(pings, Ordering::Relaxed);
                    me.seen.pinged.notify_one();
                }
                if me.head_late() {
                    return Poll::Ready(Err(head_timed_out()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let late = me
                    .head_by
                    .as_mut()
                    .is_some_and(|s| s.as_mut().poll(cx).is_ready());
                if late {
                    return Poll::Ready(Err(head_timed_out()));
                }
                Poll::Pending
            }
            r => r,
        }
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    fn wrote(&mut self, sent: bool) {
        if sent {
            self.seen.sent_since.store(true, Ordering::Relaxed);
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        let r = Pin::new(&mut me.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            let sent = sent_call_frames(&mut me.outbound, &buf[..n], me.ledger.as_deref());
            me.wrote(sent);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        let r = Pin::new(&mut me.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            let (mut left, mut sent) = (n, false);
            for b in bufs {
                if left == 0 {
                    break;
                }
                let k = left.min(b.len());
                sent |= sent_call_frames(&mut me.outbound, &b[..k], me.ledger.as_deref());
                left -= k;
            }
            me.wrote(sent);
        }
        r
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PRI: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    /// Where the next frame begins in the bytes of the next read, whatever cut the last
    /// read made: mid-preface, mid-head, mid-payload or between frames.
    #[test]
    fn the_next_frame_is_found_after_any_cut() {
        // DATA on stream 1, 4 bytes, then the head of the next frame.
        let data: &[u8] = &[0, 0, 4, 0, 0, 0, 0, 0, 1, b'a', b'b', b'c', b'd'];
        let bytes = [PRI, data, SETTINGS].concat();
        for cut in 0..bytes.len() {
            let mut f = Frames::after(PREFACE);
            f.step_all(&bytes[..cut]);
            let rest = &bytes[cut..];
            let want = [PRI.len(), PRI.len() + data.len(), bytes.len()]
                .into_iter()
                .find(|&at| at >= cut)
                .map(|at| at - cut);
            assert_eq!(f.next_head(rest), want, "cut at {cut}");
        }
        // A head cut off again: no frame is known to begin.
        let mut f = Frames::after(0);
        f.step_all(&data[..3]);
        assert_eq!(f.next_head(&data[3..6]), None);
        // A payload longer than the read.
        assert_eq!(f.next_head(&data[3..12]), None);
    }
    /// PING, 8 bytes of payload, no flags, stream 0.
    const PING_FRAME: &[u8] = &[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    /// The same PING with ACK.
    const PING_ACK: &[u8] = &[0, 0, 8, 6, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    /// SETTINGS, empty.
    const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
    /// HEADERS on stream 1 without END_HEADERS (3 bytes of block), and its CONTINUATION
    /// with END_HEADERS (2 bytes).
    const HEADERS_OPEN: &[u8] = &[0, 0, 3, 1, 0, 0, 0, 0, 1, 0x82, 0x86, 0x84];
    const CONTINUATION_END: &[u8] = &[0, 0, 2, 9, 4, 0, 0, 0, 1, 0x41, 0x80];
    /// HEADERS on stream 3 with END_HEADERS and END_STREAM.
    const HEADERS_WHOLE: &[u8] = &[0, 0, 3, 1, 5, 0, 0, 0, 3, 0x82, 0x86, 0x84];
    /// DATA on stream 1, 4 bytes.
    const DATA_FRAME: &[u8] = &[0, 0, 4, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9];

    fn inbound() -> Inbound {
        Inbound {
            frames: Frames::after(PREFACE),
            in_block: false,
            last_of_block: false,
        }
    }

    /// Feeds `bytes` `piece` bytes at a time: the PINGs counted, and whether a header
    /// block was unfinished after each piece.
    fn follow_in_pieces(bytes: &[u8], piece: usize) -> (u32, Vec<bool>) {
        let mut i = inbound();
        let mut pings = 0;
        let mut open = Vec::new();
        for p in bytes.chunks(piece) {
            pings += i.follow(p, None);
            open.push(i.in_block);
        }
        (pings, open)
    }

    #[test]
    fn pings_are_counted_in_any_cut_and_acks_are_not() {
        let all = [PRI, SETTINGS, PING_FRAME, DATA_FRAME, PING_ACK, PING_FRAME].concat();
        for piece in 1..=all.len() {
            assert_eq!(follow_in_pieces(&all, piece).0, 2, "pieces of {piece}");
        }
    }

    #[test]
    fn a_header_block_is_unfinished_until_its_end_headers_frame_is_whole() {
        let all = [PRI, SETTINGS, HEADERS_OPEN, CONTINUATION_END, DATA_FRAME].concat();
        let block_from = PRI.len() + SETTINGS.len() + 9;
        let block_to = block_from + 3 + CONTINUATION_END.len();
        let (_, open) = follow_in_pieces(&all, 1);
        for (at, &o) in open.iter().enumerate() {
            // `at` is the byte just read: unfinished from HEADERS' head to the
            // CONTINUATION's last byte.
            let want = at + 1 >= block_from && at + 1 < block_to;
            assert_eq!(o, want, "after byte {at}");
        }
        let (_, open) = follow_in_pieces(&[PRI, SETTINGS, HEADERS_WHOLE].concat(), 100);
        assert_eq!(open, [false]);
        let (_, open) = follow_in_pieces(&[PRI, HEADERS_WHOLE].concat(), PRI.len() + 10);
        assert_eq!(open, [true, false]);
    }

    #[test]
    fn a_frame_without_payload_ends_with_its_head() {
        let mut f = Frames::after(0);
        let mut b: &[u8] = &[0, 0, 0, 1, 4, 0, 0, 0, 1, 0, 0, 1];
        assert_eq!(f.step(&mut b), Some(Step::Head(HEADERS, END_HEADERS)));
        assert_eq!(f.left, 0);
        assert_eq!(f.step(&mut b), None);
        let mut i = inbound();
        i.frames = Frames::after(0);
        i.follow(&[0, 0, 0, 1, 4, 0, 0, 0, 1], None);
        assert!(!i.in_block);
    }

    #[test]
    fn the_servers_headers_and_data_are_seen_in_any_cut() {
        let all = [SETTINGS, PING_ACK, HEADERS_WHOLE, DATA_FRAME].concat();
        for piece in 1..=all.len() {
            let mut f = Frames::after(0);
            let sent: Vec<bool> = all
                .chunks(piece)
                .map(|p| sent_call_frames(&mut f, p, None))
                .collect();
            assert!(sent.iter().any(|s| *s), "pieces of {piece}");
            let first = (SETTINGS.len() + PING_ACK.len() + 9).div_ceil(piece) - 1;
            assert!(!sent[..first].iter().any(|s| *s), "pieces of {piece}");
        }
        let mut f = Frames::after(0);
        assert!(!sent_call_frames(
            &mut f,
            &[SETTINGS, PING_ACK].concat(),
            None
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_header_block_fails_the_read_after_the_timeout() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut w, _) = Watched::new(server, Duration::from_secs(1), None);
        client
            .write_all(&[PRI, SETTINGS, &HEADERS_OPEN[..10]].concat())
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        w.read_exact(&mut buf[..PRI.len() + 9 + 10]).await.unwrap();
        let t = Instant::now();
        // Bytes that do not finish the block do not stop the clock.
        client.write_all(&HEADERS_OPEN[10..]).await.unwrap();
        w.read_exact(&mut buf[..2]).await.unwrap();
        let e = w.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(t.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_header_block_stops_the_clock() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut w, seen) = Watched::new(server, Duration::from_secs(1), None);
        client
            .write_all(&[PRI, SETTINGS, HEADERS_OPEN].concat())
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        w.read_exact(&mut buf[..PRI.len() + 9 + HEADERS_OPEN.len()])
            .await
            .unwrap();
        client
            .write_all(&[CONTINUATION_END, PING_FRAME].concat())
            .await
            .unwrap();
        w.read_exact(&mut buf[..CONTINUATION_END.len() + PING_FRAME.len()])
            .await
            .unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), w.read(&mut buf)).await;
        assert!(read.is_err(), "the read waits on: {read:?}");
        assert_eq!(seen.pings().await, (1, false));
    }
}
