//! Client calls.

use rillrpc::{Call, CallOptions, Encoding, Inbox, Status};
use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::channel::CHANNELS;
use crate::messages;
use crate::metadata::{hand_out, rill_metadata, take_in};
use crate::notify::Notify;
use crate::registry::{lock, Registry};
use crate::result::*;
use crate::versioned;
use crate::{attempt, block, idempotency_from, rill_idempotency, rill_slice, shape_from, Waitable};

/// A client call. 0 is never a valid handle.
pub type rill_call = u64;

/// Per-call settings. Fill with `rill_call_options_init` first, then change fields.
#[repr(C)]
pub struct rill_call_options {
    /// Set by `rill_call_options_init` to `sizeof(rill_call_options)`.
    pub size: usize,
    /// The call's deadline, ms from now (sent as grpc-timeout); 0 (default) = none.
    /// Negative is RILL_ERR_INVALID_ARGUMENT.
    pub timeout_ms: i64,
    /// Request metadata (copied during `rill_call_open`; you still free it), or 0.
    pub metadata: rill_metadata,
    /// A `rill_compression` value for request messages.
    pub compression: u32,
    /// Largest response message accepted, bytes; 0 (default) = 4 MiB.
    pub max_recv_message_size: u32,
    /// Wait for the channel to connect instead of failing fast with UNAVAILABLE.
    pub wait_for_ready: bool,
    /// The method's `rill_idempotency`. Default RILL_IDEMPOTENCY_UNKNOWN. A unary call
    /// marked RILL_IDEMPOTENCY_NO_SIDE_EFFECTS on a Connect channel with `http_get` goes
    /// as an HTTP GET (the message in the URL) when it is opened with its request
    /// (`rill_call_open_with_request`). This field sits in what was the padding after
    /// `wait_for_ready`, so `sizeof` did not change: options filled by
    /// `rill_call_options_init`, as they must be, have it 0 (UNKNOWN).
    pub idempotency: u32,
    /// The codec's name the content type carries, `application/grpc+<content_subtype>`
    /// (NUL-terminated; NULL, the default, is plain `application/grpc`, protobuf): "thrift"
    /// for Kitex's Thrift over gRPC. Copied during `rill_call_open`. A channel over
    /// RILL_PROTOCOL_TTHEADER carries Thrift whatever this says.
    pub content_subtype: *const c_char,
}

/// The struct as each earlier header declared it (`versioned::earlier`).
const EARLIER: [(usize, usize); 1] = [versioned::earlier(
    std::mem::offset_of!(rill_call_options, content_subtype),
    std::mem::align_of::<rill_call_options>(),
)];

pub(crate) struct CallObj {
    call: Call,
    notify: Arc<Notify>,
    waker: Waker,
    finished: bool,
    /// Received messages; the one C is reading (its pointer was handed out) among them.
    inbox: Inbox,
    message: Option<CString>,
    /// The status's biz status for C, made when first asked for.
    pub(crate) biz: Option<crate::biz::BizText>,
}

impl Waitable for CallObj {
    fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }
}

pub(crate) static CALLS: Registry<CallObj> = Registry::new(3, "call");

fn status_fail(s: &Status) -> Fail {
    Fail::new(
        RILL_ERR_STATUS,
        format!(
            "call failed: {} {}: {}",
            s.code() as u32,
            s.code().name(),
            s.message()
        ),
    )
}

impl CallObj {
    /// The final status, once the call ended.
    pub(crate) fn call_status(&self) -> Option<&Status> {
        self.call.status()
    }

    fn check_open(&self, op: &str) -> R<()> {
        if self.finished {
            return Err(Fail::state(format!("{op} after rill_call_finish")));
        }
        Ok(())
    }

