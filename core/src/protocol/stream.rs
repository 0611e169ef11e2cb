//! A call's two ends on an h2 stream, for the protocols over HTTP: what the call machinery
//! sends and receives, written and read as HTTP/2 headers, DATA and trailers. The flow
//! control, resets and direct writes are the stream's and the same for every protocol;
//! how a head, an end and a refusal look is the protocol's ([`Wire`]): gRPC ends in
//! trailers, gRPC-Web and Connect streaming in a last body frame, Connect unary in one
//! response written whole when the call ends.

use bytes::Bytes;
use http::HeaderValue;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::connect::{self, Whole};
use super::cors;
use super::grpc::{self, trailers, trailers_only, web_text};
use super::grpc::{
    check_response, code_for_reset, response, status_from_http, status_from_trailers,
};
use super::replay::{self, Exclusive, Reopen, Reopening, Replay};
use super::wire::Wire;
use crate::metadata::Metadata;
use crate::protocol::envelope::{Decoder, Encoding};
use crate::protocol::terms::{Abort, End, Framing, NoHead, PeerEnd};
use crate::status::{Code, Status};
use crate::transport::budget::Meter;
use crate::transport::driver::{Driver, Kick};
use crate::transport::goaway::{explain, GoAway};
use crate::transport::http::{self as wire_http, RecvBody, Respond, ResponseHead, SendBody};

/// The smallest window worth a DATA frame once the peer has shown it grants more: waiting
/// for it rather than sending what trickles in avoids a stream of tiny frames (the silly
/// window syndrome of TCP's RFC 1122 §4.2.3.4).
const WORTHWHILE: usize = 16 * 1024;

/// The send half of a call's stream.
pub(crate) struct Sender {
    wire: Wire,
    half: Half,
    /// A Connect unary response, held until the call ends: the handler's headers and the
    /// message (its trailers go in the same head).
    unary: Option<Box<(Option<Metadata>, Bytes)>>,
    /// The origin of a browser's request that CORS allows: its page may read the response.
    /// Boxed: browsers are rare callers, and a server holds a sender per open stream.
    origin: Option<Box<HeaderValue>>,
    /// The connection, for writes from outside its task (see `transport::driver`).
    driver: Option<Arc<Driver>>,
    /// A client connection's GOAWAY, which explains a broken stream.
    goaway: Option<Arc<GoAway>>,
    /// The widest window this stream has had: what the peer is willing to grant.
    widest: usize,
    /// A server stream's count in its connection's send budget.
    meter: Option<Arc<Meter>>,
}

enum Half {
    /// A client's request stream (its head went with the stream's opening).
    Request(SendBody),
    /// A server before its response head, and the content type that head will carry.
    Respond(Respond, HeaderValue),
    /// A server's response stream, its head sent.
    Response(SendBody),
    /// A Trailers-Only response was sent: nothing more goes on this stream.
    Ended,
}

impl Sender {
    /// A client's request stream: an h2 stream with its connection's driver and GOAWAY
    /// watch, or an HTTP/1.1 request body.
    pub(crate) fn client(
        wire: Wire,
        body: SendBody,
        driver: Option<Arc<Driver>>,
        goaway: Option<Arc<GoAway>>,
    ) -> Sender {
        Sender {
            wire,
            unary: None,
            origin: None,
            half: Half::Request(body),
            driver,
            goaway,
            widest: 0,
            meter: None,
        }
    }

    pub(crate) fn server(
        wire: Wire,
        respond: Respond,
        content_type: HeaderValue,
        driver: Option<Arc<Driver>>,
        meter: Option<Arc<Meter>>,
    ) -> Sender {
        Sender {
            wire,
            unary: None,
            origin: None,
            half: Half::Respond(respond, content_type),
            driver,
            goaway: None,
            widest: 0,
            meter,
        }
    }

    pub(crate) fn framing(&self) -> Framing {
        self.wire.framing()
    }

    pub(crate) fn meter(&self) -> Option<&Arc<Meter>> {
        self.meter.as_ref()
    }

    fn count(&self, handed: usize) {
        if let Some(m) = &self.meter {
            m.handed(handed);
        }
    }

    /// The status of a stream the send budget cut, which is reset here (see
    /// `transport::budget`); the writer is woken when one is.
    fn cut(&mut self, cx: &mut Context<'_>, waiting: bool) -> Option<Status> {
        if !self.meter.as_ref()?.poll_cut(cx, waiting) {
            return None;
        }
        let reason = h2::Reason::ENHANCE_YOUR_CALM;
        match &mut self.half {
            Half::Request(s) | Half::Response(s) => s.send_reset(reason),
            Half::Respond(r, _) => r.send_reset(reason),
            Half::Ended => {}
        }
        Some(crate::transport::budget::cut_status())
    }

