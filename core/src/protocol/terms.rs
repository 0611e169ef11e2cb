//! The terms a call and a protocol share: how a call ends, how the peer ended it, and how
//! messages are framed. Every protocol says them in its own wire form.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, StatusCode};
use std::time::Duration;

use super::envelope::{self, Accepts, Encoding};
use crate::metadata::Metadata;
use crate::named::Named;
use crate::status::{Code, Status};

/// The protocol a call speaks, as a handler may ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// gRPC over HTTP/2.
    Grpc,
    /// gRPC-Web: gRPC with its trailers in the body, for browsers and HTTP/1.1.
    GrpcWeb,
    /// Connect, streaming or unary.
    Connect,
    /// Kitex's TTHeader transports over TCP, Thrift payloads: TTHeader Streaming (StreamX)
    /// for streaming calls, Thrift PingPong for unary ones.
    Ttheader,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Grpc,
        Protocol::GrpcWeb,
        Protocol::Connect,
        Protocol::Ttheader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc-web",
            Protocol::Connect => "connect",
            Protocol::Ttheader => "ttheader",
        }
    }
}

impl Named for Protocol {
    const ALL: &'static [Protocol] = &Protocol::ALL;

    fn name(self) -> &'static str {
        Protocol::name(self)
    }
}

/// A request the server accepts as a call.
pub(crate) struct Incoming {
    pub(crate) path: String,
    pub(crate) metadata: Metadata,
    pub(crate) timeout: Option<Duration>,
    pub(crate) encoding: Encoding,
    /// The encodings the client takes back.
    pub(crate) accepts: Accepts,
    /// The response's content type: the request's, parameters dropped.
    pub(crate) content_type: HeaderValue,
    /// The request's message when it came in the head (Connect's GET), still compressed
    /// if `encoding` says so.
    pub(crate) message: Option<Bytes>,
}

/// A request that is not a call at all: answered with an HTTP status and a short text
/// body (405, 415), and for a gRPC client with the status its headers carry too.
pub(crate) struct NotACall {
    pub(crate) status: StatusCode,
    pub(crate) why: &'static str,
    pub(crate) grpc_status: Option<Status>,
}

/// A call the server cannot take: its status, which the call's protocol says as it ends a
/// call that sent nothing.
pub(crate) struct Refusal {
    pub(crate) status: Status,
    /// The response's content type.
    pub(crate) content_type: HeaderValue,
    /// The encodings to offer (for an unknown one).
    pub(crate) accept: Option<&'static str>,
}

/// How a call ends abruptly, in the call's own terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abort {
    /// Abandoned: cancelled by either side, or past its deadline.
    Cancel,
    /// Nothing more is wanted from the peer, and nothing is wrong: the peer already ended
    /// the call, or this side has its whole answer.
    Finished,
}

/// How the sending side ends, after its messages.
#[derive(Clone, Debug)]
pub(crate) enum End {
    /// The client has sent everything (half-close).
    HalfClose,
    /// The server's final status, with its trailers.
    Status(Status),
}

/// How the peer ended a stream it was sending on, as the send side learns it.
#[derive(Clone, Debug)]
pub(crate) enum PeerEnd {
    /// The peer has its whole answer and needs nothing more (HTTP/2's RST_STREAM
    /// NO_ERROR after a complete response); the call's outcome is what it answered.
    Finished,
    /// The peer cancelled or the stream broke: the call ends with this status.
    Failed(Status),
}

/// Why a client's response has no head to read messages after.
#[derive(Clone, Debug)]
pub(crate) enum NoHead {
    /// The server ended the call in its head: the status, and the head's own metadata
    /// where it is not the status's (a Connect unary error's headers; `None` for gRPC's
    /// Trailers-Only response, whose one header block is both).
    Ended(Status, Option<Metadata>),
    /// The response cannot be read as this protocol (an HTTP error, another content type,
    /// an unknown encoding): this side ends the call with the status; the head's metadata.
    Refused(Status, Metadata),
    /// The stream broke first.
    Broken(Status),
}

