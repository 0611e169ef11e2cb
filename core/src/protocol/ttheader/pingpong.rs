//! A PingPong call's two ends (WIRE.md §1): the request is a message of type CALL whose
//! args are the call's one message; the answer is a REPLY whose result is the handler's one
//! message, with metadata as the packet's string pairs (Kitex's backward values), a biz
//! status in them beside an empty result, or an EXCEPTION for any other error. The message
//! is Thrift Binary (a strict TMessage, then the args or result struct) or Kitex's Protobuf
//! (`KitexProtobuf`: the same head under its own magic, then the request or response
//! message alone), as [`Payload`] tells.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::future::Future;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

use super::exception::Exception;
use super::metainfo::{biz_status, is_biz, metadata, push_biz_message, wire_pairs};
use crate::metadata::Metadata;
use crate::protocol::envelope::Encoding;
use crate::protocol::terms::{Abort, End, Framing, NoHead, PeerEnd};
use crate::status::{Code, Status};
use crate::transport::ttheader::buffered;
use crate::transport::ttheader::pingpong::{msg_type, Reply, KITEX_PROTOBUF};

const CALL: u8 = 1;
const REPLY: u8 = 2;
const EXCEPTION: u8 = 3;

/// What a PingPong message is encoded in, told by its first word: a strict Thrift Binary
/// TMessage (`80 01`, then the message type) or a KitexProtobuf message (`90 01`, Kitex's
/// `ProtobufV1Magic`, `pkg/remote/codec/protobuf`). Both go on with the method name (a u32
/// length and its bytes) and the sequence id (a u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Payload {
    Thrift,
    Protobuf,
}

impl Payload {
    /// The first word's high half (the low half is the message type), as the transport
    /// tells a message's start by it.
    fn magic(self) -> u32 {
        let [a, b] = match self {
            Payload::Thrift => buffered::VERSION_1,
            Payload::Protobuf => KITEX_PROTOBUF,
        };
        u32::from_be_bytes([a, b, 0, 0])
    }

    fn of(word: u32) -> Option<Payload> {
        [Payload::Thrift, Payload::Protobuf]
            .into_iter()
            .find(|p| word & 0xffff_0000 == p.magic())
    }

    /// The codec a handler sees the call in: the content subtypes of gRPC's `thrift` and
    /// `proto`.
    pub(crate) fn codec(self) -> &'static str {
        match self {
            Payload::Thrift => "thrift",
            Payload::Protobuf => "proto",
        }
    }

    /// What a client's call sends for its content subtype: KitexProtobuf for `proto`,
    /// Thrift otherwise (Kitex's TTHeader transports carry Thrift unless told protobuf).
    pub(crate) fn of_subtype(subtype: Option<&str>) -> Payload {
        match subtype {
            Some("proto") => Payload::Protobuf,
            _ => Payload::Thrift,
        }
    }
}

/// A message's head: its payload, type, method name and sequence id.
struct Head {
    payload: Payload,
    kind: u8,
    name: Bytes,
    seq_id: i32,
}

/// Reads a message's head off the front of `m`, leaving its body.
fn read_head(m: &mut Bytes) -> Result<Head, String> {
    if m.len() < 8 {
        return Err(format!(
            "a PingPong message of {} bytes is too short",
            m.len()
        ));
    }
    let word = m.get_u32();
    let payload = Payload::of(word).ok_or_else(|| {
        format!(
            "neither a strict Thrift Binary nor a KitexProtobuf message (first word {word:#010x})"
        )
    })?;
    let n = m.get_u32() as usize;
    if m.len() < n + 4 {
        return Err("a PingPong message's method name runs past the message".into());
    }
    let name = m.split_to(n);
    let seq_id = m.get_i32();
    Ok(Head {
        payload,
        kind: (word & 0xff) as u8,
        name,
        seq_id,
    })
}

/// A request's head: the method's name and the sequence id, and its args after them (the
/// args struct, or the request message).
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) payload: Payload,
    pub(crate) name: String,
    pub(crate) seq_id: i32,
    pub(crate) args: Bytes,
}

