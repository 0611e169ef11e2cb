//! The very source files of rillrpc-ffi, so their `#[cfg(test)]` tests are the ones Miri
//! runs (see Cargo.toml).

// Only the registry and its error type are used here, not the rest of result.rs.
#![allow(dead_code)]

#[path = "../../../src/result.rs"]
mod result;

#[path = "../../../src/registry.rs"]
mod registry;
