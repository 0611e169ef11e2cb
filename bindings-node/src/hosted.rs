//! Connections read on the JS thread (see rillrpc's `HostedConnection`): a server's, and
//! a plain-TCP channel's.
//!
//! A libuv poll handle watches each connection's socket (a duplicate of it), and its
//! callback polls the connection on the JS thread; a request is then read, handled and
//! answered without waking any other thread, as grpc-js does on its own socket. Wake-ups
//! from elsewhere (timers, shutdown) arrive as for any other native object, through the
//! connection's `Notify`; `take_ready` polls such connections instead of handing their ids
//! to JavaScript.
//!
//! Everything here runs on the JS thread: the connections live in a thread-local table.

use napi::bindgen_prelude::*;
use rillrpc::{Channel, HostedConnection, Server};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::wake::{with_cx, Batch, Notify};

// libuv, as exported by the node binary that loads this addon.
const UV_POLL: c_int = 8;
const UV_READABLE: c_int = 1;
const UV_WRITABLE: c_int = 2;

type PollCb = extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type CloseCb = extern "C" fn(handle: *mut c_void);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init_socket(lp: *mut c_void, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut c_void, events: c_int, cb: PollCb) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_close(handle: *mut c_void, cb: CloseCb);
    fn uv_unref(handle: *mut c_void);
}

struct Hosted {
    conn: HostedConnection,
    slot: Arc<Notify>,
    /// The uv_poll_t: memory of ours, whose first field (`data`) points to its `Watch`.
    handle: *mut c_void,
    /// The events the handle is started for (0: stopped).
    watching: Cell<c_int>,
}

/// What a handle's `data` points to: whom to poll, and what to free once it is closed.
struct Watch {
    id: u32,
    mem: *mut [u64],
    dup: c_int,
}

/// Where a channel's new connections come from (see `watch_channel`).
struct Source {
    channel: Channel,
    slot: Arc<Notify>,
}

thread_local! {
    static HOSTED: RefCell<HashMap<u32, Rc<Hosted>>> = RefCell::new(HashMap::new());
    static CHANNELS: RefCell<HashMap<u32, Rc<Source>>> = RefCell::new(HashMap::new());
    /// This thread's libuv loop, once `init` ran.
    static LOOP: Cell<*mut c_void> = const { Cell::new(std::ptr::null_mut()) };
}

/// Readies this thread for hosting: its loop, and the cleanup that closes the handles
/// before the environment's loop goes (a worker thread's end).
pub(crate) fn init(env: &Env) -> Result<()> {
    if LOOP.with(|l| l.get().is_null()) {
        let lp = env.get_uv_event_loop()?.cast::<c_void>();
        env.add_env_cleanup_hook((), |_| close_all())?;
        LOOP.with(|l| l.set(lp));
    }
    Ok(())
}

/// Takes the new connections of a server (call on every wake-up of its accept slot).
pub(crate) fn adopt_from_server(env: &Env, server: &Server, slot: &Arc<Notify>) {
    if let Err(e) = init(env) {
        // `adopt` then refuses each connection, which closes it.
        eprintln!("{e}");
    }
    adopt_all(slot, |cx| server.poll_connection(cx));
}

