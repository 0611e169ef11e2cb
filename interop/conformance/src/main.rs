//! The Connect conformance suite's server under test, on the rillrpc core.
//!
//!     connectconformance --mode server --conf server-config.yaml -- rill-conformance-server
//!
//! The runner starts one process per server configuration. Each reads a size-prefixed
//! `ServerCompatRequest` from stdin, starts a server on a free loopback port, writes a
//! size-prefixed `ServerCompatResponse` (host, port, certificate) to stdout, then serves
//! `connectrpc.conformance.v1.ConformanceService` until the runner kills it. Diagnostics go
//! to stderr, which the runner shows.

#[cfg(conformance_protos)]
mod service;

/// The connectrpc.conformance.v1 messages (prost, from the conformance module's protos).
/// Only messages: calls go through the rillrpc core.
// The protos also define what only the runner and the reference peers use.
#[cfg(conformance_protos)]
#[allow(dead_code)]
mod pb {
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
fn main() {
    if let Err(e) = compat::run() {
        eprintln!("rill-conformance-server: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(conformance_protos))]
fn main() {
    eprintln!(
        "rill-conformance-server: built without the conformance protos (the build could not \
         get them from Go: see its warning); `make test-conformance` builds the real server"
    );
    std::process::exit(2);
}

/// The runner's start-up exchange.
#[cfg(conformance_protos)]
mod compat {
    use prost::Message;
    use std::io::{Read, Write};

    use crate::pb::{ServerCompatRequest, ServerCompatResponse};
    use crate::service;

    /// The runner's request is a few hundred bytes plus, with TLS, a certificate and key.
    const MAX_REQUEST: usize = 1 << 20;
    const HOST: &str = "127.0.0.1";

    pub fn run() -> Result<(), String> {
        let req: ServerCompatRequest = read_delimited(&mut std::io::stdin().lock())?;
        let mut opts = rillrpc::ServerOptions::default();
        if req.message_receive_limit > 0 {
            opts.max_recv_message_size = req.message_receive_limit as usize;
        }
        // The server never checks `protocol` or `http_version`: the core tells protocols
        // apart per request, so what one process serves is what the core speaks, and the
        // config file alone says which of those the runner should test.
        let mut pem_cert = Vec::new();
        if req.use_tls {
            if !req.client_tls_cert.is_empty() {
                return Err("TLS client certificates are not supported".into());
            }
            let creds = req
                .server_creds
                .ok_or("use_tls is set but the request has no server_creds")?;
            pem_cert = creds.cert.clone();
            opts.tls = Some(rillrpc::ServerTls {
                cert_pem: creds.cert,
                key_pem: creds.key,
            });
        }
        let server = service::builder(opts)
            .bind(&format!("{HOST}:0"))
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let resp = ServerCompatResponse {
            host: HOST.into(),
            port: server.local_addr().port().into(),
            pem_cert,
        };
        write_delimited(&mut std::io::stdout().lock(), &resp)?;
        rillrpc::runtime::block_on(service::serve(server));
        Ok(())
    }

    /// A message after its size as a 32-bit big-endian integer.
    fn read_delimited<M: Message + Default>(r: &mut impl Read) -> Result<M, String> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)
            .map_err(|e| format!("cannot read the request's size: {e}"))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_REQUEST {
            return Err(format!("the request claims {len} bytes"));
        }
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf)
            .map_err(|e| format!("cannot read the request: {e}"))?;
        M::decode(&buf[..]).map_err(|e| format!("cannot decode the request: {e}"))
    }

    fn write_delimited(w: &mut impl Write, msg: &impl Message) -> Result<(), String> {
        let body = msg.encode_to_vec();
        let len = u32::try_from(body.len()).map_err(|_| "the response is too large")?;
        w.write_all(&len.to_be_bytes())
            .and_then(|()| w.write_all(&body))
            .and_then(|()| w.flush())
            .map_err(|e| format!("cannot write the response: {e}"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn delimited_round_trip() {
            let resp = ServerCompatResponse {
                host: HOST.into(),
                port: 4242,
                pem_cert: Vec::new(),
            };
            let mut buf = Vec::new();
            write_delimited(&mut buf, &resp).unwrap();
            assert_eq!(&buf[..4], &(buf.len() as u32 - 4).to_be_bytes());
            let back: ServerCompatResponse = read_delimited(&mut &buf[..]).unwrap();
            assert_eq!(back, resp);
        }

        #[test]
        fn a_short_request_is_an_error() {
            let r: Result<ServerCompatRequest, _> = read_delimited(&mut &[0u8, 0, 0, 9, 1][..]);
            assert!(r.is_err());
        }
    }
}
