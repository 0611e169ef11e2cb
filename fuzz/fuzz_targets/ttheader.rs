//! TTHeader: Kitex's packets (PingPong and TTHeader Streaming frames), read from chunks
//! and written back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rillrpc::fuzzing::ttheader(data));
