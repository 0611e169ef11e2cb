//! Result codes, the thread's last error message, and the guard every export runs in.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// What every function returns. Stable: values are only ever appended.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rill_result {
    /// Done.
    RILL_OK = 0,
    /// A non-blocking (`try_`) operation could not complete now. Retry when the handle's
    /// poller reports its tag (or use the blocking form).
    RILL_WOULD_BLOCK = 1,
    /// A blocking operation's timeout passed; nothing happened, the handle is unchanged.
    RILL_TIMEOUT = 2,
    /// End of stream: no more messages (the call ended OK, or the client half-closed).
    RILL_EOF = 3,
    /// An argument is out of range: a timeout <= 0, an unknown shape or status code,
    /// invalid UTF-8, a malformed URI, method path or metadata entry.
    RILL_ERR_INVALID_ARGUMENT = 4,
    /// A required pointer was NULL, or a handle was 0.
    RILL_ERR_NULL = 5,
    /// The handle is freed, stale (its slot was reused) or of another kind.
    RILL_ERR_STALE_HANDLE = 6,
    /// The operation is not allowed now: after finish, a second send on a single-message
    /// side, a send after close_send, a status asked before the call ended, ...
    RILL_ERR_WRONG_STATE = 7,
    /// The call ended with a non-OK gRPC status: read it with `rill_call_status` /
    /// `rill_server_call_status`.
    RILL_ERR_STATUS = 8,
    /// The call or server can no longer do this (the call ended, the server shut down).
    RILL_ERR_CLOSED = 9,
    /// A bug inside the library was caught at the boundary (a Rust panic). The handle used
    /// may be in an unknown state; free it.
    RILL_ERR_PANIC = 10,
    /// `rill_metadata_get`: no entry with this key.
    RILL_NOT_FOUND = 11,
    /// Certificates, keys or the TLS configuration were refused.
    RILL_ERR_TLS = 12,
    /// The operating system refused (bind, reading a file).
    RILL_ERR_IO = 13,
}

pub use rill_result::*;

/// A failed operation: its code and the message `rill_last_error_message` will give.
#[derive(Debug)]
pub(crate) struct Fail {
    pub code: rill_result,
    pub msg: String,
}

impl Fail {
    pub fn new(code: rill_result, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Fail {
        Fail::new(RILL_ERR_INVALID_ARGUMENT, msg)
    }

    pub fn state(msg: impl Into<String>) -> Fail {
        Fail::new(RILL_ERR_WRONG_STATE, msg)
    }

    pub fn null(what: &str) -> Fail {
        Fail::new(RILL_ERR_NULL, format!("{what} is NULL"))
    }
}

pub(crate) type R<T = rill_result> = Result<T, Fail>;

thread_local! {
    static LAST: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = c);
}

/// Runs one export: errors become their code (and this thread's last message), a panic
/// becomes RILL_ERR_PANIC instead of unwinding into C.
pub(crate) fn guard(f: impl FnOnce() -> R) -> rill_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(code)) => code,
        Ok(Err(fail)) => {
            set_last(&fail.msg);
            fail.code
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last(&format!("internal error (panic): {what}"));
            RILL_ERR_PANIC
        }
    }
}

/// The message of the last error returned on the calling thread (empty if none yet).
///
/// Ownership: the string belongs to the library; it stays valid until the next function
/// that returns an error on this thread. Copy it to keep it. Never free it.
#[no_mangle]
pub extern "C" fn rill_last_error_message() -> *const c_char {
    catch_unwind(|| LAST.with(|l| l.borrow().as_ptr())).unwrap_or(c"".as_ptr())
}

/// A static name for a result code, e.g. "RILL_ERR_STALE_HANDLE" ("RILL_UNKNOWN" for a
/// value this version does not know). Never free it.
#[no_mangle]
pub extern "C" fn rill_result_name(code: u32) -> *const c_char {
    let s: &'static CStr = match code {
        0 => c"RILL_OK",
        1 => c"RILL_WOULD_BLOCK",
        2 => c"RILL_TIMEOUT",
        3 => c"RILL_EOF",
        4 => c"RILL_ERR_INVALID_ARGUMENT",
        5 => c"RILL_ERR_NULL",
        6 => c"RILL_ERR_STALE_HANDLE",
        7 => c"RILL_ERR_WRONG_STATE",
        8 => c"RILL_ERR_STATUS",
        9 => c"RILL_ERR_CLOSED",
        10 => c"RILL_ERR_PANIC",
        11 => c"RILL_NOT_FOUND",
        12 => c"RILL_ERR_TLS",
        13 => c"RILL_ERR_IO",
        _ => c"RILL_UNKNOWN",
    };
    s.as_ptr()
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn text<'a>(p: *const c_char, what: &str) -> R<&'a str> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract above.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| Fail::invalid(format!("{what} is not valid UTF-8")))
}

/// Like `text`, NULL meaning "none".
///
/// # Safety
/// As for `text`.
pub(crate) unsafe fn opt_text<'a>(p: *const c_char, what: &str) -> R<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { text(p, what) }.map(Some)
    }
}

/// A byte buffer argument; NULL is allowed when `len` is 0.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that live for `'a`.
pub(crate) unsafe fn data<'a>(p: *const u8, len: usize, what: &str) -> R<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Fail::invalid(format!("{what}: length {len} is too large")));
    }
    // SAFETY: non-NULL, `len` readable bytes per the contract above.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Checks an out-pointer before anything happens, so a NULL never leaves work half done.
pub(crate) fn out<T>(p: *mut T, what: &str) -> R<*mut T> {
    if p.is_null() {
        Err(Fail::null(what))
    } else {
        Ok(p)
    }
}

/// Hands a received message to C as a borrowed pointer and length (null and 0 unless `r`
/// is RILL_OK), passing `r` through.
pub(crate) fn recv_out(
    (data, len): (*const u8, usize),
    data_out: *mut *const u8,
    len_out: *mut usize,
    r: R,
) -> R {
    if r.as_ref().is_ok_and(|c| *c == RILL_OK) {
        put(data_out, data);
        put(len_out, len);
    } else {
        put(data_out, std::ptr::null());
        put(len_out, 0);
    }
    r
}

/// Writes through an out-pointer checked by `out`.
pub(crate) fn put<T>(p: *mut T, v: T) {
    // SAFETY: every caller checked `p` with `out`; C promised it points to writable memory.
    unsafe { p.write(v) }
}

/// A timeout argument of a blocking function: strictly positive milliseconds.
pub(crate) fn timeout(ms: i64) -> R<Duration> {
    if ms <= 0 {
        return Err(Fail::invalid(format!(
            "timeout must be > 0 ms (RILL_FOREVER to wait without limit; the try_ form to not wait), got {ms}"
        )));
    }
    Ok(Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_code() {
        let code = guard(|| panic!("boom"));
        assert_eq!(code, RILL_ERR_PANIC);
        // SAFETY: the message is a valid C string owned by this thread.
        let msg = unsafe { CStr::from_ptr(rill_last_error_message()) };
        assert!(msg.to_str().unwrap().contains("boom"));
    }

    #[test]
    fn errors_leave_their_message() {
        assert_eq!(
            guard(|| Err(Fail::invalid("bad thing"))),
            RILL_ERR_INVALID_ARGUMENT
        );
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(rill_last_error_message()) };
        assert_eq!(msg.to_str().unwrap(), "bad thing");
        assert_eq!(timeout(0).unwrap_err().code, RILL_ERR_INVALID_ARGUMENT);
        assert_eq!(timeout(-1).unwrap_err().code, RILL_ERR_INVALID_ARGUMENT);
    }
}
