//! The server's connection limits through the C ABI (called from Rust): a connection past
//! `max_connection_age_ms` and its grace is closed, ending a call that was still open; one
//! idle past `max_connection_idle_ms` is closed.

use rillrpc_c::*;
use std::ptr::null;
use std::time::Duration;

const T: i64 = 10_000;
const BIDI: u32 = rill_shape::RILL_BIDI as u32;

/// A started server with a bidi method, its options set by `set`: its handle and port.
fn started(set: impl FnOnce(&mut rill_server_options)) -> (rill_server, u16) {
    let mut srv = 0;
    let mut port = 0u16;
    // SAFETY: for all calls below, every pointer is a static C string or a local out-variable.
    unsafe {
        let mut o = std::mem::zeroed();
        assert_eq!(rill_server_options_init(&mut o), rill_result::RILL_OK);
        set(&mut o);
        assert_eq!(rill_server_new(&o, &mut srv), rill_result::RILL_OK);
        assert_eq!(
            rill_server_add_method(srv, c"/a.B/Bidi".as_ptr(), BIDI),
            rill_result::RILL_OK
        );
        assert_eq!(
            rill_server_listen(srv, c"127.0.0.1:0".as_ptr(), null(), null()),
            rill_result::RILL_OK
        );
        assert_eq!(rill_server_start(srv), rill_result::RILL_OK);
        assert_eq!(rill_server_port(srv, &mut port), rill_result::RILL_OK);
    }
    (srv, port)
}

#[test]
fn a_call_open_past_the_age_and_its_grace_is_ended() {
    let (srv, port) = started(|o| {
        o.max_connection_age_ms = 200; // 0 (the default): the call below would hang
        o.max_connection_age_grace_ms = 300;
    });
    // The client: the core's, a bidi call the server's handler never ends.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ch = rillrpc::Channel::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let mut call = rt.block_on(async {
        let opts = rillrpc::CallOptions::default();
        ch.open("/a.B/Bidi", rillrpc::Shape::Bidi, opts).unwrap()
    });
    let mut sc = 0;
    assert_eq!(rill_server_accept(srv, &mut sc, T), rill_result::RILL_OK);
    let ended =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), call.recv()).await });
    let status = ended.expect("the call ended before the test's own limit");
    assert!(status.is_err(), "{status:?}");
    assert_eq!(rill_server_call_free(sc), rill_result::RILL_OK);
    assert_eq!(rill_server_shutdown(srv, 100), rill_result::RILL_OK);
    assert_eq!(rill_server_free(srv), rill_result::RILL_OK);
}

/// A server with `max_connection_idle_ms` (or 0, the default) through the C ABI, and a
/// bare HTTP/2 client that opens a connection, makes no call and answers the server's
/// SETTINGS and PINGs: whether the server sent GOAWAY and closed within `wait`.
fn idle_connection_closed(idle_ms: i64, wait: Duration) -> bool {
    use std::io::{Read, Write};
    let (srv, port) = started(|o| o.max_connection_idle_ms = idle_ms);
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(wait)).unwrap();
    // The preface, then an empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    tcp.write_all(&[0, 0, 0, 0x04, 0, 0, 0, 0, 0]).unwrap();
    let mut goaway = false;
    let closed = loop {
        let mut head = [0u8; 9];
        match tcp.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break true,
            Err(_) => break false, // the wait is over, the connection still open
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).unwrap();
        match (head[3], head[4] & 1) {
            // SETTINGS: ACK it (type 4, flags 0x1).
            (0x04, 0) => tcp.write_all(&[0, 0, 0, 0x04, 0x01, 0, 0, 0, 0]).unwrap(),
            // PING: the same 8 bytes back with ACK (type 6, flags 0x1).
            (0x06, 0) => {
                tcp.write_all(&[0, 0, 8, 0x06, 0x01, 0, 0, 0, 0]).unwrap();
                tcp.write_all(&payload).unwrap();
            }
            (0x07, _) => goaway = true,
            _ => {}
        }
    };
    assert_eq!(rill_server_shutdown(srv, 100), rill_result::RILL_OK);
    assert_eq!(rill_server_free(srv), rill_result::RILL_OK);
    assert_eq!(closed, goaway, "a close comes after a GOAWAY");
    closed
}

#[test]
fn a_connection_idle_past_max_connection_idle_is_closed() {
    assert!(idle_connection_closed(200, Duration::from_secs(5)));
    assert!(!idle_connection_closed(0, Duration::from_millis(800)));
}

/// Four PINGs at once on a connection without calls (the preface, an empty SETTINGS, then
/// PING frames of 8 bytes on stream 0): what the server sent back until it closed, or
/// until it had been quiet for half a second.
fn answer_to_four_pings(port: u16) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    b.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    for i in 0..4u8 {
        b.extend([0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, i]);
    }
    s.write_all(&b).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// The GOAWAY frame's error code in `bytes`, if one is there.
fn goaway_code(mut bytes: &[u8]) -> Option<u32> {
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        if bytes[3] == 7 && bytes.len() >= 17 {
            return Some(u32::from_be_bytes([
                bytes[13], bytes[14], bytes[15], bytes[16],
            ]));
        }
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    None
}

#[test]
fn keepalive_enforcement_is_the_options() {
    let (strict, strict_port) = started(|_| {});
    // ENHANCE_YOUR_CALM (0xb) by default, as grpc-go's server.
    assert_eq!(goaway_code(&answer_to_four_pings(strict_port)), Some(0xb));
    let (lenient, lenient_port) = started(|o| {
        o.permit_keepalive_time_ms = 0;
        o.permit_keepalive_without_calls = true;
    });
    assert_eq!(goaway_code(&answer_to_four_pings(lenient_port)), None);
    for s in [strict, lenient] {
        assert_eq!(rill_server_shutdown(s, 100), rill_result::RILL_OK);
        assert_eq!(rill_server_free(s), rill_result::RILL_OK);
    }
}

/// What the server sends a client that says hello (the preface, an empty SETTINGS) and
/// then nothing, answering nothing: read until the server closes or `quiet` passes with
/// nothing new. Whether the connection closed, and whether a PING of the server's came.
fn quiet_client(port: u16, quiet: Duration) -> (bool, bool) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    b.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    s.write_all(&b).unwrap();
    s.set_read_timeout(Some(quiet)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let mut bytes = &got[..];
    let mut pinged = false;
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        // PING (6) without the ACK flag: the server's own.
        pinged |= bytes[3] == 6 && bytes[4] == 0;
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    (closed, pinged)
}

#[test]
fn the_servers_keepalive_is_the_options() {
    let (pinging, pinging_port) = started(|o| {
        o.keepalive_time_ms = 100;
        o.keepalive_timeout_ms = 200;
    });
    assert_eq!(
        quiet_client(pinging_port, Duration::from_secs(10)),
        (true, true)
    );
    let (silent, silent_port) = started(|o| o.keepalive_time_ms = 0);
    assert_eq!(
        quiet_client(silent_port, Duration::from_millis(800)),
        (false, false)
    );
    for s in [pinging, silent] {
        assert_eq!(rill_server_shutdown(s, 100), rill_result::RILL_OK);
        assert_eq!(rill_server_free(s), rill_result::RILL_OK);
    }
}
