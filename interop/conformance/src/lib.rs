//! What the conformance suite's two programs under test share: the suite's messages, their
//! codecs (binary and JSON), and the size-prefixed framing the runner speaks on their stdin
//! and stdout.
//!
//! - `rill-conformance-server` (src/main.rs): ConformanceService on the rillrpc server,
//!   for `connectconformance --mode server`.
//! - `rill-conformance-client` (src/client/): the suite's client protocol on the rillrpc
//!   client, for `connectconformance --mode client`.

/// The connectrpc.conformance.v1 messages (prost, from the conformance module's protos).
/// Only messages: calls go through the rillrpc core.
// The protos also define what only the runner and the reference peers use.
#[cfg(conformance_protos)]
#[allow(dead_code)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/connectrpc.conformance.v1.rs"));

    /// `google.rpc.Status`, what `grpc-status-details-bin` carries. Three fields are not
    /// worth a copy of googleapis' protos.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RpcStatus {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, repeated, tag = "3")]
        pub details: Vec<prost_types::Any>,
    }
}

#[cfg(conformance_protos)]
pub mod codec;

#[cfg(conformance_protos)]
pub mod headers {
    //! The suite's headers (a name and its values, binary ones in base64) and rillrpc's
    //! metadata, both ways: what the server echoes and sends, what the client sends and
    //! reports.

    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine;
    use rillrpc::{Metadata, MetadataValue};

    use crate::pb::Header;

    /// Metadata as the suite's headers: one entry per name, values in arrival order,
    /// binary values in their base64 wire form.
    pub fn of_metadata(md: &Metadata) -> Vec<Header> {
        let mut out: Vec<Header> = Vec::new();
        for (name, value) in md.iter() {
            let value = match value {
                MetadataValue::Ascii(s) => s,
                MetadataValue::Binary(b) => STANDARD_NO_PAD.encode(&b),
            };
            match out.iter_mut().find(|h| h.name == name) {
                Some(h) => h.value.push(value),
                None => out.push(Header {
                    name: name.to_owned(),
                    value: vec![value],
                }),
            }
        }
        out
    }

    /// The suite's headers as metadata; a `-bin` header's values are given in base64.
    pub fn to_metadata(headers: &[Header]) -> Result<Metadata, String> {
        let mut md = Metadata::new();
        for h in headers {
            for v in &h.value {
                let added = if h.name.to_ascii_lowercase().ends_with("-bin") {
                    let b = STANDARD_NO_PAD
                        .decode(v.trim_end_matches('='))
                        .map_err(|e| {
                            format!("header {}: value {v:?} is not base64: {e}", h.name)
                        })?;
                    md.append_bin(&h.name, &b)
                } else {
                    md.append_ascii(&h.name, v)
                };
                added.map_err(|e| format!("header {}: {e}", h.name))?;
            }
        }
        Ok(md)
    }
}

pub mod delimited {
    //! A message after its size as a 32-bit big-endian integer: how the runner frames what
    //! it writes to a program's stdin and reads from its stdout.

    use prost::Message;
    use std::io::{ErrorKind, Read, Write};

    /// The runner's requests are a few hundred bytes plus, with TLS, certificates and keys;
    /// a client's request messages stay far below this too.
    pub const MAX_MESSAGE: usize = 16 << 20;

    /// The next message; `Ok(None)` at a clean end of input (nothing more, not even part of
    /// a size).
    pub fn read_next<M: Message + Default>(r: &mut impl Read) -> Result<Option<M>, String> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < len.len() {
            match r.read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err("the input ended inside a message's size".into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read a message's size: {e}")),
            }
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_MESSAGE {
            return Err(format!("a message claims {len} bytes"));
        }
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf)
            .map_err(|e| format!("cannot read a message: {e}"))?;
        M::decode(&buf[..])
            .map(Some)
            .map_err(|e| format!("cannot decode a message: {e}"))
    }

    /// Exactly one message: the end of input is an error.
    pub fn read_one<M: Message + Default>(r: &mut impl Read) -> Result<M, String> {
        read_next(r)?.ok_or_else(|| "the input ended before the message".into())
    }

    /// Writes and flushes one message. The caller holds the writer for the whole call, so
    /// concurrent writers never interleave a size and a body.
    pub fn write(w: &mut impl Write, msg: &impl Message) -> Result<(), String> {
        let body = msg.encode_to_vec();
        let len = u32::try_from(body.len()).map_err(|_| "the message is too large")?;
        w.write_all(&len.to_be_bytes())
            .and_then(|()| w.write_all(&body))
            .and_then(|()| w.flush())
            .map_err(|e| format!("cannot write a message: {e}"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip() {
            let msg = prost_types::Duration {
                seconds: 4242,
                nanos: 7,
            };
            let mut buf = Vec::new();
            write(&mut buf, &msg).unwrap();
            assert_eq!(&buf[..4], &(buf.len() as u32 - 4).to_be_bytes());
            write(&mut buf, &msg).unwrap();
            let mut r = &buf[..];
            assert_eq!(read_one::<prost_types::Duration>(&mut r).unwrap(), msg);
            assert_eq!(
                read_next::<prost_types::Duration>(&mut r).unwrap(),
                Some(msg)
            );
            assert_eq!(read_next::<prost_types::Duration>(&mut r).unwrap(), None);
        }

        #[test]
        fn a_short_message_is_an_error() {
            let r: Result<prost_types::Duration, _> = read_one(&mut &[0u8, 0, 0, 9, 1][..]);
            assert!(r.is_err());
        }

        #[test]
        fn a_short_size_is_an_error_not_the_end() {
            let r: Result<Option<prost_types::Duration>, _> = read_next(&mut &[0u8, 0][..]);
            assert!(r.is_err());
        }
    }
}
