//! gRPC-Web's text mode (`application/grpc-web-text`), which browsers without binary
//! streaming reads use: the same byte stream as binary gRPC-Web, base64-encoded.
//! `PROTOCOL-WEB.md`: "the body ... is base64 encoded ... Padding may be used at the end of
//! each message or frame", so a stream is a run of padded base64 pieces, cut into chunks
//! wherever the transport cut it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Bytes, BytesMut};

use crate::status::Status;

/// Encodes one piece of the stream (each piece padded on its own).
pub(crate) fn encode(data: &[u8]) -> Bytes {
    Bytes::from(STANDARD.encode(data))
}

/// Decodes a text-mode stream chunk by chunk.
#[derive(Default)]
pub(crate) struct Decoder {
    /// Characters of a 4-character group not yet complete.
    carry: Vec<u8>,
}

impl Decoder {
    /// The bytes `chunk` completes.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Bytes, Status> {
        let mut input = std::mem::take(&mut self.carry);
        input.extend(chunk.iter().filter(|b| !b.is_ascii_whitespace()));
        let whole = input.len() / 4 * 4;
        self.carry = input[whole..].to_vec();
        let mut out = BytesMut::with_capacity(whole / 4 * 3);
        // A group with padding ends a piece; the next piece starts after it.
        let mut start = 0;
        for g in (0..whole).step_by(4) {
            let end = g + 4;
            if input[g..end].contains(&b'=') || end == whole {
                let decoded = STANDARD.decode(&input[start..end]).map_err(|e| {
                    Status::internal(format!("malformed grpc-web-text body (bad base64): {e}"))
                })?;
                out.extend_from_slice(&decoded);
                start = end;
            }
        }
        Ok(out.freeze())
    }

    /// Whether characters of an unfinished group are held: at the end of the body that is
    /// a truncated stream.
    pub(crate) fn has_partial(&self) -> bool {
        !self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_pieces_cut_anywhere_decode_whole() {
        // Two pieces, each padded ("hi" -> "aGk=", "abcd" -> "YWJjZA=="), then one that
        // needs none ("xyz" -> "eHl6"), cut at every point.
        let text = b"aGk=YWJjZA==eHl6";
        for cut in 0..=text.len() {
            let mut d = Decoder::default();
            let mut out = d.push(&text[..cut]).unwrap().to_vec();
            out.extend_from_slice(&d.push(&text[cut..]).unwrap());
            assert_eq!(out, b"hiabcdxyz", "cut at {cut}");
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn bad_base64_and_truncation_are_errors() {
        let mut d = Decoder::default();
        assert!(d.push(b"a*cd").is_err());
        let mut d = Decoder::default();
        d.push(b"aGk").unwrap();
        assert!(d.has_partial());
    }
}
