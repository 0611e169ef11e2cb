//! Server calls: one accepted RPC.

use bytes::Bytes;
use rillrpc::{Code, Inbox, ServerCall, Status};
use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crate::messages;
use crate::metadata::{hand_out, rill_metadata, take_in};
use crate::notify::Notify;
use crate::registry::{lock, Registry};
use crate::result::*;
use crate::{rill_protocol, rill_slice, Waitable};

/// An accepted server call. 0 is never a valid handle.
pub type rill_server_call = u64;

pub(crate) struct ServerCallObj {
    call: ServerCall,
    method: CString,
    /// The codec's name for C, made when first asked for: most handlers never ask.
    codec: Option<CString>,
    notify: Arc<Notify>,
    waker: Waker,
    finished: bool,
    /// Received messages; the one C is reading (its pointer was handed out) among them.
    inbox: Inbox,
    /// Why the call ended on this side, once recv saw it.
    ended: Option<(Status, CString)>,
}

impl Waitable for ServerCallObj {
    fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }
}

pub(crate) static SERVER_CALLS: Registry<ServerCallObj> = Registry::new(6, "server call");

impl ServerCallObj {
    pub fn new(call: ServerCall) -> ServerCallObj {
        let (notify, waker) = Notify::new();
        ServerCallObj {
            method: CString::new(call.method()).unwrap_or_default(),
            codec: None,
            call,
            notify,
            waker,
            finished: false,
            inbox: Inbox::new(),
            ended: None,
        }
    }

    fn check_open(&self, op: &str) -> R<()> {
        if self.finished {
            return Err(Fail::state(format!(
                "{op} after rill_server_call_finish or cancel"
            )));
        }
        Ok(())
    }

    /// The call ended while receiving: kept for `rill_server_call_status`-like reads.
    fn ended(&mut self, s: Status) -> Fail {
        let f = Fail::new(
            RILL_ERR_STATUS,
            format!(
                "call ended: {} {}: {}",
                s.code() as u32,
                s.code().name(),
                s.message()
            ),
        );
        let m = CString::new(s.message().replace('\0', " ")).unwrap_or_default();
        self.ended = Some((s, m));
        f
    }
}

impl crate::messages::Messages for ServerCallObj {
    /// Queues `msg` if there is room (the rules of the call's shape are the core's). A
    /// single-response call starts no writer task for its message: `finish` writes it
    /// with the status, from this thread.
    fn poll_send(&mut self, msg: &[u8]) -> Poll<R> {
        if let Err(e) = self.check_open("send") {
            return Poll::Ready(Err(e));
        }
        crate::send::poll_send(&self.call, &self.waker, msg)
    }

    /// Queues messages in order while there is room (see `crate::send`).
    fn send_batch(&mut self, msgs: &[rill_slice]) -> (usize, R) {
        if let Err(e) = self.check_open("send") {
            return (0, Err(e));
        }
        crate::send::send_batch(&self.call, &self.waker, msgs)
    }

    /// Ready(OK) with the message in `inbox.current()`, Ready(EOF), or the call's end.
    fn poll_recv(&mut self) -> Poll<R> {
        if let Err(e) = self.check_open("recv") {
            return Poll::Ready(Err(e));
        }
        crate::recv::poll_recv(&mut self.inbox, &mut self.call, &self.waker)
            .map_err(|s| self.ended(s))
    }

    /// Hands out up to `out.len()` ready messages as borrowed slices: Ready(OK) with how
    /// many, Ready(EOF), or the call's end.
    fn poll_recv_batch(&mut self, out: &mut [rill_slice]) -> Poll<R<(rill_result, usize)>> {
        if let Err(e) = self.check_open("recv") {
            return Poll::Ready(Err(e));
        }
        crate::recv::poll_recv_batch(&mut self.inbox, &mut self.call, &self.waker, out)
            .map_err(|s| self.ended(s))
    }

    fn current(&self) -> (*const u8, usize) {
        let m = self.inbox.current();
        (m.as_ptr(), m.len())
    }
}

fn get(call: rill_server_call) -> R<Arc<Mutex<ServerCallObj>>> {
    SERVER_CALLS.get(call)
}

