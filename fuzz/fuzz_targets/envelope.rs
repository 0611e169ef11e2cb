//! The envelope decoder: the first byte picks gzip (bit 0), the end flag (bits 1-2: 1 gRPC-Web's,
//! 2 Connect's) and the chunk size (bits 3-7); the rest is the body, pushed in those chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rillrpc::fuzzing::envelope(data));
