//! The sending half of a call, the same for a client's call and a server's: both deref to
//! it, so `call.send(m)` reads alike on either side.

use bytes::Bytes;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::queue::{Batched, SendQueue, TrySendError};
use crate::protocol::End;
use crate::status::{Code, Status};

pub struct SendHalf {
    pub(crate) queue: Arc<SendQueue>,
    /// Largest message this side sends.
    max_send: usize,
    /// A client's one request message is all it sends: the half-close follows it.
    close_after_one: bool,
}

impl SendHalf {
    pub(crate) fn new(
        queue: Arc<SendQueue>,
        max_send: Option<usize>,
        close_after_one: bool,
    ) -> SendHalf {
        SendHalf {
            queue,
            max_send: max_send.unwrap_or(usize::MAX),
            close_after_one,
        }
    }

    /// A message was queued.
    fn sent(&self) {
        if self.close_after_one {
            self.queue.close(End::HalfClose);
        }
    }

    pub(super) fn check_len(&self, len: usize) -> Result<(), Status> {
        if len > self.max_send {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "trying to send message larger than max ({len} vs. {})",
                    self.max_send
                ),
            ));
        }
        Ok(())
    }

    /// Queues one message, waiting only while the send queue is full (flow control).
    pub fn send(&self, msg: Bytes) -> Sending<'_> {
        Sending {
            half: self,
            msg: Some(msg),
            compress: None,
        }
    }

    /// Like `send`, choosing for this message whether to compress it (with the call's
    /// compression; without one, messages go uncompressed whatever `compress` says).
    pub fn send_with(&self, msg: Bytes, compress: bool) -> Sending<'_> {
        Sending {
            half: self,
            msg: Some(msg),
            compress: Some(compress),
        }
    }

    /// Queues one message if there is room now.
    pub fn try_send(&self, msg: Bytes) -> Result<(), TrySendError> {
        self.try_queue(msg, None)
    }

    /// `try_send`, choosing for this message whether to compress it.
    pub fn try_send_with(&self, msg: Bytes, compress: bool) -> Result<(), TrySendError> {
        self.try_queue(msg, Some(compress))
    }

    /// The one place an owned message is checked and queued: `try_send`, `try_send_with`
    /// and `Sending` each come here. `compress`: `None` for the call's choice.
    #[inline]
    fn try_queue(&self, msg: Bytes, compress: Option<bool>) -> Result<(), TrySendError> {
        if let Err(s) = self.check_len(msg.len()) {
            return Err(TrySendError::Closed(s));
        }
        self.queue.try_send(msg, compress)?;
        self.sent();
        Ok(())
    }

    /// Queues a message from a borrowed slice (copied into the send buffer), waiting while
    /// the queue is full: no `Bytes` to allocate for a message encoded into a reused buffer.
    pub async fn send_ref(&self, msg: &[u8]) -> Result<(), Status> {
        while !self.try_send_ref(msg)? {
            poll_fn(|cx| self.poll_send_ready(cx)).await;
        }
        Ok(())
    }

    /// `try_send` from a borrowed slice: `Ok(false)` when the queue is full.
    pub fn try_send_ref(&self, msg: &[u8]) -> Result<bool, Status> {
        self.check_len(msg.len())?;
        let queued = self.queue.try_send_ref(msg, None)?;
        if queued {
            self.sent();
        }
        Ok(queued)
    }

    /// Queues borrowed messages (copied) in order while there is room, under one lock and
    /// with at most one wake of the writer for the lot: how many were queued, and the error
    /// that stopped the next one (`None`: all went, or the queue filled). For senders on a
    /// thread of their own, where a wake per message would cross threads each time.
    pub fn try_send_batch<'m, I>(&self, msgs: I) -> (usize, Option<Status>)
    where
        I: IntoIterator<Item = &'m [u8]>,
    {
        self.queue
            .push_many(msgs, None, |m| self.check_len(m.len()))
    }

    /// Queues a borrowed message (copied) into this call's open batch, without waking the
    /// writer: the batch leaves when `flush` is called, when a batch's worth is queued, or
    /// when this call waits (for room, or for a message). For a sender running in an event
    /// loop: the sends of one turn of the loop then leave together, in shared DATA frames,
    /// when the turn ends. `Batched::Opened` asks the caller to arrange that `flush`.
    pub fn try_send_batched(&self, msg: &[u8]) -> Result<Batched, Status> {
        self.check_len(msg.len())?;
        let r = self.queue.push_batched(msg, None)?;
        if r != Batched::Full {
            self.sent();
        }
        Ok(r)
    }

    /// Ends the open batch (see `try_send_batched`): its messages leave now.
    pub fn flush(&self) {
        self.queue.flush();
    }

    /// Ready when `try_send` may succeed.
    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let r = self.queue.poll_ready(cx);
        if r.is_pending() {
            // Waiting for room: what the open batch holds must be on its way.
            self.queue.flush();
        }
        r
    }
}

/// The future `send` returns: the message is queued when it is first polled, and the
/// future waits only while the queue is full. Written out rather than an `async fn`: a
/// stream of small sends spends as long in an async fn's moves of the message between
/// its nested states as in queueing the message itself.
#[must_use = "a message is sent only when its future is awaited"]
pub struct Sending<'a> {
    half: &'a SendHalf,
    /// `None` once the message is queued or refused.
    msg: Option<Bytes>,
    compress: Option<bool>,
}

impl Future for Sending<'_> {
    type Output = Result<(), Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let half = this.half;
        loop {
            let msg = this.msg.take().expect("`Sending` polled after it finished");
            match half.try_queue(msg, this.compress) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(TrySendError::Closed(s)) => return Poll::Ready(Err(s)),
                Err(TrySendError::Full(m)) => {
                    this.msg = Some(m);
                    if half.poll_send_ready(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `send` was an `async fn` over another: its future held the message twice and
    /// moved it between the two at every send: a sixth of our client's CPU in a stream of
    /// 16-byte messages. Guards that the future stays the message and two words.
    #[test]
    fn a_sends_future_holds_the_message_and_little_else() {
        assert!(
            std::mem::size_of::<Sending<'static>>() <= std::mem::size_of::<Bytes>() + 16,
            "{} bytes",
            std::mem::size_of::<Sending<'static>>()
        );
    }
}