    /// What the stream carries for `data`: gRPC-Web's text mode sends it base64-encoded.
    fn on_wire(&self, data: Bytes) -> Bytes {
        match self.wire {
            Wire::GrpcWebText => web_text::encode(&data),
            _ => data,
        }
    }

    /// Lets a browser page from `origin` read this call's response (CORS).
    pub(crate) fn allow_origin(&mut self, origin: HeaderValue) {
        self.origin = Some(Box::new(origin));
    }

    fn stream(&mut self) -> Option<&mut SendBody> {
        match &mut self.half {
            Half::Request(s) | Half::Response(s) => Some(s),
            Half::Respond(..) | Half::Ended => None,
        }
    }

    fn transport(&self, e: &wire_http::Error) -> Status {
        explain(self.goaway.as_deref(), status_from_http(e))
    }

    /// The reset that ended the stream, if one did: its reason says more than the error
    /// of whatever operation found the stream gone.
    fn reset_status(&mut self) -> Option<Status> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll_peer_end(&mut cx) {
            Poll::Ready(PeerEnd::Failed(s)) => Some(s),
            _ => None,
        }
    }

    fn fail(&mut self, e: &wire_http::Error) -> Status {
        self.reset_status().unwrap_or_else(|| self.transport(e))
    }

    pub(crate) fn poll_capacity(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<Result<usize, Status>> {
        let widest = self.widest;
        if let Some(cut) = self.cut(cx, false) {
            return Poll::Ready(Err(cut));
        }
        if self.stream().is_some() && self.meter.as_ref().is_some_and(|m| !m.poll_gate(cx)) {
            // As waiting for the window: a cut must wake it.
            return match self.cut(cx, true) {
                Some(cut) => Poll::Ready(Err(cut)),
                None => Poll::Pending,
            };
        }
        let Some(s) = self.stream() else {
            return Poll::Ready(Ok(want));
        };
        // Only what the window takes is handed to h2, so h2 buffers nothing beyond it: a
        // peer that grants no window holds no more of ours than the call's queue.
        s.reserve_capacity(want);
        loop {
            let cap = s.capacity();
            let enough = want.min(WORTHWHILE).min((widest.max(cap) / 2).max(1));
            if cap > 0 && cap >= enough {
                self.widest = widest.max(cap);
                return Poll::Ready(Ok(cap.min(want)));
            }
            match s.poll_capacity(cx) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(self.fail(&e))),
                Poll::Ready(None) => {
                    let closed =
                        Status::unavailable("stream closed while waiting for flow control");
                    return Poll::Ready(Err(self.reset_status().unwrap_or(closed)));
                }
                Poll::Pending => break,
            }
        }
        // Waiting for the window, as a stream cut for its backlog waits: the cut must wake
        // it (a writer that has its window takes no lock here).
        if let Some(cut) = self.cut(cx, true) {
            return Poll::Ready(Err(cut));
        }
        Poll::Pending
    }

    pub(crate) fn send_head(
        &mut self,
        metadata: Option<Metadata>,
        enc: Encoding,
    ) -> Result<(), Status> {
        let Half::Respond(..) = self.half else {
            return Ok(());
        };
        if self.wire == Wire::ConnectUnary {
            // The head waits for the end, whose trailers it carries.
            let held = self
                .unary
                .get_or_insert_with(|| Box::new((None, Bytes::new())));
            if metadata.is_some() {
                held.0 = metadata;
            }
            return Ok(());
        }
        let Half::Respond(mut respond, ct) = std::mem::replace(&mut self.half, Half::Ended) else {
            unreachable!("matched above");
        };
        let head = match self.wire {
            Wire::ConnectStream => connect::streaming_head(&ct, enc, metadata.as_ref()),
            _ => {
                let extra = metadata.map(|md| {
                    let mut h = http::HeaderMap::new();
                    md.write_to(&mut h);
                    h
                });
                response(&ct, enc, extra)
            }
        };
        match self.answer(&mut respond, head, Bytes::new(), false) {
            Ok(s) => {
                self.half = Half::Response(s);
                Ok(())
            }
            Err(e) => Err(status_from_http(&e)),
        }
    }

    pub(crate) fn send_data(&mut self, data: Bytes) -> Result<(), Status> {
        if let (Wire::ConnectUnary, Half::Respond(..)) = (self.wire, &self.half) {
            // The one message of the call (the queue frames it bare).
            let held = self
                .unary
                .get_or_insert_with(|| Box::new((None, Bytes::new())));
            held.1 = if held.1.is_empty() {
                data
            } else {
                [held.1.as_ref(), data.as_ref()].concat().into()
            };
            return Ok(());
        }
        let data = self.on_wire(data);
        let n = data.len();
        let Some(s) = self.stream() else {
            return Err(Status::internal("data on a stream without its head"));
        };
        match s.send_data(data, false) {
            Ok(()) => {
                self.count(n);
                Ok(())
            }
            Err(e) => Err(self.fail(&e)),
        }
    }

    pub(crate) fn send_end(&mut self, end: End, enc: Encoding) -> Result<(), Status> {
        let half = std::mem::replace(&mut self.half, Half::Ended);
        let r = match (half, end) {
            (Half::Request(mut s), End::HalfClose) => {
                let r = s.send_data(Bytes::new(), true);
                self.half = Half::Request(s);
                r
            }
            (Half::Response(mut s), End::Status(status)) => {
                let last = match self.wire {
                    Wire::Grpc => None,
                    Wire::GrpcWeb => Some(grpc::web_trailers(&status)),
                    Wire::GrpcWebText => Some(web_text::encode(&grpc::web_trailers(&status))),
                    Wire::ConnectStream | Wire::ConnectUnary => Some(connect::end_stream(&status)),
                };
                let r = match last {
                    None => s.send_trailers(trailers(&status)),
                    Some(data) => {
                        let n = data.len();
                        let sent = s.send_data(data, true);
                        if sent.is_ok() {
                            self.count(n);
                        }
                        sent
                    }
                };
                self.half = Half::Response(s);
                r
            }
            (Half::Respond(respond, ct), End::Status(status)) => {
                self.respond_ended(respond, &ct, enc, &status, None)
            }
            (half, _) => {
                self.half = half;
                return Err(Status::internal("an end this side of the call cannot send"));
            }
        };
        r.map_err(|e| self.fail(&e))
    }

    /// Sends a server's response head (with `first` of its body, ending it if `end`), with
    /// what lets a browser's page read it when the request came from an allowed origin.
    fn answer(
        &self,
        respond: &mut Respond,
        mut head: http::Response<()>,
        first: Bytes,
        end: bool,
    ) -> Result<SendBody, wire_http::Error> {
        if let Some(origin) = &self.origin {
            cors::expose(head.headers_mut(), origin);
        }
        let n = first.len();
        let body = respond.send_response(head, first, end)?;
        self.count(n);
        Ok(body)
    }

    /// Ends a call that has sent no head: the whole response, in one go.
    fn respond_ended(
        &mut self,
        mut respond: Respond,
        ct: &HeaderValue,
        enc: Encoding,
        status: &Status,
        accept: Option<&'static str>,
    ) -> Result<(), wire_http::Error> {
        let (head, body) = match self.wire {
            // One header block carries the status (Trailers-Only); gRPC-Web clients read
            // it there too.
            Wire::Grpc | Wire::GrpcWeb | Wire::GrpcWebText => {
                (trailers_only(ct, status, accept), Bytes::new())
            }
            Wire::ConnectStream => (
                connect::streaming_head(ct, enc, None),
                connect::end_stream(status),
            ),
            Wire::ConnectUnary => {
                let (md, msg) = self
                    .unary
                    .take()
                    .map(|u| *u)
                    .unwrap_or((None, Bytes::new()));
                connect::unary_response(ct, enc, md.as_ref(), status, msg)
            }
        };
        self.answer(&mut respond, head, body, true).map(drop)
    }

    /// Answers a request the server does not take as a call: the status alone, as the
    /// request's protocol says it (`accept`: the encodings to offer, for an unknown one).
    pub(crate) fn refuse(mut self, status: &Status, accept: Option<&'static str>) {
        let half = std::mem::replace(&mut self.half, Half::Ended);
        if let Half::Respond(respond, ct) = half {
            let _ = self.respond_ended(respond, &ct, Encoding::Identity, status, accept);
        }
    }

    /// Answers a request for a method the server does not have.
    pub(crate) fn route_not_found(mut self, status: &Status) {
        if !matches!(self.wire, Wire::ConnectStream | Wire::ConnectUnary) {
            return self.refuse(status, None);
        }
        if let Half::Respond(mut respond, _) = std::mem::replace(&mut self.half, Half::Ended) {
            let (head, body) = connect::route_not_found(status);
            let _ = self.answer(&mut respond, head, body, true);
        }
    }

    pub(crate) fn abort(&mut self, why: Abort) {
        let reason = match why {
            Abort::Cancel => h2::Reason::CANCEL,
            Abort::Finished => h2::Reason::NO_ERROR,
        };
        match &mut self.half {
            Half::Request(s) | Half::Response(s) => s.send_reset(reason),
            Half::Respond(r, _) => r.send_reset(reason),
            Half::Ended => {}
        }
    }

    pub(crate) fn poll_peer_end(&mut self, cx: &mut Context<'_>) -> Poll<PeerEnd> {
        if let Some(cut) = self.cut(cx, false) {
            return Poll::Ready(PeerEnd::Failed(cut));
        }
        let client = matches!(self.half, Half::Request(_));
        let r = match &mut self.half {
            Half::Request(s) | Half::Response(s) => s.poll_reset(cx),
            Half::Respond(r, _) => r.poll_reset(cx),
            Half::Ended => return Poll::Pending,
        };
        let Poll::Ready(r) = r else {
            return Poll::Pending;
        };
        Poll::Ready(match (client, r) {
            // RFC 9113 §8.1: a server that has sent its complete response "MAY request that
            // the client abort transmission of a request without error by sending a
            // RST_STREAM with an error code of NO_ERROR".
            (true, Ok(h2::Reason::NO_ERROR)) => PeerEnd::Finished,
            (true, Ok(reason)) => PeerEnd::Failed(Status::new(
                code_for_reset(reason),
                format!("stream reset by the server ({reason:?})"),
            )),
            (false, Ok(h2::Reason::CANCEL | h2::Reason::NO_ERROR)) => {
                PeerEnd::Failed(Status::cancelled("the client cancelled the call"))
            }
            (false, Ok(reason)) => PeerEnd::Failed(Status::new(
                code_for_reset(reason),
                format!("stream reset by the client: {reason:?}"),
            )),
            (_, Err(e)) => PeerEnd::Failed(self.transport(&e)),
        })
    }

    /// Announces a kick of the connection (see `transport::driver`), for writes from
    /// outside its task.
    pub(crate) fn announce(&self) -> Option<Kick> {
        self.driver.clone().map(Driver::announce)
    }

    /// A client's whole request, on a stream opened this moment. h2 gives a stream no
    /// window until its connection task has sent the head, so `try_send_now` would always
    /// refuse here; h2 holds the bytes until then instead (the caller sends only a small
    /// request this way, one message at most).
    pub(crate) fn send_request_now(&mut self, data: Bytes) -> Result<Option<Kick>, Bytes> {
        let driver = self.driver.clone();
        let Some(s) = self.stream() else {
            return Err(data);
        };
        let kick = driver.map(Driver::announce);
        // A failure means the stream is gone; the writer finds out why when it looks.
        let _ = s.send_data(data, true);
        Ok(kick)
    }

    pub(crate) fn try_send_now(&mut self, data: Bytes, end: bool) -> Result<Option<Kick>, Bytes> {
        if self.wire == Wire::GrpcWebText {
            // Framed bytes handed back must be the caller's, not their text form.
            return Err(data);
        }
        let driver = self.driver.clone();
        let Some(s) = self.stream() else {
            return Err(data);
        };
        // Reserving capacity wakes the stream's send task, which is the writer watching
        // for a reset: a thread hop per answer, for nothing. Point h2 elsewhere meanwhile;
        // the caller hands the watch back (`poll_peer_end` with the writer's waker).
        let mut off = Context::from_waker(Waker::noop());
        if s.poll_reset(&mut off).is_ready() {
            return Err(data);
        }
        // An empty frame (a half-close) takes no window.
        if !data.is_empty() {
            s.reserve_capacity(data.len());
            if s.capacity() < data.len() {
                s.reserve_capacity(0);
                return Err(data);
            }
        }
        let kick = driver.map(Driver::announce);
        let n = data.len();
        // A failure means the stream is gone; the writer finds out why when it looks.
        if s.send_data(data, end).is_ok() {
            self.count(n);
        }
        Ok(kick)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Some(m) = &self.meter {
            m.end();
        }
    }
}

