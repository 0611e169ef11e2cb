//! Thrift's `TApplicationException` in a TMessage of type EXCEPTION, Binary protocol: how
//! TTHeader Streaming says an error that is not a biz status (the payload of a TRAILER or
//! RST frame, WIRE.md §2.2 and §2.3), and PingPong over Thrift. PingPong over Kitex's
//! Protobuf says it with the same type and message in a protobuf message of its own
//! (Kitex's `ErrorProto`, `pkg/remote/codec/protobuf/error.proto`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::protocol::pb;
use crate::status::{Code, Status};

/// `TApplicationException` types (Apache Thrift's `TApplicationException.h`; Kitex adds
/// its own past 10, such as [`BIZ_CANCEL`]).
pub(crate) mod kind {
    pub(crate) const UNKNOWN_METHOD: i32 = 1;
    pub(crate) const INTERNAL_ERROR: i32 = 6;
}

/// ttstream's `errBizCancel`: the caller cancelled the stream (`exception.go`).
pub(crate) const BIZ_CANCEL: i32 = 12007;

const VERSION_1: u32 = 0x8001_0000;
const EXCEPTION: u32 = 3;
const T_STOP: u8 = 0;
const T_I32: u8 = 8;
const T_STRING: u8 = 11;

/// An exception as it travels: the TApplicationException's type and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exception {
    pub(crate) kind: i32,
    pub(crate) message: String,
}

impl Exception {
    /// How a non-OK status that is not a biz status ends a stream: an unknown method as
    /// UNKNOWN_METHOD, anything else as INTERNAL_ERROR, as Kitex's own server reports a
    /// handler's error.
    pub(crate) fn of(status: &Status) -> Exception {
        let kind = match status.code() {
            Code::Unimplemented => kind::UNKNOWN_METHOD,
            _ => kind::INTERNAL_ERROR,
        };
        Exception {
            kind,
            message: status.message().to_owned(),
        }
    }

    /// The status a client ends its call with for this exception: an unknown method as
    /// UNIMPLEMENTED, ttstream's cancel as CANCELLED, any other as INTERNAL.
    pub(crate) fn status(&self) -> Status {
        let code = match self.kind {
            kind::UNKNOWN_METHOD => Code::Unimplemented,
            BIZ_CANCEL => Code::Cancelled,
            _ => Code::Internal,
        };
        Status::new(code, self.message.clone())
    }

    /// The TMessage EXCEPTION carrying it: `name` the method, `seq_id` the stream's id.
    pub(crate) fn encode(&self, name: &[u8], seq_id: i32) -> Bytes {
        let mut b = BytesMut::with_capacity(32 + name.len() + self.message.len());
        b.put_u32(VERSION_1 | EXCEPTION);
        put_string(&mut b, name);
        b.put_i32(seq_id);
        b.put_u8(T_STRING);
        b.put_i16(1);
        put_string(&mut b, self.message.as_bytes());
        b.put_u8(T_I32);
        b.put_i16(2);
        b.put_i32(self.kind);
        b.put_u8(T_STOP);
        b.freeze()
    }

    /// Reads a TMessage EXCEPTION; `None` if the bytes are not one. Fields other than the
    /// message and type are skipped when they are strings or integers, and end the reading
    /// otherwise (what was read so far stands).
    pub(crate) fn decode(mut b: &[u8]) -> Option<Exception> {
        if b.remaining() < 4 || b.get_u32() != VERSION_1 | EXCEPTION {
            return None;
        }
        string(&mut b)?;
        if b.remaining() < 4 {
            return None;
        }
        b.advance(4);
        let mut e = Exception {
            kind: 0,
            message: String::new(),
        };
        while b.remaining() >= 1 {
            let t = b.get_u8();
            if t == T_STOP || b.remaining() < 2 {
                break;
            }
            let id = b.get_i16();
            match (t, id) {
                (T_STRING, 1) => e.message = String::from_utf8_lossy(string(&mut b)?).into(),
                (T_I32, 2) if b.remaining() >= 4 => e.kind = b.get_i32(),
                (T_STRING, _) => {
                    string(&mut b)?;
                }
                (T_I32, _) if b.remaining() >= 4 => b.advance(4),
                _ => break,
            }
        }
        Some(e)
    }
}

impl Exception {
    /// The `ErrorProto` message of a KitexProtobuf EXCEPTION (its body, after the head):
    /// `int32 TypeID = 1; string Message = 2;`.
    pub(crate) fn protobuf(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(16 + self.message.len());
        if self.kind != 0 {
            pb::varint_field(&mut b, 1, i64::from(self.kind) as u64);
        }
        if !self.message.is_empty() {
            pb::field(&mut b, 2, self.message.as_bytes());
        }
        b.freeze()
    }

