//! gRPC's header values: `grpc-timeout`, `grpc-message` (percent-decoding), binary metadata
//! (base64).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rillrpc::fuzzing::grpc_headers(data));
