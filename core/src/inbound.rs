//! The receiving half of a stream, shared by client calls and server calls: pulls DATA from
//! h2, gives the flow-control window back, and cuts the bytes into messages.

use bytes::Bytes;
use h2::RecvStream;
use std::task::{Context, Poll};

use std::sync::Arc;

use crate::codec::{Decoder, Encoding};
use crate::goaway::{explain, GoAway};
use crate::status::Status;

pub(crate) struct Inbound {
    body: RecvStream,
    dec: Decoder,
    data_done: bool,
    /// A failure is sticky: every later poll reports it again.
    failed: Option<Status>,
    /// A client call's connection: the server's GOAWAY explains a transport failure.
    goaway: Option<Arc<GoAway>>,
}

impl Inbound {
    pub(crate) fn new(
        body: RecvStream,
        max_message: usize,
        encoding: Encoding,
        goaway: Option<Arc<GoAway>>,
    ) -> Inbound {
        let mut dec = Decoder::new(max_message);
        dec.set_encoding(encoding);
        Inbound {
            body,
            dec,
            data_done: false,
            failed: None,
            goaway,
        }
    }

    /// The next message; `Ok(None)` once the peer ended its DATA (trailers may follow).
    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, Status>> {
        if let Some(s) = &self.failed {
            return Poll::Ready(Err(s.clone()));
        }
        let r = self.poll_message_inner(cx);
        if let Poll::Ready(Err(s)) = &r {
            self.failed = Some(s.clone());
        }
        r
    }

    fn poll_message_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        loop {
            if let Some(m) = self.dec.next()? {
                return Poll::Ready(Ok(Some(m)));
            }
            if self.data_done {
                return Poll::Ready(Ok(None));
            }
            let polled = self.body.poll_data(cx);
            if let Some(end) = self.take(polled) {
                return end;
            }
        }
    }

    /// Absorbs what h2 returned: a chunk goes into the decoder (`None`: decode on); the
    /// end of the data or an error is what the poll returns.
    fn take(
        &mut self,
        polled: Poll<Option<Result<Bytes, h2::Error>>>,
    ) -> Option<Poll<Result<Option<Bytes>, Status>>> {
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                // The window is given back as soon as the bytes leave h2: what we hold
                // beyond it is at most one partial message, bounded by the size limit.
                let _ = self.body.flow_control().release_capacity(chunk.len());
                self.dec.push(chunk);
                None
            }
            Poll::Ready(Some(Err(e))) => Some(Poll::Ready(Err(explain(
                self.goaway.as_deref(),
                Status::from_h2(&e),
            )))),
            Poll::Ready(None) => {
                self.data_done = true;
                if self.dec.has_partial() {
                    return Some(Poll::Ready(Err(Status::internal(
                        "stream ended in the middle of a message (truncated length-prefixed message)",
                    ))));
                }
                Some(Poll::Ready(Ok(None)))
            }
            Poll::Pending => Some(Poll::Pending),
        }
    }

    /// True when the message just handed out is one a send should answer at once: the
    /// peer sent it alone (one message in its DATA frame) and nothing more has arrived, as
    /// in a request-response rhythm. Bytes still in the decoder, DATA that h2 already
    /// holds, or several messages in one frame are a burst in progress: its answers are
    /// queued and framed together rather than written one frame each.
    pub(crate) fn answerable(&mut self) -> bool {
        self.dec.chunk_messages() == 1 && self.drained()
    }

    fn drained(&mut self) -> bool {
        if self.dec.has_partial() {
            return false;
        }
        if self.data_done || self.failed.is_some() {
            return true;
        }
        // A look without registering this task: the caller, handed a message, polls again
        // (with its own waker) before it waits.
        let polled = self
            .body
            .poll_data(&mut Context::from_waker(std::task::Waker::noop()));
        match self.take(polled) {
            None => false,
            Some(Poll::Pending) => true,
            Some(Poll::Ready(r)) => {
                if let Err(s) = r {
                    // Reported by the next poll, after the message in hand.
                    self.failed = Some(s);
                }
                true
            }
        }
    }

    /// Whether the last message handed out arrived compressed on the wire.
    pub(crate) fn last_compressed(&self) -> bool {
        self.dec.last_compressed()
    }

    pub(crate) fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, Status>> {
        let goaway = self.goaway.as_deref();
        self.body
            .poll_trailers(cx)
            .map_err(|e| explain(goaway, Status::from_h2(&e)))
    }
}