impl Call {
    /// Reads a CALL, Thrift (strict Binary, as Kitex writes it) or KitexProtobuf.
    pub(crate) fn parse(mut m: Bytes) -> Result<Call, String> {
        let head = read_head(&mut m)?;
        if head.kind != CALL {
            return Err(format!("PingPong message type {}, not a CALL", head.kind));
        }
        let name = String::from_utf8(head.name.to_vec())
            .map_err(|_| "a PingPong method name that is not UTF-8".to_owned())?;
        Ok(Call {
            payload: head.payload,
            name,
            seq_id: head.seq_id,
            args: m,
        })
    }
}

/// A client's request: the CALL of `name`, `seq_id`, and its args.
pub(crate) fn call_message(payload: Payload, name: &str, seq_id: i32, args: &[u8]) -> Bytes {
    let mut m = head(payload, CALL, name.as_bytes(), seq_id, args.len());
    m.put_slice(args);
    m.freeze()
}

/// A message head of `kind`, with room for a body of `body` bytes.
fn head(payload: Payload, kind: u8, name: &[u8], seq_id: i32, body: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(12 + name.len() + body);
    b.put_u32(payload.magic() | u32::from(kind));
    b.put_u32(name.len() as u32);
    b.put_slice(name);
    b.put_i32(seq_id);
    b
}

/// A PingPong call's sending end: a server's answer, or a client's request.
pub(crate) enum Sender {
    Answer(Answer),
    Ask(Ask),
}

/// A server's sending end: gathers the answer and hands it to the connection whole as the
/// call ends.
pub(crate) struct Answer {
    payload: Payload,
    name: String,
    seq_id: i32,
    headers: Option<Metadata>,
    /// The result struct (the queue frames it bare: the message as it is).
    result: BytesMut,
    reply: Option<oneshot::Sender<Reply>>,
}

impl Sender {
    pub(crate) fn framing(&self) -> Framing {
        Framing::Bare
    }

    /// The request or answer goes out whole: there is always room.
    pub(crate) fn poll_capacity(&mut self, want: usize) -> Poll<Result<usize, Status>> {
        Poll::Ready(Ok(want.max(1)))
    }

    pub(crate) fn send_head(&mut self, metadata: Option<Metadata>, _enc: Encoding) {
        if let (Sender::Answer(a), Some(md)) = (self, metadata) {
            a.headers = Some(md);
        }
    }

    pub(crate) fn send_data(&mut self, data: Bytes) {
        match self {
            Sender::Answer(a) => a.result.extend_from_slice(&data),
            Sender::Ask(a) => a.args.extend_from_slice(&data),
        }
    }

    pub(crate) fn send_end(&mut self, end: End) -> Result<(), Status> {
        match (self, end) {
            (Sender::Answer(a), End::Status(status)) => a.answer(&status),
            (Sender::Ask(a), End::HalfClose) => {
                if let Some(send) = a.send.take() {
                    send(a.args.split().freeze());
                }
            }
            _ => return Err(Status::internal("an end this side of the call cannot send")),
        }
        Ok(())
    }

    /// A client's whole request (its args struct, bare) and its half-close, handed on at
    /// once as it is; the bytes back from any other end, or one whose request went already.
    pub(crate) fn send_request_now(&mut self, data: Bytes) -> Result<(), Bytes> {
        let Sender::Ask(a) = self else {
            return Err(data);
        };
        match a.send.take() {
            Some(send) if a.args.is_empty() => {
                send(data);
                Ok(())
            }
            taken => {
                a.send = taken;
                Err(data)
            }
        }
    }

    /// Ends a call refused before it began with its status alone.
    pub(crate) fn refuse(self, status: &Status) {
        if let Sender::Answer(mut a) = self {
            a.answer(status);
        }
    }

