//! How a call looks on the wire.
//!
//! The call machinery (`call/`) speaks messages, metadata, a final `Status` and an
//! [`Abort`] reason. A protocol turns those into its wire form and back: gRPC, gRPC-Web
//! and Connect over HTTP today; Kitex's TTHeader next. Its codecs are sans I/O
//! ([`envelope`], the header and status rules of [`grpc`] and [`connect`]); its two
//! per-call ends, [`Sender`] and [`Receiver`], apply them to one transport stream.
//!
//! The seam is a closed enum, not a trait object: the set of protocols is ours and fixed
//! at compile time, every send and receive of every message passes through it (a match
//! on a small enum costs nothing, a vtable call per message and a box per call do), and
//! adding a protocol makes the compiler point at every place that must learn it. The
//! protocols over HTTP share one variant, as connect-go's share `net/http`: their streams
//! differ only in how a head and an end look ([`Wire`]). A protocol that is not HTTP at
//! all (TTHeader) fits the same shape: a variant holding its own transport stream,
//! framing messages its own way ([`Framing`]) and saying the end of a call in its own
//! frames.

pub(crate) mod connect;
pub(crate) mod cors;
pub(crate) mod details;
pub(crate) mod envelope;
pub(crate) mod grpc;
pub(crate) mod names;
mod pb;
pub(crate) mod replay;
pub(crate) mod stream;
mod terms;
pub(crate) mod ttheader;
mod wire;

#[cfg(test)]
pub(crate) use stream::accept_one;
pub use terms::Protocol;
pub(crate) use terms::{Abort, End, Framing, NoHead, NotACall, PeerEnd};
pub(crate) use wire::Wire;

use bytes::Bytes;
use http::HeaderValue;
use std::task::{Context, Poll};

use crate::metadata::Metadata;
use crate::status::Status;
use crate::transport::driver::Kick;
use envelope::Encoding;

/// The sending end of one call on the wire.
pub(crate) enum Sender {
    /// A call over HTTP/2 or HTTP/1.1: gRPC, gRPC-Web or Connect.
    Http(stream::Sender),
    /// A call over TTHeader Streaming. Boxed, as the next: a server holds a sender per
    /// open stream, and the HTTP protocols' calls, the many, must not pay for the size of
    /// the rare ones.
    Ttheader(Box<ttheader::stream::Sender>),
    /// A Thrift PingPong call (TTHeader or Framed).
    PingPong(Box<ttheader::pingpong::Sender>),
}

impl Sender {
    pub(crate) fn client(s: stream::Sender) -> Sender {
        Sender::Http(s)
    }

    pub(crate) fn server(
        wire: Wire,
        respond: crate::transport::http::Respond,
        content_type: HeaderValue,
        driver: Option<std::sync::Arc<crate::transport::driver::Driver>>,
        meter: Option<std::sync::Arc<crate::transport::budget::Meter>>,
    ) -> Sender {
        Sender::Http(stream::Sender::server(
            wire,
            respond,
            content_type,
            driver,
            meter,
        ))
    }

    /// The stream's count in its connection's send budget, if it has one.
    pub(crate) fn meter(&self) -> Option<&std::sync::Arc<crate::transport::budget::Meter>> {
        match self {
            Sender::Http(s) => s.meter(),
            Sender::Ttheader(s) => s.meter(),
            Sender::PingPong(_) => None,
        }
    }

    /// Whether the stream's connection holds the share of the send budget its transport
    /// may hold (see `transport::budget`): its call should queue no more than its least.
    pub(crate) fn throttled(&self) -> bool {
        self.meter().is_some_and(|m| m.gated())
    }

    /// Room in the send budget for the call's queue to hold `n` bytes more than its least:
    /// whether it was given (always, without a budget).
    pub(crate) fn reserve(&self, n: usize) -> bool {
        self.meter().is_none_or(|m| m.reserve(n))
    }

    /// The call's queue is back to its least: the room it had goes back to the budget.
    pub(crate) fn release(&self) {
        if let Some(m) = self.meter() {
            m.release();
        }
    }

    pub(crate) fn framing(&self) -> Framing {
        match self {
            Sender::Http(s) => s.framing(),
            Sender::Ttheader(s) => s.framing(),
            Sender::PingPong(s) => s.framing(),
        }
    }

    /// Lets a browser page from `origin` read this call's response (CORS).
    pub(crate) fn allow_origin(&mut self, origin: HeaderValue) {
        match self {
            Sender::Http(s) => s.allow_origin(origin),
            // TTHeader is not for browsers.
            Sender::Ttheader(_) => drop(origin),
            Sender::PingPong(_) => drop(origin),
        }
    }

