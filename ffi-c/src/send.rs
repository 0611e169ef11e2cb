//! Sending, the same for client and server calls: both are a core `SendHalf`.

use rillrpc::{Code, SendHalf, Status};
use std::task::{Context, Poll, Waker};

use crate::result::*;
use crate::rill_slice;

/// Why the core refused a send. A rule of the call (its shape's one message, a sending
/// side already closed or finished) is the caller's mistake: RILL_ERR_WRONG_STATE, with the
/// core's words. Anything else means the call has ended: its status says why.
pub(crate) fn refused(s: &Status) -> Fail {
    if s.code() == Code::FailedPrecondition {
        return Fail::state(s.message().to_owned());
    }
    Fail::new(
        RILL_ERR_CLOSED,
        format!(
            "the call cannot send any more ({}: {}); its status says why",
            s.code().name(),
            s.message()
        ),
    )
}

/// Queues `msg` if there is room. The borrowed form: the core frames it straight into its
/// shared send buffer (no allocation per message), and no wake-up is registered unless the
/// queue is full.
pub(crate) fn poll_send(half: &SendHalf, waker: &Waker, msg: &[u8]) -> Poll<R> {
    loop {
        match half.try_send_ref(msg) {
            Ok(true) => return Poll::Ready(Ok(RILL_OK)),
            Ok(false) => {
                if half
                    .poll_send_ready(&mut Context::from_waker(waker))
                    .is_pending()
                {
                    return Poll::Pending;
                }
                // Room came back between the two looks: try again.
            }
            Err(s) => return Poll::Ready(Err(refused(&s))),
        }
    }
}

/// Queues messages in order while there is room: how many went, and RILL_OK (all),
/// RILL_WOULD_BLOCK (the queue filled) or the error that stopped the next one.
pub(crate) fn send_batch(half: &SendHalf, waker: &Waker, msgs: &[rill_slice]) -> (usize, R) {
    if msgs.len() <= 1 {
        return send_each(msgs, |m| poll_send(half, waker, m));
    }
    send_many(
        msgs,
        |m| half.try_send_batch(m.iter().map(bytes_of)),
        || half.poll_send_ready(&mut Context::from_waker(waker)),
        |s| refused(&s),
    )
}

/// Sends `msgs` one by one with `send` until one does not go: how many went, and RILL_OK
/// (all), RILL_WOULD_BLOCK (the queue filled) or the error of the one that failed.
fn send_each(msgs: &[rill_slice], mut send: impl FnMut(&[u8]) -> Poll<R>) -> (usize, R) {
    for (i, m) in msgs.iter().enumerate() {
        match send(bytes_of(m)) {
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => return (i, Err(e)),
            Poll::Pending => return (i, Ok(RILL_WOULD_BLOCK)),
        }
    }
    (msgs.len(), Ok(RILL_OK))
}

/// The bytes of a slice that `slices_in` checked.
pub(crate) fn bytes_of(m: &rill_slice) -> &[u8] {
    if m.len == 0 {
        &[]
    } else {
        // SAFETY: checked by `slices_in`: non-NULL with `len` bytes (C's contract), valid
        // for the call that passed them in.
        unsafe { std::slice::from_raw_parts(m.data, m.len) }
    }
}

/// Queues a batch through the core's many-at-once send (one lock and at most one wake of
/// the writer per round, where `send_each` would wake it at the first message and let it
/// race the loop a message at a time): how many went, and RILL_OK (all), RILL_WOULD_BLOCK
/// (the queue filled; the handle's waker is registered) or the error that stopped the next.
fn send_many(
    msgs: &[rill_slice],
    mut queue: impl FnMut(&[rill_slice]) -> (usize, Option<rillrpc::Status>),
    mut poll_ready: impl FnMut() -> Poll<()>,
    closed: impl FnOnce(rillrpc::Status) -> Fail,
) -> (usize, R) {
    let mut done = 0;
    while done < msgs.len() {
        let (n, failed) = queue(&msgs[done..]);
        done += n;
        if let Some(s) = failed {
            return (done, Err(closed(s)));
        }
        if done < msgs.len() && poll_ready().is_pending() {
            return (done, Ok(RILL_WOULD_BLOCK));
        }
    }
    (done, Ok(RILL_OK))
}
