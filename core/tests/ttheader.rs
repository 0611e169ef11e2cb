//! TTHeader Streaming (Kitex's StreamX) on the server's one port, from a raw TCP client with
//! the frame bytes spelled out (`interop/kitex/WIRE.md` §2 has Kitex's own): calls of each
//! shape, many streams on one connection, metadata, errors, and bad input. Each bad case
//! ends its stream (or, where the framing cannot recover, its connection) and the next
//! stream or connection still works. Real Kitex clients meet the same server in
//! `make test-kitex`.

mod common;

use common::*;
use rillrpc::ServerOptions;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("a hex byte"))
        .collect()
}

const HEADER: u8 = b'2';
const DATA: u8 = b'3';
const TRAILER: u8 = b'4';
const RST: u8 = b'5';

/// A TTHeader Streaming frame as Kitex lays it out: string pairs, then the int pairs
/// FrameType (27) and ToMethod (9), zero padding to 4 bytes, then the payload.
fn frame(kind: u8, id: u32, method: &str, strs: &[(&str, &[u8])], payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x10, 0x00]; // protocol ThriftStruct, no transforms
    if !strs.is_empty() {
        h.push(0x01);
        h.extend((strs.len() as u16).to_be_bytes());
        for (k, v) in strs {
            h.extend((k.len() as u16).to_be_bytes());
            h.extend(k.as_bytes());
            h.extend((v.len() as u16).to_be_bytes());
            h.extend(*v);
        }
    }
    h.extend([0x10, 0x00, 0x02, 0x00, 0x1b, 0x00, 0x01, kind, 0x00, 0x09]);
    h.extend((method.len() as u16).to_be_bytes());
    h.extend(method.as_bytes());
    while h.len() % 4 != 0 {
        h.push(0);
    }
    let mut f = Vec::new();
    f.extend(((10 + h.len() + payload.len()) as u32).to_be_bytes());
    f.extend([0x10, 0x00, 0x00, 0x02]);
    f.extend(id.to_be_bytes());
    f.extend(((h.len() / 4) as u16).to_be_bytes());
    f.extend(h);
    f.extend(payload);
    f
}

/// A frame read back: its bytes, and what they say.
#[derive(Debug)]
struct Got {
    bytes: Vec<u8>,
    kind: u8,
    id: u32,
    strs: Vec<(String, Vec<u8>)>,
    payload: Vec<u8>,
}

impl Got {
    fn str(&self, k: &str) -> Option<&[u8]> {
        self.strs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| &v[..])
    }
}

/// The next frame (or PingPong packet, whose kind reads 0) from the server; `None` once it
/// closed the connection.
async fn read_frame(tcp: &mut TcpStream) -> Option<Got> {
    let mut len = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut len))
        .await
        .expect("a frame or the end in time");
    read.ok()?;
    let mut rest = vec![0u8; u32::from_be_bytes(len) as usize];
    tcp.read_exact(&mut rest)
        .await
        .expect("the rest of the frame");
    let id = u32::from_be_bytes(rest[4..8].try_into().unwrap());
    let hlen = 4 * u16::from_be_bytes([rest[8], rest[9]]) as usize;
    let (h, payload) = rest[10..].split_at(hlen);
    let (mut strs, mut kind, mut i) = (Vec::new(), 0, 2);
    let u16_at = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]) as usize;
    while i < h.len() {
        match h[i] {
            0x00 => i += 1,
            0x01 => {
                let n = u16_at(i + 1);
                i += 3;
                for _ in 0..n {
                    let kl = u16_at(i);
                    let k = String::from_utf8(h[i + 2..i + 2 + kl].to_vec()).unwrap();
                    i += 2 + kl;
                    let vl = u16_at(i);
                    strs.push((k, h[i + 2..i + 2 + vl].to_vec()));
                    i += 2 + vl;
                }
            }
            0x10 => {
                let n = u16_at(i + 1);
                i += 3;
                for _ in 0..n {
                    let (key, vl) = (u16_at(i), u16_at(i + 2));
                    if key == 27 {
                        kind = h[i + 4];
                    }
                    i += 4 + vl;
                }
            }
            other => panic!("info id {other:#x} from our server"),
        }
    }
    let mut bytes = len.to_vec();
    bytes.extend(&rest);
    Some(Got {
        bytes,
        kind,
        id,
        strs,
        payload: payload.to_vec(),
    })
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

async fn send(tcp: &mut TcpStream, frames: &[Vec<u8>]) {
    tcp.write_all(&frames.concat()).await.unwrap();
}

/// The frames of one stream until its TRAILER or RST, with any other stream's skipped.
async fn stream_frames(tcp: &mut TcpStream, id: u32) -> Vec<Got> {
    let mut out = Vec::new();
    while let Some(f) = read_frame(tcp).await {
        if f.id != id {
            continue;
        }
        let end = f.kind == TRAILER || f.kind == RST;
        out.push(f);
        if end {
            break;
        }
    }
    out
}

/// The frames of two streams until each one's TRAILER or RST, read as they interleave.
async fn two_streams(tcp: &mut TcpStream, ids: [u32; 2]) -> [Vec<Got>; 2] {
    let mut got = [Vec::new(), Vec::new()];
    let ended = |fs: &[Got]| {
        fs.last()
            .is_some_and(|f| f.kind == TRAILER || f.kind == RST)
    };
    while !ended(&got[0]) || !ended(&got[1]) {
        let f = read_frame(tcp).await.expect("a frame");
        match ids.iter().position(|&id| id == f.id) {
            Some(i) => got[i].push(f),
            None => panic!("a frame on stream {}", f.id),
        }
    }
    got
}

/// A server that takes messages of up to 64 bytes, and a connection to it.
async fn limited_to_64_bytes() -> (std::sync::Arc<rillrpc::Server>, TcpStream) {
    let server = rill_server(ServerOptions {
        max_recv_message_size: 64,
        ..Default::default()
    });
    let tcp = connect(server.local_addr()).await;
    (server, tcp)
}

/// The echoed payloads of a stream's DATA frames.
fn payloads(fs: &[Got]) -> Vec<Vec<u8>> {
    fs.iter()
        .filter(|f| f.kind == DATA)
        .map(|f| resp_payload(&f.payload))
        .collect()
}

fn isn() -> (&'static str, &'static [u8]) {
    ("isn", b"TestService")
}

/// A server-streaming call opened by a Kitex client and run to the end works, and stream
/// `id` on a connection that already carried broken streams shows the connection is fine.
async fn server_stream_works(tcp: &mut TcpStream, id: u32) {
    send(
        tcp,
        &[
            frame(HEADER, id, "EchoServer", &[isn()], b""),
            frame(DATA, id, "EchoServer", &[], &req(b"ok", 2)),
            frame(TRAILER, id, "EchoServer", &[], b""),
        ],
    )
    .await;
    let got = stream_frames(tcp, id).await;
    let kinds: Vec<u8> = got.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [HEADER, DATA, DATA, TRAILER], "{got:?}");
    assert_eq!(resp_payload(&got[1].payload), b"ok");
}

