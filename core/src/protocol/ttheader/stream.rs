//! A call's two ends on a TTHeader Streaming stream (Kitex's StreamX): its head as a
//! HEADER frame, each message as a DATA frame, its end as a TRAILER frame (a status's
//! trailers, a biz status, or an exception) and cancellation as an RST frame (WIRE.md §2).
//!
//! A server's send queue frames each message as its DATA frame (`Framing::Ttheader`), and
//! the sender here passes the frames on whole. A client's queue frames messages as gRPC
//! envelopes (5-byte prefix), since its stream id is not known until the stream opens; the
//! sender turns each envelope into a DATA frame, copying small messages into one buffer
//! and passing large ones on as they are.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::task::{Context, Poll};

use super::exception::{Exception, BIZ_CANCEL};
use super::metainfo::{biz_status, is_biz, metadata, pairs, push_biz_message};
use crate::metadata::Metadata;
use crate::protocol::envelope::{Encoding, PREFIX_LEN};
use crate::protocol::terms::{Abort, End, Framing, NoHead, PeerEnd};
use crate::status::{Code, Status};
use crate::transport::ttheader::{
    encode, first_payload, frame, split_payload, FrameType, Gone, Inbound, Packet, Stream,
};

/// Messages up to this size are copied into the frame after their header; larger ones
/// travel as their own slice.
const COPY_MAX: usize = 4 * 1024;

/// The send half of a call's stream.
pub(crate) struct Sender {
    stream: Stream,
    /// The method as the frames name it (int key 9, ToMethod).
    method: Bytes,
    head_sent: bool,
    /// A DATA frame's encoding with no payload: every DATA frame of the stream but for its
    /// LENGTH.
    data_head: Bytes,
    out: Out,
}

/// How the messages handed to the sender become DATA frames.
enum Out {
    /// They are DATA frames already (a server's queue frames them).
    Whole(Whole),
    /// They are gRPC envelopes (a client's queue), made into DATA frames here.
    Reframe(Reframe),
}

/// Where the frames handed over stand, across calls of `send_data`, when the queue built
/// them: only whole frames go to the connection, whose queue the other streams' frames
/// share, so a piece of a chunk that ends inside a frame keeps that frame back until the
/// rest of it comes.
#[derive(Default)]
struct Whole {
    /// A LENGTH cut short by the end of a piece: its bytes so far, and how many.
    len: [u8; 4],
    have: usize,
    /// Bytes of the frame begun that are still to come, after its LENGTH.
    left: usize,
    /// The begun frame's bytes held back.
    pending: Vec<Bytes>,
}

/// Where the envelopes handed over stand, across calls of `send_data`.
#[derive(Default)]
struct Reframe {
    prefix: [u8; PREFIX_LEN],
    /// Bytes of `prefix` seen.
    have: usize,
    /// Bytes of the current message still to come.
    body_left: usize,
    /// The bytes of a frame whose message has not all come yet, held back: only whole
    /// frames go to the connection, whose queue the other streams' frames share.
    pending: Vec<Bytes>,
}

impl Sender {
    pub(crate) fn new(stream: Stream, method: Bytes) -> Sender {
        let mut head = BytesMut::new();
        let p = frame(FrameType::Data, stream.id(), method.clone(), Bytes::new());
        encode(&p, &mut head).expect("a method name the peer sent fits a frame again");
        Sender {
            stream,
            method,
            head_sent: false,
            data_head: head.freeze(),
            out: Out::Whole(Whole::default()),
        }
    }

    /// A client's stream: its HEADER, with `strs` (the service's name, the call's
    /// metadata), goes out as it opens.
    pub(crate) fn client(
        stream: Stream,
        method: Bytes,
        strs: Vec<(Bytes, Bytes)>,
    ) -> Result<Sender, Status> {
        let mut s = Sender::new(stream, method);
        s.out = Out::Reframe(Reframe::default());
        let mut p = s.packet(FrameType::Header, Bytes::new());
        p.strs = strs;
        s.send([Self::encoded(&p)?], false)?;
        s.head_sent = true;
        Ok(s)
    }