    fn poll_headers(&mut self) -> Poll<R<rill_metadata>> {
        let mut cx = Context::from_waker(&self.waker);
        match self.call.poll_headers(&mut cx) {
            Poll::Ready(Ok(md)) => Poll::Ready(Ok(hand_out(md))),
            Poll::Ready(Err(s)) => Poll::Ready(Err(status_fail(&s))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_finish(&mut self) -> Poll<R<u32>> {
        self.call.close_send();
        self.inbox.clear();
        let mut cx = Context::from_waker(&self.waker);
        loop {
            match self.inbox.poll_fill(&mut cx, &mut self.call, 1024) {
                Poll::Ready(Ok(false)) | Poll::Ready(Err(_)) => break,
                Poll::Ready(Ok(true)) => self.inbox.clear(),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.finished = true;
        let code = self.call.status().map(|s| s.code() as u32).unwrap_or(2);
        Poll::Ready(Ok(code))
    }
}

impl crate::messages::Messages for CallObj {
    /// Queues `msg` if there is room (the rules of the call's shape are the core's).
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

    /// Ready(OK) with the message in `inbox.current()`, Ready(EOF), or the call's failure.
    fn poll_recv(&mut self) -> Poll<R> {
        if let Err(e) = self.check_open("recv") {
            return Poll::Ready(Err(e));
        }
        crate::recv::poll_recv(&mut self.inbox, &mut self.call, &self.waker)
            .map_err(|s| status_fail(&s))
    }

    /// Hands out up to `out.len()` ready messages as borrowed slices: Ready(OK) with how
    /// many, Ready(EOF), or the call's failure.
    fn poll_recv_batch(&mut self, out: &mut [rill_slice]) -> Poll<R<(rill_result, usize)>> {
        if let Err(e) = self.check_open("recv") {
            return Poll::Ready(Err(e));
        }
        crate::recv::poll_recv_batch(&mut self.inbox, &mut self.call, &self.waker, out)
            .map_err(|s| status_fail(&s))
    }

    fn current(&self) -> (*const u8, usize) {
        let m = self.inbox.current();
        (m.as_ptr(), m.len())
    }
}

/// The options' defaults, as this header declares them.
fn defaults() -> rill_call_options {
    let d = CallOptions::default();
    rill_call_options {
        size: std::mem::size_of::<rill_call_options>(),
        timeout_ms: 0,
        metadata: 0,
        compression: 0,
        max_recv_message_size: 0,
        wait_for_ready: d.wait_for_ready,
        idempotency: rill_idempotency::of(d.idempotency) as u32,
        content_subtype: std::ptr::null(),
    }
}

/// Fills `opts` with the defaults (no deadline, no metadata, no compression, idempotency
/// unknown).
#[no_mangle]
pub extern "C" fn rill_call_options_init(opts: *mut rill_call_options) -> rill_result {
    guard(|| {
        let o = out(opts, "opts")?;
        put(o, defaults());
        Ok(RILL_OK)
    })
}

/// # Safety
/// `o` was filled by `rill_call_options_init` of this header or an earlier one; its
/// `content_subtype` is NULL or NUL-terminated.
unsafe fn call_options(o: *const rill_call_options) -> R<CallOptions> {
    // SAFETY: the contract above; `read` reads no further than the struct it was.
    let o = &unsafe { versioned::read(o, defaults(), &EARLIER, "call_options") }?;
    let mut c = CallOptions::new()
        .wait_for_ready(o.wait_for_ready)
        .idempotency(idempotency_from(o.idempotency, "opts.idempotency")?);
    if o.timeout_ms < 0 {
        return Err(Fail::invalid(format!(
            "timeout_ms must be > 0 (or 0 for no deadline), got {}",
            o.timeout_ms
        )));
    }
    if o.timeout_ms > 0 {
        c = c.timeout(Duration::from_millis(o.timeout_ms as u64));
    }
    c = c.metadata(take_in(o.metadata)?);
    match o.compression {
        0 => {}
        1 => c = c.compression(Encoding::Gzip),
        v => return Err(Fail::invalid(format!("unknown compression {v}"))),
    }
    if o.max_recv_message_size > 0 {
        c = c.max_recv_message_size(o.max_recv_message_size as usize);
    }
    // SAFETY: NULL or NUL-terminated, the contract above.
    if let Some(sub) = unsafe { opt_text(o.content_subtype, "opts.content_subtype") }? {
        c = c.content_subtype(sub);
    }
    Ok(c)
}

/// Starts a call of `method` ("/package.Service/Method") with the given `rill_shape`.
/// Returns at once: it never waits for the connection or the server. `opts` may be NULL;
/// it is only read during this call. Free the call with `rill_call_free` (after
/// `rill_call_finish`, or to cancel it).
///
/// # Safety
/// `method` is NULL or NUL-terminated; `opts` is NULL or filled by `rill_call_options_init`.
#[no_mangle]
pub unsafe extern "C" fn rill_call_open(
    channel: crate::channel::rill_channel,
    method: *const c_char,
    shape: u32,
    opts: *const rill_call_options,
    call_out: *mut rill_call,
) -> rill_result {
    // SAFETY: the caller's contract above.
    guard(|| unsafe { open(channel, method, shape, opts, None, call_out) })
}

/// Starts a call whose whole request is the one message `data` (copied): the call is
/// opened, the message queued and the request half-closed, as `rill_call_open`, then
/// `rill_call_send` would, in one step; then receive as usual. For the calls that send
/// one message (RILL_UNARY, RILL_SERVER_STREAMING). It is the form a unary call must be
/// opened in to go as Connect's HTTP GET (`rill_channel_options.http_get`,
/// `rill_call_options.idempotency`): a GET carries the message in its URL, so the message
/// must be known when the request leaves. With the connection up, the request is written
/// from the calling thread at once. Returns at once otherwise, as `rill_call_open` does.
///
/// Ownership: `data` is only read during this call.
///
/// # Safety
/// `method` is NULL or NUL-terminated; `opts` is NULL or filled by
/// `rill_call_options_init`; `data` is NULL or has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rill_call_open_with_request(
    channel: crate::channel::rill_channel,
    method: *const c_char,
    shape: u32,
    opts: *const rill_call_options,
    data: *const u8,
    len: usize,
    call_out: *mut rill_call,
) -> rill_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let msg = unsafe { crate::result::data(data, len, "data") }?;
        // SAFETY: the caller's contract above.
        unsafe { open(channel, method, shape, opts, Some(msg), call_out) }
    })
}

/// What both open functions do; `request`, when given, is the whole request.
///
/// # Safety
/// As `rill_call_open`.
unsafe fn open(
    channel: crate::channel::rill_channel,
    method: *const c_char,
    shape: u32,
    opts: *const rill_call_options,
    request: Option<&[u8]>,
    call_out: *mut rill_call,
) -> R {
    let o = out(call_out, "call_out")?;
    // SAFETY: the caller's contract (rill_call_open's).
    let method = unsafe { text(method, "method") }?;
    let shape = shape_from(shape)?;
    let copts = if opts.is_null() {
        CallOptions::new()
    } else {
        // SAFETY: non-NULL, initialized per the caller's contract.
        unsafe { call_options(opts) }?
    };
    let ch = lock(&*CHANNELS.get(channel)?).clone();
    let opened = match request {
        // Only the core's open with the request can choose a GET: the message is in hand.
        Some(msg) => ch.open_with_request(method, shape, copts, msg),
        None => ch.open(method, shape, copts),
    };
    let call = opened.map_err(|s| Fail::invalid(s.message().to_owned()))?;
    let (notify, waker) = Notify::new();
    put(
        o,
        CALLS.insert(CallObj {
            call,
            notify,
            waker,
            finished: false,
            inbox: Inbox::new(),
            message: None,
            biz: None,
        }),
    );
    Ok(RILL_OK)
}

pub(crate) fn get(call: rill_call) -> R<Arc<Mutex<CallObj>>> {
    CALLS.get(call)
}

/// Sends one message (copied), waiting up to `timeout_ms` (> 0, or RILL_FOREVER) while
/// flow control says the server is full. On a unary or server-streaming call the one
/// message also half-closes (no close_send needed). RILL_ERR_WRONG_STATE for a second message on a
/// unary or server-streaming call, after close_send or finish; RILL_ERR_CLOSED when the
/// call has ended (rill_call_finish then gives the status).
///
/// # Safety
/// `data` is NULL or has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rill_call_send(
    call: rill_call,
    data: *const u8,
    len: usize,
    timeout_ms: i64,
) -> rill_result {
    // SAFETY: the caller's contract above.
    guard(|| unsafe { messages::send(get(call), data, len, timeout_ms) })
}