/// The method path ("/package.Service/Method").
///
/// Ownership: `*method_out` (NUL-terminated) is borrowed from the call: valid until
/// `rill_server_call_free`.
#[no_mangle]
pub extern "C" fn rill_server_call_method(
    call: rill_server_call,
    method_out: *mut *const c_char,
) -> rill_result {
    guard(|| {
        let o = out(method_out, "method_out")?;
        put(o, lock(&*get(call)?).method.as_ptr());
        Ok(RILL_OK)
    })
}

/// The call's `rill_shape`, as registered for its method.
#[no_mangle]
pub extern "C" fn rill_server_call_shape(
    call: rill_server_call,
    shape_out: *mut u32,
) -> rill_result {
    guard(|| {
        let o = out(shape_out, "shape_out")?;
        put(o, lock(&*get(call)?).call.shape() as u32);
        Ok(RILL_OK)
    })
}

/// The `rill_protocol` the client called with (gRPC, gRPC-Web or Connect): a server
/// answers all three on one port, with the same calls.
#[no_mangle]
pub extern "C" fn rill_server_call_protocol(
    call: rill_server_call,
    protocol_out: *mut u32,
) -> rill_result {
    guard(|| {
        let o = out(protocol_out, "protocol_out")?;
        let p = lock(&*get(call)?).call.protocol();
        put(o, rill_protocol::of(p) as u32);
        Ok(RILL_OK)
    })
}

/// The codec of the call's messages, as the request's content type names it: "proto" (also
/// when it names none), "json", or another the client named (`application/grpc+thrift`).
/// The library passes messages through as bytes: decode them, and answer, in this codec.
///
/// Ownership: `*codec_out` (NUL-terminated) is borrowed from the call: valid until
/// `rill_server_call_free`.
#[no_mangle]
pub extern "C" fn rill_server_call_codec(
    call: rill_server_call,
    codec_out: *mut *const c_char,
) -> rill_result {
    guard(|| {
        let o = out(codec_out, "codec_out")?;
        let obj = get(call)?;
        let mut g = lock(&obj);
        let g = &mut *g;
        let codec = g
            .codec
            .get_or_insert_with(|| CString::new(g.call.codec()).unwrap_or_default());
        put(o, codec.as_ptr());
        Ok(RILL_OK)
    })
}

/// The request metadata.
///
/// Ownership: `*md_out` is a new list owned by you: free it with `rill_metadata_free`.
#[no_mangle]
pub extern "C" fn rill_server_call_metadata(
    call: rill_server_call,
    md_out: *mut rill_metadata,
) -> rill_result {
    guard(|| {
        let o = out(md_out, "md_out")?;
        let md = lock(&*get(call)?).call.metadata().clone();
        put(o, hand_out(md));
        Ok(RILL_OK)
    })
}

/// Milliseconds left before the client's deadline (0 once passed), or -1 when the client
/// set none.
#[no_mangle]
pub extern "C" fn rill_server_call_time_remaining(
    call: rill_server_call,
    ms_out: *mut i64,
) -> rill_result {
    guard(|| {
        let o = out(ms_out, "ms_out")?;
        let left = lock(&*get(call)?).call.time_remaining();
        put(
            o,
            left.map_or(-1, |d| d.as_millis().min(i64::MAX as u128) as i64),
        );
        Ok(RILL_OK)
    })
}

/// The next request message, waiting up to `timeout_ms` (> 0, or RILL_FOREVER). RILL_EOF
/// when the client half-closed; RILL_ERR_STATUS when the call ended on this side
/// (cancelled, deadline, broken request: read `rill_server_call_status`).
///
/// Ownership: `*data_out` is borrowed from the call, no copy: valid until the next
/// recv/try_recv/free on this call.
#[no_mangle]
pub extern "C" fn rill_server_call_recv(
    call: rill_server_call,
    data_out: *mut *const u8,
    len_out: *mut usize,
    timeout_ms: i64,
) -> rill_result {
    guard(|| messages::recv(get(call), data_out, len_out, timeout_ms))
}

