//! Sending, the same for client and server calls (both are a core `SendHalf`): a message
//! the queue cannot take now waits here, in `Outbox`, until a wake-up says there is room.

use bytes::Bytes;
use rillrpc::{SendHalf, Status, TrySendError};
use std::sync::Arc;

use crate::wake::{with_cx, Notify};

/// What a send tells JS: queued; the queue is full (the message is kept, a wake-up will
/// follow: call `pollSend` then); or the call can send no more (its status says why).
pub(crate) const SENT: u32 = 0;
pub(crate) const FULL: u32 = 1;
pub(crate) const CLOSED: u32 = 2;

/// A message refused for lack of room, and why the call stopped taking messages.
#[derive(Default)]
pub(crate) struct Outbox {
    pending: Option<Bytes>,
    /// The status a refused send reported (the call ended: cancelled, broken connection).
    pub(crate) refused: Option<Status>,
}

impl Outbox {
    /// Queues one message, keeping it when the queue is full.
    pub(crate) fn try_send(&mut self, half: &SendHalf, notify: &Arc<Notify>, msg: &[u8]) -> u32 {
        if self.pending.is_some() {
            return FULL;
        }
        self.pending = Some(Bytes::copy_from_slice(msg));
        self.poll_send(half, notify)
    }

    /// Sends the kept message if there is room now; registers for a wake-up if not.
    pub(crate) fn poll_send(&mut self, half: &SendHalf, notify: &Arc<Notify>) -> u32 {
        loop {
            let Some(m) = self.pending.take() else {
                return SENT;
            };
            match half.try_send(m) {
                Ok(()) => return SENT,
                Err(TrySendError::Full(m)) => {
                    self.pending = Some(m);
                    if with_cx(notify, |cx| half.poll_send_ready(cx)).is_pending() {
                        return FULL;
                    }
                    // Room came back between the two looks: try again.
                }
                Err(TrySendError::Closed(s)) => {
                    self.refused = Some(s);
                    return CLOSED;
                }
            }
        }
    }

    /// Queues messages in order while there is room, through the core's batch path (one
    /// lock, one wake of the writer for the lot): how many went. `trySend` the next one to
    /// learn why it stopped.
    pub(crate) fn try_send_batch<'m>(
        &mut self,
        half: &SendHalf,
        msgs: impl Iterator<Item = &'m [u8]>,
    ) -> u32 {
        if self.pending.is_some() {
            return 0;
        }
        let (n, _) = half.try_send_batch(msgs);
        n as u32
    }

    /// The call ended: what waits is dropped.
    pub(crate) fn clear(&mut self) {
        self.pending = None;
    }
}