/// Like `rill_call_send` without waiting: RILL_WOULD_BLOCK when the send queue is full
/// (nothing was sent; retry when the poller reports the call).
///
/// # Safety
/// `data` is NULL or has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rill_call_try_send(
    call: rill_call,
    data: *const u8,
    len: usize,
) -> rill_result {
    // SAFETY: the caller's contract above.
    guard(|| unsafe { messages::try_send(get(call), data, len) })
}

/// Queues the `n` messages of `msgs` in order (each copied) while the send queue has
/// room, without waiting: one call for many messages. `*sent_out` says how many were
/// queued: RILL_OK when all `n` were, RILL_WOULD_BLOCK when the queue filled first (retry
/// the rest when the poller reports the call), or the error that stopped message
/// `*sent_out` (as for `rill_call_try_send`; the ones before it were queued). Every slice
/// is checked before anything is queued. A unary or server-streaming call takes a batch
/// of one message only (RILL_ERR_WRONG_STATE otherwise).
///
/// Ownership: the slices and their bytes are only read during this call.
///
/// # Safety
/// `msgs` is NULL (only if `n` is 0) or points to `n` slices, each NULL with `len` 0 or
/// with `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rill_call_try_send_batch(
    call: rill_call,
    msgs: *const rill_slice,
    n: usize,
    sent_out: *mut usize,
) -> rill_result {
    // SAFETY: the caller's contract above.
    guard(|| unsafe { messages::try_send_batch(get(call), msgs, n, sent_out) })
}

