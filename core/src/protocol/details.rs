//! Error details as each protocol carries them. gRPC sends a serialized `google.rpc.Status`
//! (code, message and a list of `google.protobuf.Any`) in `grpc-status-details-bin`;
//! Connect sends the same `Any` list as JSON (`{"type", "value"}`, the value base64). A
//! `Status` holds gRPC's bytes, so a call's details cross protocols unchanged: Connect reads
//! the `Any` list out of them and writes one back.
//!
//! Only these two messages are read and written, so a few lines of protobuf wire format
//! do it ([`super::pb`]).

use bytes::{Bytes, BytesMut};

use super::pb::{field, varint_field, Reader};

use crate::status::Code;

/// One `google.protobuf.Any`: the message's type URL and its serialized bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Any {
    pub(crate) type_url: String,
    pub(crate) value: Bytes,
}

/// The `Any` list of a serialized `google.rpc.Status` (field 3); `None` if the bytes are
/// not one.
pub(crate) fn read(status: &[u8]) -> Option<Vec<Any>> {
    let mut out = Vec::new();
    let mut r = Reader(status);
    while !r.is_empty() {
        let (field, wire) = r.tag()?;
        match (field, wire) {
            (3, 2) => out.push(read_any(r.bytes()?)?),
            _ => r.skip(wire)?,
        }
    }
    Some(out)
}

fn read_any(b: &[u8]) -> Option<Any> {
    let mut r = Reader(b);
    let mut any = Any {
        type_url: String::new(),
        value: Bytes::new(),
    };
    while !r.is_empty() {
        match r.tag()? {
            (1, 2) => any.type_url = String::from_utf8(r.bytes()?.to_vec()).ok()?,
            (2, 2) => any.value = Bytes::copy_from_slice(r.bytes()?),
            (_, wire) => r.skip(wire)?,
        }
    }
    Some(any)
}

/// A serialized `google.rpc.Status` with this code, message and details.
pub(crate) fn write(code: Code, message: &str, details: &[Any]) -> Bytes {
    let mut b = BytesMut::new();
    if code != Code::Ok {
        varint_field(&mut b, 1, code as u64);
    }
    if !message.is_empty() {
        field(&mut b, 2, message.as_bytes());
    }
    for d in details {
        let mut any = BytesMut::new();
        field(&mut any, 1, d.type_url.as_bytes());
        field(&mut any, 2, &d.value);
        field(&mut b, 3, &any);
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_round_trips_its_details() {
        let d = vec![
            Any {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                value: Bytes::from_static(b"\x0a\x03why"),
            },
            Any {
                type_url: "type.googleapis.com/x.Y".into(),
                value: Bytes::new(),
            },
        ];
        let b = write(Code::NotFound, "gone", &d);
        // code 5, message "gone", then the first Any.
        assert_eq!(&b[..8], b"\x08\x05\x12\x04gone");
        assert_eq!(read(&b).unwrap(), d);
    }

    #[test]
    fn bytes_that_are_not_a_status_are_refused() {
        // A length past the end.
        assert_eq!(read(b"\x1a\x05ab"), None);
        // Wire type 7 does not exist.
        assert_eq!(read(b"\x0f"), None);
        // An unterminated varint.
        assert_eq!(read(b"\x08\xff"), None);
    }
}