    /// Answers a request for a method the server does not have: `status` says which.
    pub(crate) fn route_not_found(self, status: &Status) {
        match self {
            Sender::Http(s) => s.route_not_found(status),
            Sender::Ttheader(s) => (*s).refuse(status),
            Sender::PingPong(s) => (*s).refuse(status),
        }
    }

    /// Ends a call refused before it began with its status alone.
    pub(crate) fn refuse(self, status: &Status, accept: Option<&'static str>) {
        match self {
            Sender::Http(s) => s.refuse(status, accept),
            Sender::Ttheader(s) => (*s).refuse(status),
            Sender::PingPong(s) => (*s).refuse(status),
        }
    }

    /// Ready with the flow-control window open to this stream (at least one byte, at most
    /// `want`), or with the status that ended it.
    pub(crate) fn poll_capacity(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<Result<usize, Status>> {
        match self {
            Sender::Http(s) => s.poll_capacity(cx, want),
            Sender::Ttheader(s) => s.poll_capacity(cx, want),
            Sender::PingPong(s) => s.poll_capacity(want),
        }
    }

    /// The server's response head, unless it went out already (a client's head went with
    /// the opening of the stream). `metadata` is the handler's, if it sent headers itself.
    pub(crate) fn send_head(
        &mut self,
        metadata: Option<Metadata>,
        enc: Encoding,
    ) -> Result<(), Status> {
        match self {
            Sender::Http(s) => s.send_head(metadata, enc),
            Sender::Ttheader(s) => s.send_head(metadata, enc),
            Sender::PingPong(s) => {
                s.send_head(metadata, enc);
                Ok(())
            }
        }
    }

    /// Framed messages; the window must have room (`poll_capacity`).
    pub(crate) fn send_data(&mut self, data: Bytes) -> Result<(), Status> {
        match self {
            Sender::Http(s) => s.send_data(data),
            Sender::Ttheader(s) => s.send_data(data),
            Sender::PingPong(s) => {
                s.send_data(data);
                Ok(())
            }
        }
    }

    pub(crate) fn send_end(&mut self, end: End, enc: Encoding) -> Result<(), Status> {
        match self {
            Sender::Http(s) => s.send_end(end, enc),
            Sender::Ttheader(s) => s.send_end(end, enc),
            Sender::PingPong(s) => s.send_end(end),
        }
    }

    pub(crate) fn abort(&mut self, why: Abort) {
        match self {
            Sender::Http(s) => s.abort(why),
            Sender::Ttheader(s) => s.abort(why),
            Sender::PingPong(s) => s.abort(why),
        }
    }

    /// Ready once the peer ended the stream; `cx` is woken then (and, with h2, when the
    /// window grows: the stream's one send task is whoever polled last).
    pub(crate) fn poll_peer_end(&mut self, cx: &mut Context<'_>) -> Poll<PeerEnd> {
        match self {
            Sender::Http(s) => s.poll_peer_end(cx),
            Sender::Ttheader(s) => s.poll_peer_end(cx),
            Sender::PingPong(s) => s.poll_peer_end(cx),
        }
    }

    /// Announces a kick of the connection, for writes made outside its task: `finish` it
    /// after them (see `transport::driver`).
    pub(crate) fn announce(&self) -> Option<Kick> {
        match self {
            Sender::Http(s) => s.announce(),
            // Its frames go out from the connection's task, woken as they are queued.
            Sender::Ttheader(_) => None,
            Sender::PingPong(_) => None,
        }
    }

    /// Writes framed bytes (with the end of the sending side, for a client's half-close)
    /// from the calling thread if the window has room now and the head went out already:
    /// the returned kick then puts them on the socket, once the caller let go of its locks.
    /// Hands the bytes back otherwise.
    pub(crate) fn try_send_now(&mut self, data: Bytes, end: bool) -> Result<Option<Kick>, Bytes> {
        match self {
            Sender::Http(s) => s.try_send_now(data, end),
            Sender::Ttheader(s) => s.try_send_now(data, end).map(|()| None),
            // The answer goes out whole as the call ends.
            Sender::PingPong(_) => Err(data),
        }
    }

    /// Writes a client's whole request (framed, with the half-close) on a stream just
    /// opened from the calling thread, whatever the window: the connection sends it after
    /// the head. For small requests only; hands the bytes back if the stream is gone.
    pub(crate) fn send_request_now(&mut self, data: Bytes) -> Result<Option<Kick>, Bytes> {
        match self {
            Sender::Http(s) => s.send_request_now(data),
            Sender::Ttheader(s) => s.send_request_now(data).map(|()| None),
            Sender::PingPong(s) => s.send_request_now(data).map(|()| None),
        }
    }
}

/// The receiving end of one call on the wire.
pub(crate) enum Receiver {
    Http(stream::Receiver),
    Ttheader(Box<ttheader::stream::Receiver>),
    PingPong(Box<ttheader::pingpong::Receiver>),
}

impl Receiver {
    pub(crate) fn client(r: stream::Receiver) -> Receiver {
        Receiver::Http(r)
    }

