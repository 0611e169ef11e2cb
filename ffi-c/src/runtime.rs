//! The library's runtime and version.

use std::ffi::c_char;

use crate::result::{guard, rill_result, Fail, RILL_OK};

/// Sets the number of worker threads of the library's private runtime (default: the
/// number of CPUs, at most 4). Call it before any other function that does I/O.
/// RILL_ERR_INVALID_ARGUMENT for 0, RILL_ERR_WRONG_STATE once the runtime has started.
#[no_mangle]
pub extern "C" fn rill_runtime_configure(worker_threads: u32) -> rill_result {
    guard(|| {
        if worker_threads == 0 || worker_threads > 1024 {
            return Err(Fail::invalid(format!(
                "worker_threads must be 1..=1024, got {worker_threads}"
            )));
        }
        if !rillrpc::runtime::configure_worker_threads(worker_threads as usize) {
            return Err(Fail::state("the runtime has already started"));
        }
        Ok(RILL_OK)
    })
}

/// The library version, e.g. "0.1.0". A static string: never free it.
#[no_mangle]
pub extern "C" fn rill_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
