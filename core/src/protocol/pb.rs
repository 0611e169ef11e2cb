//! The little of protobuf's wire format the core reads and writes itself, for the few
//! messages a protocol defines around the payloads it never looks into: gRPC's
//! `google.rpc.Status` ([`super::details`]) and Kitex's `ErrorProto`
//! (`super::ttheader`). `protobuf/encoding`: a tag is `field << 3 | wire type`; wire type
//! 0 is a varint, 1 eight bytes, 2 a length and its bytes, 5 four bytes.

use bytes::{BufMut, BytesMut};

/// A length-delimited field (wire type 2) of `number`.
pub(crate) fn field(b: &mut BytesMut, number: u8, bytes: &[u8]) {
    b.put_u8(number << 3 | 2);
    varint(b, bytes.len() as u64);
    b.extend_from_slice(bytes);
}

/// A varint field (wire type 0) of `number`; an int32 goes as its sign extension.
pub(crate) fn varint_field(b: &mut BytesMut, number: u8, v: u64) {
    b.put_u8(number << 3);
    varint(b, v);
}

fn varint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8(v as u8 | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// Reads fields off the front of a message; each read is `None` past its end.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A base-128 varint of at most ten bytes.
    pub(crate) fn varint(&mut self) -> Option<u64> {
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

    /// A field's number and wire type.
    pub(crate) fn tag(&mut self) -> Option<(u64, u8)> {
        let t = self.varint()?;
        Some((t >> 3, (t & 7) as u8))
    }

    /// A length-delimited field's bytes.
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }

    /// Skips a field's value of wire type `wire` (groups, 3 and 4, are refused).
    pub(crate) fn skip(&mut self, wire: u8) -> Option<()> {
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
