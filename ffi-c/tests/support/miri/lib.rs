//! The very source files of rillrpc-ffi, so their `#[cfg(test)]` tests are the ones Miri
//! runs (see Cargo.toml).

// Only the registry and its error type are used here, not the rest of result.rs.
#![allow(dead_code)]

#[path = "../../../src/result.rs"]
mod result;

#[path = "../../../src/registry.rs"]
mod registry;

/// What the registry takes from runtime.rs, which needs the core. No test here forks.
mod runtime {
    pub(crate) fn forks() -> u64 {
        0
    }

    pub(crate) fn made_before_fork() -> String {
        String::new()
    }
}
