//! The server: bound at construction, calls pulled with `accept` (polled on the Python
//! thread like the client's operations).

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use rillrpc::fork::ProcessLocal;
use rillrpc::{
    Cors, Encoding, Receive, Server, ServerBuilder, ServerCall, ServerOptions, ServerTls, Shape,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::convert::{
    messages, metadata_from_py, metadata_to_py, named, pending, seconds_from_py, status_err,
    status_from_py, this_process,
};
use crate::reactor::{Notify, Reactor};

#[pyclass(module = "rillrpc._native", frozen)]
pub struct NativeServer {
    /// Neither used nor dropped in a forked child (`rillrpc::fork`).
    server: ProcessLocal<Arc<Server>>,
    notify: Arc<Notify>,
    waker: Waker,
}

#[pymethods]
impl NativeServer {
    /// Binds `address` and starts serving `methods`: `(path, shape, idempotency)`, the last
    /// a name ("unknown", "no-side-effects", "idempotent"); a unary method free of side
    /// effects answers Connect's GET too.
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (address, methods, max_concurrent_streams=None, max_recv_message_size=None, cert_pem=None, key_pem=None, cors=None, cors_max_age=None, client_ca_pem=None, handshake_timeout=None, max_connections=None, max_connection_age=None, max_connection_age_grace=None, max_connection_idle=None, header_read_timeout=None, permit_keepalive_time=None, permit_keepalive_without_calls=None, keepalive_time=None, keepalive_timeout=None, send_budget=None, connection_send_budget=None, receive_budget=None, connection_receive_budget=None))]
    fn new(
        address: &str,
        methods: Vec<(String, u32, String)>,
        max_concurrent_streams: Option<u32>,
        max_recv_message_size: Option<usize>,
        cert_pem: Option<Vec<u8>>,
        key_pem: Option<Vec<u8>>,
        cors: Option<Vec<String>>,
        cors_max_age: Option<f64>,
        client_ca_pem: Option<Vec<u8>>,
        handshake_timeout: Option<f64>,
        max_connections: Option<usize>,
        max_connection_age: Option<f64>,
        max_connection_age_grace: Option<f64>,
        max_connection_idle: Option<f64>,
        header_read_timeout: Option<f64>,
        permit_keepalive_time: Option<f64>,
        permit_keepalive_without_calls: Option<bool>,
        keepalive_time: Option<f64>,
        keepalive_timeout: Option<f64>,
        send_budget: Option<usize>,
        connection_send_budget: Option<usize>,
        receive_budget: Option<usize>,
        connection_receive_budget: Option<usize>,
    ) -> PyResult<NativeServer> {
        let mut opts = ServerOptions::default();
        let seconds = |t: Option<f64>, what| t.map(|t| seconds_from_py(t, what)).transpose();
        if let Some(t) = seconds(handshake_timeout, "handshake_timeout")? {
            opts.handshake_timeout = t;
        }
        opts.max_connections = max_connections;
        opts.max_connection_age = seconds(max_connection_age, "max_connection_age")?;
        opts.max_connection_age_grace =
            seconds(max_connection_age_grace, "max_connection_age_grace")?;
        opts.max_connection_idle = seconds(max_connection_idle, "max_connection_idle")?;
        if let Some(t) = seconds(header_read_timeout, "header_read_timeout")? {
            opts.header_read_timeout = t;
        }
        if let Some(t) = seconds(permit_keepalive_time, "permit_keepalive_time")? {
            opts.permit_keepalive_time = t;
        }
        if let Some(p) = permit_keepalive_without_calls {
            opts.permit_keepalive_without_calls = p;
        }
        if let Some(t) = seconds(keepalive_time, "keepalive_time")? {
            opts.keepalive_time = (!t.is_zero()).then_some(t);
        }
        if let Some(t) = seconds(keepalive_timeout, "keepalive_timeout")? {
            opts.keepalive_timeout = t;
        }
        // 0: no budget.
        if let Some(n) = send_budget {
            opts.send_budget = (n > 0).then_some(n);
        }
        if let Some(n) = connection_send_budget {
            opts.connection_send_budget = (n > 0).then_some(n);
        }
        if let Some(n) = receive_budget {
            opts.receive_budget = (n > 0).then_some(n);
        }
        if let Some(n) = connection_receive_budget {
            opts.connection_receive_budget = (n > 0).then_some(n);
        }
        if let Some(n) = max_concurrent_streams {
            opts.max_concurrent_streams = n;
        }
        if let Some(n) = max_recv_message_size {
            opts.max_recv_message_size = n;
        }
        const CA_WITHOUT_TLS: &str =
            "client_root_certificates needs TLS: give certificate_chain and private_key";
        const HALF_TLS: &str = "server TLS needs both certificate_chain and private_key";
        opts.tls = match (cert_pem, key_pem, client_ca_pem) {
            (Some(cert_pem), Some(key_pem), client_ca_pem) => Some(ServerTls {
                cert_pem,
                key_pem,
                client_ca_pem,
            }),
            (None, None, None) => None,
            (None, None, Some(_)) => return Err(PyValueError::new_err(CA_WITHOUT_TLS)),
            _ => return Err(PyValueError::new_err(HALF_TLS)),
        };
        opts.cors = match (cors, cors_max_age) {
            (Some(origins), _) if origins.is_empty() => None,
            (Some(allowed_origins), max_age) => Some(Cors {
                allowed_origins,
                max_age: match max_age {
                    Some(t) => seconds_from_py(t, "cors_max_age")?,
                    None => Cors::any_origin().max_age,
                },
            }),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(PyValueError::new_err(
                    "cors_max_age needs cors, the origins allowed to call",
                ))
            }
        };
        let mut b = ServerBuilder::new(opts);
        for (path, shape, idempotency) in methods {
            b.add_method_with(
                &path,
                Shape::try_from(shape)
                    .map_err(|e| PyValueError::new_err(e.message().to_owned()))?,
                named("idempotency", &idempotency)?,
            )
            .map_err(|e| PyValueError::new_err(e.message().to_owned()))?;
        }
        let server = b.bind(address).map_err(|e| match e.kind() {
            rillrpc::ErrorKind::Io => PyOSError::new_err(e.message().to_owned()),
            _ => PyValueError::new_err(e.message().to_owned()),
        })?;
        let (notify, waker) = Notify::new();
        Ok(NativeServer {
            server: ProcessLocal::new(Arc::new(server)),
            notify,
            waker,
        })
    }

    /// `(host, port)` actually bound.
    fn local_addr(&self, py: Python<'_>) -> PyResult<(String, u16)> {
        let a = self.server(py)?.local_addr();
        Ok((a.ip().to_string(), a.port()))
    }

    /// The next call; None once the server is shut down; the epoch (int) when none waits.
    fn accept(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let e = self.notify.epoch();
        let mut cx = Context::from_waker(&self.waker);
        match self.server(py)?.poll_accept(&mut cx) {
            Poll::Ready(Some(call)) => Ok(Py::new(py, NativeServerCall::new(call))?.into_any()),
            Poll::Ready(None) => Ok(py.None()),
            Poll::Pending => pending(py, e),
        }
    }

    fn park(&self, fut: Py<PyAny>, reactor: &Reactor, epoch: u64) -> bool {
        self.notify.park(fut, reactor, epoch)
    }

    /// Graceful shutdown (GOAWAY, calls in flight get `grace` seconds); `fut` is resolved
    /// through `reactor` once it is over.
    fn shutdown(
        &self,
        py: Python<'_>,
        fut: Py<PyAny>,
        reactor: &Reactor,
        grace: f64,
    ) -> PyResult<()> {
        if !grace.is_finite() || grace < 0.0 {
            return Err(PyValueError::new_err("grace must be a non-negative number"));
        }
        let server = self.server(py)?.clone();
        let core = reactor.core.clone();
        let grace = Duration::from_secs_f64(grace);
        // The waker is woken so a parked `accept` sees the end.
        let waker = self.waker.clone();
        reactor.core.runtime().spawn(async move {
            server.shutdown(grace).await;
            waker.wake();
            core.push(fut);
        });
        Ok(())
    }

    /// Does nothing to a server inherited from a parent process: it is the parent's.
    fn begin_shutdown(&self) {
        if let Ok(s) = self.server.get() {
            s.begin_shutdown();
        }
    }
}

