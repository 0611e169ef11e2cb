//! gRPC-Web: a trailers frame's header lines, and text mode's base64 pushed in two chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rillrpc::fuzzing::grpc_web(data));
