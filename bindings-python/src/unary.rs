//! Unary calls. A sequential unary call is latency: every hand-off between threads is a
//! wake-up, and on a busy machine each one waits for a CPU. So the Python thread has the
//! core open the call and write the whole request at once (from this thread, when the
//! connection is up), and one task on the core's runtime waits for the response and the
//! status and resolves the Python future once. The finished call is kept for `headers`,
//! `trailers` and the status.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use rillrpc::fork::ProcessLocal;
use rillrpc::{Bytes, Call, Metadata, Receive, Status};
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::client::single;
use crate::convert::{metadata_to_py, status_err, status_tuple, this_process};

#[derive(Default)]
pub struct Unary {
    /// Set once the task opened the call; kept after it ended.
    call: Option<Call>,
    /// The response, or the call's error; set when the task is over.
    result: Option<Result<Bytes, Status>>,
    /// `cancel` came before the task opened the call.
    cancelled: bool,
}

fn lock(m: &Mutex<Unary>) -> MutexGuard<'_, Unary> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The task's work: the call, opened (and its request written) on the Python thread,
/// from its response to its status; the outcome left in `slot`.
pub async fn run(opened: Result<Call, Status>, slot: Arc<Mutex<Unary>>) {
    let r = match opened {
        Ok(call) => drive(call, &slot).await,
        Err(s) => Err(s),
    };
    lock(&slot).result = Some(r);
}

async fn drive(mut call: Call, slot: &Mutex<Unary>) -> Result<Bytes, Status> {
    {
        let mut u = lock(slot);
        if u.cancelled {
            call.cancel();
        }
        u.call = Some(call);
    }
    let mut msgs = Vec::new();
    poll_fn(|cx| {
        let mut u = lock(slot);
        let call = u.call.as_mut().expect("stored above");
        loop {
            match call.poll_recv_batch(cx, &mut msgs, 64) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(s)) => return Poll::Ready(Err(s)),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await?;
    single(msgs)
}

/// A unary call started by `NativeChannel.unary`.
#[pyclass(module = "rillrpc._native", frozen)]
pub struct NativeUnary {
    /// Neither used nor dropped in a forked child (`rillrpc::fork`).
    unary: ProcessLocal<Arc<Mutex<Unary>>>,
}

impl NativeUnary {
    pub fn new(unary: Arc<Mutex<Unary>>) -> NativeUnary {
        NativeUnary {
            unary: ProcessLocal::new(unary),
        }
    }

    fn lock(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Unary>> {
        Ok(lock(this_process(py, &self.unary)?))
    }
}

impl Drop for NativeUnary {
    fn drop(&mut self) {
        // Garbage collected before its end: cancel it (the server sees CANCELLED).
        if let Ok(u) = self.unary.get() {
            cancel(u);
        }
    }
}

fn cancel(unary: &Mutex<Unary>) {
    let mut u = lock(unary);
    if u.result.is_some() {
        return;
    }
    u.cancelled = true;
    if let Some(c) = &mut u.call {
        c.cancel();
    }
}

#[pymethods]
impl NativeUnary {
    /// The response once the call is over (raises its `RpcError` if it failed); None
    /// while it runs.
    fn result(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        match &self.lock(py)?.result {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(PyBytes::new(py, b).unbind())),
            Some(Err(s)) => Err(status_err(py, s)),
        }
    }

    fn done(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.lock(py)?.result.is_some())
    }

    /// Cancelling a call inherited from a parent process does nothing: it is the parent's.
    fn cancel(&self) {
        if let Ok(u) = self.unary.get() {
            cancel(u);
        }
    }

    /// The response headers once the call is over (empty if none came); None while it runs.
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut u = self.lock(py)?;
        if u.result.is_none() {
            return Ok(None);
        }
        let md = match &mut u.call {
            Some(c) => {
                let mut cx = Context::from_waker(Waker::noop());
                match c.poll_headers(&mut cx) {
                    Poll::Ready(Ok(md)) => md,
                    _ => Metadata::new(),
                }
            }
            None => Metadata::new(),
        };
        Ok(Some(metadata_to_py(py, &md)?))
    }

    /// `(code, message, details, trailers)` once the call is over, else None.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let u = self.lock(py)?;
        let Some(r) = &u.result else { return Ok(None) };
        // An error is the call's own status, or the broken one-message rule.
        let ok = Status::ok();
        let s = match r {
            Err(s) => s,
            Ok(_) => u.call.as_ref().and_then(|c| c.status()).unwrap_or(&ok),
        };
        Ok(Some(status_tuple(py, s)?))
    }

    /// Whether the response arrived compressed on the wire.
    fn last_recv_compressed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self
            .lock(py)?
            .call
            .as_ref()
            .is_some_and(|c| c.last_recv_compressed()))
    }
}
