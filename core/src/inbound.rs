//! The receiving half of a stream, shared by client calls and server calls: pulls DATA from
//! h2, gives the flow-control window back, and cuts the bytes into messages.

use bytes::Bytes;
use h2::RecvStream;
use std::task::{Context, Poll};

use crate::codec::{Decoder, Encoding};
use crate::status::Status;

pub(crate) struct Inbound {
    body: RecvStream,
    dec: Decoder,
    data_done: bool,
    /// A failure is sticky: every later poll reports it again.
    failed: Option<Status>,
}

impl Inbound {
    pub(crate) fn new(body: RecvStream, max_message: usize, encoding: Encoding) -> Inbound {
        let mut dec = Decoder::new(max_message);
        dec.set_encoding(encoding);
        Inbound {
            body,
            dec,
            data_done: false,
            failed: None,
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
            match self.body.poll_data(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    // The window is given back as soon as the bytes leave h2: what we hold
                    // beyond it is at most one partial message, bounded by the size limit.
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    self.dec.push(chunk);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Status::from_h2(&e))),
                Poll::Ready(None) => {
                    self.data_done = true;
                    if self.dec.has_partial() {
                        return Poll::Ready(Err(Status::internal(
                            "stream ended in the middle of a message (truncated length-prefixed message)",
                        )));
                    }
                    return Poll::Ready(Ok(None));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// True when no further received bytes wait in the decoder: the message just handed
    /// out was the last one that arrived, so what the receiver sends next answers it (a
    /// burst of messages still in the buffer is not a request-response rhythm).
    pub(crate) fn drained(&self) -> bool {
        !self.dec.has_partial()
    }

    /// Whether the last message handed out arrived compressed on the wire.
    pub(crate) fn last_compressed(&self) -> bool {
        self.dec.last_compressed()
    }

    pub(crate) fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, Status>> {
        self.body.poll_trailers(cx).map_err(|e| Status::from_h2(&e))
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
