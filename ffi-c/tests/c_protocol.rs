//! gRPC-Web, Connect and gRPC from C: a C client against the echo service on the rillrpc
//! core, a C server reporting each call's protocol, CORS preflights answered by a C server.

mod support;

use support::*;

#[test]
fn c_protocols() {
    let port = rill_echo();
    let prog = build("ffi-c/tests/c/protocol_test.c");
    let out = run(&prog, &[&format!("http://127.0.0.1:{port}")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("protocol_test: all passed"));
}