/// The receive half of a call's stream.
pub(crate) struct Receiver {
    state: State,
    dec: Decoder,
    /// What only some protocols or a failed call need, in one box: a gRPC stream, the
    /// common case, carries a null pointer for all of it (a server holds one receiver
    /// per open stream).
    rare: Option<Box<Rare>>,
    data_done: bool,
    goaway: Option<Arc<GoAway>>,
    wire: Wire,
}

#[derive(Default)]
struct Rare {
    /// A Connect unary request's body, gathered whole instead of decoded as envelopes.
    whole: Option<Whole>,
    /// gRPC-Web text mode's base64, decoded before the envelopes.
    text: Option<web_text::Decoder>,
    /// A failure is sticky: every later poll reports it again.
    failed: Option<Status>,
    /// A client's final status, known before the body's end: a Connect unary response's
    /// (its trailers came in its head).
    end_status: Option<Status>,
    /// A gRPC-Web head's own `grpc-status`: the status if the body brings none (a
    /// Trailers-Only response whose end came apart from its head).
    head_status: Option<Status>,
}

impl Rare {
    /// gRPC-Web text mode's starting state, `None` for every other protocol.
    fn for_wire(wire: Wire) -> Option<Box<Rare>> {
        (wire == Wire::GrpcWebText).then(|| {
            Box::new(Rare {
                text: Some(web_text::Decoder::default()),
                ..Rare::default()
            })
        })
    }
}