    pub(crate) fn server(
        wire: Wire,
        body: crate::transport::http::RecvBody,
        max_message: usize,
        encoding: Encoding,
        in_head: Option<Bytes>,
    ) -> Receiver {
        let r = stream::Receiver::server(wire, body, max_message, encoding, in_head);
        Receiver::Http(r)
    }

    /// Whether the call keeps its request to go again (`replay`) once `request_sent` has it.
    pub(crate) fn may_replay(&self) -> bool {
        match self {
            Receiver::Http(r) => r.may_replay(),
            Receiver::Ttheader(_) => false,
            Receiver::PingPong(_) => false,
        }
    }

    /// The call's whole request went out with its opening, framed as `request`.
    pub(crate) fn request_sent(&mut self, request: Bytes) {
        match self {
            Receiver::Http(r) => r.request_sent(request),
            Receiver::Ttheader(_) => drop(request),
            Receiver::PingPong(_) => drop(request),
        }
    }

    /// A client's response head: its metadata, or the status that ended the call before
    /// any message (a Trailers-Only response, an HTTP error, a broken stream). Servers
    /// have theirs from the start.
    pub(crate) fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Metadata, NoHead>> {
        match self {
            Receiver::Http(r) => r.poll_head(cx),
            Receiver::Ttheader(r) => r.poll_head(cx),
            Receiver::PingPong(r) => r.poll_head(cx),
        }
    }

    /// The next message if it waits whole and needs nothing but handing out: the fast
    /// path of `poll_message`.
    #[inline]
    pub(crate) fn next_whole(&mut self) -> Option<Bytes> {
        match self {
            Receiver::Http(r) => r.next_whole(),
            Receiver::Ttheader(_) | Receiver::PingPong(_) => None,
        }
    }

    /// `next_whole`, lending the message in place: true when `lent_message` now holds it,
    /// until the next call that receives. Messages of a burst are lent; the rest come as
    /// `Bytes`.
    #[inline]
    pub(crate) fn lend_whole(&mut self) -> bool {
        match self {
            Receiver::Http(r) => r.lend_whole(),
            Receiver::Ttheader(r) => r.lend_whole(),
            Receiver::PingPong(_) => false,
        }
    }

    /// The message `lend_whole` lent.
    #[inline]
    pub(crate) fn lent_message(&self) -> &[u8] {
        match self {
            Receiver::Http(r) => r.lent_message(),
            Receiver::Ttheader(r) => r.lent_message(),
            Receiver::PingPong(_) => &[],
        }
    }

    /// The next message; `Ok(None)` once the peer's messages ended.
    #[inline]
    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, Status>> {
        match self {
            Receiver::Http(r) => r.poll_message(cx),
            Receiver::Ttheader(r) => r.poll_message(cx),
            Receiver::PingPong(r) => r.poll_message(),
        }
    }

    /// A client's final status, after the last message: the server's, or (`Err`) the
    /// transport failure that ended the stream first.
    pub(crate) fn poll_status(&mut self, cx: &mut Context<'_>) -> Poll<Result<Status, Status>> {
        match self {
            Receiver::Http(r) => r.poll_status(cx),
            Receiver::Ttheader(r) => r.poll_status(cx),
            Receiver::PingPong(r) => r.poll_status(),
        }
    }

    /// Whether a send now answers the message just handed out (see `envelope::Decoder`).
    #[inline]
    pub(crate) fn answerable(&mut self) -> bool {
        match self {
            Receiver::Http(r) => r.answerable(),
            Receiver::Ttheader(r) => r.answerable(),
            Receiver::PingPong(_) => true,
        }
    }

    /// Whether the last message arrived compressed on the wire.
    pub(crate) fn last_compressed(&self) -> bool {
        match self {
            Receiver::Http(r) => r.last_compressed(),
            Receiver::Ttheader(_) => false,
            Receiver::PingPong(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the TTHeader variants, unboxed, made every call's two ends larger, and
    /// an idle HTTP/2 stream on a server cost 16% more memory.
    #[test]
    fn the_rare_protocols_ends_cost_the_http_ones_nothing() {
        use std::mem::size_of;
        assert!(size_of::<Sender>() <= size_of::<stream::Sender>() + 8);
        assert!(size_of::<Receiver>() <= size_of::<stream::Receiver>() + 8);
    }
}
