//! The byte strings are those of Kitex v0.16.3's captures (interop/kitex/WIRE.md §3): what
//! kitex-client and kitex-server put in their gRPC messages.

use super::*;

/// Binary field header: type byte, then the id as a big-endian i16.
const BINARY_1: [u8; 3] = [0x0b, 0x00, 0x01];
const I32_2: [u8; 3] = [0x08, 0x00, 0x02];
const STRUCT_0: [u8; 3] = [0x0c, 0x00, 0x00];
const STRUCT_1: [u8; 3] = [0x0c, 0x00, 0x01];
const STOP: u8 = 0x00;
const PING: &[u8] = b"matrix\x00\xffping";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `TestServicePingPongArgs{1: Request{1: "matrix\x00\xffping"}}`, WIRE.md §3.1.
fn ping_args_bytes() -> Vec<u8> {
    cat(&[&STRUCT_1, &BINARY_1, &[0, 0, 0, 12], PING, &[STOP], &[STOP]])
}

fn ping_request() -> Request {
    Request {
        payload: Some(PING.to_vec()),
        count: None,
    }
}

#[test]
fn pingpong_args_bytes_match_kitex() {
    let args = PingPongArgs {
        req: Some(ping_request()),
    };
    assert_eq!(encode(&args), ping_args_bytes());
    assert_eq!(decode::<PingPongArgs>(&ping_args_bytes()).unwrap(), args);
}

#[test]
fn pingpong_result_bytes_match_kitex() {
    let bytes = cat(&[&STRUCT_0, &BINARY_1, &[0, 0, 0, 12], PING, &[STOP], &[STOP]]);
    let result = PingPongResult {
        success: Some(Response {
            payload: Some(PING.to_vec()),
        }),
    };
    assert_eq!(encode(&result), bytes);
    assert_eq!(decode::<PingPongResult>(&bytes).unwrap(), result);
}

#[test]
fn request_in_kitex_field_order_decodes() {
    // Kitex writes count (2) before payload (1): fixed-size fields first. WIRE.md §3.3.
    let bytes = cat(&[
        &I32_2,
        &[0, 0, 0, 5],
        &BINARY_1,
        &[0, 0, 0, 6],
        b"stream",
        &[STOP],
    ]);
    let want = Request {
        payload: Some(b"stream".to_vec()),
        count: Some(5),
    };
    assert_eq!(decode::<Request>(&bytes).unwrap(), want);
    // We write in id order; both are valid Thrift.
    let ours = cat(&[
        &BINARY_1,
        &[0, 0, 0, 6],
        b"stream",
        &I32_2,
        &[0, 0, 0, 5],
        &[STOP],
    ]);
    assert_eq!(encode(&want), ours);
}

#[test]
fn negative_count_and_empty_payload() {
    let r = Request {
        payload: Some(Vec::new()),
        count: Some(-5),
    };
    let bytes = cat(&[
        &BINARY_1,
        &[0, 0, 0, 0],
        &I32_2,
        &[0xff, 0xff, 0xff, 0xfb],
        &[STOP],
    ]);
    assert_eq!(encode(&r), bytes);
    assert_eq!(decode::<Request>(&bytes).unwrap(), r);
}

#[test]
fn unset_fields_are_absent() {
    assert_eq!(encode(&Request::default()), [STOP]);
    assert_eq!(encode(&Response::default()), [STOP]);
    // A biz error's PingPong result has no success field (WIRE.md §1.3).
    assert_eq!(encode(&PingPongResult::default()), [STOP]);
    assert_eq!(decode::<PingPongResult>(&[STOP]).unwrap().success, None);
}

#[test]
fn unknown_fields_are_skipped() {
    // Field 9: a list<i64> of 2; field 1 as I32 (the IDL says binary: skipped, not misread).
    let bytes = cat(&[
        &[0x0f, 0x00, 0x09, 0x0a, 0, 0, 0, 2],
        &[0; 16],
        &[0x08, 0x00, 0x01, 0, 0, 0, 7],
        &BINARY_1,
        &[0, 0, 0, 2],
        b"ok",
        &[STOP],
    ]);
    let r = decode::<Response>(&bytes).unwrap();
    assert_eq!(r.payload.as_deref(), Some(&b"ok"[..]));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = ping_args_bytes();
    for n in 0..bytes.len() {
        assert!(
            decode::<PingPongArgs>(&bytes[..n]).is_err(),
            "prefix of {n} bytes"
        );
    }
}

#[test]
fn malformed_input_is_an_error() {
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "negative length",
            cat(&[&BINARY_1, &[0xff, 0xff, 0xff, 0xff], &[STOP]]),
        ),
        (
            "length past the end",
            cat(&[&BINARY_1, &[0x7f, 0xff, 0xff, 0xff], b"x"]),
        ),
        ("unknown type byte", vec![0x42, 0x00, 0x01, STOP]),
        ("trailing bytes", vec![STOP, STOP]),
        ("no STOP", cat(&[&I32_2, &[0, 0, 0, 1]])),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        assert!(decode::<Request>(&bytes).is_err(), "{what}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // 10,000 nested unknown struct fields (id 5): Thrift's depth limit stops the skip.
    let mut bytes = [0x0c, 0x00, 0x05].repeat(10_000);
    bytes.extend(std::iter::repeat_n(STOP, 10_001));
    assert!(decode::<Request>(&bytes).is_err());
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic generator (xorshift): every decoder on many short inputs.
    let mut x: u32 = 0x2545_f491;
    for _ in 0..20_000 {
        let mut buf = Vec::new();
        for _ in 0..(x % 24) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf.push((x & 0xff) as u8);
        }
        x = x.wrapping_add(1);
        let _ = decode::<Request>(&buf);
        let _ = decode::<Response>(&buf);
        let _ = decode::<PingPongArgs>(&buf);
        let _ = decode::<PingPongResult>(&buf);
    }
}
