//! The client: a channel and the calls it opens. Every operation first tries to complete
//! at once on the Python thread; when it cannot, it returns the notify's epoch and the
//! Python layer parks a future (see `reactor`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use rillrpc::fork::ProcessLocal;
use rillrpc::{
    Batched, Bytes, Call, CallOptions, Channel, ChannelOptions, ClientTls, Code, Encoding,
    HttpVersion, Protocol, Receive, Shape, Status,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::convert::{
    messages, metadata_from_py, metadata_to_py, named, pending, seconds_from_py, status_err,
    status_tuple, this_process,
};
use crate::reactor::{Notify, Reactor};
use crate::unary::{self, NativeUnary, Unary};

#[pyclass(module = "rillrpc._native", frozen)]
pub struct NativeChannel {
    /// Neither used nor dropped in a forked child (`rillrpc::fork`).
    chan: ProcessLocal<Channel>,
    protocol: Protocol,
    http_version: HttpVersion,
    http_get: bool,
}

#[pymethods]
impl NativeChannel {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (target, ca_pem=None, server_name=None, cert_pem=None, key_pem=None, protocol=None, http_version=None, http_get=false, authority=None, connection_receive_budget=None))]
    fn new(
        target: &str,
        ca_pem: Option<Vec<u8>>,
        server_name: Option<String>,
        cert_pem: Option<Vec<u8>>,
        key_pem: Option<Vec<u8>>,
        protocol: Option<&str>,
        http_version: Option<&str>,
        http_get: bool,
        authority: Option<String>,
        connection_receive_budget: Option<usize>,
    ) -> PyResult<NativeChannel> {
        let identity = match (cert_pem, key_pem) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "a client identity needs both certificate_chain and private_key",
                ))
            }
        };
        let tls = if ca_pem.is_some() || server_name.is_some() || identity.is_some() {
            Some(ClientTls {
                ca_pem,
                server_name,
                identity,
            })
        } else {
            None
        };
        let mut opts = ChannelOptions {
            tls,
            ..Default::default()
        };
        if let Some(name) = protocol {
            opts.protocol = named("protocol", name)?;
        }
        if let Some(name) = http_version {
            opts.http_version = named("http_version", name)?;
        }
        opts.http_get = http_get;
        opts.authority = authority;
        // 0: no budget.
        if let Some(n) = connection_receive_budget {
            opts.connection_receive_budget = (n > 0).then_some(n);
        }
        let (protocol, http_version) = (opts.protocol, opts.http_version);
        let chan = Channel::with_options(target, opts)
            .map_err(|e| PyValueError::new_err(e.message().to_owned()))?;
        Ok(NativeChannel {
            chan: ProcessLocal::new(chan),
            protocol,
            http_version,
            http_get,
        })
    }

    /// The name of the protocol every call speaks.
    #[getter]
    fn protocol(&self) -> &'static str {
        self.protocol.name()
    }

    /// The name of the HTTP version the calls travel over: "http1" or "http2".
    #[getter]
    fn http_version(&self) -> &'static str {
        self.http_version.name()
    }

    /// Whether Connect's GET is on: `Channel.http_get`.
    #[getter]
    fn http_get(&self) -> bool {
        self.http_get
    }

    /// Starts a call of `shape` (0..3, see `Shape`); never waits.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (method, shape, timeout=None, metadata=None, wait_for_ready=false, compression=None, max_recv_message_size=None, max_send_message_size=None, idempotency=None, content_subtype=None))]
    fn open(
        &self,
        py: Python<'_>,
        method: &str,
        shape: u32,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
        max_recv_message_size: Option<usize>,
        max_send_message_size: Option<usize>,
        idempotency: Option<&str>,
        content_subtype: Option<&str>,
    ) -> PyResult<NativeCall> {
        let opts = call_options(
            timeout,
            metadata,
            wait_for_ready,
            compression,
            max_recv_message_size,
            max_send_message_size,
            idempotency,
            content_subtype,
        )?;
        let shape =
            Shape::try_from(shape).map_err(|e| PyValueError::new_err(e.message().to_owned()))?;
        let call = self
            .chan(py)?
            .open(method, shape, opts)
            .map_err(|s| status_err(py, &s))?;
        let (notify, waker) = Notify::new();
        Ok(NativeCall {
            inner: ProcessLocal::new(Arc::new(Inner {
                call: Mutex::new(call),
                stash: Mutex::new(None),
            })),
            notify,
            waker,
        })
    }

    /// A unary call run wholly on the core's runtime: one task opens it, sends `request`,
    /// reads the response and the status, then resolves `fut` through `reactor`. The
    /// Python thread only converts the options and spawns: one hand-off each way.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (method, request, fut, reactor, timeout=None, metadata=None, wait_for_ready=false, compression=None, max_recv_message_size=None, max_send_message_size=None, idempotency=None, content_subtype=None))]
    fn unary(
        &self,
        py: Python<'_>,
        method: &str,
        request: &[u8],
        fut: Py<PyAny>,
        reactor: &Reactor,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
        max_recv_message_size: Option<usize>,
        max_send_message_size: Option<usize>,
        idempotency: Option<&str>,
        content_subtype: Option<&str>,
    ) -> PyResult<NativeUnary> {
        if !method.starts_with('/') {
            // The core checks this too, but only once the task runs; a typo should raise
            // here, where the call is made.
            let s = Status::new(
                Code::InvalidArgument,
                format!("method path must look like /package.Service/Method, got {method:?}"),
            );
            return Err(status_err(py, &s));
        }
        let opts = call_options(
            timeout,
            metadata,
            wait_for_ready,
            compression,
            max_recv_message_size,
            max_send_message_size,
            idempotency,
            content_subtype,
        )?;
        let unary = Arc::new(Mutex::new(Unary::default()));
        // With the connection up, the core writes the whole request from this thread, now;
        // the task only waits for the response. Opened with its request, the call can go
        // as Connect's GET (a channel with http_get, a call marked "no-side-effects").
        let opened = self
            .chan(py)?
            .open_with_request(method, Shape::Unary, opts, request);
        let task = unary::run(opened, unary.clone());
        let core = reactor.core.clone();
        reactor.core.runtime().spawn(async move {
            task.await;
            core.push(fut);
        });
        Ok(NativeUnary::new(unary))
    }

    /// Closing a channel inherited from a parent process does nothing: it is not this
    /// process's to close.
    fn close(&self) {
        if let Ok(c) = self.chan.get() {
            c.close();
        }
    }
}

