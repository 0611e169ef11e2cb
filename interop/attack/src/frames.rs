//! HTTP/2 frames and HPACK header blocks written byte by byte (RFC 9113 §4.1, RFC 7541),
//! so that an attack can send what no well-behaved library would.

pub use rill_testkit::frames::{
    DATA, GOAWAY, HEADERS, PING, PREFACE, RST_STREAM, SETTINGS, WINDOW_UPDATE,
};

pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const CANCEL: u32 = 0x8;

/// "All frames begin with a fixed 9-octet header": length (24 bits), type, flags, a
/// reserved bit and the stream id (31 bits).
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.push(ty);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the prefix's other bits `high`.
pub fn hpack_int(out: &mut Vec<u8>, high: u8, n: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A string literal, not Huffman coded (§5.2).
fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// "Literal Header Field without Indexing — New Name" (§6.2.2).
pub fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    hpack_str(out, name);
    hpack_str(out, value);
}

/// "Literal Header Field with Incremental Indexing — New Name" (§6.2.1): the field enters
/// the dynamic table as its entry 62.
pub fn literal_indexed(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x40);
    hpack_str(out, name);
    hpack_str(out, value);
}

/// A gRPC request's header block for `path`.
pub fn request_block(path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    literal(&mut b, b":method", b"POST");
    literal(&mut b, b":scheme", b"http");
    literal(&mut b, b":path", path.as_bytes());
    literal(&mut b, b":authority", b"localhost");
    literal(&mut b, b"content-type", b"application/grpc");
    literal(&mut b, b"te", b"trailers");
    b
}

/// HEADERS opening a gRPC call on `stream` (its request still to come).
pub fn open_call(stream: u32, path: &str) -> Vec<u8> {
    frame(HEADERS, END_HEADERS, stream, &request_block(path))
}

/// A gRPC message: the 5-byte prefix (uncompressed), then the message.
pub fn envelope(msg: &[u8]) -> Vec<u8> {
    let mut e = vec![0];
    e.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    e.extend_from_slice(msg);
    e
}

/// echo.Request { payload, count } in protobuf.
pub fn echo_request(payload: &[u8], count: u32) -> Vec<u8> {
    let mut m = Vec::new();
    if !payload.is_empty() {
        m.push(0x0a);
        varint(&mut m, payload.len() as u64);
        m.extend_from_slice(payload);
    }
    if count > 0 {
        m.push(0x10);
        varint(&mut m, u64::from(count));
    }
    m
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The name of an HTTP/2 error code (§7).
pub fn error_name(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => return format!("0x{code:x}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_hpack_are_spelled_as_the_rfcs_say() {
        // RFC 9113 §6.5: an empty SETTINGS ACK.
        assert_eq!(frame(SETTINGS, ACK, 0, &[]), [0, 0, 0, 4, 1, 0, 0, 0, 0]);
        assert_eq!(
            window_update(3, 0x7fff_ffff),
            [0, 0, 4, 8, 0, 0, 0, 0, 3, 0x7f, 0xff, 0xff, 0xff]
        );
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        let mut v = Vec::new();
        hpack_int(&mut v, 0, 5, 1337);
        assert_eq!(v, [31, 154, 10]);
        // RFC 7541 C.2.1, but without indexing (0x00, §6.2.2): the name's length, the name,
        // the value's length, the value.
        let mut b = Vec::new();
        literal(&mut b, b"custom-key", b"custom-header");
        assert_eq!(b[..2], [0x00, 0x0a]);
        assert_eq!(b[12..14], [0x0d, b'c']);
        assert_eq!(envelope(&echo_request(b"", 3)), [0, 0, 0, 0, 2, 0x10, 3]);
    }
}