    pub(crate) fn framing(&self) -> Framing {
        match self.out {
            Out::Whole(_) => Framing::Ttheader(self.data_head.clone()),
            Out::Reframe(_) => Framing::Envelope,
        }
    }

    /// The whole DATA frames that `data` (framed as `framing` says) completes.
    fn frames(&mut self, data: Bytes) -> Result<Vec<Bytes>, Status> {
        match &mut self.out {
            Out::Whole(w) => Ok(w.frames(data)),
            Out::Reframe(r) => r.frames(data, &self.data_head),
        }
    }

    /// A client's whole request (enveloped) and its TRAILER, whatever the room: for small
    /// requests only.
    pub(crate) fn send_request_now(&mut self, data: Bytes) -> Result<(), Bytes> {
        let Ok(mut frames) = self.frames(data.clone()) else {
            return Err(data);
        };
        let Ok(trailer) = Self::encoded(&self.packet(FrameType::Trailer, Bytes::new())) else {
            return Err(data);
        };
        frames.push(trailer);
        match self.stream.send(frames, true) {
            true => Ok(()),
            false => Err(data),
        }
    }

    fn packet(&self, kind: FrameType, payload: Bytes) -> Packet {
        frame(kind, self.stream.id(), self.method.clone(), payload)
    }

    fn encoded(p: &Packet) -> Result<Bytes, Status> {
        let mut b = BytesMut::new();
        encode(p, &mut b).map_err(|e| Status::internal(e.to_string()))?;
        Ok(b.freeze())
    }

    fn gone(&self) -> Status {
        match self.stream.gone() {
            Some(g) => status_of(&g),
            None => Status::internal("the stream takes no more frames"),
        }
    }

    fn send(&self, frames: impl IntoIterator<Item = Bytes>, last: bool) -> Result<(), Status> {
        if self.stream.send(frames, last) {
            Ok(())
        } else {
            Err(self.gone())
        }
    }

