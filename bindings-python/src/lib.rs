//! `rillrpc._native`: the pyo3 layer under the `rillrpc` Python package. It translates
//! types and the async model (poll on the Python thread, park a future only when nothing
//! is ready); the protocol is the core's.

use pyo3::prelude::*;

mod client;
mod convert;
mod reactor;
mod server;
mod unary;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("VERSION", rillrpc::VERSION)?;
    // The size of the core's runtime, for a process that wants it smaller or larger than
    // the default (cores, at most 4); read once, before the runtime starts. One worker
    // saves thread switches on sequential unary calls, but halves streaming receive
    // (measured: 0.6-0.8M vs 1.8M msg/s server-streaming 16 B), so the default stays.
    if let Some(n) = std::env::var("RILLRPC_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        rillrpc::runtime::configure_worker_threads(n);
    }
    m.add_function(wrap_pyfunction!(convert::init, m)?)?;
    m.add_function(wrap_pyfunction!(convert::biz_status, m)?)?;
    m.add_function(wrap_pyfunction!(convert::status_error, m)?)?;
    m.add_class::<reactor::Reactor>()?;
    m.add_class::<client::NativeChannel>()?;
    m.add_class::<client::NativeCall>()?;
    m.add_class::<unary::NativeUnary>()?;
    m.add_class::<server::NativeServer>()?;
    m.add_class::<server::NativeServerCall>()?;
    Ok(())
}
