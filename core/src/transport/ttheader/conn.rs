//! TTHeader Streaming connections (Kitex's StreamX): the frames of many streams on one
//! TCP connection, each a TTHeader packet that names its stream by its sequence id
//! (`protocol::ttheader`). One task per connection reads and writes; a stream is the
//! queue its call reads frames from and the share of the connection's writes it may hold.
//!
//! TTHeader has no flow control of its own. What stands in for it: a stream may have at
//! most [`STREAM_SEND_BYTES`] of frames waiting to be written (its sender waits for room as
//! it waits for an HTTP/2 window), and the connection stops reading while its streams hold
//! as much that their calls have not read as an HTTP/2 connection's window would let them
//! (TCP's window then pushes back on the peer, for every stream of the connection at once:
//! TTHeader cannot do better). That bound is the side's receive window
//! (`transport::window`): the configured connection window, grown by a stream window for
//! each stream open, up to the connection's cap and, on a server, out of the pool its
//! connections share, so that the options that bound what peers make us hold unread over
//! HTTP/2 bound it over TTHeader too. A client keeps new streams off a connection that a
//! stream holding more than its stream window unread may come to stop (`Conn::load`).

use bytes::{Buf, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::FrameType;
use super::packet::{self, Malformed, Packet};
use crate::transport::budget::Meter;
use crate::transport::window::{Receiving, RecvWindow};

/// The frames one stream may have waiting to be written: what its sender may get ahead of
/// the socket, as an HTTP/2 stream's window lets it. Four default HTTP/2 windows: with one,
/// a streaming call's writer and the connection's task handed each other its bytes in
/// many small turns, each turn a wake of the other's thread.
pub(crate) const STREAM_SEND_BYTES: usize = 256 * 1024;

/// The bytes a packet's header may add to its payload (TTHeader's HEADER SIZE is 16 bits
/// of 4-byte words), so that a message of the receive limit still fits a frame.
pub(crate) const HEADER_ROOM: usize = 4 * 0xffff + 14;

const READ_CHUNK: usize = 16 * 1024;
/// Slices handed to one vectored write.
const MAX_IOV: usize = 64;
/// The longest info blocks of a DATA frame that are kept to know the next one by.
const DATA_INFO_MAX: usize = 256;

/// What the peer sent on a stream after its HEADER: a run of its DATA frames (the many),
/// or any other frame (boxed: the few).
pub(crate) enum Inbound {
    /// Consecutive DATA frames, whole packets, their heads checked: `split_payload` takes
    /// their messages out one by one.
    Data(Bytes),
    Frame(FrameType, Box<Packet>),
}

impl Inbound {
    pub(crate) fn kind(&self) -> FrameType {
        match self {
            Inbound::Data(_) => FrameType::Data,
            Inbound::Frame(k, _) => *k,
        }
    }
}

/// A connection, as a client choosing one for a new stream sees it (`Conn::load`).
pub(crate) struct Load {
    /// It has ended.
    pub(crate) closed: bool,
    /// Its open streams.
    pub(crate) streams: usize,
    /// A stream holds more unread than its window, or the connection reads no more: the
    /// frames of a stream opened on it may wait behind those its calls have not read.
    pub(crate) held_up: bool,
}

/// What both ends of a connection see of it.
pub(crate) struct Conn {
    st: Mutex<State>,
    /// This side opens the streams (a client), rather than the peer.
    client: bool,
}

/// Stream ids are small consecutive numbers of the peer's choosing: spread by a
/// multiplication (Fibonacci hashing) rather than SipHash, which cost more than the rest of
/// a frame's routing.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_i32(&mut self, n: i32) {
        self.0 = u64::from(n as u32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Streams = HashMap<i32, Slot, std::hash::BuildHasherDefault<IdHasher>>;

struct State {
    streams: Streams,
    /// Streams gone from `streams` whose frames are still to be written, by serial: their
    /// bytes, and their count in the send budget. (The peer may open a stream of the same
    /// id meanwhile: the serial tells their frames apart.)
    leaving: HashMap<u64, Leaving, std::hash::BuildHasherDefault<IdHasher>>,
    /// Streams the send budget cut: the writer drops their frames it has taken.
    cut: Vec<Tag>,
    /// Frames to write, each with the stream whose room it takes.
    out: VecDeque<(Tag, Bytes)>,
    /// The connection's task, waiting to read, write or end.
    task: Option<Waker>,
    /// Received DATA frames' bytes the streams hold unread.
    unread: usize,
    /// Past its target of `unread`, the connection reads no more. Grown and shrunk as
    /// streams open.
    window: RecvWindow,
    /// Streams holding more unread than a stream window: more than an HTTP/2 peer could
    /// have sent them, and a share of `window` that may come to stop the connection's
    /// reading for its other streams too.
    behind: usize,
    /// Why the connection ended, once it has: every stream's calls fail with it.
    closed: Option<String>,
    /// The server is draining: no new streams; the connection ends once its streams have.
    draining: bool,
    /// Streams ever opened.
    opened: u64,
}

/// Whose a frame to write is: its stream's id, and the stream's serial on the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Tag {
    id: i32,
    serial: u64,
}

#[derive(Default)]
struct Slot {
    /// The stream's serial: the connection's count of streams opened before it.
    serial: u64,
    inbox: VecDeque<Inbound>,
    recv: Option<Waker>,
    send: Option<Waker>,
    /// This stream's bytes not yet written (in `out` or being written).
    waiting: usize,
    /// Why the stream can go on no more: the peer's RST, or a frame that breaks it.
    gone: Option<Gone>,
    /// Our TRAILER or RST is queued: nothing more goes out on this stream.
    ended_out: bool,
    /// The peer's HEADER came (a client's stream: the server's answer began).
    headed: bool,
    /// Bytes of the DATA frames in `inbox`.
    unread: usize,
    /// The stream's count in the connection's send budget (a server's).
    meter: Option<Arc<Meter>>,
    /// The stream's count in the connection's receive window, until the slot goes.
    _counted: Option<Receiving>,
}

/// What a stream gone from the connection's streams still has to write.
struct Leaving {
    waiting: usize,
    meter: Option<Arc<Meter>>,
}

impl State {
    /// Whether the streams hold all they may unread: the connection reads no more until
    /// they read.
    fn full(&self) -> bool {
        self.unread >= self.window.target() as usize
    }

    /// `n` bytes of a stream's frames were written (or dropped): its room back, and its
    /// count in the send budget. Gives the stream's waiting sender, to wake once the lock
    /// is let go.
    #[must_use]
    fn settle(&mut self, tag: Tag, n: usize) -> Option<Waker> {
        let slot = self.streams.get_mut(&tag.id);
        if let Some(slot) = slot.filter(|s| s.serial == tag.serial) {
            slot.waiting -= n;
            if let Some(m) = &slot.meter {
                m.wrote(n);
            }
            return slot.send.take();
        } else if let Some(l) = self.leaving.get_mut(&tag.serial) {
            l.waiting -= n;
            if let Some(m) = &l.meter {
                m.wrote(n);
            }
            if l.waiting == 0 {
                self.leaving.remove(&tag.serial);
            }
        }
        None
    }
}

impl Conn {
    /// A server's connection: the peer opens the streams. `window` bounds what they hold
    /// unread.
    pub(crate) fn new(window: RecvWindow) -> Arc<Conn> {
        Conn::with_role(false, window)
    }

    /// A client's connection: this side opens the streams (`open`).
    pub(crate) fn new_client(window: RecvWindow) -> Arc<Conn> {
        Conn::with_role(true, window)
    }

    fn with_role(client: bool, window: RecvWindow) -> Arc<Conn> {
        Arc::new(Conn {
            client,
            st: Mutex::new(State {
                streams: Streams::default(),
                leaving: HashMap::default(),
                cut: Vec::new(),
                out: VecDeque::new(),
                task: None,
                unread: 0,
                window,
                behind: 0,
                closed: None,
                draining: false,
                opened: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops taking new streams: the connection ends once those it has are done.
    pub(crate) fn drain(&self) {
        let mut st = self.lock();
        st.draining = true;
        if let Some(w) = st.task.take() {
            w.wake();
        }
    }

    /// Whether the connection takes no new streams (`drain`).
    pub(crate) fn is_draining(&self) -> bool {
        self.lock().draining
    }

    /// How many streams are open.
    pub(crate) fn streams(&self) -> usize {
        self.lock().streams.len()
    }

    /// What a client choosing a connection for a new stream looks at.
    pub(crate) fn load(&self) -> Load {
        let st = self.lock();
        Load {
            closed: st.closed.is_some(),
            streams: st.streams.len(),
            held_up: st.behind > 0 || st.full(),
        }
    }

    /// How many streams were ever opened.
    pub(crate) fn opened(&self) -> u64 {
        self.lock().opened
    }

    /// Ends the connection for its streams: each call's next read or write fails with `why`.
    fn close(&self, why: String) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.closed = Some(why);
        }
        for slot in st.streams.values_mut() {
            wake(&mut slot.recv);
            wake(&mut slot.send);
        }
    }

    /// Registers stream `id` (opened by the peer's HEADER on a server; by us on a client):
    /// `None` if it is open already, or the connection has ended.
    pub(crate) fn open(self: &Arc<Conn>, id: i32) -> Option<Stream> {
        let mut st = self.lock();
        if st.streams.contains_key(&id) || st.closed.is_some() {
            return None;
        }
        let serial = st.opened;
        let counted = Some(st.window.count());
        st.streams.insert(
            id,
            Slot {
                serial,
                _counted: counted,
                ..Slot::default()
            },
        );
        st.opened += 1;
        let was_full = st.full();
        // A client's stream opens off the connection's task, which may wait for room.
        if st.window.retarget().is_some() && was_full && !st.full() {
            if let Some(w) = st.task.take() {
                w.wake();
            }
        }
        Some(Stream(Arc::new(Inner {
            conn: self.clone(),
            id,
            serial,
            meter: std::sync::OnceLock::new(),
        })))
    }

    /// Hands a frame to its stream.
    fn deliver(&self, id: i32, frame: Inbound) {
        self.deliver_all(&mut vec![(id, frame)], &mut Vec::new());
    }

    /// Hands frames to their streams, in order, under one lock. A frame on a stream we do
    /// not have (ended already, or never opened) is dropped: the peer may send its TRAILER
    /// after our RST crossed it. The streams' calls are woken once the lock is let go
    /// (`woken`, empty, lends its room for their wakers).
    fn deliver_all(&self, frames: &mut Vec<(i32, Inbound)>, woken: &mut Vec<Waker>) {
        if frames.is_empty() {
            return;
        }
        let mut st = self.lock();
        let State {
            streams,
            unread,
            window,
            behind,
            ..
        } = &mut *st;
        let stream_window = window.stream_window();
        // Runs of frames of one stream (a stream's burst) look their slot up once.
        let mut cur: Option<(i32, &mut Slot)> = None;
        for (id, f) in frames.drain(..) {
            if cur.as_ref().is_none_or(|(c, _)| *c != id) {
                if let Some((_, slot)) = cur.take() {
                    woken.extend(slot.recv.take());
                }
                cur = streams.get_mut(&id).map(|slot| (id, slot));
            }
            let Some((_, slot)) = cur.as_mut() else {
                tracing::debug!(
                    "TTHeader {:?} frame on unknown stream {id}: dropped",
                    f.kind()
                );
                continue;
            };
            match &f {
                Inbound::Data(run) => {
                    *unread += run.len();
                    let was = slot.unread;
                    slot.unread += run.len();
                    if was <= stream_window && slot.unread > stream_window {
                        *behind += 1;
                    }
                }
                Inbound::Frame(FrameType::Rst, packet) => {
                    slot.gone = Some(Gone::Reset((**packet).clone()));
                    woken.extend(slot.send.take());
                }
                Inbound::Frame(..) => {}
            }
            slot.inbox.push_back(f);
        }
        if let Some((_, slot)) = cur {
            woken.extend(slot.recv.take());
        }
        drop(st);
        wake_all(woken);
    }
}

impl Conn {
    /// The server's HEADER on a client's stream: handed over once; a second breaks it.
    fn headed(&self, id: i32, p: Packet) {
        let again = match self.lock().streams.get_mut(&id) {
            Some(slot) => std::mem::replace(&mut slot.headed, true),
            None => return,
        };
        match again {
            true => self.break_stream(id, format!("a second HEADER frame on stream {id}")),
            false => self.deliver(id, Inbound::Frame(FrameType::Header, Box::new(p))),
        }
    }

    /// Ends stream `id` for its call, which fails with `why`.
    fn break_stream(&self, id: i32, why: String) {
        let mut st = self.lock();
        if let Some(slot) = st.streams.get_mut(&id) {
            tracing::debug!("TTHeader stream {id}: {why}");
            slot.gone = Some(Gone::Broken(why));
            wake(&mut slot.recv);
            wake(&mut slot.send);
        }
    }
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

/// Wakes what a lock's holder took to wake: a wake may switch threads, which a holder must
/// not do (the other side of the connection then finds the lock taken and sleeps on it).
fn wake_all(woken: &mut Vec<Waker>) {
    for w in woken.drain(..) {
        w.wake();
    }
}

/// One stream of a connection, as its call holds it: cloned for the call's two halves,
/// forgotten by the connection when the last clone goes (a stream dropped before its end
/// went out is reset first).
#[derive(Clone)]
pub(crate) struct Stream(Arc<Inner>);

struct Inner {
    conn: Arc<Conn>,
    id: i32,
    serial: u64,
    meter: std::sync::OnceLock<Arc<Meter>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut st = self.conn.lock();
        if let Some(slot) = st.streams.remove(&self.id) {
            st.unread -= slot.unread;
            if slot.unread > st.window.stream_window() {
                st.behind -= 1;
            }
            if let Some(m) = &slot.meter {
                m.end();
            }
            if slot.waiting > 0 {
                let (waiting, meter) = (slot.waiting, slot.meter);
                st.leaving.insert(self.serial, Leaving { waiting, meter });
            }
            if let Some(w) = st.task.take() {
                w.wake();
            }
        }
    }
}

impl Stream {
    pub(crate) fn id(&self) -> i32 {
        self.0.id
    }

    fn tag(&self) -> Tag {
        Tag {
            id: self.0.id,
            serial: self.0.serial,
        }
    }

    /// The stream's serial on its connection: what names it in the send budget, since the
    /// peer may reuse an id while the stream that had it still has frames to write.
    pub(crate) fn serial(&self) -> u64 {
        self.0.serial
    }

    /// Counts the stream in its connection's send budget: what it queues is handed, what
    /// the connection writes of it written.
    pub(crate) fn metered(&self, m: Arc<Meter>) {
        let _ = self.0.meter.set(m.clone());
        if let Some(slot) = self.0.conn.lock().streams.get_mut(&self.0.id) {
            slot.meter = Some(m);
        }
    }

    /// The stream's count in the send budget, if it has one.
    pub(crate) fn meter(&self) -> Option<&Arc<Meter>> {
        self.0.meter.get()
    }

    /// The send budget cut the stream: its frames not yet written are dropped, and `rst`
    /// goes out in their place, the last of the stream (once: a stream whose last frame is
    /// queued already is left as it is).
    pub(crate) fn cut(&self, rst: Bytes) {
        let mut guard = self.0.conn.lock();
        let st = &mut *guard;
        let tag = self.tag();
        if st.streams.get(&tag.id).is_none_or(|s| s.ended_out) {
            return;
        }
        let mut dropped = 0;
        st.out.retain(|(t, f)| {
            let keep = *t != tag;
            if !keep {
                dropped += f.len();
            }
            keep
        });
        let sender = st.settle(tag, dropped);
        st.cut.push(tag);
        if let Some(slot) = st.streams.get_mut(&tag.id) {
            slot.ended_out = true;
            slot.waiting += rst.len();
            if let Some(m) = &slot.meter {
                m.handed(rst.len());
            }
            st.out.push_back((tag, rst));
        }
        let task = st.task.take();
        drop(guard);
        for w in [sender, task].into_iter().flatten() {
            w.wake();
        }
    }

    /// Every frame the peer sent on this stream since the last call, moved into `into`
    /// (which must be empty); `Err` once the stream is broken, or once the connection
    /// ended (frames that came before are handed out first).
    pub(crate) fn poll_frames(
        &self,
        cx: &mut Context<'_>,
        into: &mut VecDeque<Inbound>,
    ) -> Poll<Result<(), Gone>> {
        let mut guard = self.0.conn.lock();
        let st = &mut *guard;
        let Some(slot) = st.streams.get_mut(&self.0.id) else {
            return Poll::Ready(Err(Gone::Closed("the stream is gone".into())));
        };
        if let Some(g @ Gone::Broken(_)) = &slot.gone {
            return Poll::Ready(Err(g.clone()));
        }
        if !slot.inbox.is_empty() {
            std::mem::swap(&mut slot.inbox, into);
            let read = std::mem::take(&mut slot.unread);
            let was_full = st.full();
            st.unread -= read;
            if read > st.window.stream_window() {
                st.behind -= 1;
            }
            let task = match was_full && !st.full() {
                true => st.task.take(),
                false => None,
            };
            drop(guard);
            if let Some(t) = task {
                t.wake();
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(why) = &st.closed {
            return Poll::Ready(Err(Gone::Closed(why.clone())));
        }
        slot.recv = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Whether a frame is waiting to be read.
    pub(crate) fn has_frame(&self) -> bool {
        let st = self.0.conn.lock();
        st.streams
            .get(&self.0.id)
            .is_some_and(|s| !s.inbox.is_empty())
    }

    /// Room for this stream's frames: ready with the bytes it may queue now (at least
    /// one), or with why the stream can take no more (reset by the peer, connection gone).
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<Result<usize, Gone>> {
        self.room_or_wait(Some(cx))
    }

    /// The room there is now, registering no one to wake: `Ok(0)` when there is none.
    pub(crate) fn room(&self) -> Result<usize, Gone> {
        match self.room_or_wait(None) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(0),
        }
    }

    fn room_or_wait(&self, cx: Option<&mut Context<'_>>) -> Poll<Result<usize, Gone>> {
        let mut st = self.0.conn.lock();
        if let Some(why) = &st.closed {
            return Poll::Ready(Err(Gone::Closed(why.clone())));
        }
        let Some(slot) = st.streams.get_mut(&self.0.id) else {
            return Poll::Ready(Err(Gone::Closed("the stream is gone".into())));
        };
        // A broken stream fails its reads; its call may still say why in its end.
        if let Some(g @ Gone::Reset(_)) = &slot.gone {
            return Poll::Ready(Err(g.clone()));
        }
        if slot.waiting < STREAM_SEND_BYTES {
            return Poll::Ready(Ok(STREAM_SEND_BYTES - slot.waiting));
        }
        // Only the stream's one sending task waits: a probe must not take its place.
        if let Some(cx) = cx {
            slot.send = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Why the stream takes no more, if it does not, registering no one to wake.
    pub(crate) fn gone(&self) -> Option<Gone> {
        let st = self.0.conn.lock();
        if let Some(why) = &st.closed {
            return Some(Gone::Closed(why.clone()));
        }
        match st.streams.get(&self.0.id) {
            None => Some(Gone::Closed("the stream is gone".into())),
            Some(slot) => slot.gone.clone().filter(|g| matches!(g, Gone::Reset(_))),
        }
    }

    /// Ready once the peer reset the stream or the connection ended.
    pub(crate) fn poll_gone(&self, cx: &mut Context<'_>) -> Poll<Gone> {
        let mut st = self.0.conn.lock();
        if let Some(why) = &st.closed {
            return Poll::Ready(Gone::Closed(why.clone()));
        }
        let Some(slot) = st.streams.get_mut(&self.0.id) else {
            return Poll::Ready(Gone::Closed("the stream is gone".into()));
        };
        if let Some(g @ Gone::Reset(_)) = &slot.gone {
            return Poll::Ready(g.clone());
        }
        slot.send = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Queues encoded frames of this stream for the connection to write, whatever the
    /// room (a caller that honours `poll_room` keeps within it); `last`: they end this
    /// side of the stream (a TRAILER or RST), and nothing may follow. False if the stream
    /// can take nothing more.
    pub(crate) fn send(&self, frames: impl IntoIterator<Item = Bytes>, last: bool) -> bool {
        let mut guard = self.0.conn.lock();
        let st = &mut *guard;
        if st.closed.is_some() {
            return false;
        }
        let Some(slot) = st.streams.get_mut(&self.0.id) else {
            return false;
        };
        if slot.ended_out {
            return false;
        }
        slot.ended_out = last;
        let before = slot.waiting;
        for f in frames {
            slot.waiting += f.len();
            st.out.push_back((self.tag(), f));
        }
        if let Some(m) = &slot.meter {
            m.handed(slot.waiting - before);
        }
        let task = st.task.take();
        drop(guard);
        if let Some(t) = task {
            t.wake();
        }
        true
    }
}

/// Why a stream takes no more.
#[derive(Clone, Debug)]
pub(crate) enum Gone {
    /// The peer's RST frame.
    Reset(Packet),
    /// The peer broke the stream's rules (a second HEADER): why.
    Broken(String),
    /// The connection ended: why.
    Closed(String),
}

/// Runs a connection until the peer closes it, it breaks, a packet cannot be read, or
/// (draining) its last stream is done. `on_header` gets each stream the peer opens with
/// its HEADER frame, and `max_packet` bounds what one packet may take.
pub(crate) async fn run<T>(
    io: T,
    conn: Arc<Conn>,
    max_packet: usize,
    mut on_header: impl FnMut(Stream, Packet),
) -> Result<(), String>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = Io {
        io,
        rbuf: BytesMut::new(),
        writing: VecDeque::new(),
        eof: false,
        read: Vec::new(),
        data_info: Vec::new(),
        woken: Vec::new(),
    };
    let r = poll_fn(|cx| io.poll(cx, &conn, max_packet, &mut on_header)).await;
    conn.close(match &r {
        Ok(()) => "the TTHeader connection closed".to_owned(),
        Err(e) => e.clone(),
    });
    r
}

struct Io<T> {
    io: T,
    rbuf: BytesMut,
    /// Frames taken off the shared queue, being written.
    writing: VecDeque<(Tag, Bytes)>,
    /// The peer closed its side: nothing more to read.
    eof: bool,
    /// The frames of one read, on their way to their streams (kept for its capacity).
    read: Vec<(i32, Inbound)>,
    /// The info blocks of the last DATA frame read (`kind_of`).
    data_info: Vec<u8>,
    /// Streams' tasks to wake once the connection's lock is let go (kept for its capacity).
    woken: Vec<Waker>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Io<T> {
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        conn: &Arc<Conn>,
        max_packet: usize,
        on_header: &mut impl FnMut(Stream, Packet),
    ) -> Poll<Result<(), String>> {
        // Each round either makes progress or registers a waker before it waits: the
        // socket's for reads and writes, the shared state's for new frames or room to read.
        loop {
            let wrote = self.poll_write(cx, conn)?;
            let (read, paused) = self.poll_read(cx, conn, max_packet, on_header)?;
            let mut st = conn.lock();
            if !st.cut.is_empty() {
                self.drop_cut(&mut st);
                drop(st);
                wake_all(&mut self.woken);
                st = conn.lock();
            }
            if paused && !st.full() {
                continue; // a stream read since: there is room to read again
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            if st.draining && st.streams.is_empty() && st.out.is_empty() && self.writing.is_empty()
            {
                return Poll::Ready(Ok(()));
            }
            if !wrote && !read && (st.out.is_empty() || !self.writing.is_empty()) {
                st.task = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
    }

    /// Writes what the streams queued; true if it wrote anything.
    fn poll_write(&mut self, cx: &mut Context<'_>, conn: &Conn) -> Result<bool, String> {
        if self.writing.is_empty() {
            let mut st = conn.lock();
            // Cut streams' frames were taken out of the shared queue by the cut itself.
            st.cut.clear();
            std::mem::swap(&mut self.writing, &mut st.out);
        }
        let mut any = false;
        while !self.writing.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut k = 0;
            for ((_, b), slot) in self.writing.iter().zip(slices.iter_mut()) {
                *slot = IoSlice::new(b);
                k += 1;
            }
            let n = match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]) {
                Poll::Ready(Ok(0)) => return Err("the TTHeader connection closed".into()),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(format!("TTHeader connection: {e}")),
                Poll::Pending => break,
            };
            any = true;
            self.written(conn, n);
        }
        if any {
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx) {
                return Err(format!("TTHeader connection: {e}"));
            }
        }
        Ok(any)
    }

    /// Takes `n` written bytes off the front, and gives their streams the room back.
    fn written(&mut self, conn: &Conn, mut n: usize) {
        let mut st = conn.lock();
        while n > 0 {
            let Some((tag, front)) = self.writing.front_mut() else {
                break;
            };
            let k = n.min(front.len());
            front.advance(k);
            n -= k;
            let tag = *tag;
            if front.is_empty() {
                self.writing.pop_front();
            }
            self.woken.extend(st.settle(tag, k));
        }
        drop(st);
        wake_all(&mut self.woken);
    }

    /// Drops the frames of the streams the send budget cut since they were taken to write,
    /// but for the first, which may be part written (their RST frames were queued after
    /// them, in the shared queue, and are not here). Their senders go to `woken`.
    fn drop_cut(&mut self, st: &mut State) {
        let cut = std::mem::take(&mut st.cut);
        let mut first = true;
        let woken = &mut self.woken;
        self.writing.retain(|(tag, f)| {
            let keep = std::mem::replace(&mut first, false) || !cut.contains(tag);
            if !keep {
                woken.extend(st.settle(*tag, f.len()));
            }
            keep
        });
    }

    /// Reads and hands out whole packets while the streams have room to hold them: whether
    /// it read anything, and whether it stopped for want of room.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        conn: &Arc<Conn>,
        max_packet: usize,
        on_header: &mut impl FnMut(Stream, Packet),
    ) -> Result<(bool, bool), String> {
        let mut any = false;
        while !self.eof {
            if conn.lock().full() {
                // Woken when a stream reads (or goes).
                return Ok((any, true));
            }
            self.rbuf.reserve(READ_CHUNK);
            let mut buf = ReadBuf::uninit(self.rbuf.spare_capacity_mut());
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n == 0 {
                        if !self.rbuf.is_empty() {
                            return Err("the TTHeader connection closed mid-frame".into());
                        }
                        self.eof = true;
                        break;
                    }
                    // SAFETY: `ReadBuf` says these `n` bytes of the spare capacity were
                    // initialized by the read.
                    unsafe { self.rbuf.set_len(self.rbuf.len() + n) };
                    any = true;
                    self.packets(conn, max_packet, on_header)
                        .map_err(|e| e.to_string())?;
                }
                Poll::Ready(Err(e)) => return Err(format!("TTHeader connection: {e}")),
                Poll::Pending => break,
            }
        }
        Ok((any, false))
    }

    /// Hands each whole packet in the read buffer to its stream, a read's worth at once.
    /// DATA frames go as runs: the consecutive DATA frames of one stream, whole and
    /// checked, in one slice of the read buffer that the stream's call takes the messages
    /// out of (Kitex's DATA frames carry only the frame type and method, which nobody
    /// reads); any other frame goes as its packet.
    fn packets(
        &mut self,
        conn: &Arc<Conn>,
        max_packet: usize,
        on_header: &mut impl FnMut(Stream, Packet),
    ) -> Result<(), Malformed> {
        let mut batch = std::mem::take(&mut self.read);
        // The run of DATA frames at the front of the read buffer: its stream, its bytes.
        let mut run = (0, 0);
        let ended = self.packets_into(conn, max_packet, on_header, &mut batch, &mut run);
        // Frames read before bytes that break the framing still reach their streams.
        self.end_run(&mut run, &mut batch);
        conn.deliver_all(&mut batch, &mut self.woken);
        self.read = batch;
        if let Ok(Some(total)) = ended {
            // A packet not all in yet: room for all of it at once.
            self.rbuf.reserve(total.saturating_sub(self.rbuf.len()));
        }
        ended.map(|_| ())
    }

    /// `packets`' loop: `Ok(Some(n))` when it stopped at a packet of `n` bytes not all in
    /// yet, `Ok(None)` at one whose fixed fields are not.
    fn packets_into(
        &mut self,
        conn: &Arc<Conn>,
        max_packet: usize,
        on_header: &mut impl FnMut(Stream, Packet),
        batch: &mut Vec<(i32, Inbound)>,
        run: &mut (i32, usize),
    ) -> Result<Option<usize>, Malformed> {
        loop {
            let at = run.1;
            let Some(h) = packet::head(&self.rbuf[at..], max_packet)? else {
                return Ok(None);
            };
            if self.rbuf.len() - at < h.total {
                return Ok(Some(h.total));
            }
            let bytes = &self.rbuf[at..at + h.total];
            let protocol = h.check(bytes)?;
            let kind = kind_of(&mut self.data_info, h.flags, h.info(bytes))?;
            if kind == FrameType::Data {
                if run.1 > 0 && run.0 != h.seq_id {
                    self.end_run(run, batch);
                }
                *run = (h.seq_id, run.1 + h.total);
                continue;
            }
            self.end_run(run, batch);
            let id = h.seq_id;
            let p = h.packet(&mut self.rbuf, protocol)?;
            // What came before a HEADER reaches its streams before the HEADER's stream opens.
            conn.deliver_all(batch, &mut self.woken);
            match kind {
                FrameType::Header if conn.client => conn.headed(id, p),
                FrameType::Header => match conn.open(id) {
                    Some(s) => on_header(s, p),
                    None => conn.break_stream(id, format!("a second HEADER frame on stream {id}")),
                },
                // Custom meta handlers' frames: Kitex's own handlers send none.
                FrameType::Meta => {}
                _ => batch.push((id, Inbound::Frame(kind, Box::new(p)))),
            }
        }
    }

    /// Hands the run of DATA frames at the front of the read buffer to its stream.
    fn end_run(&mut self, run: &mut (i32, usize), batch: &mut Vec<(i32, Inbound)>) {
        if run.1 > 0 {
            batch.push((run.0, Inbound::Data(self.rbuf.split_to(run.1).freeze())));
        }
        *run = (0, 0);
    }
}

/// The kind of frame a packet of `flags` and info blocks `info` is. `data_info`: the info
/// blocks of the last DATA frame read, byte for byte; a stream's DATA frames all carry the
/// same (FrameType and ToMethod), so a frame whose blocks are these is a DATA frame
/// without walking them again.
fn kind_of(data_info: &mut Vec<u8>, flags: u16, info: &[u8]) -> Result<FrameType, Malformed> {
    let streaming = flags & packet::FLAG_STREAMING != 0;
    if streaming && !data_info.is_empty() && info == &data_info[..] {
        return Ok(FrameType::Data);
    }
    let kind = FrameType::of_info(flags, info)?;
    if kind == FrameType::Data && info.len() <= DATA_INFO_MAX {
        data_info.clear();
        data_info.extend_from_slice(info);
    }
    Ok(kind)
}
