//! The interop client on the rillrpc core, with the flags of every implementation's
//! interop client.
//!
//!     interop-client --server_host H --server_port P --test_case CASE
//!                    [--use_tls [--use_test_ca --ca_file F] [--server_host_override NAME]]
//!
//! Exit status: 0 passed, 1 failed, 2 bad usage, 3 the server lacks a feature the case
//! needs (the case's own probe said so).

use rill_interop::cases::{self, Outcome};
use rill_interop::flags::{self, Flags, Spec};
use rill_interop::tls;
use rillrpc::{Channel, ChannelOptions};
use std::time::Duration;

const SPEC: Spec = Spec {
    bools: &["use_tls", "use_test_ca"],
    values: &[
        "server_host",
        "server_port",
        "test_case",
        "server_host_override",
        "ca_file",
    ],
};

/// A case that has not ended by then has hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

fn usage() -> String {
    format!(
        "usage: interop-client --server_host H --server_port P --test_case CASE \
[--use_tls [--use_test_ca --ca_file FILE] [--server_host_override NAME]]\ntest cases: {}",
        cases::CASES.join(", ")
    )
}

fn main() {
    let f = match flags::parse(&SPEC, std::env::args().skip(1)) {
        Ok(Some(f)) => f,
        Ok(None) => {
            println!("{}", usage());
            return;
        }
        Err(e) => bad_usage(&e),
    };
    let case = f.str("test_case").unwrap_or("large_unary").to_owned();
    if !cases::CASES.contains(&case.as_str()) {
        bad_usage(&format!("unknown test case {case:?}"));
    }
    let ch = channel(&f).unwrap_or_else(|e| bad_usage(&e));
    let r = rillrpc::runtime::block_on(async {
        tokio::time::timeout(CASE_TIMEOUT, cases::run(&ch, &case))
            .await
            .unwrap_or_else(|_| Err(format!("no result after {CASE_TIMEOUT:?}")))
    });
    match r {
        Ok(Outcome::Pass(None)) => println!("PASS {case}"),
        Ok(Outcome::Pass(Some(note))) => println!("PASS {case}\nnote: {note}"),
        Ok(Outcome::Unsupported(why)) => {
            println!("N/A {case}\nnote: {why}");
            std::process::exit(3);
        }
        Err(why) => {
            eprintln!("FAIL {case}: {why}");
            std::process::exit(1);
        }
    }
}

fn bad_usage(e: &str) -> ! {
    eprintln!("interop-client: {e}\n{}", usage());
    std::process::exit(2);
}

fn channel(f: &Flags) -> Result<Channel, String> {
    let host = f.str("server_host").unwrap_or("localhost");
    let port = f.port("server_port", 10000)?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let mut opts = ChannelOptions::default();
    let scheme = if f.bool("use_tls") {
        let ca = if f.bool("use_test_ca") {
            Some(
                f.str("ca_file")
                    .ok_or("--use_test_ca needs --ca_file (the test CA's PEM file)")?,
            )
        } else {
            None
        };
        opts.tls = Some(tls::client(ca, f.str("server_host_override"))?);
        "https"
    } else {
        "http"
    };
    Channel::with_options(&format!("{scheme}://{host}:{port}"), opts).map_err(|e| e.to_string())
}
