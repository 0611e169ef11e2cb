//! Kitex's business status for C: read the one an ended call carries, end a served call
//! with one. What a biz status is on the wire is the core's (`rillrpc::BizStatus`).

use rillrpc::{BizStatus, Status};
use std::ffi::{c_char, CString};

use crate::registry::lock;
use crate::result::*;
use crate::server_call::finish_with;

/// A call's biz status as C reads it: NUL-terminated copies, made when first asked for
/// and kept until the call is freed.
pub(crate) struct BizText {
    code: i32,
    message: CString,
    extra: Vec<(CString, CString)>,
}

impl BizText {
    fn of(b: &BizStatus) -> BizText {
        let c = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
        BizText {
            code: b.code(),
            message: c(b.message()),
            extra: b.extra().iter().map(|(k, v)| (c(k), c(v))).collect(),
        }
    }
}

/// Runs `f` on the biz status of an ended call: RILL_NOT_FOUND when its status carries
/// none, RILL_ERR_WRONG_STATE while it runs.
fn with_biz(call: crate::call::rill_call, f: impl FnOnce(&BizText) -> R) -> R {
    let obj = crate::call::get(call)?;
    let mut c = lock(&obj);
    let Some(s) = c.call_status().cloned() else {
        return Err(Fail::state("the call has not ended yet"));
    };
    if c.biz.is_none() {
        c.biz = s.biz_status().map(|b| BizText::of(&b));
    }
    match &c.biz {
        Some(b) => f(b),
        None => Ok(RILL_NOT_FOUND),
    }
}

/// The Kitex biz status an ended call's status carries (a status that is not OK; its gRPC
/// code is INTERNAL, or the one a Kitex error carries of its own):
/// its code, message and the number of entries of its extra map (read them with
/// `rill_call_biz_extra`). Any out-pointer may be NULL. RILL_NOT_FOUND when the status
/// carries none; RILL_ERR_WRONG_STATE while the call runs.
///
/// Ownership: `*message_out` (NUL-terminated UTF-8) is borrowed from the call: valid
/// until `rill_call_free`.
#[no_mangle]
pub extern "C" fn rill_call_biz_status(
    call: crate::call::rill_call,
    code_out: *mut i32,
    message_out: *mut *const c_char,
    extra_len_out: *mut usize,
) -> rill_result {
    guard(|| {
        with_biz(call, |b| {
            if !code_out.is_null() {
                put(code_out, b.code);
            }
            if !message_out.is_null() {
                put(message_out, b.message.as_ptr());
            }
            if !extra_len_out.is_null() {
                put(extra_len_out, b.extra.len());
            }
            Ok(RILL_OK)
        })
    })
}

/// Entry `index` of the extra map of an ended call's biz status. RILL_NOT_FOUND when the
/// status carries no biz status or `index` is past its last entry.
///
/// Ownership: `*key_out` and `*value_out` (NUL-terminated UTF-8) are borrowed from the
/// call: valid until `rill_call_free`.
#[no_mangle]
pub extern "C" fn rill_call_biz_extra(
    call: crate::call::rill_call,
    index: usize,
    key_out: *mut *const c_char,
    value_out: *mut *const c_char,
) -> rill_result {
    guard(|| {
        let k = out(key_out, "key_out")?;
        let v = out(value_out, "value_out")?;
        with_biz(call, |b| match b.extra.get(index) {
            Some((key, value)) => {
                put(k, key.as_ptr());
                put(v, value.as_ptr());
                Ok(RILL_OK)
            }
            None => Ok(RILL_NOT_FOUND),
        })
    })
}

/// Ends the call with a Kitex biz status: `code`, `message` (NUL-terminated UTF-8, or
/// NULL) and an extra map of `extra_len` entries, `extra_keys[i]: extra_values[i]` (both
/// NULL when `extra_len` is 0). The client sees INTERNAL carrying the biz status, as
/// Kitex sends it on each protocol. Otherwise as `rill_server_call_finish`.
///
/// # Safety
/// `message` is NULL or NUL-terminated; `extra_keys` and `extra_values` are NULL or point
/// to `extra_len` NUL-terminated strings each.
#[no_mangle]
pub unsafe extern "C" fn rill_server_call_finish_biz(
    call: crate::server_call::rill_server_call,
    code: i32,
    message: *const c_char,
    extra_keys: *const *const c_char,
    extra_values: *const *const c_char,
    extra_len: usize,
) -> rill_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let msg = unsafe { opt_text(message, "message") }?.unwrap_or("");
        let mut biz = BizStatus::new(code, msg);
        if extra_len > 0 {
            if extra_keys.is_null() || extra_values.is_null() {
                return Err(Fail::null("extra_keys or extra_values"));
            }
            for i in 0..extra_len {
                // SAFETY: both arrays hold `extra_len` pointers per the contract above.
                let (kp, vp) = unsafe { (*extra_keys.add(i), *extra_values.add(i)) };
                // SAFETY: each is NUL-terminated per the contract above.
                let (k, v) = unsafe { (text(kp, "an extra key")?, text(vp, "an extra value")?) };
                biz = biz.with_extra(k, v);
            }
        }
        finish_with(call, Status::biz(biz))
    })
}
