//! What the conformance suite's two programs under test share: the suite's messages and the
//! size-prefixed framing the runner speaks on their stdin and stdout.
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