    pub(crate) fn poll_capacity(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<Result<usize, Status>> {
        if let Some(cut) = self.cut(cx, false) {
            return Poll::Ready(Err(cut));
        }
        if self.stream.meter().is_some_and(|m| !m.poll_gate(cx)) {
            // As waiting for room: the cut must wake it.
            return match self.cut(cx, true) {
                Some(cut) => Poll::Ready(Err(cut)),
                None => Poll::Pending,
            };
        }
        let room = self.stream.poll_room(cx);
        if room.is_pending() {
            // Waiting for room, as a stream cut for its backlog waits: the cut must wake it.
            if let Some(cut) = self.cut(cx, true) {
                return Poll::Ready(Err(cut));
            }
        }
        room.map(|r| r.map(|room| room.min(want)).map_err(|g| status_of(&g)))
    }

    /// The status of a stream the send budget cut, whose frames not yet written give way
    /// to an RST frame here (see `transport::budget`); the writer is woken when one is.
    fn cut(&mut self, cx: &mut Context<'_>, waiting: bool) -> Option<Status> {
        if !self.stream.meter()?.poll_cut(cx, waiting) {
            return None;
        }
        let status = crate::transport::budget::cut_status();
        let rst = self.packet(
            FrameType::Rst,
            Exception::of(&status).encode(&self.method, self.stream.id()),
        );
        if let Ok(b) = Self::encoded(&rst) {
            self.stream.cut(b);
        }
        Some(status)
    }

    /// The stream's count in its connection's send budget, if it has one.
    pub(crate) fn meter(&self) -> Option<&std::sync::Arc<crate::transport::budget::Meter>> {
        self.stream.meter()
    }

    /// The HEADER frame, unless it went out already: `metadata` is the handler's.
    pub(crate) fn send_head(
        &mut self,
        metadata: Option<Metadata>,
        _enc: Encoding,
    ) -> Result<(), Status> {
        if self.head_sent {
            return Ok(());
        }
        self.head_sent = true;
        let mut p = self.packet(FrameType::Header, Bytes::new());
        if let Some(md) = &metadata {
            p.strs = pairs(md);
        }
        self.send([Self::encoded(&p)?], false)
    }

    /// Messages framed as `framing` says, sent as whole DATA frames.
    pub(crate) fn send_data(&mut self, data: Bytes) -> Result<(), Status> {
        self.send_head(None, Encoding::Identity)?;
        let frames = self.frames(data)?;
        self.send(frames, false)
    }

    pub(crate) fn send_end(&mut self, end: End, _enc: Encoding) -> Result<(), Status> {
        let trailer = match end {
            End::HalfClose => self.packet(FrameType::Trailer, Bytes::new()),
            End::Status(status) => {
                // Kitex's client reads a HEADER before anything else: one goes out first
                // even when the handler sent none (as ttstream's `CloseSend` does).
                self.send_head(None, Encoding::Identity)?;
                self.trailer(&status)
            }
        };
        self.send([Self::encoded(&trailer)?], true)
    }

    /// The TRAILER that ends a call with `status`: its trailers as string pairs; a biz
    /// status with its message beside them; any other error as an exception.
    fn trailer(&self, status: &Status) -> Packet {
        let trailers = status.trailers();
        let payload = if status.code() == Code::Ok || is_biz(trailers) {
            Bytes::new()
        } else {
            Exception::of(status).encode(&self.method, self.stream.id())
        };
        let mut p = self.packet(FrameType::Trailer, payload);
        p.strs = pairs(trailers);
        push_biz_message(&mut p.strs, trailers, status);
        p
    }

    /// Ends a call refused before it began (an unknown method, a server that is going
    /// away) with its status alone.
    pub(crate) fn refuse(mut self, status: &Status) {
        let _ = self.send_end(End::Status(status.clone()), Encoding::Identity);
    }

    pub(crate) fn abort(&mut self, why: Abort) {
        // A call that ended (`Finished`) sent its TRAILER already: nothing is left to say.
        if why == Abort::Cancel {
            let e = Exception {
                kind: BIZ_CANCEL,
                message: "the call was cancelled".into(),
            };
            let rst = self.packet(FrameType::Rst, e.encode(&self.method, self.stream.id()));
            if let Ok(b) = Self::encoded(&rst) {
                let _ = self.stream.send([b], true);
            }
        }
    }

    pub(crate) fn poll_peer_end(&mut self, cx: &mut Context<'_>) -> Poll<PeerEnd> {
        if let Some(cut) = self.cut(cx, false) {
            return Poll::Ready(PeerEnd::Failed(cut));
        }
        self.stream
            .poll_gone(cx)
            .map(|g| PeerEnd::Failed(status_of(&g)))
    }

    /// Sends enveloped bytes now if the stream has room for them (and its head went out).
    pub(crate) fn try_send_now(&mut self, data: Bytes, end: bool) -> Result<(), Bytes> {
        match self.stream.room() {
            Ok(room) if self.head_sent && room >= data.len() => {}
            _ => return Err(data),
        }
        let Ok(mut frames) = self.frames(data) else {
            return Ok(()); // a malformed frame of ours cannot be: dropped, not resent
        };
        if end {
            if let Ok(t) = Self::encoded(&self.packet(FrameType::Trailer, Bytes::new())) {
                frames.push(t);
            }
        }
        // A failure means the stream is gone; the writer finds out why when it looks.
        let _ = self.stream.send(frames, end);
        Ok(())
    }
}

impl Whole {
    /// The whole frames that `data` (whole frames, or a piece of them) completes.
    fn frames(&mut self, data: Bytes) -> Vec<Bytes> {
        if data.is_empty() {
            return Vec::new();
        }
        // `end`: where the last frame that `data` completes ends in it.
        let (mut at, mut end) = (0, 0);
        loop {
            // Between two frames with a whole LENGTH to read (mostly, a chunk of frames
            // handed whole): from frame to frame.
            while self.have == 0 && self.left == 0 && at + 4 <= data.len() {
                let l = &data[at..at + 4];
                let next = at + 4 + u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                if next > data.len() {
                    (at, self.left) = (data.len(), next - data.len());
                    break;
                }
                (at, end) = (next, next);
            }
            if self.have == 0 && self.left == 0 {
                // Between two frames.
                end = at;
                if at == data.len() {
                    break;
                }
            }
            if self.left > 0 {
                let k = self.left.min(data.len() - at);
                (at, self.left) = (at + k, self.left - k);
                if self.left > 0 {
                    break;
                }
                continue;
            }
            let k = (4 - self.have).min(data.len() - at);
            self.len[self.have..self.have + k].copy_from_slice(&data[at..at + k]);
            (at, self.have) = (at + k, self.have + k);
            if self.have < 4 {
                break;
            }
            self.have = 0;
            self.left = u32::from_be_bytes(self.len) as usize;
        }
        if end == 0 {
            self.pending.push(data);
            return Vec::new();
        }
        let mut out = std::mem::take(&mut self.pending);
        if end == data.len() {
            out.push(data);
        } else {
            out.push(data.slice(..end));
            self.pending.push(data.slice(end..));
        }
        out
    }
}

impl Reframe {
    /// The DATA frames of the envelopes in `data` (and of one begun before it), whole: the
    /// frame of a message whose end is still to come is held until it comes.
    fn frames(&mut self, mut data: Bytes, head: &Bytes) -> Result<Vec<Bytes>, Status> {
        let mut out = std::mem::take(&mut self.pending);
        // Sized once: grown message by message, the buffer was copied again at each doubling.
        let mut buf = BytesMut::with_capacity(self.copied_len(&data, head.len()));
        // Where the last frame begun begins: an index into `out`, and an offset into the
        // buffer that goes there next.
        let mut begun = (0, 0);
        while !data.is_empty() {
            if self.body_left > 0 {
                let k = self.body_left.min(data.len());
                self.body_left -= k;
                if k <= COPY_MAX {
                    // Copied from the batch, not sliced off it: a slice is a count taken
                    // and given back on the batch's shared buffer, per message.
                    buf.put_slice(&data[..k]);
                    data.advance(k);
                } else {
                    flush(&mut buf, &mut out);
                    out.push(data.split_to(k));
                }
                continue;
            }
            let k = (PREFIX_LEN - self.have).min(data.len());
            self.prefix[self.have..self.have + k].copy_from_slice(&data[..k]);
            self.have += k;
            data.advance(k);
            if self.have < PREFIX_LEN {
                break;
            }
            self.have = 0;
            let len = self.prefixed_len()?;
            let total = u32::try_from(head.len() - 4 + len)
                .map_err(|_| Status::internal("a message too large for a TTHeader frame"))?;
            buf.reserve(head.len() + len.min(COPY_MAX));
            begun = (out.len(), buf.len());
            buf.put_u32(total);
            buf.put_slice(&head[4..]);
            self.body_left = len;
        }
        flush(&mut buf, &mut out);
        if self.body_left > 0 {
            let mut rest = out.split_off(begun.0);
            if begun.1 > 0 {
                out.push(rest[0].split_to(begun.1));
            }
            self.pending = rest;
        }
        Ok(out)
    }