/// Half-closes: the client sends nothing more. Idempotent.
#[no_mangle]
pub extern "C" fn rill_call_close_send(call: rill_call) -> rill_result {
    guard(|| {
        let obj = get(call)?;
        let c = lock(&obj);
        c.check_open("close_send")?;
        c.call.close_send();
        Ok(RILL_OK)
    })
}

/// Receives the next response message, waiting up to `timeout_ms` (> 0, or RILL_FOREVER).
/// RILL_OK with the message in `*data_out`/`*len_out`; RILL_EOF when the call ended OK;
/// RILL_ERR_STATUS when it failed (read `rill_call_status`); RILL_TIMEOUT.
///
/// Ownership: `*data_out` is borrowed from the call, no copy: valid until the next
/// recv/try_recv/finish/free on this call.
#[no_mangle]
pub extern "C" fn rill_call_recv(
    call: rill_call,
    data_out: *mut *const u8,
    len_out: *mut usize,
    timeout_ms: i64,
) -> rill_result {
    guard(|| messages::recv(get(call), data_out, len_out, timeout_ms))
}

/// Like `rill_call_recv` without waiting: RILL_WOULD_BLOCK when no message is ready.
/// Messages that arrived together are taken from the core in one batch, so a loop of
/// try_recv calls costs no thread hop. Ownership as for `rill_call_recv`.
#[no_mangle]
pub extern "C" fn rill_call_try_recv(
    call: rill_call,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> rill_result {
    guard(|| messages::try_recv(get(call), data_out, len_out))
}

/// Takes every ready response message, up to `max` (1..=1048576), in one call, without
/// waiting: RILL_OK with `*n_out` >= 1 slices in `msgs`; RILL_WOULD_BLOCK (`*n_out` 0)
/// when none is ready; RILL_EOF when the call ended OK; RILL_ERR_STATUS when it failed
/// (read `rill_call_status`). Messages that follow one another come in one batch, so a
/// stream costs one call per batch, not per message.
///
/// Ownership: the slices point into the call's buffers, no copy: valid until the next
/// recv/try_recv/recv_batch/try_recv_batch/finish/free on this call.
#[no_mangle]
pub extern "C" fn rill_call_try_recv_batch(
    call: rill_call,
    msgs: *mut rill_slice,
    max: usize,
    n_out: *mut usize,
) -> rill_result {
    guard(|| messages::try_recv_batch(get(call), msgs, max, n_out))
}

/// Like `rill_call_try_recv_batch`, waiting up to `timeout_ms` (> 0, or RILL_FOREVER) for
/// at least one message: RILL_TIMEOUT when none came. Ownership as for
/// `rill_call_try_recv_batch`.
#[no_mangle]
pub extern "C" fn rill_call_recv_batch(
    call: rill_call,
    msgs: *mut rill_slice,
    max: usize,
    n_out: *mut usize,
    timeout_ms: i64,
) -> rill_result {
    guard(|| messages::recv_batch(get(call), msgs, max, n_out, timeout_ms))
}

/// The response headers, waiting up to `timeout_ms` (> 0, or RILL_FOREVER) for them.
/// A call that ended without headers gives an empty list. RILL_ERR_STATUS if the call
/// failed before any headers.
///
/// Ownership: `*md_out` is a new list owned by you: free it with `rill_metadata_free`.
#[no_mangle]
pub extern "C" fn rill_call_headers(
    call: rill_call,
    md_out: *mut rill_metadata,
    timeout_ms: i64,
) -> rill_result {
    guard(|| {
        let o = out(md_out, "md_out")?;
        let t = timeout(timeout_ms)?;
        let obj = get(call)?;
        let md = block(&obj, t, |c| c.poll_headers())?;
        put(o, md);
        Ok(RILL_OK)
    })
}

/// Like `rill_call_headers` without waiting: RILL_WOULD_BLOCK when they did not come yet.
#[no_mangle]
pub extern "C" fn rill_call_try_headers(
    call: rill_call,
    md_out: *mut rill_metadata,
) -> rill_result {
    guard(|| {
        let o = out(md_out, "md_out")?;
        let obj = get(call)?;
        match attempt(&obj, |c| c.poll_headers()) {
            Poll::Ready(r) => {
                put(o, r?);
                Ok(RILL_OK)
            }
            Poll::Pending => Ok(RILL_WOULD_BLOCK),
        }
    })
}

/// Half-closes, discards unread messages and waits up to `timeout_ms` (> 0, or
/// RILL_FOREVER) for the call's final status; its gRPC code goes to `*code_out` (may be
/// NULL). RILL_OK means the status is known, whatever its code: read the message,
/// details and trailers with `rill_call_status` and `rill_call_trailers`. After finish,
/// only status, trailers, headers, cancel and free are allowed (a second finish is
/// RILL_ERR_WRONG_STATE).
#[no_mangle]
pub extern "C" fn rill_call_finish(
    call: rill_call,
    code_out: *mut u32,
    timeout_ms: i64,
) -> rill_result {
    guard(|| {
        let t = timeout(timeout_ms)?;
        let code = block(&get(call)?, t, |c| {
            if let Err(e) = c.check_open("finish") {
                return Poll::Ready(Err(e));
            }
            c.poll_finish()
        })?;
        if !code_out.is_null() {
            put(code_out, code);
        }
        Ok(RILL_OK)
    })
}

/// Like `rill_call_finish` without waiting: RILL_WOULD_BLOCK while the call runs.
#[no_mangle]
pub extern "C" fn rill_call_try_finish(call: rill_call, code_out: *mut u32) -> rill_result {
    guard(|| {
        let obj = get(call)?;
        let r = attempt(&obj, |c| {
            if let Err(e) = c.check_open("finish") {
                return Poll::Ready(Err(e));
            }
            c.poll_finish()
        });
        match r {
            Poll::Ready(code) => {
                let code = code?;
                if !code_out.is_null() {
                    put(code_out, code);
                }
                Ok(RILL_OK)
            }
            Poll::Pending => Ok(RILL_WOULD_BLOCK),
        }
    })
}

/// The final status of an ended call (after finish, or after recv returned RILL_EOF or
/// RILL_ERR_STATUS). Any out-pointer may be NULL. RILL_ERR_WRONG_STATE while it runs.
///
/// Ownership: `*message_out` (NUL-terminated UTF-8) and `*details_out` (the
/// grpc-status-details-bin bytes) are borrowed from the call: valid until `rill_call_free`.
#[no_mangle]
pub extern "C" fn rill_call_status(
    call: rill_call,
    code_out: *mut u32,
    message_out: *mut *const c_char,
    details_out: *mut *const u8,
    details_len_out: *mut usize,
) -> rill_result {
    guard(|| {
        let obj = get(call)?;
        let mut c = lock(&obj);
        let Some(s) = c.call.status().cloned() else {
            return Err(Fail::state("the call has not ended yet"));
        };
        if c.message.is_none() {
            c.message = Some(CString::new(s.message().replace('\0', " ")).unwrap_or_default());
        }
        if !code_out.is_null() {
            put(code_out, s.code() as u32);
        }
        if !message_out.is_null() {
            put(
                message_out,
                c.message.as_ref().map_or(c"".as_ptr(), |m| m.as_ptr()),
            );
        }
        if !details_out.is_null() && !details_len_out.is_null() {
            let d = c
                .call
                .status()
                .map(|s| s.details().clone())
                .unwrap_or_default();
            put(details_out, d.as_ptr());
            put(details_len_out, d.len());
            // The status (and so the details buffer) stays in the call until it is freed.
        }
        Ok(RILL_OK)
    })
}

/// The trailers of an ended call. RILL_ERR_WRONG_STATE while it runs.
///
/// Ownership: `*md_out` is a new list owned by you: free it with `rill_metadata_free`.
#[no_mangle]
pub extern "C" fn rill_call_trailers(call: rill_call, md_out: *mut rill_metadata) -> rill_result {
    guard(|| {
        let o = out(md_out, "md_out")?;
        let obj = get(call)?;
        let c = lock(&obj);
        let Some(t) = c.call.trailers() else {
            return Err(Fail::state("the call has not ended yet"));
        };
        put(o, hand_out(t.clone()));
        Ok(RILL_OK)
    })
}

/// Cancels the call now: the server sees CANCELLED, and so does this call's finish.
/// Harmless on an ended call.
#[no_mangle]
pub extern "C" fn rill_call_cancel(call: rill_call) -> rill_result {
    guard(|| {
        let obj = get(call)?;
        lock(&obj).call.cancel();
        Ok(RILL_OK)
    })
}

/// Frees the call (cancelling it if it has not ended). Borrowed pointers from it become
/// invalid. A second free is RILL_ERR_STALE_HANDLE.
#[no_mangle]
pub extern "C" fn rill_call_free(call: rill_call) -> rill_result {
    guard(|| {
        let obj = CALLS.remove(call)?;
        // Detach now so a late wake-up does not queue the freed handle's tag.
        let n = lock(&obj).notify.clone();
        n.attach(None);
        drop(obj);
        Ok(RILL_OK)
    })
}