    pub(crate) fn abort(&mut self, why: Abort) {
        // The connection waits for an answer to every request, so a call that ends without
        // its own still answers: with why. A client's request not sent yet never goes.
        match self {
            Sender::Answer(a) if why == Abort::Cancel => {
                a.answer(&Status::cancelled("the call was cancelled"))
            }
            Sender::Answer(_) => {}
            Sender::Ask(a) => a.send = None,
        }
    }

    /// A PingPong client cannot end a call but by closing the connection, which the call
    /// learns when its answer finds no one; a client's call ends with its answer.
    pub(crate) fn poll_peer_end(&mut self, _cx: &mut Context<'_>) -> Poll<PeerEnd> {
        Poll::Pending
    }
}

/// A client's sending end: gathers the request's args struct and, at the half-close, hands
/// it to `send`, which puts it on a connection.
pub(crate) struct Ask {
    args: BytesMut,
    send: Option<Box<dyn FnOnce(Bytes) + Send>>,
}

impl Ask {
    pub(crate) fn new(send: Box<dyn FnOnce(Bytes) + Send>) -> Ask {
        Ask {
            args: BytesMut::new(),
            send: Some(send),
        }
    }
}

impl Answer {
    pub(crate) fn new(call: &Call, reply: oneshot::Sender<Reply>) -> Answer {
        Answer {
            payload: call.payload,
            name: call.name.clone(),
            seq_id: call.seq_id,
            headers: None,
            result: BytesMut::new(),
            reply: Some(reply),
        }
    }

    /// Answers with `status`: the result on OK; an empty result beside a biz status; an
    /// exception otherwise.
    fn answer(&mut self, status: &Status) {
        let Some(tx) = self.reply.take() else {
            return;
        };
        // One set of pairs carries both (Kitex's backward values are a map): a trailer
        // stands for a header of its key.
        let mut md = self.headers.take().unwrap_or_default();
        for (k, _) in status.trailers().iter() {
            md.remove(k);
        }
        for (k, v) in status.trailers().iter() {
            let _ = md.append(k, v);
        }
        let mut strs = wire_pairs(&md);
        let (kind, message) = if status.code() == Code::Ok || is_biz(&md) {
            push_biz_message(&mut strs, &md, status);
            // A biz status's result is empty (Kitex's client ignores it): a Thrift struct
            // of no fields, a protobuf message of none.
            let result: &[u8] = match (status.code(), self.payload) {
                (Code::Ok, _) => &self.result,
                (_, Payload::Thrift) => b"\0",
                (_, Payload::Protobuf) => b"",
            };
            let mut m = head(
                self.payload,
                REPLY,
                self.name.as_bytes(),
                self.seq_id,
                result.len(),
            );
            m.put_slice(result);
            (REPLY, m.freeze())
        } else {
            let e = Exception::of(status);
            let (name, seq_id) = (self.name.as_bytes(), self.seq_id);
            let m = match self.payload {
                Payload::Thrift => e.encode(name, seq_id),
                Payload::Protobuf => {
                    let body = e.protobuf();
                    let mut m = head(Payload::Protobuf, EXCEPTION, name, seq_id, body.len());
                    m.put_slice(&body);
                    m.freeze()
                }
            };
            (EXCEPTION, m)
        };
        let _ = tx.send(Reply {
            strs,
            ints: vec![msg_type(kind)],
            message,
        });
    }
}

/// A PingPong call's receiving end: a server's request (its args struct, then the end), or
/// a client's answer to come.
pub(crate) enum Receiver {
    Request(Option<Bytes>),
    Reply(Waiting),
}

/// A client's answer: on its way, then read.
pub(crate) struct Waiting {
    payload: Payload,
    name: String,
    rx: oneshot::Receiver<Result<Reply, Status>>,
    result: Option<Bytes>,
    /// The answer's pairs: a PingPong answer has one set, the call's headers and its
    /// trailers both (as gRPC's Trailers-Only block is).
    pairs: Metadata,
}

impl Receiver {
    pub(crate) fn request(args: Bytes) -> Receiver {
        Receiver::Request(Some(args))
    }