    /// Reads an `ErrorProto`; `None` if the bytes are not a protobuf message. Other fields
    /// are skipped, as protobuf readers do.
    pub(crate) fn from_protobuf(b: &[u8]) -> Option<Exception> {
        let mut e = Exception {
            kind: 0,
            message: String::new(),
        };
        let mut r = pb::Reader(b);
        while !r.is_empty() {
            match r.tag()? {
                (1, 0) => e.kind = r.varint()? as i32,
                (2, 2) => e.message = String::from_utf8_lossy(r.bytes()?).into(),
                (_, wire) => r.skip(wire)?,
            }
        }
        Some(e)
    }
}

fn put_string(b: &mut BytesMut, s: &[u8]) {
    b.put_u32(s.len() as u32);
    b.put_slice(s);
}

fn string<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    if b.remaining() < 4 {
        return None;
    }
    let n = b.get_u32() as usize;
    if b.remaining() < n {
        return None;
    }
    let (s, rest) = b.split_at(n);
    *b = rest;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kitex's cancel RST payload (WIRE.md §2.3), message shortened: type 3 EXCEPTION,
    /// name "Echo", seq id 1, then field 1 the message and field 2 the type 12007.
    #[test]
    fn reads_kitexs_cancel_exception() {
        let bytes = [
            0x80, 0x01, 0x00, 0x03, 0, 0, 0, 4, b'E', b'c', b'h', b'o', 0, 0, 0, 1, //
            0x0b, 0x00, 0x01, 0, 0, 0, 3, b'b', b'y', b'e', //
            0x08, 0x00, 0x02, 0x00, 0x00, 0x2e, 0xe7, //
            0x00,
        ];
        let e = Exception::decode(&bytes).unwrap();
        assert_eq!((e.kind, e.message.as_str()), (BIZ_CANCEL, "bye"));
        assert_eq!(&Exception::encode(&e, b"Echo", 1)[..], &bytes[..]);
    }

    #[test]
    fn a_status_becomes_the_type_kitex_gives_it() {
        let e = Exception::of(&Status::new(Code::Unimplemented, "no such method"));
        assert_eq!(e.kind, kind::UNKNOWN_METHOD);
        let e = Exception::of(&Status::new(Code::NotFound, "gone"));
        assert_eq!((e.kind, e.message.as_str()), (kind::INTERNAL_ERROR, "gone"));
        assert_eq!(e.status().code(), Code::Internal);
        let back = Exception::of(&Status::new(Code::Unimplemented, "no")).status();
        assert_eq!(back.code(), Code::Unimplemented);
    }

    /// Kitex's pbError for a handler's error (`NewPbError(remote.InternalError, ...)`):
    /// field 1 the type 6, field 2 "gone"; and a negative type as protobuf writes an int32.
    #[test]
    fn a_protobuf_exception_is_kitexs_error_proto() {
        let e = Exception {
            kind: kind::INTERNAL_ERROR,
            message: "gone".into(),
        };
        let bytes = [0x08, 0x06, 0x12, 0x04, b'g', b'o', b'n', b'e'];
        assert_eq!(&e.protobuf()[..], &bytes[..]);
        assert_eq!(Exception::from_protobuf(&bytes), Some(e));
        let negative = Exception {
            kind: -1,
            message: String::new(),
        };
        let bytes = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(&negative.protobuf()[..], &bytes[..]);
        assert_eq!(Exception::from_protobuf(&bytes), Some(negative));
        // An unknown field of each wire type is skipped: 3 a varint, 4 bytes, 5 a fixed32,
        // 6 a fixed64.
        let skipped = [
            0x18, 0x01, 0x22, 0x01, b'x', 0x2d, 0, 0, 0, 0, 0x31, 0, 0, 0, 0, 0, 0, 0, 0, //
            0x08, 0x01,
        ];
        assert_eq!(Exception::from_protobuf(&skipped).unwrap().kind, 1);
    }

    #[test]
    fn bytes_that_are_not_an_error_proto_are_refused() {
        // A message whose length runs past the bytes.
        assert_eq!(Exception::from_protobuf(&[0x12, 0x05, b'x']), None);
        // A varint that never ends.
        assert_eq!(Exception::from_protobuf(&[0x08, 0xff]), None);
        assert_eq!(Exception::from_protobuf(&[0x08; 1]), None);
        // Wire type 3 (a group start), which ErrorProto does not have.
        assert_eq!(Exception::from_protobuf(&[0x0b]), None);
        // A fixed32 cut short.
        assert_eq!(Exception::from_protobuf(&[0x2d, 0, 0]), None);
    }

    #[test]
    fn bytes_that_are_not_an_exception_are_refused() {
        assert_eq!(Exception::decode(b""), None);
        // A CALL (type 1), not an EXCEPTION.
        assert_eq!(
            Exception::decode(&[0x80, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1]),
            None
        );
        // A name whose length runs past the bytes.
        assert_eq!(
            Exception::decode(&[0x80, 0x01, 0x00, 0x03, 0, 0, 0, 9, b'x']),
            None
        );
    }
}
