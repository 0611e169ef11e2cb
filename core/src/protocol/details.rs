//! Error details as each protocol carries them. gRPC sends a serialized `google.rpc.Status`
//! (code, message and a list of `google.protobuf.Any`) in `grpc-status-details-bin`;
//! Connect sends the same `Any` list as JSON (`{"type", "value"}`, the value base64). A
//! `Status` holds gRPC's bytes, so a call's details cross protocols unchanged: Connect reads
//! the `Any` list out of them and writes one back.
//!
//! Only these two messages are read and written, so a few lines of protobuf wire format
//! do it (`protobuf/encoding`: tag = field << 3 | wire type; varint 0, length-delimited 2).

use bytes::{BufMut, Bytes, BytesMut};

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
    while !r.0.is_empty() {
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
    while !r.0.is_empty() {
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
        b.put_u8(1 << 3);
        varint(&mut b, code as u64);
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

fn field(b: &mut BytesMut, number: u8, bytes: &[u8]) {
    b.put_u8(number << 3 | 2);
    varint(b, bytes.len() as u64);
    b.extend_from_slice(bytes);
}

fn varint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8(v as u8 | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self.0.split_first()?;
            self.0 = rest;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn tag(&mut self) -> Option<(u64, u8)> {
        let t = self.varint()?;
        Some((t >> 3, (t & 7) as u8))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }

    fn skip(&mut self, wire: u8) -> Option<()> {
        let n = match wire {
            0 => return self.varint().map(drop),
            1 => 8,
            2 => return self.bytes().map(drop),
            5 => 4,
            _ => return None,
        };
        self.0 = self.0.get(n..)?;
        Some(())
    }
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
