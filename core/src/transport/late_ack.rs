//! An HTTP/2 connection's writes, with a PING ACK that would go alone held back until the
//! connection writes again, so that it leaves with those frames: at most a millisecond.
//!
//! grpc-go's client sends a PING (its bandwidth estimate) in front of the DATA of a request
//! whenever none is outstanding: in a request-response rhythm, in front of every request
//! (and its server, in front of every response, to a client).
//! h2 answers the PING as soon as it has read the frames, before the handler it woke has
//! answered the request: two writes, two segments, and a peer woken twice where once would
//! do (grpc-go's own server writes the two together: its writer yields before it flushes).
//! RFC 9113 §6.7: "Receivers of a PING frame that does not include an ACK flag MUST send a
//! PING frame with the ACK flag set in response, with an identical frame payload. PING
//! responses SHOULD be given higher priority than any other frame." The ACK still goes
//! first, in the write of the frames that follow it. A handler that answers within the
//! hold is on another core by then, so the hold is a timer, not a turn of the scheduler
//! (the connection, polled again at once, would send the ACK alone before the answer).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A PING frame with ACK: the 9-byte head, then 8 bytes of payload.
const ACK_LEN: usize = 17;
/// A PING ACK's head (RFC 9113 §6.7: length 8, type 0x6, flags ACK 0x1, stream 0).
const ACK_HEAD: [u8; 9] = [0, 0, 8, 0x6, 0x1, 0, 0, 0, 0];
/// The most slices one write takes besides the held ACK.
const MOST_SLICES: usize = 63;
/// How long an ACK waits for frames to go with: the timer's resolution.
const HOLD: Duration = Duration::from_millis(1);

pub(crate) struct LateAck<T> {
    io: T,
    held: Option<Held>,
    /// When the held ACK goes alone; kept for the next one.
    timer: Option<Pin<Box<Sleep>>>,
}

/// A PING ACK written by h2 and not yet sent.
struct Held {
    bytes: [u8; ACK_LEN],
    /// How much of it has gone (a write may take part of it).
    sent: usize,
}

impl Held {
    fn rest(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }
}

impl<T> LateAck<T> {
    pub(crate) fn new(io: T) -> LateAck<T> {
        LateAck {
            io,
            held: None,
            timer: None,
        }
    }
}