    /// The length the prefix just read gives its message.
    fn prefixed_len(&self) -> Result<usize, Status> {
        if self.prefix[0] != 0 {
            return Err(Status::internal(
                "TTHeader Streaming carries no compressed messages",
            ));
        }
        let p = &self.prefix;
        Ok(u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize)
    }

    /// The bytes `frames` copies into its buffer for `data`: each frame's head, and the
    /// messages of up to `COPY_MAX`, read off the envelopes' prefixes alone (the last may
    /// be cut, and continue a prefix begun before).
    fn copied_len(&self, data: &[u8], head_len: usize) -> usize {
        let copied = |k: usize| if k <= COPY_MAX { k } else { 0 };
        let mut at = self.body_left.min(data.len());
        let mut n = copied(at);
        let mut prefix = self.prefix;
        let mut have = self.have;
        while at < data.len() {
            let k = (PREFIX_LEN - have).min(data.len() - at);
            prefix[have..have + k].copy_from_slice(&data[at..at + k]);
            (at, have) = (at + k, have + k);
            if have < PREFIX_LEN {
                break;
            }
            have = 0;
            n += head_len;
            let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
            let k = len.min(data.len() - at);
            n += copied(k);
            at += k;
        }
        n
    }
}

fn flush(buf: &mut BytesMut, out: &mut Vec<Bytes>) {
    if !buf.is_empty() {
        out.push(buf.split().freeze());
    }
}

/// The receive half of a call's stream.
pub(crate) struct Receiver {
    stream: Stream,
    max_message: usize,
    /// The peer's messages ended (its TRAILER), or the call failed (sticky).
    ended: Option<Result<(), Status>>,
    /// A client's: the status the server's TRAILER said, until it is read.
    status: Option<Status>,
    client: bool,
    /// Frames taken from the stream at once, to hand out one by one.
    frames: VecDeque<Inbound>,
    /// The DATA frames of a run (`Inbound::Data`) whose messages are still to hand out.
    run: Bytes,
    /// Where the payload of the frame at the start of `run` that was last lent out
    /// (`lend_whole`) starts and where that frame ends; the frame is passed over by the
    /// next call that reads `run`, once the borrow has ended. `(0, 0)`: none is lent.
    lent: (usize, usize),
}

impl Receiver {
    pub(crate) fn new(stream: Stream, max_message: usize) -> Receiver {
        Receiver {
            stream,
            max_message,
            ended: None,
            status: None,
            client: false,
            frames: VecDeque::new(),
            run: Bytes::new(),
            lent: (0, 0),
        }
    }