impl NativeServer {
    fn server(&self, py: Python<'_>) -> PyResult<&Arc<Server>> {
        this_process(py, &self.server)
    }
}

fn lock(m: &Mutex<ServerCall>) -> MutexGuard<'_, ServerCall> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[pyclass(module = "rillrpc._native", frozen)]
pub struct NativeServerCall {
    /// Neither used nor dropped in a forked child (`rillrpc::fork`).
    call: ProcessLocal<Mutex<ServerCall>>,
    method: String,
    shape: u32,
    notify: Arc<Notify>,
    waker: Waker,
    /// A separate waker for `watch_cancel`, so data wake-ups do not look like cancels.
    cancel_parker: Arc<Notify>,
    cancel_waker: Waker,
}

impl NativeServerCall {
    fn new(call: ServerCall) -> NativeServerCall {
        let (notify, waker) = Notify::new();
        let (cancel_parker, cancel_waker) = Notify::new();
        NativeServerCall {
            method: call.method().to_owned(),
            shape: call.shape() as u32,
            call: ProcessLocal::new(Mutex::new(call)),
            notify,
            waker,
            cancel_parker,
            cancel_waker,
        }
    }

    fn lock(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, ServerCall>> {
        Ok(lock(this_process(py, &self.call)?))
    }
}

#[pymethods]
impl NativeServerCall {
    #[getter]
    fn method(&self) -> &str {
        &self.method
    }

