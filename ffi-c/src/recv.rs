//! Receiving, the same for client and server calls: the core's `Inbox`, refilled from the
//! call a batch at a time, hands messages out one by one or as borrowed slices.

use rillrpc::{Inbox, Receive, Status};
use std::task::{Context, Poll, Waker};

use crate::result::*;
use crate::rill_slice;

/// How many ready messages one poll of the core may take at once.
const BATCH: usize = 64;

/// Ready(OK) with the message in `inbox.current()`, Ready(EOF), or the call's failure.
pub(crate) fn poll_recv(
    inbox: &mut Inbox,
    call: &mut impl Receive,
    waker: &Waker,
) -> Poll<Result<rill_result, Status>> {
    let mut cx = Context::from_waker(waker);
    inbox.poll_fill(&mut cx, call, BATCH).map(|r| {
        r.map(|more| match more {
            true => {
                inbox.take();
                RILL_OK
            }
            false => RILL_EOF,
        })
    })
}

/// Points `out` at up to `out.len()` ready messages (the inbox holds them until its next
/// refill): Ready(OK) with how many, Ready(EOF), or the call's failure.
pub(crate) fn poll_recv_batch(
    inbox: &mut Inbox,
    call: &mut impl Receive,
    waker: &Waker,
    out: &mut [rill_slice],
) -> Poll<Result<(rill_result, usize), Status>> {
    inbox.advance(0);
    let mut cx = Context::from_waker(waker);
    inbox
        .poll_fill(&mut cx, call, out.len().max(BATCH))
        .map(|r| {
            r.map(|more| {
                if !more {
                    return (RILL_EOF, 0);
                }
                let ready = inbox.ready();
                let n = ready.len().min(out.len());
                for (o, m) in out.iter_mut().zip(&ready[..n]) {
                    *o = rill_slice {
                        data: m.as_ptr(),
                        len: m.len(),
                    };
                }
                inbox.advance(n);
                (RILL_OK, n)
            })
        })
}
