//! Metadata lists: built by C for requests, responses and trailers; handed to C for
//! response headers, trailers and request metadata.

use bytes::Bytes;
use rillrpc::{Metadata, MetadataValue};
use std::ffi::{c_char, CString};

use crate::registry::{lock, Registry};
use crate::result::{data, guard, out, put, rill_result, text, Fail, R, RILL_NOT_FOUND, RILL_OK};

/// A metadata list (ordered key/value entries). 0 is never a valid handle.
pub type rill_metadata = u64;

pub(crate) struct MetaObj {
    pub md: Metadata,
    /// The entries as C reads them; their buffers never move while the list lives.
    entries: Vec<(CString, Bytes)>,
}

pub(crate) static METADATA: Registry<MetaObj> = Registry::new(1, "metadata");

impl MetaObj {
    pub fn from_md(md: Metadata) -> MetaObj {
        let entries = md
            .iter()
            .filter_map(|(k, v)| {
                let v = match v {
                    MetadataValue::Ascii(s) => Bytes::from(s),
                    MetadataValue::Binary(b) => b,
                };
                CString::new(k).ok().map(|k| (k, v))
            })
            .collect();
        MetaObj { md, entries }
    }
}

/// A new handle for a copy of `md`, owned by C.
pub(crate) fn hand_out(md: Metadata) -> rill_metadata {
    METADATA.insert(MetaObj::from_md(md))
}

/// The metadata behind an optional handle argument (0 = none).
pub(crate) fn take_in(h: rill_metadata) -> R<Metadata> {
    if h == 0 {
        return Ok(Metadata::new());
    }
    Ok(lock(&*METADATA.get(h)?).md.clone())
}

/// Creates an empty metadata list. Free it with `rill_metadata_free` (functions that take a
/// list copy it; they never take ownership).
#[no_mangle]
pub extern "C" fn rill_metadata_new(md_out: *mut rill_metadata) -> rill_result {
    guard(|| {
        let o = out(md_out, "md_out")?;
        put(o, METADATA.insert(MetaObj::from_md(Metadata::new())));
        Ok(RILL_OK)
    })
}

/// Appends an entry. `key` is NUL-terminated (letters, digits, `_ - .`), case-insensitive:
/// it is kept lower-cased, as HTTP/2 sends it. A key ending in `-bin` (any case) takes any
/// bytes; any other key takes printable ASCII (0x20..0x7E).
/// `value` (`value_len` bytes, NULL if 0) is copied. RILL_ERR_INVALID_ARGUMENT for a bad
/// key or value.
///
/// # Safety
/// `key` is NULL or a NUL-terminated string; `value` is NULL or has `value_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rill_metadata_append(
    md: rill_metadata,
    key: *const c_char,
    value: *const u8,
    value_len: usize,
) -> rill_result {
    guard(|| {
        // Lower-cased before the `-bin` test: the core keeps keys lower-cased, and "x-BIN"
        // was refused as text and as binary (found by the c_abi fuzzer).
        // SAFETY: the caller's contract above.
        let key = unsafe { text(key, "key") }?.to_ascii_lowercase();
        // SAFETY: the caller's contract above.
        let value = unsafe { data(value, value_len, "value") }?;
        let obj = METADATA.get(md)?;
        let mut m = lock(&obj);
        let r = if key.ends_with("-bin") {
            m.md.append_bin(&key, value)
        } else {
            let v = std::str::from_utf8(value)
                .map_err(|_| Fail::invalid(format!("value for {key:?} is not ASCII")))?;
            m.md.append_ascii(&key, v)
        };
        r.map_err(|e| Fail::invalid(e.0))?;
        let k = CString::new(key).map_err(|_| Fail::invalid("key has a NUL byte"))?;
        m.entries.push((k, Bytes::copy_from_slice(value)));
        Ok(RILL_OK)
    })
}

/// The number of entries.
#[no_mangle]
pub extern "C" fn rill_metadata_count(md: rill_metadata, count_out: *mut usize) -> rill_result {
    guard(|| {
        let o = out(count_out, "count_out")?;
        put(o, lock(&*METADATA.get(md)?).entries.len());
        Ok(RILL_OK)
    })
}

/// Entry `index` (0-based, in order): its NUL-terminated key and its value bytes (binary
/// values decoded). RILL_NOT_FOUND past the end.
///
/// Ownership: the pointers are borrowed from the list and stay valid until
/// `rill_metadata_free(md)`. The value is not NUL-terminated.
#[no_mangle]
pub extern "C" fn rill_metadata_at(
    md: rill_metadata,
    index: usize,
    key_out: *mut *const c_char,
    value_out: *mut *const u8,
    value_len_out: *mut usize,
) -> rill_result {
    guard(|| {
        let (k, v, l) = (
            out(key_out, "key_out")?,
            out(value_out, "value_out")?,
            out(value_len_out, "value_len_out")?,
        );
        let obj = METADATA.get(md)?;
        let m = lock(&obj);
        match m.entries.get(index) {
            Some((key, val)) => {
                put(k, key.as_ptr());
                put(v, val.as_ptr());
                put(l, val.len());
                Ok(RILL_OK)
            }
            None => Ok(RILL_NOT_FOUND),
        }
    })
}

/// The first value of `key` (case-insensitive). RILL_NOT_FOUND when there is none.
///
/// Ownership: `*value_out` is borrowed from the list, valid until `rill_metadata_free(md)`;
/// not NUL-terminated.
///
/// # Safety
/// `key` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rill_metadata_get(
    md: rill_metadata,
    key: *const c_char,
    value_out: *mut *const u8,
    value_len_out: *mut usize,
) -> rill_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let key = unsafe { text(key, "key") }?.to_ascii_lowercase();
        let (v, l) = (
            out(value_out, "value_out")?,
            out(value_len_out, "value_len_out")?,
        );
        let obj = METADATA.get(md)?;
        let m = lock(&obj);
        match m
            .entries
            .iter()
            .find(|(k, _)| k.as_bytes() == key.as_bytes())
        {
            Some((_, val)) => {
                put(v, val.as_ptr());
                put(l, val.len());
                Ok(RILL_OK)
            }
            None => Ok(RILL_NOT_FOUND),
        }
    })
}

/// Frees a metadata list (RILL_ERR_STALE_HANDLE if it was already freed).
#[no_mangle]
pub extern "C" fn rill_metadata_free(md: rill_metadata) -> rill_result {
    guard(|| {
        METADATA.remove(md)?;
        Ok(RILL_OK)
    })
}