/// How messages are framed into the send queue's shared buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// The length-prefixed envelope of gRPC, gRPC-Web and Connect streaming.
    Envelope,
    /// The bare message, compressed whole if at all: Connect unary's one message is the
    /// body.
    Bare,
    /// Nothing: the message travels in the request's head (Connect's GET, its URL), and
    /// the body is empty.
    InHead,
    /// A TTHeader Streaming DATA frame of a stream already open (a server's): this head,
    /// whose first four bytes (LENGTH) are rewritten to count what follows them, then the
    /// message. The connection writes the frames as the queue built them.
    Ttheader(Bytes),
}

impl Framing {
    /// Appends one framed message to `buf`.
    #[inline]
    pub(crate) fn frame(
        &self,
        buf: &mut BytesMut,
        msg: &[u8],
        enc: Encoding,
    ) -> Result<(), Status> {
        match self {
            Framing::Envelope => envelope::encode(buf, msg, enc),
            Framing::Bare => envelope::compress(buf, msg, enc),
            Framing::InHead => Ok(()),
            Framing::Ttheader(head) => {
                let len = ttheader_len(head, msg.len(), enc)?;
                buf.reserve(head.len() + msg.len());
                let at = buf.len();
                buf.extend_from_slice(head);
                buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
                buf.extend_from_slice(msg);
                Ok(())
            }
        }
    }

    /// The bytes framing adds before a message that travels as its own chunk (a large one,
    /// sent without a copy); `None` when the message must be copied into the buffer.
    pub(crate) fn prefix(&self, len: usize) -> Result<Option<Bytes>, Status> {
        match self {
            Framing::Envelope => Ok(Some(Bytes::copy_from_slice(&envelope::prefix(len)?))),
            Framing::Bare | Framing::InHead => Ok(None),
            Framing::Ttheader(head) => {
                let mut b = BytesMut::with_capacity(head.len());
                b.put_u32(ttheader_len(head, len, Encoding::Identity)?);
                b.put_slice(&head[4..]);
                Ok(Some(b.freeze()))
            }
        }
    }

    /// The most bytes framing adds to a message copied into the buffer (a compressed
    /// message's own size aside).
    pub(crate) fn overhead(&self) -> usize {
        match self {
            Framing::Envelope => envelope::PREFIX_LEN,
            Framing::Bare | Framing::InHead => 0,
            Framing::Ttheader(head) => head.len(),
        }
    }

    /// Where the message that `sent` bytes of `whole` (a chunk of whole framed messages)
    /// cut ends: the end of its frame, or of `whole` for a bare message.
    pub(crate) fn end_of_message(&self, whole: &[u8], sent: usize) -> usize {
        // Each frame's length, read at `at`: the bytes of the frame.
        let frame_len = |at: usize| -> Option<usize> {
            match self {
                Framing::Envelope => {
                    let b = whole.get(at + 1..at + envelope::PREFIX_LEN)?;
                    let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                    Some(envelope::PREFIX_LEN.saturating_add(len))
                }
                Framing::Ttheader(_) => {
                    let b = whole.get(at..at + 4)?;
                    Some(
                        4usize
                            .saturating_add(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize),
                    )
                }
                Framing::Bare | Framing::InHead => None,
            }
        };
        let mut at = 0;
        while let Some(n) = frame_len(at) {
            let end = at.saturating_add(n).min(whole.len());
            if end > sent {
                return end;
            }
            at = end;
        }
        whole.len()
    }
}

/// A TTHeader DATA frame's LENGTH for a message of `len` bytes after `head`. TTHeader
/// Streaming carries no compressed messages.
fn ttheader_len(head: &[u8], len: usize, enc: Encoding) -> Result<u32, Status> {
    if enc != Encoding::Identity {
        return Err(Status::internal(
            "TTHeader Streaming carries no compressed messages",
        ));
    }
    u32::try_from(head.len() - 4 + len).map_err(|_| {
        Status::new(
            Code::ResourceExhausted,
            format!("message of {len} bytes does not fit a TTHeader frame"),
        )
    })
}