    /// The next frame: from those taken already, or the stream's.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Inbound, Gone>> {
        if self.frames.is_empty() {
            match self.stream.poll_frames(cx, &mut self.frames) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(g)) => return Poll::Ready(Err(g)),
                Poll::Ready(Ok(())) => {}
            }
        }
        // `poll_frames` is ready only with at least one frame.
        match self.frames.pop_front() {
            Some(f) => Poll::Ready(Ok(f)),
            None => Poll::Ready(Err(Gone::Closed("the stream handed over no frame".into()))),
        }
    }

    pub(crate) fn client(stream: Stream, max_message: usize) -> Receiver {
        Receiver {
            client: true,
            ..Receiver::new(stream, max_message)
        }
    }

    /// A client's answer head: the server's HEADER, or how the stream ended before one.
    pub(crate) fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Metadata, NoHead>> {
        loop {
            let f = match self.poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(g)) => return Poll::Ready(Err(NoHead::Broken(status_of(&g)))),
                Poll::Ready(Ok(f)) => f,
            };
            let head = match f {
                Inbound::Frame(FrameType::Meta, _) => continue,
                Inbound::Frame(FrameType::Header, p) => Ok(metadata(&p.strs)),
                Inbound::Frame(FrameType::Trailer, p) => {
                    self.ended = Some(Ok(()));
                    Err(NoHead::Ended(trailer_status(&p), None))
                }
                Inbound::Frame(FrameType::Rst, p) => {
                    Err(NoHead::Broken(status_of(&Gone::Reset(*p))))
                }
                Inbound::Data(_) | Inbound::Frame(FrameType::Data, _) => Err(NoHead::Broken(
                    Status::internal("a TTHeader Streaming answer began without its HEADER"),
                )),
            };
            return Poll::Ready(head);
        }
    }

    /// A client's final status, after the last message: the server's TRAILER's.
    pub(crate) fn poll_status(&mut self, cx: &mut Context<'_>) -> Poll<Result<Status, Status>> {
        loop {
            match self.poll_message(cx) {
                Poll::Pending => return Poll::Pending,
                // Messages nobody read: the status comes after them.
                Poll::Ready(Ok(Some(_))) => continue,
                Poll::Ready(Err(s)) => return Poll::Ready(Err(s)),
                Poll::Ready(Ok(None)) => {
                    let s = self.status.take();
                    return Poll::Ready(Ok(s.unwrap_or_else(Status::ok)));
                }
            }
        }
    }

    /// The next message; `Ok(None)` once the peer's TRAILER came.
    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, Status>> {
        self.settle();
        loop {
            if self.ended.is_none() && !self.run.is_empty() {
                self.ended = match split_payload(&mut self.run) {
                    Some(payload) if payload.len() <= self.max_message => {
                        return Poll::Ready(Ok(Some(payload)))
                    }
                    Some(payload) => Some(Err(Status::new(
                        Code::ResourceExhausted,
                        format!(
                            "message of {} bytes is over the limit of {} bytes",
                            payload.len(),
                            self.max_message
                        ),
                    ))),
                    None => Some(Err(Status::internal(
                        "a TTHeader DATA run that is not whole frames",
                    ))),
                };
            }
            match &self.ended {
                Some(Ok(())) => return Poll::Ready(Ok(None)),
                Some(Err(s)) => return Poll::Ready(Err(s.clone())),
                None => {}
            }
            let f = match self.poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(g)) => {
                    self.ended = Some(Err(status_of(&g)));
                    continue;
                }
                Poll::Ready(Ok(f)) => f,
            };
            match f {
                Inbound::Data(run) => self.run = run,
                Inbound::Frame(FrameType::Trailer, packet) => {
                    if self.client {
                        self.status = Some(trailer_status(&packet));
                    }
                    self.ended = Some(Ok(()));
                }
                Inbound::Frame(FrameType::Rst, packet) => {
                    self.ended = Some(Err(status_of(&Gone::Reset(*packet))))
                }
                // A server's HEADER was read as the head; META frames carry nothing of the
                // call's.
                Inbound::Frame(..) => {}
            }
        }
    }

    /// The next message lent in place when it is whole in the run and more of the run
    /// follows it (see `envelope::Decoder::lend_whole`): true when `lent_message` now holds
    /// it, until the next call that reads the run.
    #[inline]
    pub(crate) fn lend_whole(&mut self) -> bool {
        self.settle();
        if self.ended.is_some() {
            return false;
        }
        match first_payload(&self.run) {
            Some((start, end)) if end < self.run.len() && end - start <= self.max_message => {
                self.lent = (start, end);
                true
            }
            _ => false,
        }
    }

    /// The message `lend_whole` lent.
    #[inline]
    pub(crate) fn lent_message(&self) -> &[u8] {
        &self.run[self.lent.0..self.lent.1]
    }

    /// Passes over the frame lent last, if any: its borrow has ended.
    #[inline]
    fn settle(&mut self) {
        if self.lent.1 != 0 {
            self.run.advance(self.lent.1);
            self.lent = (0, 0);
        }
    }

    /// Whether a send now answers the message just handed out: nothing is behind it.
    pub(crate) fn answerable(&mut self) -> bool {
        self.run.is_empty() && self.frames.is_empty() && !self.stream.has_frame()
    }
}

