//! A Thrift PingPong call's two ends (WIRE.md §1): the request is a TMessage CALL whose
//! args struct is the call's one message; the answer is a TMessage REPLY whose result
//! struct is the handler's one message, with metadata as the packet's string pairs (Kitex's
//! backward values), a biz status in them beside an empty result, or a TMessage EXCEPTION
//! for any other error.

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
use crate::transport::ttheader::pingpong::{msg_type, Reply};

const VERSION_1: u32 = 0x8001_0000;
const CALL: u8 = 1;
const REPLY: u8 = 2;
const EXCEPTION: u8 = 3;

/// A request's TMessage head: the method's name and the sequence id, and the args struct
/// after them.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) name: String,
    pub(crate) seq_id: i32,
    pub(crate) args: Bytes,
}

impl Call {
    /// Reads a TMessage CALL (strict Thrift Binary, as Kitex writes it).
    pub(crate) fn parse(mut m: Bytes) -> Result<Call, String> {
        if m.len() < 8 {
            return Err(format!(
                "a Thrift message of {} bytes is too short",
                m.len()
            ));
        }
        let word = m.get_u32();
        if word & 0xffff_0000 != VERSION_1 {
            return Err(format!(
                "not a strict Thrift Binary message (version word {word:#010x})"
            ));
        }
        let kind = (word & 0xff) as u8;
        if kind != CALL {
            return Err(format!("Thrift message type {kind}, not a CALL"));
        }
        let n = m.get_u32() as usize;
        if m.len() < n + 4 {
            return Err("a Thrift message name runs past the message".into());
        }
        let name = String::from_utf8(m.split_to(n).to_vec())
            .map_err(|_| "a Thrift message name that is not UTF-8".to_owned())?;
        let seq_id = m.get_i32();
        Ok(Call {
            name,
            seq_id,
            args: m,
        })
    }
}

/// A client's request: the TMessage CALL of `name`, `seq_id`, and the args struct.
pub(crate) fn call_message(name: &str, seq_id: i32, args: &[u8]) -> Bytes {
    let mut m = head(CALL, name, seq_id, args.len());
    m.put_slice(args);
    m.freeze()
}

/// A TMessage head of `kind`.
fn head(kind: u8, name: &str, seq_id: i32, body: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(12 + name.len() + body);
    b.put_u32(VERSION_1 | u32::from(kind));
    b.put_u32(name.len() as u32);
    b.put_slice(name.as_bytes());
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
            // A biz status's result is empty: Kitex's client ignores it.
            let result: &[u8] = if status.code() == Code::Ok {
                &self.result
            } else {
                b"\0"
            };
            let mut m = head(REPLY, &self.name, self.seq_id, result.len());
            m.put_slice(result);
            (REPLY, m.freeze())
        } else {
            let e = Exception::of(status).encode(self.name.as_bytes(), self.seq_id);
            (EXCEPTION, e)
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

    /// A client's answer to the call of `name`, coming on `rx`.
    pub(crate) fn reply(name: String, rx: oneshot::Receiver<Result<Reply, Status>>) -> Receiver {
        Receiver::Reply(Waiting {
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
        Poll::Ready(match read_reply(reply.message, &w.name) {
            Ok(result) => {
                w.result = Some(result);
                w.pairs = md.clone();
                Ok(md)
            }
            Err(s) => Err(NoHead::Ended(s.with_trailers(md.clone()), Some(md))),
        })
    }
}

/// The result struct of a REPLY to `name`, or the status its EXCEPTION (or a malformed
/// answer) says.
fn read_reply(mut m: Bytes, name: &str) -> Result<Bytes, Status> {
    if let Some(e) = Exception::decode(&m) {
        return Err(e.status());
    }
    let bad = |why: &str| Status::internal(format!("a PingPong answer that is {why}"));
    if m.len() < 8 {
        return Err(bad("too short"));
    }
    let word = m.get_u32();
    if word != VERSION_1 | u32::from(REPLY) {
        return Err(bad("no REPLY"));
    }
    let n = m.get_u32() as usize;
    if m.len() < n + 4 {
        return Err(bad("cut short"));
    }
    if m.split_to(n) != name.as_bytes() {
        return Err(bad("for another method"));
    }
    m.advance(4);
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
    }

    fn answered(status: Status, headers: Option<Metadata>) -> Reply {
        let (tx, rx) = oneshot::channel();
        let call = Call {
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

    #[test]
    fn an_answer_is_a_reply_a_biz_status_beside_an_empty_result_or_an_exception() {
        let mut md = Metadata::new();
        md.append_ascii("rpc-transit-echo-key", "value").unwrap();
        let ok = answered(Status::ok(), Some(md));
        // REPLY "PingPong" seq 7, then the result struct as the handler sent it.
        let mut want = vec![0x80, 0x01, 0x00, 0x02, 0, 0, 0, 8];
        want.extend(b"PingPong");
        want.extend([0, 0, 0, 7, 0x0c, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(ok.message, want);
        assert_eq!(ok.ints, [msg_type(2)]);
        assert_eq!(ok.strs[0].0, "RPC_TRANSIT_ECHO_KEY");

        let mut trailers = Metadata::new();
        trailers.append_ascii("biz-status", "5").unwrap();
        let biz = answered(
            Status::new(Code::Internal, "no").with_trailers(trailers),
            None,
        );
        assert_eq!(
            biz.message[biz.message.len() - 1..],
            [0x00],
            "an empty result"
        );
        assert!(biz.strs.contains(&("biz-message".into(), "no".into())));

        let err = answered(Status::new(Code::NotFound, "gone"), None);
        assert_eq!(err.ints, [msg_type(3)]);
        assert_eq!(err.message[..4], [0x80, 0x01, 0x00, 0x03]);
    }
}
