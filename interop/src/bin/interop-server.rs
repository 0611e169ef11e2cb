//! The interop server on the rillrpc core.
//!
//!     interop-server [--port N] [--host ADDR] [--use_tls --tls_cert_file F --tls_key_file F]
//!
//! `--port 0` picks a free port. Prints `listening on ADDR` once it accepts connections.

use rill_interop::flags::{self, Spec};
use rill_interop::{service, tls};
use std::io::Write;
use std::sync::Arc;

const SPEC: Spec = Spec {
    bools: &["use_tls"],
    values: &["port", "host", "tls_cert_file", "tls_key_file"],
};

const USAGE: &str = "usage: interop-server [--port N] [--host ADDR] \
[--use_tls --tls_cert_file FILE --tls_key_file FILE]";

fn main() {
    if let Err(e) = serve() {
        eprintln!("interop-server: {e}\n{USAGE}");
        std::process::exit(2);
    }
}

fn serve() -> Result<(), String> {
    let Some(f) = flags::parse(&SPEC, std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let port = f.port("port", 10000)?;
    let host = f.str("host").unwrap_or("0.0.0.0");
    let mut opts = rillrpc::ServerOptions::default();
    if f.bool("use_tls") {
        let (Some(cert), Some(key)) = (f.str("tls_cert_file"), f.str("tls_key_file")) else {
            return Err("--use_tls needs --tls_cert_file and --tls_key_file".into());
        };
        opts.tls = Some(tls::server(cert, key)?);
    }
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let server = service::builder(opts)
        .bind(&addr)
        .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
    let server = Arc::new(server);
    println!("listening on {}", server.local_addr());
    let _ = std::io::stdout().flush();
    rillrpc::runtime::block_on(service::serve(server));
    Ok(())
}