    #[getter]
    fn shape(&self) -> u32 {
        self.shape
    }

    /// The protocol's name: "grpc", "grpc-web", "connect" or "ttheader".
    #[getter]
    fn protocol(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.lock(py)?.protocol().name())
    }

    /// The codec the request's content type names: "proto", "json", or another.
    #[getter]
    fn codec(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.lock(py)?.codec().to_owned())
    }

    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        metadata_to_py(py, self.lock(py)?.metadata())
    }

    /// Seconds left before the client's deadline, None without one.
    fn time_remaining(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        Ok(self.lock(py)?.time_remaining().map(|d| d.as_secs_f64()))
    }

    fn peer(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.lock(py)?.peer_addr().to_string())
    }

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

    fn try_send(&self, py: Python<'_>, data: &[u8]) -> PyResult<bool> {
        // Copied once, straight into the call's send buffer.
        self.lock(py)?
            .try_send_ref(data)
            .map_err(|s| status_err(py, &s))
    }

    /// Queues `msgs[start:]` in order while there is room (one lock, at most one wake of
    /// the writer for the lot); returns how many were queued. Raises `RpcError` when the
    /// call cannot send any more.
    #[pyo3(signature = (msgs, start=0))]
    fn try_send_batch(
        &self,
        py: Python<'_>,
        msgs: &Bound<'_, PyList>,
        start: usize,
    ) -> PyResult<usize> {
        let items: Vec<Bound<'_, PyAny>> = msgs.iter().skip(start).collect();
        let slices = items
            .iter()
            .map(|m| match m.cast::<PyBytes>() {
                Ok(b) => Ok(b.as_bytes()),
                Err(_) => m.extract::<&[u8]>().map_err(PyErr::from),
            })
            .collect::<PyResult<Vec<&[u8]>>>()?;
        let (n, failed) = self.lock(py)?.try_send_batch(slices.iter().copied());
        match failed {
            Some(s) => Err(status_err(py, &s)),
            None => Ok(n),
        }
    }

    fn send_ready(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let e = self.notify.epoch();
        let mut cx = Context::from_waker(&self.waker);
        match self.lock(py)?.poll_send_ready(&mut cx) {
            Poll::Ready(()) => Ok(py.None()),
            Poll::Pending => pending(py, e),
        }
    }

    fn send_headers(&self, py: Python<'_>, metadata: &Bound<'_, PyAny>) -> PyResult<()> {
        let md = metadata_from_py(Some(metadata))?;
        self.lock(py)?
            .send_headers(&md)
            .map_err(|s| status_err(py, &s))
    }

    /// Compresses responses with gzip when the client accepts it; returns whether it will.
    fn set_compression(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        let enc = Encoding::from_name(name)
            .ok_or_else(|| PyValueError::new_err(format!("unknown compression {name:?}")))?;
        Ok(self.lock(py)?.set_compression(enc))
    }

    /// Ends the call; raises `RpcError` if it had already ended.
    #[pyo3(signature = (code, message="", details=None, trailers=None))]
    fn finish(
        &self,
        py: Python<'_>,
        code: u32,
        message: &str,
        details: Option<&[u8]>,
        trailers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let s = status_from_py(code, message, details, trailers)?;
        self.lock(py)?.finish(s).map_err(|s| status_err(py, &s))
    }

    /// Whether the last request message arrived compressed on the wire.
    fn last_recv_compressed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.lock(py)?.last_recv_compressed())
    }

    /// Does nothing to a call inherited from a parent process: it is the parent's.
    fn cancel(&self) {
        if let Ok(c) = self.call.get() {
            lock(c).cancel();
        }
    }

    fn is_cancelled(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.lock(py)?.is_cancelled())
    }

    fn park(&self, fut: Py<PyAny>, reactor: &Reactor, epoch: u64) -> bool {
        self.notify.park(fut, reactor, epoch)
    }

    /// Resolves `fut` when the call ends for a reason other than this side's `finish`
    /// (client cancel, deadline, broken connection). Returns True if that already happened.
    fn watch_cancel(&self, py: Python<'_>, fut: Py<PyAny>, reactor: &Reactor) -> PyResult<bool> {
        loop {
            let e = self.cancel_parker.epoch();
            let mut cx = Context::from_waker(&self.cancel_waker);
            if self.lock(py)?.poll_cancelled(&mut cx).is_ready() {
                return Ok(true);
            }
            if self.cancel_parker.park(fut.clone_ref(py), reactor, e) {
                return Ok(false);
            }
        }
    }
}