enum State {
    /// A client waiting for the response head, with what it needs to go again should the
    /// server refuse the stream unprocessed.
    Head(ResponseHead, Option<Box<Replay>>),
    /// A client's refused request going again on a new stream (see `replay`).
    Reopening(Exclusive<Reopening>),
    /// A Connect unary error: its JSON body being read.
    ErrorBody(Box<(http::response::Parts, RecvBody, bytes::BytesMut)>),
    Body(RecvBody),
    /// Ended before a body could start: the call's status.
    Ended(Box<Status>),
}

/// The most of an error body a client reads: an error is a code, a message and details.
const MAX_ERROR_BODY: usize = 1 << 20;

impl Receiver {
    pub(crate) fn client(
        wire: Wire,
        response: ResponseHead,
        max_message: usize,
        goaway: Option<Arc<GoAway>>,
    ) -> Receiver {
        let mut dec = Decoder::new(max_message);
        match wire {
            Wire::GrpcWeb | Wire::GrpcWebText => dec.set_end_flag(grpc::WEB_TRAILERS),
            Wire::ConnectStream => dec.set_end_flag(connect::END_STREAM),
            Wire::Grpc | Wire::ConnectUnary => {}
        }
        Receiver {
            state: State::Head(response, None),
            dec,
            rare: Rare::for_wire(wire),
            data_done: false,
            goaway,
            wire,
        }
    }