/// The status a server's TRAILER ends a client's call with, in the order Kitex's client
/// reads it (`clientStream.onReadTrailerFrame`): the exception its payload carries, or else
/// a biz status (INTERNAL, its message, the pairs as trailers, as a Kitex server's biz
/// error reads over gRPC), or else OK; its pairs are the trailers.
fn trailer_status(p: &Packet) -> Status {
    let trailers = metadata(&p.strs);
    if !p.payload.is_empty() {
        return match Exception::decode(&p.payload) {
            Some(e) => e.status().with_trailers(trailers),
            None => {
                Status::internal("a TTHeader Streaming TRAILER with a payload that is no exception")
            }
        };
    }
    biz_status(&p.strs).unwrap_or_else(|| Status::ok().with_trailers(trailers))
}

/// The status a stream that can go on no more ends its call with.
fn status_of(g: &Gone) -> Status {
    match g {
        Gone::Reset(rst) => {
            let why = Exception::decode(&rst.payload)
                .map(|e| e.message)
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "no reason given".into());
            Status::cancelled(format!("the peer reset the stream: {why}"))
        }
        Gone::Broken(why) => Status::internal(format!("TTHeader Streaming: {why}")),
        Gone::Closed(why) => Status::unavailable(why.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a message handed over in parts (as much as the stream's room took) went
    /// to the connection's queue part by part, and another stream's frames came between
    /// the parts when its room was short too: a client reading slowly from many streams
    /// read garbage where a frame should have begun. A frame now leaves whole, once its
    /// message has all come, whatever the parts.
    #[test]
    fn regression_a_message_handed_in_parts_leaves_as_whole_frames() {
        // A DATA frame's encoding without its payload: LENGTH (rewritten), then the rest.
        let head = Bytes::from_static(&[0, 0, 0, 0, 0xaa, 0xbb]);
        let bodies = [vec![1u8; 10], vec![2u8; 6000], vec![3u8; 3], vec![]];
        let (mut data, mut want, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        for b in &bodies {
            data.push(0);
            data.extend((b.len() as u32).to_be_bytes());
            data.extend(b);
            want.extend((2 + b.len() as u32).to_be_bytes());
            want.extend([0xaa, 0xbb]);
            want.extend(b);
            ends.push(want.len());
        }
        for part in [1, 3, 5, 7, 100, 1029, 4096, 5000, data.len()] {
            let mut r = Reframe::default();
            let mut got = Vec::new();
            for chunk in data.chunks(part) {
                for f in r.frames(Bytes::copy_from_slice(chunk), &head).unwrap() {
                    got.extend_from_slice(&f);
                }
                assert!(
                    got.is_empty() || ends.contains(&got.len()),
                    "parts of {part}: {} bytes out, not on a frame's end",
                    got.len()
                );
            }
            assert_eq!(got, want, "parts of {part}");
        }
    }

    /// Frames the queue built go to the connection as they are, but only whole: a piece of
    /// a chunk (as much as the stream's room took) that ends inside a frame, even inside its
    /// LENGTH, holds that frame back until its rest comes.
    #[test]
    fn frames_the_queue_built_leave_whole_whatever_the_pieces() {
        let framing = Framing::Ttheader(Bytes::from_static(&[0, 0, 0, 0, 0xaa, 0xbb]));
        let mut data = BytesMut::new();
        let mut ends = vec![0];
        for n in [10, 6000, 3, 0, 1] {
            framing
                .frame(&mut data, &vec![n as u8; n], Encoding::Identity)
                .unwrap();
            ends.push(data.len());
        }
        assert_eq!(
            &data[..6],
            [0, 0, 0, 12, 0xaa, 0xbb],
            "LENGTH counts what follows it"
        );
        let data = data.freeze();
        for part in [1, 2, 3, 4, 5, 7, 100, 1029, 4096, 6013, data.len()] {
            let mut w = Whole::default();
            let mut got = Vec::new();
            for at in (0..data.len()).step_by(part) {
                let piece = data.slice(at..(at + part).min(data.len()));
                for f in w.frames(piece) {
                    got.extend_from_slice(&f);
                }
                assert!(
                    ends.contains(&got.len()),
                    "parts of {part}: {} bytes out",
                    got.len()
                );
            }
            assert_eq!(got, data, "parts of {part}");
        }
    }

    /// A batch of small messages is copied into one buffer sized before the first copy
    /// (grown message by message, it was copied again at each doubling): the size read off
    /// the prefixes is what the frames copy, to the byte, wherever a batch begins and ends.
    #[test]
    fn a_batch_is_copied_into_a_buffer_sized_at_once() {
        let head = Bytes::from_static(&[0, 0, 0, 0, 0xaa, 0xbb, 0xcc]);
        let envelopes = |sizes: &[usize]| {
            let mut data = Vec::new();
            for &n in sizes {
                data.push(0);
                data.extend((n as u32).to_be_bytes());
                data.extend(std::iter::repeat_n(n as u8, n));
            }
            data
        };
        // A message over COPY_MAX travels as its own slice, uncopied.
        let big = envelopes(&[16, 0, 4097, 7]);
        assert_eq!(Reframe::default().copied_len(&big, 7), 4 * 7 + 16 + 7);
        let small = envelopes(&[16, 0, 300, 4096, 7, 1]);
        let framed = 6 * 7 + 16 + 300 + 4096 + 7 + 1;
        for part in [1, 2, 4, 5, 6, 9, 100, 4095, 5000, small.len()] {
            let (mut r, mut sized, mut out) = (Reframe::default(), 0, 0);
            for chunk in small.chunks(part) {
                sized += r.copied_len(chunk, head.len());
                let frames = r.frames(Bytes::copy_from_slice(chunk), &head).unwrap();
                out += frames.iter().map(|f| f.len()).sum::<usize>();
            }
            assert_eq!((sized, out), (framed, framed), "parts of {part}");
        }
    }
}