#[tokio::test]
async fn kitexs_server_streaming_call_is_answered_frame_by_frame() {
    let server = rill_server(ServerOptions::default());
    let mut tcp = connect(server.local_addr()).await;
    // WIRE.md §2.1: the HEADER frame Kitex's client opens EchoServer with, byte for byte.
    let header = hex("00 00 00 3a  10 00  00 02  00 00 00 01  00 0c  10  00
         01 00 01  00 03 69 73 6e  00 0b 54 65 73 74 53 65 72 76 69 63 65
         10 00 02  00 1b 00 01 32  00 09 00 0a 45 63 68 6f 53 65 72 76 65 72
         00 00 00");
    assert_eq!(header, frame(HEADER, 1, "EchoServer", &[isn()], b""));
    send(
        &mut tcp,
        &[
            header,
            frame(DATA, 1, "EchoServer", &[], &req(b"stream", 3)),
            frame(TRAILER, 1, "EchoServer", &[], b""),
        ],
    )
    .await;
    let got = stream_frames(&mut tcp, 1).await;
    assert_eq!(got.len(), 5, "{got:?}");
    // The server's HEADER and TRAILER as Kitex's server sends them (WIRE.md §2.1).
    let head = hex("00 00 00 22  10 00  00 02  00 00 00 01  00 06  10  00
         10 00 02  00 1b 00 01 32  00 09 00 0a 45 63 68 6f 53 65 72 76 65 72");
    assert_eq!(got[0].bytes, head);
    for d in &got[1..4] {
        assert_eq!((d.kind, d.id), (DATA, 1));
        assert_eq!(resp_payload(&d.payload), b"stream");
    }
    let trailer = hex("00 00 00 22  10 00  00 02  00 00 00 01  00 06  10  00
         10 00 02  00 1b 00 01 34  00 09 00 0a 45 63 68 6f 53 65 72 76 65 72");
    assert_eq!(got[4].bytes, trailer);
}

#[tokio::test]
async fn streams_of_every_shape_share_one_connection() {
    let server = rill_server(ServerOptions::default());
    let mut tcp = connect(server.local_addr()).await;
    // A bidi stream and a client stream, opened at once, their frames interleaved.
    send(
        &mut tcp,
        &[
            frame(HEADER, 1, "Echo", &[isn()], b""),
            frame(HEADER, 2, "EchoClient", &[isn()], b""),
            frame(DATA, 2, "EchoClient", &[], &req(b"abc", 0)),
            frame(DATA, 1, "Echo", &[], &req(b"one", 0)),
            frame(DATA, 2, "EchoClient", &[], &req(b"de", 0)),
            frame(DATA, 1, "Echo", &[], &req(b"two", 0)),
            frame(TRAILER, 2, "EchoClient", &[], b""),
            frame(TRAILER, 1, "Echo", &[], b""),
        ],
    )
    .await;
    let [echo, client] = two_streams(&mut tcp, [1, 2]).await;
    assert_eq!(payloads(&echo), [b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(payloads(&client), [b"5".to_vec()]);
    // Unary too, over TTHeader Streaming (a Kitex method with streaming.mode="unary").
    send(
        &mut tcp,
        &[
            frame(HEADER, 3, "PingPong", &[isn()], b""),
            frame(DATA, 3, "PingPong", &[], &req(b"single", 0)),
            frame(TRAILER, 3, "PingPong", &[], b""),
        ],
    )
    .await;
    let got = stream_frames(&mut tcp, 3).await;
    assert_eq!(resp_payload(&got[1].payload), b"single", "{got:?}");
}

#[tokio::test]
async fn metadata_comes_in_the_header_and_goes_back_in_header_and_trailer() {
    let server = rill_server(ServerOptions::default());
    let mut tcp = connect(server.local_addr()).await;
    let md: &[(&str, &[u8])] = &[isn(), ("echo-key", b"value")];
    send(
        &mut tcp,
        &[
            frame(HEADER, 7, "EchoServer", md, b""),
            frame(DATA, 7, "EchoServer", &[], &req(b"m", 1)),
            frame(TRAILER, 7, "EchoServer", &[], b""),
        ],
    )
    .await;
    let got = stream_frames(&mut tcp, 7).await;
    assert_eq!(got[0].str("echo-key"), Some(&b"value"[..]));
    // The echo service names the protocol the call came in on.
    assert_eq!(got[0].str("echo-protocol"), Some(&b"ttheader"[..]));
    assert_eq!(got[2].kind, TRAILER);
    assert_eq!(got[2].str("echo-key"), Some(&b"value"[..]));
}

#[tokio::test]
async fn an_error_ends_the_stream_with_an_exception_and_an_unknown_method_with_unknown_method() {
    let server = rill_server(ServerOptions::default());
    let mut tcp = connect(server.local_addr()).await;
    // count -5: the echo service ends the call with status 5 (NOT_FOUND), message "boom".
    send(
        &mut tcp,
        &[
            frame(HEADER, 1, "EchoServer", &[isn()], b""),
            frame(DATA, 1, "EchoServer", &[], &req(b"boom", -5)),
            frame(TRAILER, 1, "EchoServer", &[], b""),
        ],
    )
    .await;
    let got = stream_frames(&mut tcp, 1).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].kind, got[1].kind), (HEADER, TRAILER));
    // TMessage EXCEPTION "EchoServer", seq id 1; TApplicationException {1: "boom", 2: 6
    // INTERNAL_ERROR}.
    let exception = hex(
        "80 01 00 03  00 00 00 0a 45 63 68 6f 53 65 72 76 65 72  00 00 00 01
         0b 00 01 00 00 00 04 62 6f 6f 6d  08 00 02 00 00 00 06  00",
    );
    assert_eq!(got[1].payload, exception);

    send(&mut tcp, &[frame(HEADER, 3, "Nope", &[isn()], b"")]).await;
    let got = stream_frames(&mut tcp, 3).await;
    assert_eq!(got.len(), 2, "{got:?}");
    // Type 1 UNKNOWN_METHOD, the message naming the method and service.
    let p = &got[1].payload;
    assert_eq!(&p[p.len() - 5..], [0, 0, 0, 1, 0]);
    let text = String::from_utf8_lossy(p);
    assert!(
        text.contains("unknown method Nope for service TestService"),
        "{text}"
    );
    server_stream_works(&mut tcp, 5).await;
}

#[tokio::test]
async fn a_second_header_a_stray_frame_and_an_oversized_message_end_only_their_stream() {
    let (_server, mut tcp) = limited_to_64_bytes().await;
    // A second HEADER on open stream 1: the stream is broken, and ends.
    send(
        &mut tcp,
        &[
            frame(HEADER, 1, "Echo", &[isn()], b""),
            frame(HEADER, 1, "Echo", &[isn()], b""),
        ],
    )
    .await;
    let got = stream_frames(&mut tcp, 1).await;
    let end = got.last().expect("an end");
    assert!(end.kind == TRAILER || end.kind == RST, "{got:?}");
    assert!(
        String::from_utf8_lossy(&end.payload).contains("a second HEADER frame on stream 1"),
        "{got:?}"
    );
    // DATA and a TRAILER on stream 99, never opened: dropped.
    send(
        &mut tcp,
        &[
            frame(DATA, 99, "Echo", &[], &req(b"stray", 0)),
            frame(TRAILER, 99, "Echo", &[], b""),
        ],
    )
    .await;
    // A 100-byte message over the server's limit of 64: RESOURCE_EXHAUSTED ends stream 3.
    send(
        &mut tcp,
        &[
            frame(HEADER, 3, "Echo", &[isn()], b""),
            frame(DATA, 3, "Echo", &[], &req(&[b'x'; 100], 0)),
        ],
    )
    .await;
    let got = stream_frames(&mut tcp, 3).await;
    let text = String::from_utf8_lossy(&got.last().unwrap().payload).into_owned();
    assert!(text.contains("over the limit of 64 bytes"), "{got:?}");
    server_stream_works(&mut tcp, 5).await;
}

/// The DATA frames of one read reach their streams as runs, one per stream and stretch of
/// consecutive frames, whose messages the call takes out one by one: here the frames of
/// two streams interleave, one frame carries string pairs of its own (info blocks unlike
/// the other DATA frames', by which the reader knows them), and a message over the limit
/// ends its stream before the message after it in the same run is handed out.
#[tokio::test]
async fn the_data_frames_of_one_read_are_handed_out_in_order_up_to_an_oversized_message() {
    let (_server, mut tcp) = limited_to_64_bytes().await;
    send(
        &mut tcp,
        &[
            frame(HEADER, 1, "Echo", &[isn()], b""),
            frame(HEADER, 3, "Echo", &[isn()], b""),
            frame(DATA, 1, "Echo", &[], &req(b"a", 0)),
            frame(DATA, 1, "Echo", &[("k", b"v")], &req(b"b", 0)),
            frame(DATA, 3, "Echo", &[], &req(b"one", 0)),
            frame(DATA, 1, "Echo", &[], &req(b"c", 0)),
            frame(DATA, 3, "Echo", &[], &req(&[b'x'; 100], 0)),
            frame(DATA, 3, "Echo", &[], &req(b"two", 0)),
            frame(DATA, 1, "Echo", &[], &req(b"d", 0)),
            frame(TRAILER, 1, "Echo", &[], b""),
        ],
    )
    .await;
    let [one, three] = two_streams(&mut tcp, [1, 3]).await;
    let want: Vec<Vec<u8>> = [b"a", b"b", b"c", b"d"].map(|p| p.to_vec()).into();
    assert_eq!(payloads(&one), want, "{one:?}");
    // The call ends with the status in place of what its handler queued (`abort_with`):
    // "one" may or may not have gone out first; "two" never is.
    assert!(payloads(&three).iter().all(|p| p == b"one"), "{three:?}");
    let text = String::from_utf8_lossy(&three.last().unwrap().payload).into_owned();
    assert!(text.contains("over the limit of 64 bytes"), "{three:?}");
    server_stream_works(&mut tcp, 5).await;
}

#[tokio::test]
async fn a_client_reset_cancels_the_call_and_the_connection_goes_on() {
    let server = rill_server(ServerOptions::default());
    let mut tcp = connect(server.local_addr()).await;
    send(
        &mut tcp,
        &[
            frame(HEADER, 1, "Echo", &[isn()], b""),
            frame(DATA, 1, "Echo", &[], &req(b"first", 0)),
        ],
    )
    .await;
    let got = read_frame(&mut tcp).await.unwrap();
    assert_eq!(got.kind, HEADER);
    let got = read_frame(&mut tcp).await.unwrap();
    assert_eq!(resp_payload(&got.payload), b"first");
    // WIRE.md §2.3: Kitex's RST, its TApplicationException of type 12007 (message cut).
    let exception = hex("80 01 00 03  00 00 00 04 45 63 68 6f  00 00 00 01
         0b 00 01 00 00 00 03 62 79 65  08 00 02 00 00 2e e7  00");
    send(
        &mut tcp,
        &[frame(
            RST,
            1,
            "Echo",
            &[("ttscp", b"kitex-client")],
            &exception,
        )],
    )
    .await;
    server_stream_works(&mut tcp, 3).await;
}

/// A client with a receive buffer of 4 KiB that reads nothing until the test says so: the
/// server's frames to it wait once the socket's buffers are full.
async fn unread_client(addr: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// EchoServer calls on streams `ids`, each asking for `count` answers of 1 KiB: opened,
/// sent and half-closed.
fn server_streams(ids: impl IntoIterator<Item = u32>, count: i32) -> Vec<Vec<u8>> {
    ids.into_iter()
        .flat_map(|id| {
            [
                frame(HEADER, id, "EchoServer", &[isn()], b""),
                frame(DATA, id, "EchoServer", &[], &req(&[7; 1024], count)),
                frame(TRAILER, id, "EchoServer", &[], b""),
            ]
        })
        .collect()
}

/// TTHeader Streaming meets the send budget as HTTP/2 does: a client that opens server
/// streams wanting 100 MB each and never reads makes them stall; over the connection's
/// budget the server cuts the stalled streams holding the most, each with an RST frame
/// whose exception says why, and drops what they had waiting. Without the budget the
/// server would hold about 128 KiB for each, as many as the client opens. The streams'
/// transport holds at most half the budget and each stream's queue its least (2 KiB)
/// once they stall: 48 streams are over a budget of 128 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_whose_client_reads_nothing_are_cut_past_the_connections_send_budget() {
    let server = rill_server(ServerOptions {
        connection_send_budget: Some(128 << 10),
        ..Default::default()
    });
    let mut tcp = unread_client(server.local_addr()).await;
    send(&mut tcp, &server_streams(1..=48, 100_000)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Until an RST comes, behind the frames the socket's buffers hold (a few MB): a
    // server that cuts nothing sends 48 × 100 MB. A loaded server may not have filled its
    // buffers in those 2 s, and then keeps up with a client reading at full speed, which
    // it must not cut: the client stops reading for a second after each 8 MB.
    let mut frames = 0;
    let rst = loop {
        let f = read_frame(&mut tcp)
            .await
            .expect("the server keeps sending");
        assert_ne!(f.kind, TRAILER, "stream {} ended but by a cut", f.id);
        if f.kind == RST {
            break f;
        }
        frames += 1;
        if frames % 8_000 == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(frames < 50_000, "no stream was cut in 50 MB");
    };
    let why = String::from_utf8_lossy(&rst.payload);
    assert!(
        why.contains("the server's send budget is spent"),
        "stream {} reset: {why}",
        rst.id
    );
}

/// Regression: the frames a stream still had waiting to be written when its call ended
/// were credited, as they went out, to whatever stream the peer opened next with the same
/// id, taking that stream's count of bytes waiting below zero: the connection's task
/// panicked (debug builds) or the stream waited for room for ever. Each stream's frames
/// are now its own: here stream 3 ends with its answers waiting behind stream 1's, which
/// fill the socket, and opens again for more answers than its room takes, so that it is
/// still sending when the first one's go out; both stream 3s and stream 1 finish, and the
/// connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_stream_opened_again_while_its_frames_wait_is_a_stream_of_its_own() {
    let server = rill_server(ServerOptions::default());
    let mut tcp = unread_client(server.local_addr()).await;
    send(&mut tcp, &server_streams([1], 8_000)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&mut tcp, &server_streams([3], 10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&mut tcp, &server_streams([3], 100)).await;
    let mut seen = std::collections::HashMap::<u32, Vec<u8>>::new();
    let mut trailers = 0;
    let by = tokio::time::Instant::now() + Duration::from_secs(30);
    while trailers < 3 {
        let f = tokio::time::timeout_at(by, read_frame(&mut tcp)).await;
        let counts: Vec<(u32, usize)> = seen.iter().map(|(id, k)| (*id, k.len())).collect();
        let f = f
            .unwrap_or_else(|_| panic!("stuck after frames {counts:?}"))
            .unwrap_or_else(|| panic!("the connection closed after frames {counts:?}"));
        trailers += usize::from(f.kind == TRAILER);
        seen.entry(f.id).or_default().push(f.kind);
    }
    let first = [vec![HEADER], vec![DATA; 10], vec![TRAILER]].concat();
    let again = [vec![HEADER], vec![DATA; 100], vec![TRAILER]].concat();
    assert_eq!(seen[&3], [first, again].concat());
    assert_eq!(seen[&1].len(), 8_002);
    server_stream_works(&mut tcp, 5).await;
}

/// Each of these breaks the framing: the server closes that connection (nothing can be
/// skipped in TTHeader), and a new connection works.
#[tokio::test]
async fn bytes_that_break_the_framing_close_only_their_connection() {
    let server = rill_server(ServerOptions {
        max_recv_message_size: 1024,
        ..Default::default()
    });
    let open = frame(HEADER, 1, "Echo", &[isn()], b"");
    let bad_magic = hex("00 00 00 0e  20 00  00 02  00 00 00 03  00 01  10 00 00 00");
    // LENGTH 16 MiB, over the limit of 1,024 bytes and the header room.
    let too_long = hex("01 00 00 00  10 00  00 02  00 00 00 03  00 01  10 00 00 00");
    // HEADER SIZE 100 words, past the packet's 18 bytes.
    let header_past_frame = hex("00 00 00 0e  10 00  00 02  00 00 00 03  00 64  10 00 00 00");
    // No streaming flag after the first frame.
    let mut not_streaming = frame(DATA, 1, "Echo", &[], &req(b"x", 0));
    not_streaming[7] = 0x00;
    // FrameType "9".
    let mut unknown_kind = frame(DATA, 1, "Echo", &[], &req(b"x", 0));
    let at = unknown_kind
        .windows(5)
        .position(|w| w == [0, 0x1b, 0, 1, b'3'])
        .unwrap();
    unknown_kind[at + 4] = b'9';
    // Info id 0x42.
    let unknown_info = hex("00 00 00 0e  10 00  00 02  00 00 00 03  00 01  10 00 42 00");
    // The info blocks of the DATA frame before it, which the reader knows a DATA frame
    // by, but no streaming flag.
    let not_streaming_after_data = [
        frame(DATA, 1, "Echo", &[], &req(b"x", 0)),
        not_streaming.clone(),
    ]
    .concat();
    for (name, bad) in [
        ("bad magic", bad_magic),
        ("length past the limit", too_long),
        ("header size past the frame", header_past_frame),
        ("no streaming flag", not_streaming),
        (
            "no streaming flag after a DATA frame",
            not_streaming_after_data,
        ),
        ("unknown frame type", unknown_kind),
        ("unknown info id", unknown_info),
    ] {
        let mut tcp = connect(server.local_addr()).await;
        send(&mut tcp, &[open.clone(), bad]).await;
        // Read until the server closes (`read_frame` panics if it does not within 5 s).
        while let Some(f) = read_frame(&mut tcp).await {
            assert_eq!(f.id, 1, "{name}: {f:?}");
        }
        let mut fresh = connect(server.local_addr()).await;
        server_stream_works(&mut fresh, 1).await;
    }
    // Torn mid-frame: half a DATA frame, then the client goes.
    let mut tcp = connect(server.local_addr()).await;
    let data = frame(DATA, 1, "Echo", &[], &req(b"torn", 0));
    send(&mut tcp, &[open.clone(), data[..data.len() / 2].to_vec()]).await;
    drop(tcp);
    let mut fresh = connect(server.local_addr()).await;
    server_stream_works(&mut fresh, 1).await;
}

// ---- Thrift PingPong (WIRE.md §1) ----

/// A server whose PingPong answers with the args struct it got, as its result struct (the
/// core passes Thrift structs through as bytes), or ends the call as the args ask: bytes
/// `biz` a biz status, `err` NOT_FOUND. Its headers are the call's metadata and, for a
/// call not in Thrift, `codec`: the call's codec. Echo (bidi) is registered to be refused.
fn pingpong_server(opts: ServerOptions) -> std::sync::Arc<rillrpc::Server> {
    use rillrpc::{Code, Metadata, ServerBuilder, Shape, Status};
    let server = std::sync::Arc::new(
        ServerBuilder::new(opts)
            .register("/echo.TestService/PingPong", Shape::Unary)
            .register("/echo.TestService/Echo", Shape::Bidi)
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let s = server.clone();
    tokio::spawn(async move {
        s.serve(|mut call| async move {
            let args = match call.recv_single().await {
                Ok(a) => a,
                Err(s) => return drop(call.finish(s)),
            };
            let mut headers = Metadata::new();
            for (k, v) in call.metadata().iter() {
                let _ = headers.append(k, v);
            }
            if call.codec() != "thrift" {
                headers.append_ascii("codec", call.codec()).unwrap();
            }
            let status = match &args[..] {
                b"biz" => {
                    let mut t = Metadata::new();
                    t.append_ascii("biz-status", "5").unwrap();
                    Status::new(Code::Internal, "biz says no").with_trailers(t)
                }
                b"err" => Status::new(Code::NotFound, "not here"),
                _ => {
                    let _ = call.send_headers(&headers);
                    let _ = call.send(args).await;
                    Status::ok()
                }
            };
            let _ = call.finish(status);
        })
        .await
        .unwrap();
    });
    server
}

/// A PingPong request in a TTHeader packet (`framed`: with a Framed length inside, as
/// Kitex's TTHeaderFramed sends it): isn TestService, MsgType 1, ToMethod, then a TMessage
/// CALL of `method`, `seq`, and `args`.
fn pingpong(seq: u32, method: &str, strs: &[(&str, &[u8])], args: &[u8], framed: bool) -> Vec<u8> {
    let mut all = strs.to_vec();
    all.push(isn());
    let msg = tmessage(1, method, seq, args);
    pingpong_packet(b'1', seq, method, &all, &msg, framed)
}

/// A TTHeader PingPong packet of message type `kind` (`1` CALL, `2` REPLY) holding `msg`,
/// Framed inside or not, with the string pairs `strs`.
fn pingpong_packet(
    kind: u8,
    seq: u32,
    method: &str,
    strs: &[(&str, &[u8])],
    msg: &[u8],
    framed: bool,
) -> Vec<u8> {
    let mut h = vec![0x00, 0x00, 0x01];
    h.extend((strs.len() as u16).to_be_bytes());
    for (k, v) in strs {
        h.extend((k.len() as u16).to_be_bytes());
        h.extend(k.as_bytes());
        h.extend((v.len() as u16).to_be_bytes());
        h.extend(*v);
    }
    let transport: &[u8] = if framed { b"framed" } else { b"unframed" };
    h.extend([0x10, 0x00, 0x03, 0x00, 0x16, 0x00, 0x01, kind, 0x00, 0x01]);
    h.extend((transport.len() as u16).to_be_bytes());
    h.extend(transport);
    h.extend([0x00, 0x09]);
    h.extend((method.len() as u16).to_be_bytes());
    h.extend(method.as_bytes());
    while h.len() % 4 != 0 {
        h.push(0);
    }
    let mut payload = Vec::new();
    if framed {
        payload.extend((msg.len() as u32).to_be_bytes());
    }
    payload.extend(msg);
    let mut f = Vec::new();
    f.extend(((10 + h.len() + payload.len()) as u32).to_be_bytes());
    f.extend([0x10, 0x00, 0x00, 0x00]);
    f.extend(seq.to_be_bytes());
    f.extend(((h.len() / 4) as u16).to_be_bytes());
    f.extend(h);
    f.extend(payload);
    f
}

/// A strict Thrift Binary TMessage of `kind` (1 CALL, 2 REPLY, 3 EXCEPTION).
fn tmessage(kind: u8, method: &str, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0x80, 0x01, 0x00, kind];
    m.extend((method.len() as u32).to_be_bytes());
    m.extend(method.as_bytes());
    m.extend(seq.to_be_bytes());
    m.extend(body);
    m
}

/// Kitex's TTHeaderFramed PingPong request of WIRE.md §1.2, its args struct.
const ARGS: &str = "0c 00 01  0b 00 01 00 00 00 0c 6d 61 74 72 69 78 00 ff 70 69 6e 67  00  00";

#[tokio::test]
async fn kitexs_pingpong_request_is_answered_in_its_own_framing() {
    let server = pingpong_server(ServerOptions::default());
    let mut tcp = connect(server.local_addr()).await;
    // WIRE.md §1.2, byte for byte.
    let request = hex(&format!(
        "00 00 00 8e  10 00  00 00  00 00 00 01  00 15  00  00
         01 00 01  00 03 69 73 6e  00 0b 54 65 73 74 53 65 72 76 69 63 65
         10 00 06  00 16 00 01 31  00 01 00 06 66 72 61 6d 65 64
         00 03 00 0c 6b 69 74 65 78 2d 63 6c 69 65 6e 74  00 14 00 00
         00 06 00 04 65 63 68 6f  00 09 00 08 50 69 6e 67 50 6f 6e 67  00 00 00
         00 00 00 2c  80 01 00 01  00 00 00 08 50 69 6e 67 50 6f 6e 67  00 00 00 01
         {ARGS}"
    ));
    send(&mut tcp, &[request]).await;
    let got = read_frame(&mut tcp).await.expect("an answer");
    // As Kitex's server answers (its §1.2 answer, with our result: the args echoed): MsgType
    // 2, then a Framed REPLY.
    let answer = hex(&format!(
        "00 00 00 46  10 00  00 00  00 00 00 01  00 03  00  00
         10 00 01  00 16 00 01 32  00 00
         00 00 00 2c  80 01 00 02  00 00 00 08 50 69 6e 67 50 6f 6e 67  00 00 00 01
         {ARGS}"
    ));
    assert_eq!(got.bytes, answer);

    // Unframed inside the TTHeader, then Framed alone: each answered the way it came.
    let args = hex(ARGS);
    send(&mut tcp, &[pingpong(2, "PingPong", &[], &args, false)]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    assert_eq!(got.payload, tmessage(2, "PingPong", 2, &args));
    let mut framed = tcp_framed(&tmessage(1, "PingPong", 3, &args));
    let mut tcp = connect(server.local_addr()).await;
    tcp.write_all(&framed).await.unwrap();
    let mut back = vec![0u8; framed.len()];
    tcp.read_exact(&mut back).await.unwrap();
    framed = tcp_framed(&tmessage(2, "PingPong", 3, &args));
    assert_eq!(back, framed);
}

/// Kitex's Buffered PingPong request (`transport.PurePayload`, WIRE.md §1.5): the bare
/// TMessage, its end found by walking it; answered bare. Sent a few bytes at a time, so the
/// walk resumes across reads, then two at once.
#[tokio::test]
async fn a_buffered_pingpong_request_is_answered_bare() {
    let server = pingpong_server(ServerOptions::default());
    let mut tcp = connect(server.local_addr()).await;
    let request = hex(&format!(
        "80 01 00 01  00 00 00 08 50 69 6e 67 50 6f 6e 67  00 00 00 01  {ARGS}"
    ));
    for piece in request.chunks(5) {
        tcp.write_all(piece).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let answer = hex(&format!(
        "80 01 00 02  00 00 00 08 50 69 6e 67 50 6f 6e 67  00 00 00 01  {ARGS}"
    ));
    let mut back = vec![0u8; answer.len()];
    tcp.read_exact(&mut back).await.unwrap();
    assert_eq!(back, answer);
    let args = hex(ARGS);
    let two = [
        tmessage(1, "PingPong", 2, &args),
        tmessage(1, "PingPong", 3, &args),
    ]
    .concat();
    tcp.write_all(&two).await.unwrap();
    let want = [
        tmessage(2, "PingPong", 2, &args),
        tmessage(2, "PingPong", 3, &args),
    ]
    .concat();
    let mut back = vec![0u8; want.len()];
    tcp.read_exact(&mut back).await.unwrap();
    assert_eq!(back, want);
}

/// A KitexProtobuf message of `kind` (1 CALL, 2 REPLY, 3 EXCEPTION): Kitex's
/// `ProtobufV1Magic` (`90 01`) and the type, the method name, the sequence id, the body.
fn pbmessage(kind: u8, method: &str, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut m = tmessage(kind, method, seq, body);
    m[0] = 0x90;
    m
}

/// `pingpong`'s request as a Kitex client of a protobuf service sends it by default
/// (TTHeaderFramed, `client.initTransportProtocol`; WIRE.md §1.6): protocol id 00, as for
/// Thrift, and a Framed KitexProtobuf message.
fn pb_pingpong(seq: u32, method: &str, strs: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut f = pingpong(seq, method, strs, body, true);
    assert_eq!(f[14], 0x00, "protocol id ThriftBinary, Kitex's default");
    let at = f.len() - body.len() - tmessage(1, method, seq, b"").len();
    assert_eq!(f[at..at + 2], [0x80, 0x01]);
    f[at] = 0x90;
    f
}

/// A Kitex client of a protobuf service (its methods unary) sends KitexProtobuf in
/// TTHeaderFramed: the handler gets the request message as a `proto` call, and the answer
/// goes back in kind, as Kitex's server writes it (WIRE.md §1.6).
#[tokio::test]
async fn a_kitex_protobuf_pingpong_request_is_answered_in_kind() {
    let server = pingpong_server(ServerOptions::default());
    let mut tcp = connect(server.local_addr()).await;
    // echo.Request {payload: "hi"}.
    let msg = hex("0a 02 68 69");
    let md: &[(&str, &[u8])] = &[("RPC_TRANSIT_ECHO_KEY", b"value")];
    send(&mut tcp, &[pb_pingpong(1, "PingPong", md, &msg)]).await;
    let got = read_frame(&mut tcp).await.expect("an answer");
    assert_eq!(got.bytes[14], 0x00, "the request's protocol id");
    assert_eq!(got.str("codec"), Some(&b"proto"[..]));
    assert_eq!(got.str("RPC_TRANSIT_ECHO_KEY"), Some(&b"value"[..]));
    // Framed inside the TTHeader, then the REPLY with the handler's message.
    let reply = pbmessage(2, "PingPong", 1, &msg);
    assert_eq!(got.payload[..4], (reply.len() as u32).to_be_bytes());
    assert_eq!(got.payload[4..], reply);

    // A biz status: its pairs beside a REPLY with an empty message.
    send(&mut tcp, &[pb_pingpong(2, "PingPong", &[], b"biz")]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    assert_eq!(got.str("biz-status"), Some(&b"5"[..]));
    assert_eq!(got.payload[4..], pbmessage(2, "PingPong", 2, b""));
    // Any other error: an EXCEPTION, Kitex's ErrorProto {TypeID: 6, Message: "not here"}.
    send(&mut tcp, &[pb_pingpong(3, "PingPong", &[], b"err")]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    let mut error = hex("08 06 12 08");
    error.extend(b"not here");
    assert_eq!(got.payload[4..], pbmessage(3, "PingPong", 3, &error));
    // Protocol id 04 (gopkg's ProtocolIDKitexProtobuf, which Kitex does not send) is taken
    // too, and answered with the same.
    let mut with_04 = pb_pingpong(6, "PingPong", &[], &msg);
    with_04[14] = 0x04;
    send(&mut tcp, &[with_04]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    assert_eq!(got.bytes[14], 0x04);
    assert_eq!(got.payload[4..], pbmessage(2, "PingPong", 6, &msg));
    // An unknown method: TypeID 1, UNKNOWN_METHOD.
    send(&mut tcp, &[pb_pingpong(4, "Nope", &[], &msg)]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    let body = &got.payload[4 + pbmessage(3, "Nope", 4, b"").len()..];
    assert_eq!(body[..2], [0x08, 0x01], "{body:?}");

    // Framed alone (transport.Framed): answered Framed.
    let mut tcp = connect(server.local_addr()).await;
    tcp.write_all(&tcp_framed(&pbmessage(1, "PingPong", 5, &msg)))
        .await
        .unwrap();
    let want = tcp_framed(&pbmessage(2, "PingPong", 5, &msg));
    let mut back = vec![0u8; want.len()];
    tcp.read_exact(&mut back).await.unwrap();
    assert_eq!(back, want);
}

fn tcp_framed(msg: &[u8]) -> Vec<u8> {
    let mut f = (msg.len() as u32).to_be_bytes().to_vec();
    f.extend(msg);
    f
}

#[tokio::test]
async fn pingpong_metadata_biz_status_errors_and_refusals() {
    let server = pingpong_server(ServerOptions::default());
    let mut tcp = connect(server.local_addr()).await;
    // Metainfo in, as the handler's headers back: in the TTHeader form it came in.
    let md: &[(&str, &[u8])] = &[("RPC_TRANSIT_ECHO_KEY", b"value")];
    send(&mut tcp, &[pingpong(1, "PingPong", md, b"x", true)]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    assert_eq!(got.str("RPC_TRANSIT_ECHO_KEY"), Some(&b"value"[..]));
    // A biz status: its pairs, and a REPLY with an empty result struct.
    send(&mut tcp, &[pingpong(2, "PingPong", &[], b"biz", true)]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    assert_eq!(got.str("biz-status"), Some(&b"5"[..]));
    assert_eq!(got.str("biz-message"), Some(&b"biz says no"[..]));
    let reply = tmessage(2, "PingPong", 2, &[0x00]);
    assert_eq!(got.payload[4..], reply);
    // Any other error: an EXCEPTION, TApplicationException {1: message, 2: 6 INTERNAL}.
    send(&mut tcp, &[pingpong(3, "PingPong", &[], b"err", true)]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    let mut exception = tmessage(3, "PingPong", 3, &hex("0b 00 01 00 00 00 08"));
    exception.extend(b"not here");
    exception.extend(hex("08 00 02 00 00 00 06 00"));
    assert_eq!(got.payload[4..], exception);
    // An unknown method: UNKNOWN_METHOD (1); a streaming one: refused, INTERNAL_ERROR.
    send(&mut tcp, &[pingpong(4, "Nope", &[], b"x", true)]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    assert_eq!(got.payload[got.payload.len() - 5..], [0, 0, 0, 1, 0]);
    assert!(String::from_utf8_lossy(&got.payload).contains("unknown method Nope"));
    send(&mut tcp, &[pingpong(5, "Echo", &[], b"x", true)]).await;
    let got = read_frame(&mut tcp).await.unwrap();
    assert!(String::from_utf8_lossy(&got.payload).contains("is a streaming method"));
    // Two requests at once: answered in turn.
    send(
        &mut tcp,
        &[
            pingpong(6, "PingPong", &[], b"six", true),
            pingpong(7, "PingPong", &[], b"seven", true),
        ],
    )
    .await;
    for (seq, args) in [(6, &b"six"[..]), (7, b"seven")] {
        let got = read_frame(&mut tcp).await.unwrap();
        assert_eq!(
            (got.id, &got.payload[4..]),
            (seq, &tmessage(2, "PingPong", seq, args)[..])
        );
    }
}

/// Bytes a PingPong connection cannot read as a request close it; the next connection
/// works.
#[tokio::test]
async fn bytes_that_are_no_pingpong_request_close_only_their_connection() {
    let server = pingpong_server(ServerOptions {
        max_recv_message_size: 1024,
        ..Default::default()
    });
    let good = pingpong(1, "PingPong", &[], b"ok", true);
    // A REPLY where a CALL must be.
    let mut not_a_call = pingpong(9, "PingPong", &[], b"x", true);
    let at = not_a_call
        .windows(4)
        .position(|w| w == [0x80, 0x01, 0x00, 0x01])
        .unwrap();
    not_a_call[at + 3] = 0x02;
    // A Framed length inside the TTHeader that is not the payload's.
    let mut wrong_inner = pingpong(9, "PingPong", &[], b"x", true);
    wrong_inner[at - 1] += 1;
    // A TTHeader Streaming frame on a PingPong connection.
    let streaming = frame(HEADER, 9, "Echo", &[isn()], b"");
    // A PingPong packet of protocol id 10, ThriftStruct: TTHeader Streaming's payload.
    let mut thrift_struct = pingpong(9, "PingPong", &[], b"x", true);
    thrift_struct[14] = 0x10;
    // KitexProtobuf in a TTHeader with no Framed length inside (Kitex always sends one):
    // its bytes 4..6 are no magic, and it does not begin `80 01`.
    let mut pb_unframed = pingpong(9, "PingPong", &[], b"x", false);
    pb_unframed[14] = 0x04;
    let at = pb_unframed.len() - tmessage(1, "PingPong", 9, b"x").len();
    pb_unframed[at] = 0x90;
    let buffered_ok = tmessage(1, "PingPong", 1, &hex("0b 00 01 00 00 00 02 6f 6b 00"));
    for (name, first, bad) in [
        ("not a CALL", good.clone(), not_a_call),
        ("wrong Framed length", good.clone(), wrong_inner),
        ("a streaming frame", good.clone(), streaming),
        ("a ThriftStruct packet", good.clone(), thrift_struct),
        ("KitexProtobuf unframed", good.clone(), pb_unframed),
        // Framed KitexProtobuf whose name runs past the message: the connection closes
        // unanswered.
        (
            "KitexProtobuf, its name past the message",
            good.clone(),
            tcp_framed(&hex("90 01 00 01 00 00 00 63 78 00 00 00")),
        ),
        // Framed, a length of 16 MiB: over the limit.
        (
            "Framed too long",
            tcp_framed(&tmessage(1, "PingPong", 1, b"ok")),
            hex("01 00 00 00 80 01 00 01"),
        ),
        // Buffered: a field of type 1, which Thrift Binary does not have.
        (
            "Buffered, an unknown type",
            buffered_ok.clone(),
            tmessage(1, "PingPong", 2, &hex("01 00 01 00")),
        ),
        // Buffered: a string of 1 MiB, over the limit.
        (
            "Buffered too long",
            buffered_ok.clone(),
            tmessage(1, "PingPong", 2, &hex("0b 00 01 00 10 00 00")),
        ),
        // Buffered: a negative string length.
        (
            "Buffered, a negative length",
            buffered_ok.clone(),
            tmessage(1, "PingPong", 2, &hex("0b 00 01 ff ff ff ff")),
        ),
    ] {
        let mut tcp = connect(server.local_addr()).await;
        send(&mut tcp, &[first, bad]).await;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest));
        read.await.expect("closed in time").unwrap();
        assert!(
            !rest.is_empty(),
            "{name}: the good request is answered first"
        );
        let mut fresh = connect(server.local_addr()).await;
        send(&mut fresh, std::slice::from_ref(&good)).await;
        let got = read_frame(&mut fresh).await.unwrap();
        assert_eq!(
            got.payload[4..],
            tmessage(2, "PingPong", 1, b"ok"),
            "{name}"
        );
    }
}

// ---- our channel over TTHeader, against a Kitex server's bytes ----

/// Regression: our channel ended a call with a biz status whenever a Kitex server's answer
/// had a `biz-status` pair, where Kitex's client (`transmeta.ParseBizStatusErr`) takes only
/// a 32-bit decimal other than 0 and reads `biz-status: 0` as no error at all; and a
/// TRAILER with both an exception and a biz status ended the stream with the biz status,
/// where Kitex's client reads the exception first (found by the client fuzz target's
/// seeds). Each answer's bytes are spelled out here, on a raw TCP server.
#[tokio::test]
async fn regression_our_channel_reads_a_biz_status_as_kitexs_client_does() {
    use rill_testkit::rill_echo::{ECHO, PING_PONG};
    use rillrpc::{CallOptions, Code};
    // PingPong's result struct {0: ""}.
    const RESULT: &str = "0c 00 00  0b 00 01 00 00 00 00  00  00";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ch = ttheader_channel(listener.local_addr().unwrap());
    let kitex = tokio::spawn(async move {
        // PingPong: REPLY "PingPong", its result struct, beside `biz-status: 0`.
        let (mut pp, _) = listener.accept().await.unwrap();
        let call = read_frame(&mut pp).await.expect("a PingPong request");
        let reply = tmessage(2, "PingPong", call.id, &hex(RESULT));
        let answer = pingpong_packet(
            b'2',
            call.id,
            "PingPong",
            &[("biz-status", b"0")],
            &reply,
            true,
        );
        send(&mut pp, &[answer]).await;
        // Two streams: a TRAILER with `biz-status: 0` and none of its own, then one with an
        // exception (TApplicationException {1: "boom", 2: 6}) beside `biz-status: 7`.
        let (mut st, _) = listener.accept().await.unwrap();
        let exception = hex("80 01 00 03  00 00 00 04 45 63 68 6f  00 00 00 03
             0b 00 01 00 00 00 04 62 6f 6f 6d  08 00 02 00 00 00 06  00");
        for (strs, payload) in [
            (&[("biz-status", &b"0"[..])][..], &[][..]),
            (
                &[("biz-status", &b"7"[..]), ("biz-message", b"biz")],
                &exception[..],
            ),
        ] {
            // The stream's HEADER, past the TRAILER that ended the previous one's requests.
            let id = loop {
                let f = read_frame(&mut st).await.expect("a HEADER");
                if f.kind == HEADER {
                    break f.id;
                }
            };
            let answer = [
                frame(HEADER, id, "Echo", &[], b""),
                frame(TRAILER, id, "Echo", strs, payload),
            ];
            send(&mut st, &answer).await;
        }
        (pp, st)
    });
    let got = ch.unary(PING_PONG, req(b"p", 0), CallOptions::default());
    assert_eq!(
        got.await.expect("biz-status 0 is no error"),
        hex(RESULT)[..]
    );
    let mut ok = ch.bidi(ECHO, CallOptions::default()).unwrap();
    ok.close_send();
    assert_eq!(ok.recv().await.expect("biz-status 0 is no error"), None);
    let status = ok.finish().await;
    assert_eq!(status.code(), Code::Ok);
    assert_eq!(status.trailers().get_ascii("biz-status"), Some("0"));
    let mut err = ch.bidi(ECHO, CallOptions::default()).unwrap();
    err.close_send();
    let status = err.recv().await.expect_err("the exception ends the stream");
    // The exception's message, not the biz status's ("biz"); the pairs stay the trailers.
    assert_eq!((status.code(), status.message()), (Code::Internal, "boom"));
    let _conns = kitex.await.unwrap();
}

// ---- our channel over TTHeader, against our server ----

fn ttheader_channel(addr: SocketAddr) -> rillrpc::Channel {
    let opts = rillrpc::ChannelOptions {
        protocol: rillrpc::Protocol::Ttheader,
        ..Default::default()
    };
    rillrpc::Channel::with_options(&format!("http://{addr}"), opts).unwrap()
}

#[tokio::test]
async fn our_channel_calls_every_shape_over_ttheader() {
    use rill_testkit::rill_echo::{ECHO, ECHO_CLIENT, ECHO_SERVER, PING_PONG};
    use rillrpc::CallOptions;
    let server = rill_server(ServerOptions::default());
    let ch = ttheader_channel(server.local_addr());
    // Unary calls go as PingPong requests, on a connection kept for the next one.
    for i in 0..3 {
        let p = format!("ping {i}");
        let got = ch.unary(PING_PONG, req(p.as_bytes(), 0), CallOptions::default());
        assert_eq!(resp_payload(&got.await.unwrap()), p.as_bytes());
    }
    let mut s = ch
        .server_streaming(ECHO_SERVER, req(b"s", 40), CallOptions::default())
        .await
        .unwrap();
    let mut n = 0;
    while let Some(m) = s.recv().await.unwrap() {
        assert_eq!(resp_payload(&m), b"s");
        n += 1;
    }
    assert_eq!(
        (n, s.status().map(|s| s.code())),
        (40, Some(rillrpc::Code::Ok))
    );
    let reqs = (0..10).map(|_| req(b"12345", 0));
    let got = ch.client_streaming(ECHO_CLIENT, reqs, CallOptions::default());
    assert_eq!(resp_payload(&got.await.unwrap()), b"50");
    let mut b = ch.bidi(ECHO, CallOptions::default()).unwrap();
    for i in 0..5 {
        b.send(req(format!("{i}").as_bytes(), 0)).await.unwrap();
        let m = b.recv().await.unwrap().unwrap();
        assert_eq!(resp_payload(&m), format!("{i}").as_bytes());
    }
    b.close_send();
    assert_eq!(b.recv().await.unwrap(), None);
    assert!(b.finish().await.is_ok());
}

/// Regression: a stream opened while another stream of the channel held its connection's
/// receive window unread waited for ever. TTHeader has no flow control: the connection had
/// stopped reading for all of its streams, and the new stream's answer lay in the socket
/// behind the unread stream's messages. A caller that reads a server stream and makes a
/// call per message (here, reading none of it while it calls) hung. The calls now go on one
/// more connection, rather than one made per call; the unread stream still delivers every
/// message once read; once it is read the first connection takes the calls again (each
/// Echo answers with the client port it came from).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_stream_opened_beside_an_unread_one_does_not_wait_behind_it() {
    use rill_testkit::rill_echo::{ECHO, ECHO_SERVER};
    use rillrpc::{Bytes, CallOptions, ServerBuilder, Shape, Status};
    let server = std::sync::Arc::new(
        ServerBuilder::new(ServerOptions::default())
            .register(ECHO_SERVER, Shape::ServerStreaming)
            .register(ECHO, Shape::Bidi)
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let s = server.clone();
    // Told once the unread stream's first 200 KiB are on their way.
    let sent = std::sync::Arc::new(tokio::sync::Notify::new());
    let told = sent.clone();
    tokio::spawn(async move {
        s.serve(move |mut call| {
            let told = told.clone();
            async move {
                if call.method() == ECHO_SERVER {
                    let _ = call.recv().await;
                    for i in 0..2_000 {
                        if call.send(Bytes::from(vec![7u8; 1024])).await.is_err() {
                            return;
                        }
                        if i == 200 {
                            told.notify_one();
                        }
                    }
                } else {
                    let port = call.peer_addr().port().to_be_bytes();
                    while let Ok(Some(_)) = call.recv().await {
                        let _ = call.send(Bytes::copy_from_slice(&port)).await;
                    }
                }
                let _ = call.finish(Status::ok());
            }
        })
        .await
        .unwrap();
    });
    // A 64 KiB window, far less than the 2 MB the unread stream is sent.
    let opts = rillrpc::ChannelOptions {
        protocol: rillrpc::Protocol::Ttheader,
        initial_stream_window: 16 << 10,
        initial_connection_window: 64 << 10,
        ..Default::default()
    };
    let addr = format!("http://{}", server.local_addr());
    let ch = rillrpc::Channel::with_options(&addr, opts).unwrap();
    let port_of_a_call = || async {
        let mut call = ch.bidi(ECHO, CallOptions::default()).unwrap();
        call.send(Bytes::from_static(b"?")).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), call.recv())
            .await
            .expect("an answer, not behind the unread stream")
            .unwrap()
            .unwrap();
        call.close_send();
        assert!(call.finish().await.is_ok());
        u16::from_be_bytes([got[0], got[1]])
    };
    let first = port_of_a_call().await;
    let mut unread = ch
        .server_streaming(ECHO_SERVER, Bytes::new(), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(unread.recv().await.unwrap().unwrap().len(), 1024);
    // A call made before the unread stream is behind goes on its connection, and may wait
    // behind it if the stream falls behind meanwhile (what no client can help): the calls
    // begin once the stream's messages have had time to come.
    let wait = tokio::time::timeout(Duration::from_secs(10), sent.notified());
    wait.await.expect("the server sent 200 KiB");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Calls go on the first connection until the unread stream is behind on it.
    let mut other = first;
    for _ in 0..200 {
        other = port_of_a_call().await;
        if other != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(other, first, "no call went beside the unread stream");
    let mut beside = Vec::new();
    for _ in 0..5 {
        beside.push(port_of_a_call().await);
    }
    assert_eq!(beside, [other; 5], "calls beside the unread stream");
    let mut n = 1;
    while let Some(m) = unread.recv().await.unwrap() {
        assert_eq!(m.len(), 1024);
        n += 1;
    }
    assert_eq!(n, 2_000);
    // Read, the stream holds nothing up; gone, it holds nothing either.
    assert_eq!(
        port_of_a_call().await,
        first,
        "back once the stream is read"
    );
    drop(unread);
    assert_eq!(
        port_of_a_call().await,
        first,
        "back once the stream is gone"
    );
}

/// `recv_ref` lends the DATA frames of a run where they lie, on both sides, and each side
/// reads exactly what the other sent, in order: empty and large messages, runs cut short by
/// a read, the last frame of a run (handed out as `Bytes`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_ref_reads_each_message_of_a_run_once_in_order_both_ways() {
    use rill_testkit::rill_echo::ECHO;
    let sent: Vec<Vec<u8>> = (0..2_000usize)
        .map(|i| req(&vec![(i % 251) as u8; (i * 13) % 900], 0).to_vec())
        .collect();
    let server = rill_server(ServerOptions::default());
    let ch = ttheader_channel(server.local_addr());
    let mut call = ch.bidi(ECHO, rillrpc::CallOptions::default()).unwrap();
    let writer = {
        let sent = sent.clone();
        async move {
            for m in &sent {
                call.send_ref(m).await.unwrap();
            }
            call.close_send();
            let mut echoed = Vec::new();
            while let Some(m) = call.recv_ref().await.unwrap() {
                echoed.push(resp_payload(m));
            }
            echoed
        }
    };
    let echoed = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the echo ended");
    let want: Vec<Vec<u8>> = (0..2_000usize)
        .map(|i| vec![(i % 251) as u8; (i * 13) % 900])
        .collect();
    assert_eq!(echoed.len(), want.len());
    assert!(echoed == want, "the echo differs from what was sent");
}

#[tokio::test]
async fn our_channel_over_ttheader_carries_metadata_and_errors_both_ways() {
    use rill_testkit::rill_echo::{ECHO_SERVER, PING_PONG};
    use rillrpc::{CallOptions, Code};
    let server = rill_server(ServerOptions::default());
    let ch = ttheader_channel(server.local_addr());
    let mut md = rillrpc::Metadata::new();
    md.append_ascii("echo-key", "value").unwrap();
    let opts = || CallOptions {
        metadata: md.clone(),
        ..Default::default()
    };
    // Streaming: headers from the server's HEADER, trailers from its TRAILER.
    let mut s = ch
        .server_streaming(ECHO_SERVER, req(b"m", 1), opts())
        .await
        .unwrap();
    let head = s.headers().await.unwrap();
    assert_eq!(head.get_ascii("echo-key"), Some("value"));
    assert_eq!(head.get_ascii("echo-protocol"), Some("ttheader"));
    while s.recv().await.unwrap().is_some() {}
    assert_eq!(s.trailers().unwrap().get_ascii("echo-key"), Some("value"));
    // Errors: the echo service's status 5 comes back over TTHeader as an exception, which
    // Kitex cannot type: INTERNAL, with the message.
    let mut s = ch
        .server_streaming(ECHO_SERVER, req(b"boom", -5), opts())
        .await
        .unwrap();
    let e = s.recv().await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::Internal, "boom"));
    let e = ch
        .unary(PING_PONG, req(b"bang", -5), opts())
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::Internal, "bang"));
    // An unknown method is UNIMPLEMENTED both ways.
    let e = ch
        .unary(
            "/echo.TestService/Nope",
            req(b"x", 0),
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    let mut s = ch
        .server_streaming(
            "/echo.TestService/Nope",
            req(b"x", 0),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(s.recv().await.unwrap_err().code(), Code::Unimplemented);
    // PingPong metadata: the handler's headers come back as the answer's pairs.
    let mut c = ch
        .open_with_request(PING_PONG, rillrpc::Shape::Unary, opts(), &req(b"h", 0))
        .unwrap();
    assert_eq!(
        c.headers().await.unwrap().get_ascii("echo-key"),
        Some("value")
    );
}

/// The echo server answering each call in its codec, as `echo-server --impl rill` does
/// (`rill_echo::serve_with_thrift`).
fn echo_server_with_thrift() -> std::sync::Arc<rillrpc::Server> {
    use rill_testkit::rill_echo;
    let server = std::sync::Arc::new(
        rill_echo::builder(ServerOptions::default())
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    tokio::spawn(rill_echo::serve_with_thrift(server.clone()));
    server
}

/// Unary calls whose content subtype is `proto` go as KitexProtobuf PingPong requests,
/// answered in kind (the handler sees codec `proto` and answers protobuf); a protobuf
/// streaming call is refused: Kitex's TTHeader Streaming carries Thrift only.
#[tokio::test]
async fn our_channel_calls_protobuf_pingpong_over_ttheader() {
    use rill_testkit::rill_echo::{ECHO_SERVER, PING_PONG};
    use rillrpc::{CallOptions, Code};
    let server = echo_server_with_thrift();
    let ch = ttheader_channel(server.local_addr());
    let opts = CallOptions::new().content_subtype("proto");
    for i in 0..3 {
        let p = format!("pb {i}");
        let got = ch.unary(PING_PONG, req(p.as_bytes(), 0), opts.clone());
        assert_eq!(resp_payload(&got.await.unwrap()), p.as_bytes());
    }
    // The echo service's status 5 comes back as an exception: INTERNAL, its message.
    let e = ch.unary(PING_PONG, req(b"bang", -5), opts.clone());
    let e = e.await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::Internal, "bang"));
    let e = ch.unary("/echo.TestService/Nope", req(b"x", 0), opts.clone());
    assert_eq!(e.await.unwrap_err().code(), Code::Unimplemented);
    // Without the subtype the same bytes go as Thrift, which the handler cannot read.
    let e = ch.unary(PING_PONG, req(b"pb", 0), CallOptions::default());
    assert_ne!(e.await.unwrap_err().code(), Code::Ok);
    let e = match ch.server_streaming(ECHO_SERVER, req(b"s", 1), opts).await {
        Err(e) => e,
        Ok(mut s) => s.recv().await.unwrap_err(),
    };
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    assert!(e.message().contains("Thrift only"), "{e:?}");
}

/// Regression: a unary call over TTHeader hung about once in a hundred. Its half-close,
/// which PingPong cannot send on its own (the request goes whole), fell back to the queue
/// while the writer waited for bytes, and nothing woke the writer for an end alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_half_close_that_cannot_go_out_directly_wakes_the_writer() {
    let server = rill_server(ServerOptions::default());
    for i in 0..300 {
        let ch = ttheader_channel(server.local_addr());
        let r = tokio::time::timeout(
            Duration::from_secs(3),
            ch.unary(
                rill_testkit::rill_echo::PING_PONG,
                req(b"", 0),
                rillrpc::CallOptions::new(),
            ),
        )
        .await;
        assert!(r.is_ok(), "hung at {i}");
    }
}

/// A unary call over TTHeader opens on its caller's thread and hands its request on at
/// once. The requests that cannot go so still go, through the call's writer: one too large
/// to go directly, one sent after the open, one under a deadline. A method path that names
/// no Thrift method fails its call, not its open, as it did when the writer opened calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_over_ttheader_goes_whichever_way_its_request_comes() {
    use rill_testkit::rill_echo::PING_PONG;
    use rillrpc::{CallOptions, Code, Shape};
    let server = rill_server(ServerOptions::default());
    let ch = ttheader_channel(server.local_addr());
    let big = vec![b'x'; 64 * 1024];
    let got = ch.unary(PING_PONG, req(&big, 0), CallOptions::default());
    assert_eq!(resp_payload(&got.await.unwrap()), big);
    let timed = CallOptions::new().timeout(Duration::from_secs(10));
    let got = ch.unary(PING_PONG, req(b"timed", 0), timed);
    assert_eq!(resp_payload(&got.await.unwrap()), b"timed");
    let mut call = ch
        .open(PING_PONG, Shape::Unary, CallOptions::default())
        .unwrap();
    call.send(req(b"later", 0)).await.unwrap();
    call.close_send();
    let m = call.recv().await.unwrap().unwrap();
    assert_eq!(resp_payload(&m), b"later");
    assert_eq!(call.recv().await.unwrap(), None);
    let mut call = ch
        .open_with_request("nope", Shape::Unary, CallOptions::default(), &req(b"", 0))
        .unwrap();
    let e = call.recv().await.unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    assert!(e.message().contains("malformed method name"), "{e:?}");
}

/// A draining server answers the PingPong request in progress, then closes the
/// connection (PingPong has no other way to say "go"); TTHeader Streaming connections end
/// once their streams have.
#[tokio::test]
async fn a_draining_server_answers_what_is_in_progress_then_closes() {
    use rillrpc::{ServerBuilder, Shape, Status};
    let server = std::sync::Arc::new(
        ServerBuilder::new(ServerOptions::default())
            .register("/echo.TestService/PingPong", Shape::Unary)
            .register("/echo.TestService/Echo", Shape::Bidi)
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let s = server.clone();
    tokio::spawn(async move {
        s.serve(|mut call| async move {
            // Answers each message after a moment: the server drains meanwhile.
            while let Ok(Some(m)) = call.recv().await {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = call.send(m).await;
            }
            let _ = call.finish(Status::ok());
        })
        .await
        .unwrap();
    });
    let mut pp = connect(server.local_addr()).await;
    send(&mut pp, &[pingpong(1, "PingPong", &[], b"late", true)]).await;
    let mut st = connect(server.local_addr()).await;
    send(
        &mut st,
        &[
            frame(HEADER, 1, "Echo", &[isn()], b""),
            frame(DATA, 1, "Echo", &[], b"late"),
            frame(TRAILER, 1, "Echo", &[], b""),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.begin_shutdown();
    let got = read_frame(&mut pp).await.expect("the answer in progress");
    assert_eq!(got.payload[4..], tmessage(2, "PingPong", 1, b"late"));
    assert!(
        read_frame(&mut pp).await.is_none(),
        "then the connection closes"
    );
    let got = stream_frames(&mut st, 1).await;
    let kinds: Vec<u8> = got.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [HEADER, DATA, TRAILER]);
    assert!(
        read_frame(&mut st).await.is_none(),
        "then the connection closes"
    );
}

/// `max_connection_idle` on Kitex's transports: TTHeader has no GOAWAY, so a connection
/// with no stream (or PingPong request) for the limit is closed; one with an open stream
/// stays, however quiet.
#[tokio::test]
async fn connections_idle_past_max_connection_idle_are_closed_busy_ones_stay() {
    let server = rill_server(ServerOptions {
        max_connection_idle: Some(Duration::from_millis(300)),
        ..Default::default()
    });
    let addr = server.local_addr();
    let mut idle = connect(addr).await;
    server_stream_works(&mut idle, 1).await;
    let mut busy = connect(addr).await;
    send(&mut busy, &[frame(HEADER, 1, "Echo", &[isn()], b"")]).await;
    let mut pp = connect(addr).await;
    send(
        &mut pp,
        &[pingpong(1, "PingPong", &[], &req(b"p", 0), true)],
    )
    .await;
    assert!(read_frame(&mut pp).await.is_some());
    // Both idle ones close (`read_frame` panics if not within 5 s).
    assert!(read_frame(&mut idle).await.is_none());
    assert!(read_frame(&mut pp).await.is_none());
    // The quiet stream's connection is still there: its call answers.
    send(&mut busy, &[frame(DATA, 1, "Echo", &[], &req(b"still", 0))]).await;
    let got = read_frame(&mut busy).await.expect("the stream's HEADER");
    assert_eq!(got.kind, HEADER);
    let got = read_frame(&mut busy).await.expect("the answer");
    assert_eq!(resp_payload(&got.payload), b"still");
}

/// `max_connection_age` on Kitex's transports: past it a TTHeader Streaming connection
/// refuses new streams (UNAVAILABLE), lets the open ones finish and then closes; a PingPong
/// connection closes between requests.
#[tokio::test]
async fn connections_past_max_connection_age_finish_their_calls_and_close() {
    let server = rill_server(ServerOptions {
        max_connection_age: Some(Duration::from_millis(300)),
        max_connection_age_grace: Some(Duration::from_secs(30)),
        ..Default::default()
    });
    let addr = server.local_addr();
    let mut st = connect(addr).await;
    send(
        &mut st,
        &[
            frame(HEADER, 1, "Echo", &[isn()], b""),
            frame(DATA, 1, "Echo", &[], &req(b"before", 0)),
        ],
    )
    .await;
    assert_eq!(read_frame(&mut st).await.unwrap().kind, HEADER);
    assert_eq!(
        resp_payload(&read_frame(&mut st).await.unwrap().payload),
        b"before"
    );
    let mut pp = connect(addr).await;
    send(
        &mut pp,
        &[pingpong(1, "PingPong", &[], &req(b"p", 0), true)],
    )
    .await;
    assert!(read_frame(&mut pp).await.is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Past the age: a new stream is refused, the open one goes on.
    send(&mut st, &[frame(HEADER, 3, "Echo", &[isn()], b"")]).await;
    let refused = stream_frames(&mut st, 3).await;
    let text = String::from_utf8_lossy(&refused.last().unwrap().payload).into_owned();
    assert!(text.contains("the server is going away"), "{refused:?}");
    send(&mut st, &[frame(DATA, 1, "Echo", &[], &req(b"after", 0))]).await;
    assert_eq!(
        resp_payload(&read_frame(&mut st).await.unwrap().payload),
        b"after"
    );
    send(&mut st, &[frame(TRAILER, 1, "Echo", &[], b"")]).await;
    assert_eq!(read_frame(&mut st).await.unwrap().kind, TRAILER);
    assert!(
        read_frame(&mut st).await.is_none(),
        "closed once its streams are done"
    );
    assert!(
        read_frame(&mut pp).await.is_none(),
        "closed between requests"
    );
}

// ---- the echo programs' server: echo.thrift beside echo.proto on one port ----

/// `echo-server --impl rill` serves echo.thrift's TestService on its port as Kitex does:
/// Thrift over gRPC (`application/grpc+thrift`), TTHeader Streaming and PingPong (the
/// args and result wrappers), and still echo.proto's over gRPC.
#[tokio::test]
async fn the_echo_server_answers_thrift_in_thrift_on_every_transport() {
    use rill_testkit::echo_thrift as thrift;
    use rill_testkit::rill_echo::{ECHO, ECHO_CLIENT, ECHO_SERVER, PING_PONG};
    use rillrpc::CallOptions;
    let server = echo_server_with_thrift();
    let addr = server.local_addr();
    let grpc = rillrpc::Channel::new(&format!("http://{addr}")).unwrap();
    for (ch, opts) in [
        (&grpc, CallOptions::new().content_subtype("thrift")),
        (&ttheader_channel(addr), CallOptions::default()),
    ] {
        let r = ch.unary(
            PING_PONG,
            thrift::args(&thrift::request(b"pp", 0)),
            opts.clone(),
        );
        let got = thrift::result(&r.await.unwrap()).unwrap();
        assert_eq!(thrift::response(&got).unwrap(), b"pp");

        let mut s = ch
            .server_streaming(ECHO_SERVER, thrift::request(b"s", 7), opts.clone())
            .await
            .unwrap();
        let mut n = 0;
        while let Some(m) = s.recv().await.unwrap() {
            assert_eq!(thrift::response(&m).unwrap(), b"s");
            n += 1;
        }
        assert_eq!(n, 7);

        let reqs = (0..4).map(|_| thrift::request(b"abc", 0));
        let total = ch.client_streaming(ECHO_CLIENT, reqs, opts.clone());
        assert_eq!(thrift::response(&total.await.unwrap()).unwrap(), b"12");

        let mut b = ch.bidi(ECHO, opts.clone()).unwrap();
        b.send(thrift::request(b"b", 0)).await.unwrap();
        assert_eq!(
            thrift::response(&b.recv().await.unwrap().unwrap()).unwrap(),
            b"b"
        );
        b.close_send();
        assert!(b.recv().await.unwrap().is_none());

        // Protobuf bytes where Thrift is due: INVALID_ARGUMENT, read as Thrift.
        let bad = ch.unary(PING_PONG, req(b"proto", 0), opts);
        assert_ne!(bad.await.unwrap_err().code(), rillrpc::Code::Ok);
    }
    // echo.proto's callers on the same port see no change.
    let got = grpc.unary(PING_PONG, req(b"proto", 0), CallOptions::default());
    assert_eq!(resp_payload(&got.await.unwrap()), b"proto");
}

/// Regression: over TTHeader a call did not end at its deadline while its server said
/// nothing: the deadline reset the stream, but nothing woke the call's receive side (h2
/// wakes it over HTTP/2), so PingPong calls and streams waited for the server's bytes,
/// forever against a server that never answers.
#[tokio::test]
async fn regression_a_ttheader_call_ends_at_its_deadline_when_the_server_is_silent() {
    use rill_testkit::rill_echo::{ECHO, ECHO_SERVER, PING_PONG};
    use rillrpc::{CallOptions, Code};
    // Takes connections and reads what comes, answering nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let ch = ttheader_channel(addr);
    let opts = || CallOptions::new().timeout(Duration::from_millis(200));
    let got = unhung(ch.unary(PING_PONG, req(b"x", 0), opts())).await;
    assert_eq!(got.unwrap_err().code(), Code::DeadlineExceeded);

    let mut s = ch
        .server_streaming(ECHO_SERVER, req(b"x", 3), opts())
        .await
        .unwrap();
    let got = unhung(s.recv()).await;
    assert_eq!(got.unwrap_err().code(), Code::DeadlineExceeded);

    let mut b = ch.bidi(ECHO, opts()).unwrap();
    b.send(req(b"x", 0)).await.unwrap();
    let got = unhung(b.recv()).await;
    assert_eq!(got.unwrap_err().code(), Code::DeadlineExceeded);
}

/// `f`'s output, or a panic if it is still pending after 10 s: the bound is a hang's, not
/// a speed's. The timer is looked at first, so that its wake cannot be what ends `f`
/// (`tokio::time::timeout` polls the future first, which would hide a receive side that
/// nothing else wakes).
async fn unhung<F: std::future::Future>(f: F) -> F::Output {
    tokio::select! {
        biased;
        _ = tokio::time::sleep(Duration::from_secs(10)) => panic!("the call outlived its deadline"),
        out = f => out,
    }
}

/// Regression (flake campaign, test-kitex: a Kitex server killed and restarted on its port
/// under a `ttheader` channel, whose next call, told to wait for ready, failed at once with
/// "Connection refused"): the TTHeader transports kept no backoff and ignored
/// `wait_for_ready`. They now keep the HTTP/2 endpoint's rule (`client/backoff.rs`): after
/// a failed attempt a call fails at once within the backoff, or waits for the next attempt
/// with `wait_for_ready`, bounded by its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttheader_channel_waits_for_ready_through_its_backoff() {
    use rill_testkit::rill_echo::{self, ECHO_SERVER, PING_PONG};
    use rillrpc::{CallOptions, Code};
    use std::time::Instant;
    // A port with nothing listening on it yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let opts = rillrpc::ChannelOptions {
        protocol: rillrpc::Protocol::Ttheader,
        initial_backoff: Duration::from_millis(300),
        ..Default::default()
    };
    let ch = rillrpc::Channel::with_options(&format!("http://{addr}"), opts).unwrap();
    // Not told to wait: UNAVAILABLE at once, for a PingPong and for a stream.
    let t = Instant::now();
    let e = ch.unary(PING_PONG, req(b"x", 0), CallOptions::default());
    assert_eq!(e.await.unwrap_err().code(), Code::Unavailable);
    let e = match ch
        .server_streaming(ECHO_SERVER, req(b"s", 1), CallOptions::default())
        .await
    {
        Err(e) => e,
        Ok(mut s) => s.recv().await.unwrap_err(),
    };
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // Told to wait: both calls wait for the server, which starts 400 ms later.
    let wait = CallOptions::new()
        .wait_for_ready(true)
        .timeout(Duration::from_secs(20));
    let unary = tokio::spawn({
        let (ch, wait) = (ch.clone(), wait.clone());
        async move { ch.unary(PING_PONG, req(b"waited", 0), wait).await }
    });
    let stream = tokio::spawn({
        let ch = ch.clone();
        async move {
            let mut s = ch.server_streaming(ECHO_SERVER, req(b"s", 3), wait).await?;
            let mut n = 0;
            while s.recv().await?.is_some() {
                n += 1;
            }
            Ok::<_, rillrpc::Status>(n)
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !unary.is_finished() && !stream.is_finished(),
        "the calls wait"
    );
    let server = std::sync::Arc::new(
        rill_echo::builder(ServerOptions::default())
            .bind(&addr.to_string())
            .unwrap(),
    );
    tokio::spawn(rill_echo::serve(server.clone()));
    let got = unary
        .await
        .unwrap()
        .expect("the PingPong waited for the server");
    assert_eq!(resp_payload(&got), b"waited");
    assert_eq!(stream.await.unwrap().expect("the stream waited"), 3);
    // Past a success the backoff starts over: a call not told to wait goes through.
    let got = ch.unary(PING_PONG, req(b"after", 0), CallOptions::default());
    assert_eq!(resp_payload(&got.await.unwrap()), b"after");
}
