//! The messages of `shared/idl/echo.thrift` in Thrift Binary, as Kitex puts them in a gRPC
//! message (interop/kitex/WIRE.md §3): bare structs, no TMessage header. The streaming
//! methods carry `Request` and `Response`; PingPong carries Kitex's wrapper structs,
//! `TestServicePingPongArgs{1: req}` and `TestServicePingPongResult{0: success}`.
//!
//! The structs implement Apache Thrift's `TSerializable` by hand, the way the Thrift
//! compiler's Rust output does, with one difference: a known field id whose wire type is
//! not the IDL's is skipped (as Kitex's and the Go generator's readers do), not read as
//! the IDL's type, which would misparse everything after it.

use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TOutputProtocol,
    TSerializable, TStructIdentifier, TType,
};
use thrift::{ProtocolError, ProtocolErrorKind, TConfiguration};

/// `struct Request { 1: optional binary payload, 2: optional i32 count }`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub payload: Option<Vec<u8>>,
    pub count: Option<i32>,
}

/// `struct Response { 1: optional binary payload }`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub payload: Option<Vec<u8>>,
}

/// PingPong's request over gRPC: the method's argument list as a struct, field 1 `req`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingPongArgs {
    pub req: Option<Request>,
}

/// PingPong's response over gRPC: field 0 `success` (a declared exception would take ids
/// from 1; echo.thrift declares none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingPongResult {
    pub success: Option<Response>,
}

/// Encodes a struct in Thrift Binary.
pub fn encode<T: TSerializable>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Encodes a struct in Thrift Binary into `out`, emptied first: a handler that answers
/// with many messages encodes them all into one buffer (grown while the thrift crate
/// writes a field at a time, a fresh `Vec` was reallocated three times for 24 bytes).
pub fn encode_into<T: TSerializable>(value: &T, out: &mut Vec<u8>) {
    out.clear();
    let mut prot = TBinaryOutputProtocol::new(out, true);
    value
        .write_to_out_protocol(&mut prot)
        .expect("writing to a Vec cannot fail");
}

/// Decodes one struct that must span all of `bytes`. Malformed input is an error: a
/// truncated field, an unknown type byte, a negative or oversized length, nesting past
/// Thrift's depth limit (64), or bytes after the struct's STOP.
pub fn decode<T: TSerializable>(bytes: &[u8]) -> thrift::Result<T> {
    // No string can be longer than the message: without this cap, a 5-byte message
    // declaring a 100 MB binary would make the reader allocate 100 MB before failing.
    let config = TConfiguration::builder()
        .max_string_size(Some(bytes.len()))
        .build()?;
    let mut rest = bytes;
    let value = {
        let mut prot = TBinaryInputProtocol::with_config(&mut rest, true, config);
        T::read_from_in_protocol(&mut prot)?
    };
    if !rest.is_empty() {
        return Err(thrift::Error::Protocol(ProtocolError::new(
            ProtocolErrorKind::InvalidData,
            format!("{} bytes after the end of the struct", rest.len()),
        )));
    }
    Ok(value)
}

/// Reads a struct's fields up to STOP, handing each to `field` (id, wire type); `field`
/// returns false for a field it does not take, which is then skipped.
fn read_fields(
    i: &mut dyn TInputProtocol,
    mut field: impl FnMut(&mut dyn TInputProtocol, i16, TType) -> thrift::Result<bool>,
) -> thrift::Result<()> {
    i.read_struct_begin()?;
    loop {
        let f = i.read_field_begin()?;
        if f.field_type == TType::Stop {
            break;
        }
        let id = f.id.unwrap_or(i16::MIN);
        if !field(i, id, f.field_type)? {
            i.skip(f.field_type)?;
        }
        i.read_field_end()?;
    }
    i.read_struct_end()
}

/// Writes a struct: `fields`, then STOP. Binary puts no names on the wire, so the
/// identifiers here carry none: the thrift crate's own `String`s, made for each message,
/// were two allocations a message.
fn write_struct(
    o: &mut dyn TOutputProtocol,
    fields: impl FnOnce(&mut dyn TOutputProtocol) -> thrift::Result<()>,
) -> thrift::Result<()> {
    o.write_struct_begin(&TStructIdentifier::new(String::new()))?;
    fields(o)?;
    o.write_field_stop()?;
    o.write_struct_end()
}

/// A field's identifier: its type and id, no name (`write_struct`).
fn field(ty: TType, id: i16) -> TFieldIdentifier {
    TFieldIdentifier::new::<Option<String>, String, i16>(None, ty, id)
}

fn write_binary(o: &mut dyn TOutputProtocol, id: i16, v: &[u8]) -> thrift::Result<()> {
    o.write_field_begin(&field(TType::String, id))?;
    o.write_bytes(v)?;
    o.write_field_end()
}

fn write_nested<T: TSerializable>(
    o: &mut dyn TOutputProtocol,
    id: i16,
    v: &T,
) -> thrift::Result<()> {
    o.write_field_begin(&field(TType::Struct, id))?;
    v.write_to_out_protocol(o)?;
    o.write_field_end()
}

impl TSerializable for Request {
    fn read_from_in_protocol(i: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        let mut r = Request::default();
        read_fields(i, |i, id, ty| {
            match (id, ty) {
                (1, TType::String) => r.payload = Some(i.read_bytes()?),
                (2, TType::I32) => r.count = Some(i.read_i32()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(r)
    }

    fn write_to_out_protocol(&self, o: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        write_struct(o, |o| {
            if let Some(p) = &self.payload {
                write_binary(o, 1, p)?;
            }
            if let Some(c) = self.count {
                o.write_field_begin(&field(TType::I32, 2))?;
                o.write_i32(c)?;
                o.write_field_end()?;
            }
            Ok(())
        })
    }
}

impl TSerializable for Response {
    fn read_from_in_protocol(i: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        let mut r = Response::default();
        read_fields(i, |i, id, ty| {
            if (id, ty) != (1, TType::String) {
                return Ok(false);
            }
            r.payload = Some(i.read_bytes()?);
            Ok(true)
        })?;
        Ok(r)
    }

    fn write_to_out_protocol(&self, o: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        write_struct(o, |o| match &self.payload {
            Some(p) => write_binary(o, 1, p),
            None => Ok(()),
        })
    }
}

impl TSerializable for PingPongArgs {
    fn read_from_in_protocol(i: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        let mut r = PingPongArgs::default();
        read_fields(i, |i, id, ty| {
            if (id, ty) != (1, TType::Struct) {
                return Ok(false);
            }
            r.req = Some(Request::read_from_in_protocol(i)?);
            Ok(true)
        })?;
        Ok(r)
    }

    fn write_to_out_protocol(&self, o: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        write_struct(o, |o| match &self.req {
            Some(r) => write_nested(o, 1, r),
            None => Ok(()),
        })
    }
}

impl TSerializable for PingPongResult {
    fn read_from_in_protocol(i: &mut dyn TInputProtocol) -> thrift::Result<Self> {
        let mut r = PingPongResult::default();
        read_fields(i, |i, id, ty| {
            if (id, ty) != (0, TType::Struct) {
                return Ok(false);
            }
            r.success = Some(Response::read_from_in_protocol(i)?);
            Ok(true)
        })?;
        Ok(r)
    }

    fn write_to_out_protocol(&self, o: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        write_struct(o, |o| match &self.success {
            Some(r) => write_nested(o, 0, r),
            None => Ok(()),
        })
    }
}

#[cfg(test)]
mod tests;
