//! `shared/idl/echo.thrift`'s messages in Thrift Binary, as Kitex encodes them, written and
//! read field by field: `Request {1: payload, 2: count}`, `Response {1: payload}`, and the
//! PingPong wrappers `TestServicePingPongArgs {1: req}` and `TestServicePingPongResult
//! {0: success}` (interop/kitex/WIRE.md). For the echo programs, which meet Kitex without a
//! Thrift library; the Kitex harness (interop/kitex/rust) uses the `thrift` crate.

use rillrpc::Bytes;

const T_STOP: u8 = 0;
const T_I32: u8 = 8;
const T_STRING: u8 = 11;
const T_STRUCT: u8 = 12;

/// `Request {1: payload, 2: count}` (fields left out when empty or zero).
pub fn request(payload: &[u8], count: i32) -> Bytes {
    let mut b = Vec::with_capacity(16 + payload.len());
    if !payload.is_empty() {
        string_field(&mut b, 1, payload);
    }
    if count != 0 {
        b.extend([T_I32, 0, 2]);
        b.extend(count.to_be_bytes());
    }
    b.push(T_STOP);
    Bytes::from(b)
}

/// `Response {1: payload}`, into `b` (cleared first: reused across messages).
pub fn response_into(b: &mut Vec<u8>, payload: &[u8]) {
    b.clear();
    string_field(b, 1, payload);
    b.push(T_STOP);
}

/// `TestServicePingPongArgs {1: req}`.
pub fn args(req: &[u8]) -> Bytes {
    Bytes::from(wrap(1, req))
}

/// `TestServicePingPongResult {0: success}`.
pub fn result_of(resp: &[u8]) -> Bytes {
    Bytes::from(wrap(0, resp))
}

/// A `Request`'s payload and count (empty and 0 when absent).
pub fn read_request(m: &[u8]) -> Result<(Vec<u8>, i32), String> {
    let mut r = (Vec::new(), 0);
    fields(m, "Request", |id, t, v| match (id, t) {
        (1, T_STRING) => r.0 = v.to_vec(),
        (2, T_I32) => r.1 = i32::from_be_bytes(v.try_into().expect("an i32 is 4 bytes")),
        _ => {}
    })?;
    Ok(r)
}

/// `Response`'s payload (field 1); empty when absent.
pub fn response(m: &[u8]) -> Result<Vec<u8>, String> {
    let mut payload = Vec::new();
    fields(m, "Response", |id, t, v| {
        if (id, t) == (1, T_STRING) {
            payload = v.to_vec();
        }
    })?;
    Ok(payload)
}

/// The `Request` struct in `TestServicePingPongArgs {1: req}`.
pub fn unwrap_args(m: &[u8]) -> Result<&[u8], String> {
    struct_field(m, 1, "PingPong args")
}

/// The `Response` struct in `TestServicePingPongResult {0: success}`.
pub fn result(m: &[u8]) -> Result<Bytes, String> {
    struct_field(m, 0, "PingPong result").map(Bytes::copy_from_slice)
}

fn string_field(b: &mut Vec<u8>, id: u8, v: &[u8]) {
    b.extend([T_STRING, 0, id]);
    b.extend((v.len() as u32).to_be_bytes());
    b.extend(v);
}

fn wrap(id: u8, inner: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(inner.len() + 4);
    b.extend([T_STRUCT, 0, id]);
    b.extend(inner);
    b.push(T_STOP);
    b
}

/// The struct (its bytes, STOP included) in field `id` of the struct `m`.
fn struct_field<'a>(m: &'a [u8], id: i16, what: &str) -> Result<&'a [u8], String> {
    let mut found = None;
    fields(m, what, |i, t, v| {
        if (i, t) == (id, T_STRUCT) {
            found = Some(v);
        }
    })?;
    found.ok_or_else(|| format!("a {what} without its field {id}"))
}

/// Calls `on` with each field of the struct `m` (which must end where `m` does): its id,
/// its type and its value's bytes (a string's without its length; a struct's with its
/// STOP).
fn fields<'a>(
    m: &'a [u8],
    what: &str,
    mut on: impl FnMut(i16, u8, &'a [u8]),
) -> Result<(), String> {
    let end = skip_struct(m, 0, 0, &mut on)
        .ok_or_else(|| format!("a Thrift {what} cut short or of an unexpected type"))?;
    if end != m.len() {
        return Err(format!("{} bytes after a Thrift {what}", m.len() - end));
    }
    Ok(())
}

/// Walks the struct at `m[i..]`, calling `on` for each of its own fields; the index past
/// its STOP. Structs nest at most 8 deep here.
fn skip_struct<'a>(
    m: &'a [u8],
    mut i: usize,
    depth: usize,
    on: &mut dyn FnMut(i16, u8, &'a [u8]),
) -> Option<usize> {
    loop {
        let t = *m.get(i)?;
        if t == T_STOP {
            return Some(i + 1);
        }
        let id = i16::from_be_bytes(m.get(i + 1..i + 3)?.try_into().ok()?);
        i += 3;
        let (value, next) = match t {
            T_I32 => (m.get(i..i + 4)?, i + 4),
            T_STRING => {
                let n = u32::from_be_bytes(m.get(i..i + 4)?.try_into().ok()?) as usize;
                let end = (i + 4).checked_add(n)?;
                (m.get(i + 4..end)?, end)
            }
            T_STRUCT if depth < 8 => {
                let end = skip_struct(m, i, depth + 1, &mut |_, _, _| {})?;
                (&m[i..end], end)
            }
            _ => return None,
        };
        on(id, t, value);
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kitex_bytes_both_ways() {
        // WIRE.md §1.2: the PingPong args of Request { payload: "matrix\0\xffping" }.
        let req = request(b"matrix\x00\xffping", 0);
        let a = args(&req);
        assert_eq!(
            &a[..],
            b"\x0c\x00\x01\x0b\x00\x01\x00\x00\x00\x0cmatrix\x00\xffping\x00\x00"
        );
        let inner = unwrap_args(&a).unwrap();
        assert_eq!(
            read_request(inner).unwrap(),
            (b"matrix\x00\xffping".to_vec(), 0)
        );
        let mut b = Vec::new();
        response_into(&mut b, b"hi");
        assert_eq!(response(&result(&result_of(&b)).unwrap()).unwrap(), b"hi");
        assert_eq!(read_request(&request(b"", -5)).unwrap(), (Vec::new(), -5));
    }

    #[test]
    fn bad_structs_are_refused_not_panicked_on() {
        for bad in [
            &b""[..],
            b"\x0b\x00",                          // a field header cut short
            b"\x0b\x00\x01\x00\x00\x00\x09x\x00", // a string past the message
            b"\x08\x00\x02\x00\x00",              // an i32 cut short
            b"\x0d\x00\x01\x00",                  // a map: no such field here
            b"\x00\x00",                          // a byte after STOP
            b"\x0b\x00\x01\xff\xff\xff\xffx\x00", // a length past usize on 32 bits
        ] {
            assert!(read_request(bad).is_err(), "{bad:?}");
        }
        assert!(unwrap_args(b"\x00").is_err());
    }
}