/// Like `rill_server_call_recv` without waiting: RILL_WOULD_BLOCK when no message is
/// ready. Ownership as for `rill_server_call_recv`.
#[no_mangle]
pub extern "C" fn rill_server_call_try_recv(
    call: rill_server_call,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> rill_result {
    guard(|| messages::try_recv(get(call), data_out, len_out))
}

/// Takes every ready request message, up to `max` (1..=1048576), in one call, without
/// waiting: RILL_OK with `*n_out` >= 1 slices in `msgs`; RILL_WOULD_BLOCK (`*n_out` 0)
/// when none is ready; RILL_EOF when the client half-closed; RILL_ERR_STATUS when the
/// call ended on this side (read `rill_server_call_status`).
///
/// Ownership: the slices point into the call's buffers, no copy: valid until the next
/// recv/try_recv/recv_batch/try_recv_batch/free on this call.
#[no_mangle]
pub extern "C" fn rill_server_call_try_recv_batch(
    call: rill_server_call,
    msgs: *mut rill_slice,
    max: usize,
    n_out: *mut usize,
) -> rill_result {
    guard(|| messages::try_recv_batch(get(call), msgs, max, n_out))
}

/// Like `rill_server_call_try_recv_batch`, waiting up to `timeout_ms` (> 0, or
/// RILL_FOREVER) for at least one message: RILL_TIMEOUT when none came. Ownership as for
/// `rill_server_call_try_recv_batch`.
#[no_mangle]
pub extern "C" fn rill_server_call_recv_batch(
    call: rill_server_call,
    msgs: *mut rill_slice,
    max: usize,
    n_out: *mut usize,
    timeout_ms: i64,
) -> rill_result {
    guard(|| messages::recv_batch(get(call), msgs, max, n_out, timeout_ms))
}

/// Sends one response message (copied), waiting up to `timeout_ms` (> 0, or RILL_FOREVER)
/// while flow control says the client is full. RILL_ERR_WRONG_STATE for a second message
/// on a unary or client-streaming call or after finish; RILL_ERR_CLOSED when the call
/// ended (client cancelled, deadline passed).
///
/// # Safety
/// `data` is NULL or has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rill_server_call_send(
    call: rill_server_call,
    data: *const u8,
    len: usize,
    timeout_ms: i64,
) -> rill_result {
    // SAFETY: the caller's contract above.
    guard(|| unsafe { messages::send(get(call), data, len, timeout_ms) })
}

/// Like `rill_server_call_send` without waiting: RILL_WOULD_BLOCK when the send queue is
/// full (nothing was sent).
///
/// # Safety
/// `data` is NULL or has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rill_server_call_try_send(
    call: rill_server_call,
    data: *const u8,
    len: usize,
) -> rill_result {
    // SAFETY: the caller's contract above.
    guard(|| unsafe { messages::try_send(get(call), data, len) })
}

/// Queues the `n` response messages of `msgs` in order (each copied) while the send queue
/// has room, without waiting: one call for many messages. `*sent_out` says how many were
/// queued: RILL_OK when all `n` were, RILL_WOULD_BLOCK when the queue filled first (retry
/// the rest when the poller reports the call), or the error that stopped message
/// `*sent_out` (as for `rill_server_call_try_send`; the ones before it were queued). Every
/// slice is checked before anything is queued. A unary or client-streaming call takes a
/// batch of one message only (RILL_ERR_WRONG_STATE otherwise).
///
/// Ownership: the slices and their bytes are only read during this call.
///
/// # Safety
/// `msgs` is NULL (only if `n` is 0) or points to `n` slices, each NULL with `len` 0 or
/// with `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rill_server_call_try_send_batch(
    call: rill_server_call,
    msgs: *const rill_slice,
    n: usize,
    sent_out: *mut usize,
) -> rill_result {
    // SAFETY: the caller's contract above.
    guard(|| unsafe { messages::try_send_batch(get(call), msgs, n, sent_out) })
}

/// Sends the response headers now with `md` (copied; 0 = none). Otherwise they go with the
/// first message or the status.
#[no_mangle]
pub extern "C" fn rill_server_call_send_headers(
    call: rill_server_call,
    md: rill_metadata,
) -> rill_result {
    guard(|| {
        let md = take_in(md)?;
        let obj = get(call)?;
        let c = lock(&obj);
        c.check_open("send_headers")?;
        c.call
            .send_headers(&md)
            .map_err(|s| Fail::state(format!("cannot send headers: {}", s.message())))?;
        Ok(RILL_OK)
    })
}