impl NativeChannel {
    fn chan(&self, py: Python<'_>) -> PyResult<&Channel> {
        this_process(py, &self.chan)
    }
}

/// `CallOptions` from the keyword arguments every call takes.
#[allow(clippy::too_many_arguments)]
fn call_options(
    timeout: Option<f64>,
    metadata: Option<&Bound<'_, PyAny>>,
    wait_for_ready: bool,
    compression: Option<&str>,
    max_recv_message_size: Option<usize>,
    max_send_message_size: Option<usize>,
    idempotency: Option<&str>,
    content_subtype: Option<&str>,
) -> PyResult<CallOptions> {
    let mut opts = CallOptions::new()
        .metadata(metadata_from_py(metadata)?)
        .wait_for_ready(wait_for_ready);
    if let Some(name) = idempotency {
        opts = opts.idempotency(named("idempotency", name)?);
    }
    if let Some(t) = timeout {
        opts = opts.timeout(seconds_from_py(t, "timeout")?);
    }
    if let Some(c) = compression {
        let enc = Encoding::from_name(c).ok_or_else(|| {
            PyValueError::new_err(format!("unknown compression {c:?}: use 'gzip'"))
        })?;
        opts = opts.compression(enc);
    }
    if let Some(n) = max_recv_message_size {
        opts = opts.max_recv_message_size(n);
    }
    if let Some(n) = max_send_message_size {
        opts = opts.max_send_message_size(n);
    }
    if let Some(s) = content_subtype {
        // `application/grpc+<subtype>` (and gRPC-Web's, Connect's): "thrift" for Kitex's
        // gRPC transport. TTHeader calls are Thrift whatever this says.
        opts = opts.content_subtype(s);
    }
    Ok(opts)
}

#[pyclass(module = "rillrpc._native", frozen)]
pub struct NativeCall {
    /// Neither used nor dropped in a forked child (`rillrpc::fork`).
    inner: ProcessLocal<Arc<Inner>>,
    notify: Arc<Notify>,
    waker: Waker,
}

