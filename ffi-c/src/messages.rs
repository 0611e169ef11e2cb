//! The message functions of both call handles (`rill_call_*` and `rill_server_call_*`
//! send, try_send, try_send_batch, recv, try_recv, recv_batch, try_recv_batch): one body
//! each, the two exports differing only in the handle they take.

use std::sync::{Arc, Mutex};
use std::task::Poll;

use crate::registry::lock;
use crate::result::*;
use crate::{attempt, block, rill_slice, slices_in, slices_out, Waitable};

/// A call handle's object: it sends and receives messages.
pub(crate) trait Messages: Waitable {
    fn poll_send(&mut self, msg: &[u8]) -> Poll<R>;
    fn send_batch(&mut self, msgs: &[rill_slice]) -> (usize, R);
    /// Ready(OK) with the message in `current`, Ready(EOF), or the call's end.
    fn poll_recv(&mut self) -> Poll<R>;
    fn poll_recv_batch(&mut self, out: &mut [rill_slice]) -> Poll<R<(rill_result, usize)>>;
    /// The message the last `poll_recv` took: borrowed by C until the next receive.
    fn current(&self) -> (*const u8, usize);
}

/// # Safety
/// `data` is NULL or has `len` readable bytes.
pub(crate) unsafe fn send<T: Messages>(
    obj: R<Arc<Mutex<T>>>,
    data: *const u8,
    len: usize,
    timeout_ms: i64,
) -> R {
    // SAFETY: the caller's contract above.
    let msg = unsafe { crate::result::data(data, len, "data") }?;
    let t = timeout(timeout_ms)?;
    block(&obj?, t, |c| c.poll_send(msg))
}

/// # Safety
/// `data` is NULL or has `len` readable bytes.
pub(crate) unsafe fn try_send<T: Messages>(
    obj: R<Arc<Mutex<T>>>,
    data: *const u8,
    len: usize,
) -> R {
    // SAFETY: the caller's contract above.
    let msg = unsafe { crate::result::data(data, len, "data") }?;
    match attempt(&obj?, |c| c.poll_send(msg)) {
        Poll::Ready(r) => r,
        Poll::Pending => Ok(RILL_WOULD_BLOCK),
    }
}

/// # Safety
/// `msgs` is NULL (only if `n` is 0) or points to `n` slices, each NULL with `len` 0 or
/// with `len` readable bytes.
pub(crate) unsafe fn try_send_batch<T: Messages>(
    obj: R<Arc<Mutex<T>>>,
    msgs: *const rill_slice,
    n: usize,
    sent_out: *mut usize,
) -> R {
    let o = out(sent_out, "sent_out")?;
    put(o, 0);
    // SAFETY: the caller's contract above.
    let msgs = unsafe { slices_in(msgs, n) }?;
    let obj = obj?;
    let mut c = lock(&obj);
    c.notify().begin();
    let (sent, r) = c.send_batch(msgs);
    put(o, sent);
    r
}

pub(crate) fn recv<T: Messages>(
    obj: R<Arc<Mutex<T>>>,
    data_out: *mut *const u8,
    len_out: *mut usize,
    timeout_ms: i64,
) -> R {
    let (d, l) = (out(data_out, "data_out")?, out(len_out, "len_out")?);
    let t = timeout(timeout_ms)?;
    let mut got = (std::ptr::null(), 0);
    let r = block(&obj?, t, |c| {
        let r = c.poll_recv();
        got = c.current();
        r
    });
    recv_out(got, d, l, r)
}

pub(crate) fn try_recv<T: Messages>(
    obj: R<Arc<Mutex<T>>>,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> R {
    let (d, l) = (out(data_out, "data_out")?, out(len_out, "len_out")?);
    let obj = obj?;
    let mut c = lock(&obj);
    c.notify().begin();
    let r = match c.poll_recv() {
        Poll::Ready(r) => r,
        Poll::Pending => Ok(RILL_WOULD_BLOCK),
    };
    recv_out(c.current(), d, l, r)
}

pub(crate) fn try_recv_batch<T: Messages>(
    obj: R<Arc<Mutex<T>>>,
    msgs: *mut rill_slice,
    max: usize,
    n_out: *mut usize,
) -> R {
    let n_o = out(n_out, "n_out")?;
    put(n_o, 0);
    let buf = slices_out(msgs, max)?;
    let (r, n) = match attempt(&obj?, |c| c.poll_recv_batch(buf)) {
        Poll::Ready(r) => r?,
        Poll::Pending => (RILL_WOULD_BLOCK, 0),
    };
    put(n_o, n);
    Ok(r)
}

pub(crate) fn recv_batch<T: Messages>(
    obj: R<Arc<Mutex<T>>>,
    msgs: *mut rill_slice,
    max: usize,
    n_out: *mut usize,
    timeout_ms: i64,
) -> R {
    let n_o = out(n_out, "n_out")?;
    put(n_o, 0);
    let buf = slices_out(msgs, max)?;
    let t = timeout(timeout_ms)?;
    let (r, n) = block(&obj?, t, |c| c.poll_recv_batch(buf))?;
    put(n_o, n);
    Ok(r)
}