    pub(crate) fn server(
        wire: Wire,
        body: RecvBody,
        max_message: usize,
        encoding: Encoding,
        in_head: Option<Bytes>,
    ) -> Receiver {
        let mut rare = Rare::for_wire(wire);
        if wire == Wire::ConnectUnary {
            let rare = rare.get_or_insert_with(Box::default);
            let mut whole = Whole::new(max_message, encoding);
            // A GET's message came in its URL (its body is empty), and fails the call as
            // a body past the size limit would.
            if let Some(Err(s)) = in_head.map(|msg| whole.push(&msg)) {
                rare.failed = Some(s);
            }
            rare.whole = Some(whole);
        }
        Receiver {
            state: State::Body(body),
            dec: grpc::decoder(max_message, encoding),
            rare,
            data_done: false,
            goaway: None,
            wire,
        }
    }

    /// Lets a client call go again, on a stream `reopen` opens, should the server refuse
    /// this one unprocessed; only once `request_sent` has kept its request.
    pub(crate) fn with_reopen(mut self, reopen: Reopen) -> Receiver {
        if let State::Head(_, replay) = &mut self.state {
            *replay = Some(Box::new(Replay {
                reopen: Exclusive::new(reopen),
                request: None,
            }));
        }
        self
    }

    /// Whether `request_sent` would keep the request.
    pub(crate) fn may_replay(&self) -> bool {
        matches!(&self.state, State::Head(_, Some(_)))
    }