    /// A client's answer to the call of `name` in `payload`, coming on `rx`.
    pub(crate) fn reply(
        payload: Payload,
        name: String,
        rx: oneshot::Receiver<Result<Reply, Status>>,
    ) -> Receiver {
        Receiver::Reply(Waiting {
            payload,
            name,
            rx,
            result: None,
            pairs: Metadata::new(),
        })
    }

    pub(crate) fn poll_message(&mut self) -> Poll<Result<Option<Bytes>, Status>> {
        match self {
            Receiver::Request(args) => Poll::Ready(Ok(args.take())),
            Receiver::Reply(w) => Poll::Ready(Ok(w.result.take())),
        }
    }

    /// A client's status after its answer's result: OK, with the answer's pairs as its
    /// trailers (an error ended the call in the head).
    pub(crate) fn poll_status(&mut self) -> Poll<Result<Status, Status>> {
        Poll::Ready(match self {
            Receiver::Reply(w) => Ok(Status::ok().with_trailers(std::mem::take(&mut w.pairs))),
            Receiver::Request(_) => Err(Status::internal("a server reads no status")),
        })
    }

    /// A client's answer head: the answer's pairs (backward values), or the status that
    /// ended the call in the answer (a biz status, an exception) or before it.
    pub(crate) fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Metadata, NoHead>> {
        let Receiver::Reply(w) = self else {
            return Poll::Ready(Ok(Metadata::new()));
        };
        let reply = match std::pin::Pin::new(&mut w.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Ok(r))) => r,
            Poll::Ready(Ok(Err(s))) => return Poll::Ready(Err(NoHead::Broken(s))),
            Poll::Ready(Err(_)) => {
                let s = Status::cancelled("the call ended before its answer came");
                return Poll::Ready(Err(NoHead::Broken(s)));
            }
        };
        let md = metadata(&reply.strs);
        if let Some(biz) = biz_status(&reply.strs) {
            return Poll::Ready(Err(NoHead::Ended(biz, Some(md))));
        }
        Poll::Ready(match read_reply(reply.message, w.payload, &w.name) {
            Ok(result) => {
                w.result = Some(result);
                w.pairs = md.clone();
                Ok(md)
            }
            Err(s) => Err(NoHead::Ended(s.with_trailers(md.clone()), Some(md))),
        })
    }
}

