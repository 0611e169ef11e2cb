//! Pollers: readiness for event loops.

use std::sync::Arc;
use std::time::Instant;

use crate::call::CALLS;
use crate::notify::Poller;
use crate::registry::{lock, Registry};
use crate::result::{
    guard, out, put, rill_result, timeout, Fail, RILL_ERR_IO, RILL_OK, RILL_TIMEOUT,
    RILL_WOULD_BLOCK,
};
use crate::server::SERVERS;
use crate::server_call::SERVER_CALLS;
use crate::Waitable;

/// A poller: a readiness queue with a file descriptor, for event loops. 0 is never a valid
/// handle.
pub type rill_poller = u64;

pub(crate) static POLLERS: Registry<Arc<Poller>> = Registry::new(5, "poller");

/// Creates a poller. Attach calls, server calls and servers to it with a tag of your
/// choosing; whenever one of them may have progressed its tag is queued and the poller's
/// fd becomes readable. Free it with `rill_poller_free`.
#[no_mangle]
pub extern "C" fn rill_poller_new(poller_out: *mut rill_poller) -> rill_result {
    guard(|| {
        let o = out(poller_out, "poller_out")?;
        let p = Poller::new().map_err(|e| Fail::new(RILL_ERR_IO, format!("eventfd: {e}")))?;
        put(o, POLLERS.insert(Arc::new(p)));
        Ok(RILL_OK)
    })
}

/// The poller's file descriptor: readable (POLLIN / EPOLLIN, level-triggered) while tags
/// are queued. Owned by the poller: do not read, write or close it. It stays open until
/// the poller and every handle attached to it are freed.
#[no_mangle]
pub extern "C" fn rill_poller_fd(poller: rill_poller, fd_out: *mut i32) -> rill_result {
    guard(|| {
        let o = out(fd_out, "fd_out")?;
        let p = POLLERS.get(poller)?;
        put(o, lock(&p).fd());
        Ok(RILL_OK)
    })
}

/// Takes up to `max` queued tags into `tags` without waiting; `*n_out` says how many.
/// RILL_WOULD_BLOCK (with `*n_out` = 0) when none is queued. Each tag is queued once per
/// wake-up: retry that handle's non-blocking operations until they say RILL_WOULD_BLOCK.
/// A tag may come after its handle was freed; ignore it then.
#[no_mangle]
pub extern "C" fn rill_poller_next(
    poller: rill_poller,
    tags: *mut u64,
    max: usize,
    n_out: *mut usize,
) -> rill_result {
    guard(|| {
        let n_o = out(n_out, "n_out")?;
        let buf = tags_buf(tags, max)?;
        let p = lock(&*POLLERS.get(poller)?).clone();
        let n = p.drain(buf);
        put(n_o, n);
        Ok(if n == 0 { RILL_WOULD_BLOCK } else { RILL_OK })
    })
}

/// Like `rill_poller_next`, waiting up to `timeout_ms` (> 0, or RILL_FOREVER) for a tag.
/// RILL_TIMEOUT when none came. For a loop with no other event source this is the cheaper
/// way to wait: as long as `rill_poller_fd` was never called, a wake-up costs a syscall
/// only when this thread really sleeps.
#[no_mangle]
pub extern "C" fn rill_poller_wait(
    poller: rill_poller,
    tags: *mut u64,
    max: usize,
    n_out: *mut usize,
    timeout_ms: i64,
) -> rill_result {
    guard(|| {
        let n_o = out(n_out, "n_out")?;
        put(n_o, 0);
        let buf = tags_buf(tags, max)?;
        let t = timeout(timeout_ms)?;
        let p = lock(&*POLLERS.get(poller)?).clone();
        let n = p.wait(buf, Instant::now().checked_add(t));
        put(n_o, n);
        if n == 0 {
            return Err(Fail::new(RILL_TIMEOUT, "no tag before the timeout"));
        }
        Ok(RILL_OK)
    })
}

fn tags_buf<'a>(tags: *mut u64, max: usize) -> Result<&'a mut [u64], Fail> {
    let t = out(tags, "tags")?;
    if max == 0 || max > (1 << 24) {
        return Err(Fail::invalid(format!(
            "max must be 1..=16777216, got {max}"
        )));
    }
    // SAFETY: C promised `max` writable u64s at `tags` (non-NULL, checked above).
    Ok(unsafe { std::slice::from_raw_parts_mut(t, max) })
}

/// Frees a poller. Handles attached to it stay attached (their tags go nowhere visible)
/// until they are freed or attached elsewhere.
#[no_mangle]
pub extern "C" fn rill_poller_free(poller: rill_poller) -> rill_result {
    guard(|| {
        POLLERS.remove(poller)?;
        Ok(RILL_OK)
    })
}

fn attach<T: Waitable>(
    obj: &std::sync::Arc<std::sync::Mutex<T>>,
    poller: rill_poller,
    tag: u64,
) -> Result<rill_result, Fail> {
    let target = if poller == 0 {
        None
    } else {
        Some((lock(&*POLLERS.get(poller)?).clone(), tag))
    };
    let n = lock(obj).notify().clone();
    n.attach(target);
    Ok(RILL_OK)
}

/// Attaches a client call to a poller: `tag` is queued whenever the call may have
/// progressed (a message or the headers arrived, room to send, the call ended), and once
/// right away. `poller` 0 detaches.
#[no_mangle]
pub extern "C" fn rill_call_set_poller(
    call: crate::call::rill_call,
    poller: rill_poller,
    tag: u64,
) -> rill_result {
    guard(|| attach(&CALLS.get(call)?, poller, tag))
}

/// Attaches a server call to a poller (see `rill_call_set_poller`).
#[no_mangle]
pub extern "C" fn rill_server_call_set_poller(
    call: crate::server_call::rill_server_call,
    poller: rill_poller,
    tag: u64,
) -> rill_result {
    guard(|| attach(&SERVER_CALLS.get(call)?, poller, tag))
}

/// Attaches a started server to a poller: `tag` is queued when a call may be waiting in
/// `rill_server_try_accept`.
#[no_mangle]
pub extern "C" fn rill_server_set_poller(
    server: crate::server::rill_server,
    poller: rill_poller,
    tag: u64,
) -> rill_result {
    guard(|| attach(&SERVERS.get(server)?, poller, tag))
}