    /// The call's whole request went out with its opening, as `request` (framed).
    pub(crate) fn request_sent(&mut self, request: Bytes) {
        if let State::Head(_, Some(replay)) = &mut self.state {
            replay.request = Some(request);
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn whole(&mut self) -> Option<&mut Whole> {
        self.rare.as_deref_mut().and_then(|r| r.whole.as_mut())
    }

    fn failed(&self) -> Option<&Status> {
        self.rare.as_deref().and_then(|r| r.failed.as_ref())
    }

    fn transport(&self, e: &wire_http::Error) -> Status {
        explain(self.goaway.as_deref(), status_from_http(e))
    }

    pub(crate) fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Metadata, NoHead>> {
        let r = loop {
            match &mut self.state {
                State::Head(fut, replay) => match fut.poll(cx) {
                    Poll::Ready(Ok((parts, body))) => match self.head(parts, body) {
                        Some(r) => break r,
                        None => continue,
                    },
                    Poll::Ready(Err(e)) => {
                        let refused = replay::unprocessed(fut, &e, self.goaway.as_deref());
                        match replay.take().filter(|r| refused && r.request.is_some()) {
                            Some(r) => {
                                let request = r.request.expect("checked in the filter");
                                let reopening = (r.reopen.into_inner())(request);
                                self.state = State::Reopening(Exclusive::new(reopening));
                            }
                            None => break Err(NoHead::Broken(self.transport(&e))),
                        }
                    }
                    Poll::Pending => return Poll::Pending,
                },
                State::Reopening(f) => match f.get_mut().as_mut().poll(cx) {
                    Poll::Ready(Ok((head, goaway))) => {
                        self.goaway = goaway;
                        self.state = State::Head(head, None);
                    }
                    Poll::Ready(Err(s)) => break Err(NoHead::Broken(s)),
                    Poll::Pending => return Poll::Pending,
                },
                State::ErrorBody(e) => match e.1.poll_data(cx) {
                    Poll::Ready(Some(Ok(chunk))) => {
                        let (_, body, acc) = &mut **e;
                        body.release(chunk.len());
                        if acc.len() + chunk.len() <= MAX_ERROR_BODY {
                            acc.extend_from_slice(&chunk);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => break Err(NoHead::Broken(self.transport(&e))),
                    Poll::Ready(None) => {
                        let (status, head) = connect::unary_error(&e.0, &e.2);
                        break Err(NoHead::Ended(status, Some(head)));
                    }
                    Poll::Pending => return Poll::Pending,
                },
                State::Body(_) => return Poll::Ready(Ok(Metadata::new())),
                State::Ended(s) => return Poll::Ready(Err(NoHead::Ended((**s).clone(), None))),
            }
        };
        if let Err(NoHead::Ended(s, _) | NoHead::Refused(s, _) | NoHead::Broken(s)) = &r {
            self.state = State::Ended(Box::new(s.clone()));
        }
        Poll::Ready(r)
    }

    /// Takes a client's response head as the call's protocol reads it: `None` when the
    /// answer is in the body still to read (a Connect unary error).
    fn head(
        &mut self,
        parts: http::response::Parts,
        body: RecvBody,
    ) -> Option<Result<Metadata, NoHead>> {
        let checked = match self.wire {
            Wire::Grpc => check_response(&parts, false, body.is_end_stream()),
            Wire::GrpcWeb | Wire::GrpcWebText => {
                if parts.headers.contains_key(&super::names::GRPC_STATUS) {
                    let s = grpc::status_from_trailers(&parts.headers);
                    self.rare().head_status = Some(s);
                }
                check_response(&parts, true, body.is_end_stream())
            }
            Wire::ConnectStream => connect::check_streaming_response(&parts),
            Wire::ConnectUnary if parts.status != http::StatusCode::OK => {
                self.state = State::ErrorBody(Box::new((parts, body, bytes::BytesMut::new())));
                return None;
            }
            Wire::ConnectUnary => match connect::check_unary_response(&parts) {
                Ok((md, trailers, enc)) => {
                    let max = self.dec.max_message();
                    let rare = self.rare();
                    rare.whole = Some(Whole::new(max, enc));
                    rare.end_status = Some(Status::ok().with_trailers(trailers));
                    Ok((md, Encoding::Identity))
                }
                Err(s) => Err(NoHead::Refused(s, Metadata::new())),
            },
        };
        Some(checked.map(|(md, enc)| {
            self.dec.set_encoding(enc);
            self.state = State::Body(body);
            md
        }))
    }

    /// The next message if it waits whole and the general path would hand it out as it
    /// is (see `envelope::Decoder::next_whole`).
    #[inline]
    pub(crate) fn next_whole(&mut self) -> Option<Bytes> {
        match self.rare.as_deref() {
            Some(r) if r.failed.is_some() || r.whole.is_some() => None,
            _ => self.dec.next_whole(),
        }
    }

    /// `next_whole`, lending the message in place (see `envelope::Decoder::lend_whole`):
    /// true when `lent_message` now holds it.
    #[inline]
    pub(crate) fn lend_whole(&mut self) -> bool {
        match self.rare.as_deref() {
            Some(r) if r.failed.is_some() || r.whole.is_some() => false,
            _ => self.dec.lend_whole(),
        }
    }

    #[inline]
    pub(crate) fn lent_message(&self) -> &[u8] {
        self.dec.lent_message()
    }

    #[inline]
    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, Status>> {
        if let Some(s) = self.failed() {
            return Poll::Ready(Err(s.clone()));
        }
        let r = self.next_message(cx);
        if let Poll::Ready(Err(s)) = &r {
            self.rare().failed = Some(s.clone());
        }
        r
    }

    fn next_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        loop {
            let next = match self.rare.as_deref_mut().and_then(|r| r.whole.as_mut()) {
                Some(w) => w.take(),
                None => self.dec.next()?,
            };
            if let Some(m) = next {
                return Poll::Ready(Ok(Some(m)));
            }
            if self.dec.ended() {
                // The frame that ends the stream in the body: the messages are over.
                return Poll::Ready(Ok(None));
            }
            if self.data_done {
                return Poll::Ready(Ok(None));
            }
            let State::Body(body) = &mut self.state else {
                return Poll::Ready(Ok(None));
            };
            let polled = body.poll_data(cx);
            if let Some(end) = self.take(polled) {
                return end;
            }
        }
    }

    /// Absorbs what h2 returned: a chunk goes into the decoder (`None`: decode on); the
    /// end of the data or an error is what the poll returns.
    fn take(
        &mut self,
        polled: Poll<Option<Result<Bytes, wire_http::Error>>>,
    ) -> Option<Poll<Result<Option<Bytes>, Status>>> {
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let State::Body(body) = &mut self.state {
                    // The window is given back as soon as the bytes leave h2: what we hold
                    // beyond it is at most one partial message, bounded by the size limit.
                    body.release(chunk.len());
                }
                if let Some(w) = self.whole() {
                    if let Err(s) = w.push(&chunk) {
                        return Some(Poll::Ready(Err(s)));
                    }
                    return None;
                }
                let chunk = match self.rare.as_deref_mut().and_then(|r| r.text.as_mut()) {
                    None => chunk,
                    Some(t) => match t.push(&chunk) {
                        Ok(c) => c,
                        Err(s) => return Some(Poll::Ready(Err(s))),
                    },
                };
                self.dec.push(chunk);
                None
            }
            Poll::Ready(Some(Err(e))) => Some(Poll::Ready(Err(self.transport(&e)))),
            Poll::Ready(None) => {
                self.data_done = true;
                if let Some(w) = self.whole() {
                    return w.finish().err().map(|s| Poll::Ready(Err(s)));
                }
                let text = self.rare.as_deref().and_then(|r| r.text.as_ref());
                if self.dec.has_partial() || text.is_some_and(|t| t.has_partial()) {
                    return Some(Poll::Ready(Err(Status::internal(
                        "stream ended in the middle of a message (truncated length-prefixed message)",
                    ))));
                }
                Some(Poll::Ready(Ok(None)))
            }
            Poll::Pending => Some(Poll::Pending),
        }
    }

    pub(crate) fn poll_status(&mut self, cx: &mut Context<'_>) -> Poll<Result<Status, Status>> {
        if let Some(s) = self.rare.as_deref_mut().and_then(|r| r.end_status.take()) {
            return Poll::Ready(Ok(s));
        }
        if let Some(end) = self.dec.take_end() {
            return Poll::Ready(Ok(match self.wire {
                Wire::GrpcWeb | Wire::GrpcWebText => grpc::status_from_web_trailers(&end),
                _ => connect::status_from_end_stream(&end),
            }));
        }
        let trailers = match &mut self.state {
            State::Body(body) => match body.poll_trailers(cx) {
                Poll::Ready(r) => r,
                Poll::Pending => return Poll::Pending,
            },
            State::Ended(s) => return Poll::Ready(Ok((**s).clone())),
            State::Head(..) | State::Reopening(_) | State::ErrorBody(..) => {
                return Poll::Ready(Err(Status::internal("no response head yet")))
            }
        };
        // gRPC-Web's trailers may come as HTTP trailers too (over HTTP/2), or, with an
        // empty body, in its head.
        let head_status = self.rare.as_deref_mut().and_then(|r| r.head_status.take());
        Poll::Ready(match (trailers, self.wire) {
            (Ok(None), Wire::GrpcWeb | Wire::GrpcWebText) if head_status.is_some() => {
                Ok(head_status.expect("checked"))
            }
            (Ok(Some(t)), Wire::Grpc | Wire::GrpcWeb | Wire::GrpcWebText) => {
                Ok(status_from_trailers(&t))
            }
            (Ok(_), Wire::ConnectStream) => Ok(Status::internal(
                "server closed the stream without an end-stream message",
            )),
            (Ok(_), _) => Ok(Status::new(
                Code::Internal,
                "server closed the stream without sending trailers",
            )),
            (Err(e), _) => Err(self.transport(&e)),
        })
    }

    /// True when the message just handed out is one a send should answer at once: the
    /// peer sent it alone (one message in its DATA frame) and nothing more has arrived, as
    /// in a request-response rhythm. Bytes still in the decoder, DATA that h2 already
    /// holds, or several messages in one frame are a burst in progress: its answers are
    /// queued and framed together rather than written one frame each.
    #[inline]
    pub(crate) fn answerable(&mut self) -> bool {
        if self.whole().is_some() {
            return true;
        }
        self.dec.chunk_messages() == 1 && self.drained()
    }

    fn drained(&mut self) -> bool {
        if self.dec.has_partial() {
            return false;
        }
        if self.data_done || self.failed().is_some() {
            return true;
        }
        let State::Body(body) = &mut self.state else {
            return true;
        };
        // A look without registering this task: the caller, handed a message, polls again
        // (with its own waker) before it waits.
        let polled = body.poll_data(&mut Context::from_waker(Waker::noop()));
        match self.take(polled) {
            None => false,
            Some(Poll::Pending) => true,
            Some(Poll::Ready(r)) => {
                if let Err(s) = r {
                    // Reported by the next poll, after the message in hand.
                    self.rare().failed = Some(s);
                }
                true
            }
        }
    }

    pub(crate) fn last_compressed(&self) -> bool {
        self.dec.last_compressed()
    }
}

/// For tests: an h2 server on `s` that accepts one stream and hands it over, serving the
/// connection on.
#[cfg(test)]
pub(crate) fn accept_one(
    s: tokio::io::DuplexStream,
) -> tokio::task::JoinHandle<(
    http::Request<h2::RecvStream>,
    h2::server::SendResponse<Bytes>,
)> {
    tokio::spawn(async move {
        let mut conn = h2::server::handshake(s).await.unwrap();
        let (req, respond) = conn.accept().await.unwrap().unwrap();
        tokio::spawn(async move { while conn.accept().await.is_some() {} });
        (req, respond)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::window::Receiving;

    fn framed(msgs: &[&[u8]]) -> Bytes {
        let mut b = bytes::BytesMut::new();
        for m in msgs {
            crate::protocol::envelope::encode(&mut b, m, Encoding::Identity).unwrap();
        }
        b.freeze()
    }

    async fn next(inb: &mut Receiver) -> Bytes {
        std::future::poll_fn(|cx| inb.poll_message(cx))
            .await
            .unwrap()
            .expect("a message")
    }

    /// Regression (issue 17): a message was taken for an answer (written at once, a DATA
    /// frame of its own) whenever the decoder had nothing left, though the peer's next
    /// DATA frames already waited in h2: a burst of small frames was answered frame for
    /// frame. Only a message its peer sent alone, with nothing behind it, is answerable.
    #[tokio::test]
    async fn only_a_lone_message_with_nothing_behind_it_is_answerable() {
        let (c, s) = tokio::io::duplex(1 << 16);
        let srv = accept_one(s);
        let (mut client, mut conn) = h2::client::handshake(c).await.unwrap();
        let mut ping = conn.ping_pong().expect("ping_pong");
        tokio::spawn(conn);
        let req = http::Request::post("http://x/p").body(()).unwrap();
        let (_resp, mut out) = client.send_request(req, false).unwrap();
        let (req, _respond) = srv.await.unwrap();
        let body = RecvBody::H2(req.into_body(), Receiving::uncounted());
        let mut inb = Receiver::server(Wire::Grpc, body, 1 << 20, Encoding::Identity, None);

        // Three messages in one DATA frame: a burst.
        out.send_data(framed(&[b"a", b"b", b"c"]), false).unwrap();
        for want in [&b"a"[..], b"b", b"c"] {
            assert_eq!(next(&mut inb).await, want);
            assert!(!inb.answerable(), "{want:?} came with others");
        }
        // One message alone, nothing behind it: its answer goes at once.
        out.send_data(framed(&[b"d"]), false).unwrap();
        assert_eq!(next(&mut inb).await, &b"d"[..]);
        assert!(inb.answerable());
        // Two lone messages in two frames, both in h2 (the PING's answer comes after the
        // server's connection read them): the first has more behind it.
        out.send_data(framed(&[b"e"]), false).unwrap();
        out.send_data(framed(&[b"f"]), false).unwrap();
        ping.ping(h2::Ping::opaque()).await.unwrap();
        assert_eq!(next(&mut inb).await, &b"e"[..]);
        assert!(!inb.answerable(), "f waits in h2 behind e");
        assert_eq!(next(&mut inb).await, &b"f"[..]);
        assert!(inb.answerable());
    }
}
