//! Entry points for the fuzz targets (`fuzz/`): each feeds a peer's bytes to one parser.
//! Built only with the `fuzzing` feature; not part of the API.

use bytes::Bytes;

use crate::protocol::{connect, details, envelope, grpc};

/// The envelope decoder, over chunks cut where the input says, with or without gzip and
/// an end flag (gRPC-Web's, Connect's).
pub fn envelope(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut d = envelope::Decoder::new(64 * 1024);
    if mode & 1 != 0 {
        d.set_encoding(envelope::Encoding::Gzip);
    }
    match mode >> 1 & 3 {
        1 => d.set_end_flag(grpc::WEB_TRAILERS),
        2 => d.set_end_flag(connect::END_STREAM),
        _ => {}
    }
    let cut = usize::from(mode >> 3).max(1);
    for chunk in rest.chunks(cut) {
        d.push(Bytes::copy_from_slice(chunk));
        while let Ok(Some(_)) = d.next() {}
        if d.next().is_err() {
            return;
        }
    }
    let _ = d.take_end();
}

/// gRPC's header values: `grpc-timeout`, `grpc-message`, binary metadata.
pub fn grpc_headers(data: &[u8]) {
    let _ = grpc::timeout::parse(data);
    let _ = grpc::percent_decode(data);
    let _ = crate::metadata::decode_bin(data);
}

/// gRPC-Web: a trailers frame's header lines, and text mode's base64 in two chunks.
pub fn grpc_web(data: &[u8]) {
    let _ = grpc::status_from_web_trailers(data);
    let mut t = grpc::web_text::Decoder::default();
    let half = data.len() / 2;
    let _ = t.push(&data[..half]);
    let _ = t.push(&data[half..]);
}

/// Connect: an end-stream message, a unary error body, error details, a GET's query.
pub fn connect(data: &[u8]) {
    let _ = connect::status_from_end_stream(data);
    let query = String::from_utf8_lossy(data);
    let _ = connect::get::parse(Some(&query));
    let _ = connect::get::codec_of(Some(&query));
    let parts = http::Response::builder()
        .status(400)
        .body(())
        .expect("a valid response")
        .into_parts()
        .0;
    let _ = connect::unary_error(&parts, data);
    let _ = details::read(data);
}

/// TTHeader: packets read from chunks cut where the input's first byte says, each one's
/// streaming frame type, and each written back and read again unchanged; then the same
/// bytes as PingPong requests (TTHeader, Framed or Buffered) and each request's message
/// (Thrift or KitexProtobuf).
pub fn ttheader(data: &[u8]) {
    pingpong(data);
    use crate::transport::ttheader::{decode, encode, FrameType};
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let mut buf = bytes::BytesMut::new();
    for chunk in rest.chunks(usize::from(cut).max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            let p = match decode(&mut buf, 64 * 1024) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(_) => return,
            };
            let _ = FrameType::of(&p);
            let mut out = bytes::BytesMut::new();
            encode(&p, &mut out).expect("a packet read can be written");
            let again = decode(&mut out, usize::MAX).expect("what was written reads");
            assert_eq!(
                again.as_ref(),
                Some(&p),
                "a packet changed on its way round"
            );
        }
    }
}

fn pingpong(data: &[u8]) {
    use crate::protocol::ttheader::pingpong::Call;
    let whole = requests(data, data.len().max(1));
    for m in &whole.0 {
        let _ = Call::parse(bytes::Bytes::copy_from_slice(m));
    }
    // The same bytes a few at a time read as the same requests: a walk through a Buffered
    // request resumes where it stopped.
    for piece in [1, 3, 7] {
        assert_eq!(requests(data, piece), whole, "read {piece} bytes at a time");
    }
}

/// The requests (their framing and message) read from `data` fed `piece` bytes at a time,
/// and whether the rest failed.
fn requests(data: &[u8], piece: usize) -> (Vec<Vec<u8>>, bool) {
    use crate::transport::ttheader::pingpong::Reader;
    let mut buf = bytes::BytesMut::new();
    let mut reader = Reader::default();
    let mut out = Vec::new();
    for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match reader.next(&mut buf, 64 * 1024) {
                Ok(Some(req)) => out.push(req.message.to_vec()),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}