struct Inner {
    call: Mutex<Call>,
    /// The outcome of a call `drive` ran to its end.
    stash: Mutex<Option<Result<Bytes, Status>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NativeCall {
    fn inner(&self, py: Python<'_>) -> PyResult<&Arc<Inner>> {
        this_process(py, &self.inner)
    }

    fn lock(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Call>> {
        Ok(lock(&self.inner(py)?.call))
    }
}

/// The response of a single-response call that ended OK: the core fails such a call with
/// UNIMPLEMENTED when the server sends none or several, so exactly one is here.
pub(crate) fn single(mut msgs: Vec<Bytes>) -> Result<Bytes, Status> {
    msgs.pop().ok_or_else(|| {
        Status::new(
            Code::Internal,
            "a single-response call ended with no response",
        )
    })
}

impl Drop for NativeCall {
    fn drop(&mut self) {
        // A `drive` task may still hold the call: garbage collection cancels it
        // here instead of when that task lets go.
        let Ok(inner) = self.inner.get() else { return };
        let mut c = lock(&inner.call);
        if c.status().is_none() {
            c.cancel();
        }
    }
}

#[pymethods]
impl NativeCall {
    /// Queues `data` if there is room: True; False when the queue is full (wait with
    /// `send_ready`, then retry); raises `RpcError` when the call cannot send any more.
    fn try_send(&self, py: Python<'_>, data: &[u8]) -> PyResult<bool> {
        // Copied once, straight into the call's send buffer.
        self.lock(py)?
            .try_send_ref(data)
            .map_err(|s| status_err(py, &s))
    }

    /// Queues `data` into the call's open batch, which leaves at `flush`: 1 when it opened
    /// the batch (arrange one `flush` for the end of this turn of the loop), 2 when it
    /// joined the open one, 0 when the queue is full; raises `RpcError` when the call
    /// cannot send any more.
    fn try_send_batched(&self, py: Python<'_>, data: &[u8]) -> PyResult<u8> {
        match self.lock(py)?.try_send_batched(data) {
            Ok(Batched::Full) => Ok(0),
            Ok(Batched::Opened) => Ok(1),
            Ok(Batched::Joined) => Ok(2),
            Err(s) => Err(status_err(py, &s)),
        }
    }

    /// Sends what the open batch holds.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.lock(py)?.flush();
        Ok(())
    }

    /// None when `try_send` may succeed; the epoch (int) when not yet.
    fn send_ready(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let e = self.notify.epoch();
        let mut cx = Context::from_waker(&self.waker);
        match self.lock(py)?.poll_send_ready(&mut cx) {
            Poll::Ready(()) => Ok(py.None()),
            Poll::Pending => pending(py, e),
        }
    }

    fn close_send(&self, py: Python<'_>) -> PyResult<()> {
        self.lock(py)?.close_send();
        Ok(())
    }

    /// Cancelling a call inherited from a parent process does nothing: it is the parent's.
    fn cancel(&self) {
        if let Ok(inner) = self.inner.get() {
            lock(&inner.call).cancel();
        }
    }

    /// Every ready message (a list; empty = ended OK), or the epoch (int) when none is
    /// ready yet. Raises `RpcError` when the call failed.
    #[pyo3(signature = (max=4096))]
    fn recv_batch(&self, py: Python<'_>, max: usize) -> PyResult<Py<PyAny>> {
        let e = self.notify.epoch();
        let mut cx = Context::from_waker(&self.waker);
        let mut out = Vec::new();
        let r = self.lock(py)?.poll_recv_batch(&mut cx, &mut out, max);
        match r {
            Poll::Ready(Ok(_)) => Ok(messages(py, &out)?.into_any().unbind()),
            Poll::Ready(Err(s)) => Err(status_err(py, &s)),
            Poll::Pending => pending(py, e),
        }
    }

    /// The response headers (pairs), or the epoch (int) while they have not come.
    fn headers(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let e = self.notify.epoch();
        let mut cx = Context::from_waker(&self.waker);
        let r = self.lock(py)?.poll_headers(&mut cx);
        match r {
            Poll::Ready(Ok(md)) => Ok(metadata_to_py(py, &md)?.into_any().unbind()),
            Poll::Ready(Err(s)) => Err(status_err(py, &s)),
            Poll::Pending => pending(py, e),
        }
    }

    /// Whether the last response message arrived compressed on the wire.
    fn last_recv_compressed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.lock(py)?.last_recv_compressed())
    }

    /// `(code, message, details, trailers)` once the call ended, else None.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match self.lock(py)?.status() {
            Some(s) => Ok(Some(status_tuple(py, s)?)),
            None => Ok(None),
        }
    }

    /// Runs a single-response call to its end on the core's runtime (response, headers and
    /// status all in hand), then resolves `fut`: one wake-up of the loop per unary call.
    /// `unary_result` then gives the response. Do not poll the call meanwhile.
    fn drive(&self, py: Python<'_>, fut: Py<PyAny>, reactor: &Reactor) -> PyResult<()> {
        let inner = self.inner(py)?.clone();
        let core = reactor.core.clone();
        reactor.core.runtime().spawn(async move {
            let mut msgs = Vec::new();
            let r = std::future::poll_fn(|cx| loop {
                match lock(&inner.call).poll_recv_batch(cx, &mut msgs, 4096) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(s)) => return Poll::Ready(Err(s)),
                    Poll::Pending => return Poll::Pending,
                }
            })
            .await;
            *lock(&inner.stash) = Some(r.and_then(|()| single(msgs)));
            core.push(fut);
        });
        Ok(())
    }

    /// The response of a call `drive` ran to its end (raises its `RpcError`); None while
    /// it runs.
    fn unary_result(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        match &*lock(&self.inner(py)?.stash) {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(PyBytes::new(py, b).unbind())),
            Some(Err(s)) => Err(status_err(py, s)),
        }
    }

    /// Parks `fut` (resolved with None at the next wake) unless a wake came since `epoch`.
    fn park(&self, fut: Py<PyAny>, reactor: &Reactor, epoch: u64) -> bool {
        self.notify.park(fut, reactor, epoch)
    }
}