/// The result of a REPLY to `name` in `payload`, or the status its EXCEPTION (or a
/// malformed answer) says.
fn read_reply(mut m: Bytes, payload: Payload, name: &str) -> Result<Bytes, Status> {
    if payload == Payload::Thrift {
        if let Some(e) = Exception::decode(&m) {
            return Err(e.status());
        }
    }
    let bad = |why: &str| Status::internal(format!("a PingPong answer that is {why}"));
    let head = read_head(&mut m).map_err(|e| bad(&e))?;
    if head.payload != payload {
        return Err(bad("in another encoding than its request"));
    }
    if head.kind == EXCEPTION && payload == Payload::Protobuf {
        let e = Exception::from_protobuf(&m).ok_or_else(|| bad("an unreadable exception"))?;
        return Err(e.status());
    }
    if head.kind != REPLY {
        return Err(bad("no REPLY"));
    }
    if head.name != name.as_bytes() {
        return Err(bad("for another method"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WIRE.md §1.2: the TMessage of Kitex's PingPong call, its args struct cut short.
    #[test]
    fn reads_kitexs_call_and_refuses_what_is_not_one() {
        let call = Bytes::from_static(&[
            0x80, 0x01, 0x00, 0x01, 0, 0, 0, 8, b'P', b'i', b'n', b'g', b'P', b'o', b'n', b'g', 0,
            0, 0, 1, 0x0c, 0x00, 0x01, 0x00, 0x00,
        ]);
        let c = Call::parse(call).unwrap();
        assert_eq!((c.name.as_str(), c.seq_id), ("PingPong", 1));
        assert_eq!(c.payload, Payload::Thrift);
        assert_eq!(&c.args[..], [0x0c, 0x00, 0x01, 0x00, 0x00]);
        // A REPLY, not a CALL.
        let reply = Bytes::from_static(&[0x80, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(Call::parse(reply).unwrap_err().contains("not a CALL"));
        // An old non-strict message (a name length first).
        let old = Bytes::from_static(&[0, 0, 0, 1, b'x', 1, 0, 0, 0, 1]);
        assert!(Call::parse(old).unwrap_err().contains("strict"));
        // A name that runs past the message.
        let long = Bytes::from_static(&[0x80, 0x01, 0x00, 0x01, 0, 0, 0, 99, b'x', 0, 0, 0]);
        assert!(Call::parse(long).unwrap_err().contains("runs past"));
        // Too short for a head.
        let short = Bytes::from_static(&[0x80, 0x01, 0x00, 0x01, 0, 0, 0]);
        assert!(Call::parse(short).unwrap_err().contains("too short"));
    }

    /// WIRE.md §1.6: Kitex's KitexProtobuf call (`ProtobufV1Magic` 0x9001 and CALL, name
    /// "PingPong", seq id 1), then the request message alone: field 1 `payload` "hi", field
    /// 2 `count` 3.
    #[test]
    fn reads_kitexs_protobuf_call() {
        let call = Bytes::from_static(&[
            0x90, 0x01, 0x00, 0x01, 0, 0, 0, 8, b'P', b'i', b'n', b'g', b'P', b'o', b'n', b'g', 0,
            0, 0, 1, 0x0a, 0x02, b'h', b'i', 0x10, 0x03,
        ]);
        let c = Call::parse(call).unwrap();
        assert_eq!((c.name.as_str(), c.seq_id), ("PingPong", 1));
        assert_eq!((c.payload, c.payload.codec()), (Payload::Protobuf, "proto"));
        assert_eq!(&c.args[..], [0x0a, 0x02, b'h', b'i', 0x10, 0x03]);
        // An empty request message (every field its default) is an empty body.
        let empty = Bytes::from_static(&[0x90, 0x01, 0x00, 0x01, 0, 0, 0, 1, b'E', 0, 0, 0, 2]);
        assert!(Call::parse(empty).unwrap().args.is_empty());
        // A KitexProtobuf REPLY, not a CALL.
        let reply = Bytes::from_static(&[0x90, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(Call::parse(reply).unwrap_err().contains("not a CALL"));
        // `90 02`: neither magic.
        let other = Bytes::from_static(&[0x90, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(Call::parse(other).unwrap_err().contains("0x90020001"));
        // The client's own request is the same bytes.
        let mine = call_message(Payload::Protobuf, "PingPong", 1, b"\x0a\x02hi\x10\x03");
        assert_eq!(Call::parse(mine).unwrap().args, b"\x0a\x02hi\x10\x03"[..]);
    }

    fn answered(payload: Payload, status: Status, headers: Option<Metadata>) -> Reply {
        let (tx, rx) = oneshot::channel();
        let call = Call {
            payload,
            name: "PingPong".into(),
            seq_id: 7,
            args: Bytes::new(),
        };
        let mut s = Sender::Answer(Answer::new(&call, tx));
        s.send_head(headers, Encoding::Identity);
        s.send_data(Bytes::from_static(&[0x0c, 0x00, 0x00, 0x00, 0x00]));
        s.send_end(End::Status(status)).unwrap();
        rx.blocking_recv().unwrap()
    }

    fn biz_error() -> Status {
        let mut trailers = Metadata::new();
        trailers.append_ascii("biz-status", "5").unwrap();
        Status::new(Code::Internal, "no").with_trailers(trailers)
    }

    #[test]
    fn an_answer_is_a_reply_a_biz_status_beside_an_empty_result_or_an_exception() {
        let mut md = Metadata::new();
        md.append_ascii("rpc-transit-echo-key", "value").unwrap();
        let ok = answered(Payload::Thrift, Status::ok(), Some(md));
        // REPLY "PingPong" seq 7, then the result struct as the handler sent it.
        let mut want = vec![0x80, 0x01, 0x00, 0x02, 0, 0, 0, 8];
        want.extend(b"PingPong");
        want.extend([0, 0, 0, 7, 0x0c, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(ok.message, want);
        assert_eq!(ok.ints, [msg_type(2)]);
        assert_eq!(ok.strs[0].0, "RPC_TRANSIT_ECHO_KEY");

        let biz = answered(Payload::Thrift, biz_error(), None);
        assert_eq!(
            biz.message[biz.message.len() - 1..],
            [0x00],
            "an empty result"
        );
        assert!(biz.strs.contains(&("biz-message".into(), "no".into())));

        let err = answered(Payload::Thrift, Status::new(Code::NotFound, "gone"), None);
        assert_eq!(err.ints, [msg_type(3)]);
        assert_eq!(err.message[..4], [0x80, 0x01, 0x00, 0x03]);
    }

    /// A KitexProtobuf answer: the REPLY head under `90 01`, then the response message; a
    /// biz status beside an empty message; an exception as Kitex's `ErrorProto`.
    #[test]
    fn a_protobuf_answer_is_kitexs() {
        let head = |kind: u8| {
            let mut h = vec![0x90, 0x01, 0x00, kind, 0, 0, 0, 8];
            h.extend(b"PingPong");
            h.extend([0, 0, 0, 7]);
            h
        };
        let ok = answered(Payload::Protobuf, Status::ok(), None);
        let mut want = head(REPLY);
        want.extend([0x0c, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(ok.message, want);

        let biz = answered(Payload::Protobuf, biz_error(), None);
        assert_eq!(biz.message, head(REPLY), "an empty message");
        assert!(biz.strs.contains(&("biz-status".into(), "5".into())));

        // Type 6 (INTERNAL_ERROR), message "gone".
        let err = answered(Payload::Protobuf, Status::new(Code::NotFound, "gone"), None);
        let mut want = head(EXCEPTION);
        want.extend([0x08, 0x06, 0x12, 0x04, b'g', b'o', b'n', b'e']);
        assert_eq!((err.message, err.ints), (want.into(), vec![msg_type(3)]));
    }

    /// A client reads a KitexProtobuf REPLY's message, and an EXCEPTION as its status: an
    /// unknown method (type 1) as UNIMPLEMENTED.
    #[test]
    fn a_client_reads_a_protobuf_reply_or_exception() {
        let mut reply = head(Payload::Protobuf, REPLY, b"PingPong", 1, 2);
        reply.put_slice(&[0x0a, 0x00]);
        let got = read_reply(reply.clone().freeze(), Payload::Protobuf, "PingPong");
        assert_eq!(got.unwrap(), [0x0a, 0x00][..]);
        let bad = read_reply(reply.clone().freeze(), Payload::Protobuf, "Echo").unwrap_err();
        assert!(bad.message().contains("for another method"), "{bad:?}");
        let bad = read_reply(reply.freeze(), Payload::Thrift, "PingPong").unwrap_err();
        assert!(bad.message().contains("another encoding"), "{bad:?}");

        let mut exc = head(Payload::Protobuf, EXCEPTION, b"PingPong", 1, 0);
        exc.put_slice(&[0x08, 0x01, 0x12, 0x02, b'n', b'o']);
        let s = read_reply(exc.freeze(), Payload::Protobuf, "PingPong").unwrap_err();
        assert_eq!((s.code(), s.message()), (Code::Unimplemented, "no"));
        // An ErrorProto cut short.
        let mut cut = head(Payload::Protobuf, EXCEPTION, b"PingPong", 1, 0);
        cut.put_slice(&[0x12, 0x09, b'n']);
        let s = read_reply(cut.freeze(), Payload::Protobuf, "PingPong").unwrap_err();
        assert!(s.message().contains("unreadable exception"), "{s:?}");
    }
}