/// Collects what `poll_one` has ready, up to `max` messages, waiting only if nothing is:
/// one wake-up hands over a batch. `Ok(0)` means the end of the stream; an error comes
/// after the messages that preceded it.
pub(crate) fn batch(
    cx: &mut Context<'_>,
    out: &mut Vec<Bytes>,
    max: usize,
    mut poll_one: impl FnMut(&mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>>,
) -> Poll<Result<usize, Status>> {
    let mut n = 0;
    while n < max.max(1) {
        match poll_one(cx) {
            Poll::Ready(Ok(Some(m))) => {
                out.push(m);
                n += 1;
            }
            Poll::Ready(Ok(None)) => return Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => return Poll::Ready(if n > 0 { Ok(n) } else { Err(e) }),
            Poll::Pending => {
                return if n > 0 {
                    Poll::Ready(Ok(n))
                } else {
                    Poll::Pending
                }
            }
        }
    }
    Poll::Ready(Ok(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msgs: &[&[u8]]) -> Bytes {
        let mut b = bytes::BytesMut::new();
        for m in msgs {
            crate::codec::encode(&mut b, m, Encoding::Identity).unwrap();
        }
        b.freeze()
    }

    async fn next(inb: &mut Inbound) -> Bytes {
        std::future::poll_fn(|cx| inb.poll_message(cx))
            .await
            .unwrap()
            .expect("a message")
    }

    /// Regression (issue 17): a message was taken for an answer (written at once, a DATA
    /// frame of its own) whenever the decoder had nothing left, though the peer's next
    /// DATA frames already waited in h2: a burst of small frames was answered frame for
    /// frame. Only a message its peer sent alone, with nothing behind it, is answerable.
    #[tokio::test]
    async fn only_a_lone_message_with_nothing_behind_it_is_answerable() {
        let (c, s) = tokio::io::duplex(1 << 16);
        let srv = tokio::spawn(async move {
            let mut conn = h2::server::handshake(s).await.unwrap();
            let (req, respond) = conn.accept().await.unwrap().unwrap();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            (req, respond)
        });
        let (mut client, mut conn) = h2::client::handshake(c).await.unwrap();
        let mut ping = conn.ping_pong().expect("ping_pong");
        tokio::spawn(conn);
        let req = http::Request::post("http://x/p").body(()).unwrap();
        let (_resp, mut out) = client.send_request(req, false).unwrap();
        let (req, _respond) = srv.await.unwrap();
        let mut inb = Inbound::new(req.into_body(), 1 << 20, Encoding::Identity, None);

        // Three messages in one DATA frame: a burst.
        out.send_data(framed(&[b"a", b"b", b"c"]), false).unwrap();
        for want in [&b"a"[..], b"b", b"c"] {
            assert_eq!(next(&mut inb).await, want);
            assert!(!inb.answerable(), "{want:?} came with others");
        }
        // One message alone, nothing behind it: its answer goes at once.
        out.send_data(framed(&[b"d"]), false).unwrap();
        assert_eq!(next(&mut inb).await, &b"d"[..]);
        assert!(inb.answerable());
        // Two lone messages in two frames, both in h2 (the PING's answer comes after the
        // server's connection read them): the first has more behind it.
        out.send_data(framed(&[b"e"]), false).unwrap();
        out.send_data(framed(&[b"f"]), false).unwrap();
        ping.ping(h2::Ping::opaque()).await.unwrap();
        assert_eq!(next(&mut inb).await, &b"e"[..]);
        assert!(!inb.answerable(), "f waits in h2 behind e");
        assert_eq!(next(&mut inb).await, &b"f"[..]);
        assert!(inb.answerable());
    }
}
