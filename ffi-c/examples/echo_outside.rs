//! A diagnostic for bench/c/run.sh: the Rust core's echo server (the same handler as
//! `bench echo-server --impl rill`) with every call driven by one thread outside the
//! runtime's workers, as the C server's poll loop drives its calls. The C server compared
//! with this one shows the cost of the C ABI alone; compared with the usual Rust server
//! (a task per call on the workers) it also pays the thread hop.
//!     cargo run --release -p rillrpc-ffi --example echo_outside -- [PORT]
//! Prints "listening on ADDR"; serves until killed.

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::io::Write;

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "0".into());
    let server = rill_testkit::rill_echo::builder(rillrpc::ServerOptions::default())
        .bind(&format!("127.0.0.1:{port}"))
        .expect("bind");
    println!("listening on {}", server.local_addr());
    let _ = std::io::stdout().flush();
    rillrpc::runtime::block_on(async {
        let mut calls = FuturesUnordered::new();
        loop {
            tokio::select! {
                c = server.accept() => match c {
                    Some(c) => calls.push(rill_testkit::rill_echo::handle(c)),
                    None => break,
                },
                Some(()) = calls.next(), if !calls.is_empty() => {}
            }
        }
    });
}