/// The bytes of `bufs` when together they are one PING ACK.
fn lone_ack(bufs: &[IoSlice<'_>]) -> Option<[u8; ACK_LEN]> {
    if bufs.iter().map(|b| b.len()).sum::<usize>() != ACK_LEN {
        return None;
    }
    let mut bytes = [0; ACK_LEN];
    let mut at = 0;
    for b in bufs {
        bytes[at..at + b.len()].copy_from_slice(b);
        at += b.len();
    }
    (bytes[..ACK_HEAD.len()] == ACK_HEAD).then_some(bytes)
}

impl<T: AsyncWrite + Unpin> LateAck<T> {
    /// Writes `bufs`, the held ACK's rest in front of them: how much of `bufs` went.
    fn poll_write_behind_ack(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        while let Some(h) = &mut self.held {
            let mut iov = [IoSlice::new(&[]); MOST_SLICES + 1];
            iov[0] = IoSlice::new(h.rest());
            let k = bufs.len().min(MOST_SLICES);
            iov[1..=k].copy_from_slice(&bufs[..k]);
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &iov[..=k]))?;
            let rest = h.rest().len();
            if n < rest {
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                h.sent += n;
                continue;
            }
            self.held = None;
            if n > rest || bufs.is_empty() {
                return Poll::Ready(Ok(n - rest));
            }
        }
        if bufs.is_empty() {
            return Poll::Ready(Ok(0));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LateAck<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LateAck<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if me.held.is_none() {
            // The timer needs the runtime: a poll from outside it (none is known) sends at
            // once. Asked only of an ACK: finding the runtime clones its handle.
            let ack = lone_ack(bufs).filter(|_| tokio::runtime::Handle::try_current().is_ok());
            if let Some(bytes) = ack {
                me.held = Some(Held { bytes, sent: 0 });
                let by = Instant::now() + HOLD;
                match &mut me.timer {
                    Some(t) => t.as_mut().reset(by),
                    None => me.timer = Some(Box::pin(tokio::time::sleep_until(by))),
                }
                return Poll::Ready(Ok(ACK_LEN));
            }
        }
        me.poll_write_behind_ack(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.held.is_some() {
            // Every poll of the connection ends with a flush: the timer's wake brings one.
            let due = me
                .timer
                .as_mut()
                .is_none_or(|t| t.as_mut().poll(cx).is_ready());
            if due {
                ready!(me.poll_write_behind_ack(cx, &[]))?;
            }
        }
        Pin::new(&mut me.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_write_behind_ack(cx, &[]))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A PING ACK with payload 1..=8.
    const ACK: [u8; ACK_LEN] = [0, 0, 8, 6, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    /// The same PING without ACK (one we send).
    const PING: [u8; ACK_LEN] = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    /// DATA on stream 1, 4 bytes.
    const DATA: [u8; 13] = [0, 0, 4, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9];

    /// What each write to the socket carried; each takes at most `most` bytes.
    struct Writes {
        got: Vec<Vec<u8>>,
        most: usize,
    }

    impl AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.most);
            self.got.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(self.most);
            self.got.push(all[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn late_ack(most: usize) -> LateAck<Writes> {
        LateAck::new(Writes {
            got: Vec::new(),
            most,
        })
    }

    #[tokio::test]
    async fn a_lone_ack_leaves_in_front_of_the_next_write() {
        let mut w = late_ack(usize::MAX);
        w.write_all(&ACK).await.unwrap();
        w.flush().await.unwrap();
        assert!(w.io.got.is_empty(), "held: {:?}", w.io.got);
        w.write_all(&DATA).await.unwrap();
        assert_eq!(w.io.got, vec![[&ACK[..], &DATA[..]].concat()]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ack_nothing_follows_goes_alone_at_the_first_flush_past_the_hold() {
        let mut w = late_ack(usize::MAX);
        w.write_all(&ACK).await.unwrap();
        w.flush().await.unwrap();
        assert!(w.io.got.is_empty());
        tokio::time::advance(HOLD).await;
        w.flush().await.unwrap();
        assert_eq!(w.io.got, vec![ACK.to_vec()]);
        // Nothing is held any more: the next write goes as it is.
        w.write_all(&DATA).await.unwrap();
        assert_eq!(w.io.got[1], DATA.to_vec());
    }

    /// The held ACK's timer wakes the connection, whose poll ends with the flush that
    /// sends it.
    #[tokio::test(start_paused = true)]
    async fn the_hold_wakes_the_connection_when_it_is_over() {
        let mut w = late_ack(usize::MAX);
        w.write_all(&ACK).await.unwrap();
        let (waker, woken) = {
            let woken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
            impl std::task::Wake for Flag {
                fn wake(self: std::sync::Arc<Self>) {
                    self.0.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            (
                std::task::Waker::from(std::sync::Arc::new(Flag(woken.clone()))),
                woken,
            )
        };
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut w).poll_flush(&mut cx).is_ready());
        assert!(w.io.got.is_empty());
        tokio::time::sleep(HOLD).await;
        assert!(woken.load(std::sync::atomic::Ordering::SeqCst));
        assert!(Pin::new(&mut w).poll_flush(&mut cx).is_ready());
        assert_eq!(w.io.got, vec![ACK.to_vec()]);
    }

    /// Only a write that is one PING ACK and nothing else waits: a PING of ours, or an ACK
    /// with other frames, goes at once.
    #[tokio::test]
    async fn only_an_ack_alone_is_held() {
        let mut w = late_ack(usize::MAX);
        w.write_all(&PING).await.unwrap();
        let with_data = [&ACK[..], &DATA[..]].concat();
        w.write_all(&with_data).await.unwrap();
        assert_eq!(w.io.got, vec![PING.to_vec(), with_data]);
    }

    /// A socket that takes a few bytes at a time: the ACK's bytes still all go, in order,
    /// ahead of what follows, and none is counted twice.
    #[tokio::test]
    async fn an_ack_taken_a_few_bytes_at_a_time_stays_whole_and_first() {
        let mut w = late_ack(5);
        w.write_all(&ACK).await.unwrap();
        w.write_all(&DATA).await.unwrap();
        assert_eq!(w.io.got.concat(), [&ACK[..], &DATA[..]].concat());
        assert!(w.io.got.iter().all(|g| g.len() <= 5));
    }

    #[tokio::test]
    async fn shutting_down_sends_a_held_ack_first() {
        let mut w = late_ack(usize::MAX);
        w.write_all(&ACK).await.unwrap();
        w.shutdown().await.unwrap();
        assert_eq!(w.io.got, vec![ACK.to_vec()]);
    }
}
