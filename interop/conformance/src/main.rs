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

// `crate::pb` for the service module: the messages live in the crate's library, which the
// client program shares.
#[cfg(conformance_protos)]
use rill_conformance::pb;

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
    use rill_conformance::delimited;

    use crate::pb::{ServerCompatRequest, ServerCompatResponse};
    use crate::service;

    const HOST: &str = "127.0.0.1";

    pub fn run() -> Result<(), String> {
        let req: ServerCompatRequest = delimited::read_one(&mut std::io::stdin().lock())?;
        let mut opts = rillrpc::ServerOptions::default();
        if req.message_receive_limit > 0 {
            opts.max_recv_message_size = req.message_receive_limit as usize;
        }
        // The server never checks `protocol` or `http_version`: the core tells protocols
        // apart per request, so what one process serves is what the core speaks, and the
        // config file alone says which of those the runner should test.
        let mut pem_cert = Vec::new();
        if req.use_tls {
            let creds = req
                .server_creds
                .ok_or("use_tls is set but the request has no server_creds")?;
            pem_cert = creds.cert.clone();
            opts.tls = Some(rillrpc::ServerTls {
                cert_pem: creds.cert,
                key_pem: creds.key,
                // The CA that signed the runner's client certificate: mutual TLS.
                client_ca_pem: (!req.client_tls_cert.is_empty()).then_some(req.client_tls_cert),
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
        delimited::write(&mut std::io::stdout().lock(), &resp)?;
        rillrpc::runtime::block_on(service::serve(server));
        Ok(())
    }
}