/// Takes every connection `next` has ready, registering `slot` for the next one.
fn adopt_all(
    slot: &Arc<Notify>,
    mut next: impl FnMut(&mut Context<'_>) -> Poll<Option<HostedConnection>>,
) {
    while let Poll::Ready(Some(conn)) = with_cx(slot, &mut next) {
        if let Err(e) = adopt(conn) {
            // The connection is closed (its peer sees it go); nobody else to tell.
            eprintln!("{e}");
        }
    }
}

/// From now on, takes `channel`'s new connections onto this thread's loop as they come;
/// returns the id to `unwatch_channel` with.
pub(crate) fn watch_channel(env: &Env, channel: Channel) -> Result<u32> {
    init(env)?;
    let slot = Notify::new();
    let id = slot.id();
    CHANNELS.with(|t| t.borrow_mut().insert(id, Rc::new(Source { channel, slot })));
    drive(id);
    Ok(id)
}

pub(crate) fn unwatch_channel(id: u32) {
    CHANNELS.with(|t| t.borrow_mut().remove(&id));
}

/// Takes `conn` onto this thread's loop. On failure (libuv refuses the descriptor), the
/// connection is dropped, which closes it.
fn adopt(conn: HostedConnection) -> Result<()> {
    let lp = LOOP.with(|l| l.get());
    if lp.is_null() {
        return Err(Error::from_reason(
            "rillrpc: no event loop to host a connection",
        ));
    }
    // SAFETY: dup of a descriptor the connection keeps open until it ends; the duplicate is
    // ours to close.
    let dup = unsafe { libc::dup(conn.fd()) };
    if dup < 0 {
        return Err(Error::from_reason(format!(
            "rillrpc: cannot watch a connection: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: asks libuv for the size of its poll handle type.
    let size = unsafe { uv_handle_size(UV_POLL) };
    let mem: *mut [u64] = Box::into_raw(vec![0u64; size.div_ceil(8).max(1)].into_boxed_slice());
    let handle = mem.cast::<c_void>();
    // SAFETY: `handle` points to zeroed memory of libuv's poll handle size, aligned to 8
    // bytes; `lp` is this thread's loop; `dup` is an open socket.
    let rc = unsafe { uv_poll_init_socket(lp, handle, dup) };
    if rc != 0 {
        // SAFETY: the handle was not initialised; nothing else refers to it or to `dup`.
        unsafe {
            drop(Box::from_raw(mem));
            libc::close(dup);
        }
        return Err(Error::from_reason(format!(
            "rillrpc: libuv cannot watch a connection (error {rc})"
        )));
    }
    let slot = Notify::new();
    let id = slot.id();
    let watch = Box::into_raw(Box::new(Watch { id, mem, dup }));
    // SAFETY: `data` is the first field of every libuv handle, and the only one that is
    // ours; the handle is initialised and ours until `on_closed`, which frees `watch`.
    unsafe {
        *handle.cast::<*mut Watch>() = watch;
        // The listening server keeps the process alive, not its connections.
        uv_unref(handle);
    }
    let h = Rc::new(Hosted {
        conn,
        slot,
        handle,
        watching: Cell::new(0),
    });
    HOSTED.with(|t| t.borrow_mut().insert(id, h));
    drive(id);
    Ok(())
}

/// Polls the hosted connection of slot `id`, or takes the new connections of the channel
/// of slot `id`; false when `id` is neither.
pub(crate) fn drive(id: u32) -> bool {
    let Some(h) = HOSTED.with(|t| t.borrow().get(&id).cloned()) else {
        let Some(src) = CHANNELS.with(|t| t.borrow().get(&id).cloned()) else {
            return false;
        };
        adopt_all(&src.slot, |cx| src.channel.poll_connection(cx));
        return true;
    };
    // The table is not borrowed while the connection runs: polling it may wake, drop and
    // adopt other objects.
    if let Poll::Ready(()) = with_cx(&h.slot, |cx| h.conn.poll(cx)) {
        HOSTED.with(|t| t.borrow_mut().remove(&id));
        release(&h);
        return true;
    }
    let i = h.conn.interest();
    let events =
        if i.readable { UV_READABLE } else { 0 } | if i.writable { UV_WRITABLE } else { 0 };
    if events != h.watching.get() {
        // SAFETY: an initialised handle of ours, not closed (it is in the table).
        let rc = unsafe {
            if events == 0 {
                uv_poll_stop(h.handle)
            } else {
                uv_poll_start(h.handle, events, on_ready)
            }
        };
        if rc == 0 {
            h.watching.set(events);
        }
    }
    true
}

/// Stops watching and closes the handle; the connection goes when the last `Rc` does.
fn release(h: &Hosted) {
    // SAFETY: an initialised handle of ours, closed once: every caller has just taken it
    // out of the table. libuv calls `on_closed` on this thread later.
    unsafe {
        uv_poll_stop(h.handle);
        uv_close(h.handle, on_closed);
    }
}

fn close_all() {
    CHANNELS.with(|t| t.borrow_mut().clear());
    let all: Vec<Rc<Hosted>> = HOSTED.with(|t| t.borrow_mut().drain().map(|(_, h)| h).collect());
    for h in all {
        release(&h);
    }
}

extern "C" fn on_ready(handle: *mut c_void, status: c_int, events: c_int) {
    // SAFETY: `data` points to the handle's `Watch`, set before the handle was started and
    // freed only once it is closed, after which libuv calls nothing on it.
    let id = unsafe { (**handle.cast::<*mut Watch>()).id };
    let _ = std::panic::catch_unwind(|| {
        // What the connection wakes (its calls) reaches JS in one direct call at the end.
        let batch = Batch::begin();
        if events & UV_READABLE != 0 || status < 0 {
            // An error status (the socket failed) is for the next read to find.
            if let Some(h) = HOSTED.with(|t| t.borrow().get(&id).cloned()) {
                h.conn.readable();
            }
        }
        drive(id);
        batch.finish();
    });
}

extern "C" fn on_closed(handle: *mut c_void) {
    // SAFETY: libuv is done with the handle, closed once; its `Watch` was made by `adopt`
    // and is freed here only, with the handle's memory and the descriptor it watched.
    unsafe {
        let w = Box::from_raw(*handle.cast::<*mut Watch>());
        libc::close(w.dup);
        drop(Box::from_raw(w.mem));
    }
}