/// Ends the call with gRPC status `code` (0..16), `message` (NUL-terminated UTF-8, or
/// NULL), optional `details` bytes (grpc-status-details-bin; NULL if `details_len` is 0)
/// and `trailers` (copied; 0 = none). Queued messages go out first; does not wait.
/// RILL_ERR_WRONG_STATE on a second finish; RILL_ERR_CLOSED if the call had already ended
/// (the client cancelled or the deadline passed).
///
/// # Safety
/// `message` is NULL or NUL-terminated; `details` is NULL or has `details_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rill_server_call_finish(
    call: rill_server_call,
    code: u32,
    message: *const c_char,
    details: *const u8,
    details_len: usize,
    trailers: rill_metadata,
) -> rill_result {
    guard(|| {
        if code > 16 {
            return Err(Fail::invalid(format!(
                "status code must be 0..=16, got {code}"
            )));
        }
        // SAFETY: the caller's contract above.
        let msg = unsafe { opt_text(message, "message") }?.unwrap_or("");
        // SAFETY: the caller's contract above.
        let det = unsafe { crate::result::data(details, details_len, "details") }?;
        let t = take_in(trailers)?;
        let mut status = Status::new(Code::from_u32(code), msg).with_trailers(t);
        if !det.is_empty() {
            status = status.with_details(Bytes::copy_from_slice(det));
        }
        finish_with(call, status)
    })
}

/// Ends `call` with `status` (the body of the finish functions).
pub(crate) fn finish_with(call: rill_server_call, status: Status) -> R {
    let obj = get(call)?;
    let mut c = lock(&obj);
    c.check_open("finish")?;
    c.finished = true;
    c.call.finish(status).map_err(|s| {
        Fail::new(
            RILL_ERR_CLOSED,
            format!(
                "the call had already ended: {}: {}",
                s.code().name(),
                s.message()
            ),
        )
    })?;
    Ok(RILL_OK)
}

/// Aborts the call: the client sees CANCELLED. Later sends and finish are
/// RILL_ERR_WRONG_STATE.
#[no_mangle]
pub extern "C" fn rill_server_call_cancel(call: rill_server_call) -> rill_result {
    guard(|| {
        let obj = get(call)?;
        let mut c = lock(&obj);
        c.finished = true;
        c.call.cancel();
        Ok(RILL_OK)
    })
}

/// Whether the call ended on this side for another reason than this program's finish:
/// the client cancelled, the deadline passed, the connection broke.
#[no_mangle]
pub extern "C" fn rill_server_call_is_cancelled(
    call: rill_server_call,
    cancelled_out: *mut bool,
) -> rill_result {
    guard(|| {
        let o = out(cancelled_out, "cancelled_out")?;
        put(o, lock(&*get(call)?).call.is_cancelled());
        Ok(RILL_OK)
    })
}

/// Why the call ended on this side, after recv returned RILL_ERR_STATUS. Any out-pointer
/// may be NULL. RILL_ERR_WRONG_STATE if recv has not reported an end.
///
/// Ownership: `*message_out` is borrowed from the call: valid until
/// `rill_server_call_free`.
#[no_mangle]
pub extern "C" fn rill_server_call_status(
    call: rill_server_call,
    code_out: *mut u32,
    message_out: *mut *const c_char,
) -> rill_result {
    guard(|| {
        let obj = get(call)?;
        let c = lock(&obj);
        let Some((s, m)) = &c.ended else {
            return Err(Fail::state("recv has not reported the end of the call"));
        };
        if !code_out.is_null() {
            put(code_out, s.code() as u32);
        }
        if !message_out.is_null() {
            put(message_out, m.as_ptr());
        }
        Ok(RILL_OK)
    })
}

/// Frees the call. One that was not finished ends as UNKNOWN for the client. A second
/// free is RILL_ERR_STALE_HANDLE.
#[no_mangle]
pub extern "C" fn rill_server_call_free(call: rill_server_call) -> rill_result {
    guard(|| {
        let obj = SERVER_CALLS.remove(call)?;
        let n = lock(&obj).notify.clone();
        n.attach(None);
        Ok(RILL_OK)
    })
}
