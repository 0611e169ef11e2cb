//! Between Python values and the core's: metadata as `(key, value)` pairs (`str` values,
//! `bytes` for `-bin` keys), statuses as `rillrpc.RpcError`.

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use rillrpc::fork::ProcessLocal;
use rillrpc::{BizStatus, Bytes, Code, Metadata, MetadataValue, Named, Status};
use std::time::Duration;

/// `rillrpc.RpcError` and its subclass `rillrpc.BizStatusError`, registered by the
/// package at import (`_native.init`).
static ERROR_CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static BIZ_ERROR_CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[pyfunction]
pub fn init(py: Python<'_>, error_class: Py<PyAny>, biz_error_class: Py<PyAny>) -> PyResult<()> {
    let _ = ERROR_CLASS.set(py, error_class);
    let _ = BIZ_ERROR_CLASS.set(py, biz_error_class);
    Ok(())
}

/// The status that ends a call with a Kitex biz status: `(code, message, details,
/// trailers)`, as the core builds it (`BizStatusError.__init__`).
#[pyfunction]
pub fn biz_status<'py>(
    py: Python<'py>,
    code: i32,
    message: String,
    extra: Vec<(String, String)>,
) -> PyResult<Bound<'py, PyTuple>> {
    let biz = extra
        .into_iter()
        .fold(BizStatus::new(code, message), |b, (k, v)| {
            b.with_extra(k, v)
        });
    status_tuple(py, &Status::biz(biz))
}

/// The error a status tuple of `status()` stands for (`RpcError` or `BizStatusError`).
#[pyfunction]
#[pyo3(signature = (code, message, details=None, trailers=None))]
pub fn status_error(
    py: Python<'_>,
    code: u32,
    message: &str,
    details: Option<&[u8]>,
    trailers: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let s = status_from_py(code, message, details, trailers)?;
    Ok(status_err(py, &s).into_value(py).into_any())
}

pub fn metadata_to_py<'py>(py: Python<'py>, md: &Metadata) -> PyResult<Bound<'py, PyTuple>> {
    let mut items = Vec::with_capacity(md.len());
    for (k, v) in md.iter() {
        let v: Bound<'py, PyAny> = match v {
            MetadataValue::Ascii(s) => PyString::new(py, &s).into_any(),
            MetadataValue::Binary(b) => PyBytes::new(py, &b).into_any(),
        };
        items.push(PyTuple::new(py, [PyString::new(py, k).into_any(), v])?);
    }
    PyTuple::new(py, items)
}

/// Any iterable of `(key, value)` pairs; `None` is empty.
pub fn metadata_from_py(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Metadata> {
    let mut md = Metadata::new();
    let Some(obj) = obj else { return Ok(md) };
    if obj.is_none() {
        return Ok(md);
    }
    for item in obj.try_iter()? {
        let item = item?;
        let (k, v): (String, Bound<'_, PyAny>) = item.extract().map_err(|_| {
            PyTypeError::new_err("metadata must be (key, value) pairs or a mapping")
        })?;
        let r = if let Ok(s) = v.cast::<PyString>() {
            let s = s.to_cow()?;
            if k.ends_with("-bin") {
                md.append_bin(&k, s.as_bytes())
            } else {
                md.append_ascii(&k, &s)
            }
        } else if let Ok(b) = v.extract::<&[u8]>() {
            md.append_bin(&k, b)
        } else {
            return Err(PyTypeError::new_err(format!(
                "metadata value for {k:?} must be str or bytes"
            )));
        };
        r.map_err(|e| PyValueError::new_err(format!("invalid metadata: {e}")))?;
    }
    Ok(md)
}

/// `value`, unless this process is a child forked after it was made (`RpcError`).
pub fn this_process<'a, T>(py: Python<'_>, value: &'a ProcessLocal<T>) -> PyResult<&'a T> {
    value.get().map_err(|s| status_err(py, &s))
}

/// The error for a status: a `BizStatusError` when it carries a biz status, an
/// `RpcError` otherwise.
pub fn status_err(py: Python<'_>, s: &Status) -> PyErr {
    let Some(cls) = ERROR_CLASS.get(py) else {
        return PyRuntimeError::new_err(format!("{:?}: {}", s.code(), s.message()));
    };
    let trailers = match metadata_to_py(py, s.trailers()) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let details = PyBytes::new(py, s.details());
    let args = (s.code() as u32, s.message(), details, trailers);
    let made = match (s.biz_status(), BIZ_ERROR_CLASS.get(py)) {
        (Some(biz), Some(biz_cls)) => biz_cls.bind(py).call_method1(
            "_received",
            (args, biz.code(), biz.message(), biz.extra().to_vec()),
        ),
        _ => cls.bind(py).call1(args),
    };
    match made {
        Ok(inst) => PyErr::from_value(inst),
        Err(e) => e,
    }
}

/// `(code, message, details, trailers)`.
pub fn status_tuple<'py>(py: Python<'py>, s: &Status) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            (s.code() as u32).into_pyobject(py)?.into_any(),
            PyString::new(py, s.message()).into_any(),
            PyBytes::new(py, s.details()).into_any(),
            metadata_to_py(py, s.trailers())?.into_any(),
        ],
    )
}

pub fn status_from_py(
    code: u32,
    message: &str,
    details: Option<&[u8]>,
    trailers: Option<&Bound<'_, PyAny>>,
) -> PyResult<Status> {
    if code > 16 {
        return Err(PyValueError::new_err(format!(
            "status code must be 0..=16, got {code}"
        )));
    }
    let mut s = Status::new(Code::from_u32(code), message);
    if let Some(d) = details {
        s = s.with_details(Bytes::copy_from_slice(d));
    }
    let t = metadata_from_py(trailers)?;
    if !t.is_empty() {
        s = s.with_trailers(t);
    }
    Ok(s)
}

/// A list of `bytes`, one per message.
pub fn messages<'py>(py: Python<'py>, batch: &[Bytes]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, batch.iter().map(|b| PyBytes::new(py, b)))
}

/// What a `poll_*` wrapper returns while pending: the notify's epoch (a plain `int`, which
/// no ready result ever is).
pub fn pending(py: Python<'_>, epoch: u64) -> PyResult<Py<PyAny>> {
    Ok(epoch.into_pyobject(py)?.into_any().unbind())
}

/// The core's value called `name` (a protocol, an HTTP version, an idempotency level);
/// a ValueError with the core's list of names otherwise.
pub fn named<T: Named>(what: &str, name: &str) -> PyResult<T> {
    rillrpc::by_name(what, name).map_err(|e| PyValueError::new_err(e.message().to_owned()))
}

/// A non-negative, finite number of seconds; `what` names it in the error.
pub fn seconds_from_py(t: f64, what: &str) -> PyResult<Duration> {
    if !t.is_finite() || t < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be a non-negative number of seconds, got {t}"
        )));
    }
    Ok(Duration::from_secs_f64(t))
}
