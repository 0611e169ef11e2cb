//! Connect: an end-stream message, a unary error body (JSON), a serialized google.rpc.Status's
//! details, a GET request's query.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rillrpc::fuzzing::connect(data));
