//! TTHeader packets as Kitex v0.16.3 sent them (`interop/kitex/WIRE.md`, bytes copied from
//! its captures), and the bad packets each reader must refuse.

use bytes::{Bytes, BytesMut};

use super::packet::FIXED_LEN;
use super::*;
use crate::transport::window::RecvWindow;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("a hex byte"))
        .collect()
}

/// WIRE.md §2.1, the client's HEADER frame of a server-streaming call (62 bytes).
fn kitex_header_frame() -> Vec<u8> {
    hex("00 00 00 3a  10 00  00 02  00 00 00 01  00 0c  10  00
         01 00 01  00 03 69 73 6e  00 0b 54 65 73 74 53 65 72 76 69 63 65
         10 00 02  00 1b 00 01 32  00 09 00 0a 45 63 68 6f 53 65 72 76 65 72
         00 00 00")
}

/// WIRE.md §2.1, the client's DATA frame: `Request{count: 5, payload: "stream"}` (59 bytes).
fn kitex_data_frame() -> Vec<u8> {
    hex("00 00 00 37  10 00  00 02  00 00 00 01  00 06  10  00
         10 00 02  00 09 00 0a 45 63 68 6f 53 65 72 76 65 72  00 1b 00 01 33
         08 00 02 00 00 00 05  0b 00 01 00 00 00 06 73 74 72 65 61 6d  00")
}

/// WIRE.md §2.1, the server's HEADER frame (38 bytes): the ints in the order written.
fn kitex_server_header_frame() -> Vec<u8> {
    hex("00 00 00 22  10 00  00 02  00 00 00 01  00 06  10  00
         10 00 02  00 1b 00 01 32  00 09 00 0a 45 63 68 6f 53 65 72 76 65 72")
}

/// WIRE.md §1.2, the server's PingPong reply (74 bytes): MsgType "2", a Framed TMessage.
fn kitex_pingpong_reply() -> Vec<u8> {
    hex("00 00 00 46  10 00  00 00  00 00 00 01  00 03  00  00
         10 00 01  00 16 00 01 32  00 00
         00 00 00 2c  80 01 00 02  00 00 00 08 50 69 6e 67 50 6f 6e 67  00 00 00 01
         0c 00 00  0b 00 01 00 00 00 0c 6d 61 74 72 69 78 00 ff 70 69 6e 67  00  00")
}

fn decode_all(bytes: &[u8]) -> Result<Option<Packet>, Malformed> {
    let mut buf = BytesMut::from(bytes);
    decode(&mut buf, 1 << 20)
}

#[test]
fn kitex_header_frame_reads_as_sent() {
    let p = decode_all(&kitex_header_frame()).unwrap().unwrap();
    assert_eq!(p.seq_id, 1);
    assert_eq!(p.protocol, ProtocolId::ThriftStruct);
    assert_eq!(FrameType::of(&p), Ok(FrameType::Header));
    assert_eq!(p.int(key::TO_METHOD).unwrap(), "EchoServer");
    assert_eq!(p.str("isn").unwrap(), "TestService");
    assert!(p.payload.is_empty());
}

#[test]
fn kitex_data_frame_carries_a_bare_struct() {
    let p = decode_all(&kitex_data_frame()).unwrap().unwrap();
    assert_eq!(FrameType::of(&p), Ok(FrameType::Data));
    assert_eq!(p.payload.len(), 21);
    assert_eq!(p.payload[..3], [0x08, 0x00, 0x02]);
}

#[test]
fn frames_written_are_kitex_bytes() {
    let p = frame(
        FrameType::Header,
        1,
        Bytes::from_static(b"EchoServer"),
        Bytes::new(),
    );
    let mut out = BytesMut::new();
    encode(&p, &mut out).unwrap();
    assert_eq!(out[..], kitex_server_header_frame()[..]);
}

#[test]
fn a_pingpong_reply_round_trips_with_its_padding() {
    let bytes = kitex_pingpong_reply();
    let p = decode_all(&bytes).unwrap().unwrap();
    assert!(!p.is_streaming());
    assert_eq!(p.protocol, ProtocolId::ThriftBinary);
    assert_eq!(p.int(key::MSG_TYPE).unwrap(), "2");
    assert_eq!(p.payload.len(), 48);
    assert_eq!(FrameType::of(&p), Err(Malformed::NotStreaming));
    let mut out = BytesMut::new();
    encode(&p, &mut out).unwrap();
    assert_eq!(out[..], bytes[..]);
}

#[test]
fn every_pair_kind_round_trips() {
    let p = Packet {
        flags: FLAG_STREAMING,
        seq_id: -7,
        protocol: ProtocolId::ThriftStruct,
        ints: vec![(key::FRAME_TYPE, Bytes::from_static(b"4"))],
        strs: vec![
            (Bytes::from_static(b"biz-status"), Bytes::from_static(b"5")),
            (Bytes::from_static(b"empty"), Bytes::new()),
        ],
        acl_token: Some(Bytes::from_static(b"token")),
        payload: Bytes::from_static(b"\x00"),
    };
    let mut out = BytesMut::new();
    encode(&p, &mut out).unwrap();
    assert_eq!(
        (out.len() - FIXED_LEN - 1) % 4,
        0,
        "the header is padded to words"
    );
    assert_eq!(decode_all(&out).unwrap().unwrap(), p);
}

#[test]
fn packets_read_one_at_a_time_as_bytes_come() {
    let mut stream = kitex_header_frame();
    stream.extend(kitex_data_frame());
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in stream {
        buf.extend_from_slice(&[b]);
        while let Some(p) = decode(&mut buf, 1 << 20).unwrap() {
            got.push(FrameType::of(&p).unwrap());
        }
    }
    assert_eq!(got, [FrameType::Header, FrameType::Data]);
    assert!(buf.is_empty());
}

// ---- bad packets: each refused with what is wrong ----

#[test]
fn bad_magic_is_refused_once_its_bytes_are_in() {
    // An HTTP/2 preface: "PRI * HT"
    let r = decode_all(&hex("50 52 49 20 2a 20"));
    assert_eq!(r, Err(Malformed::NotTtheader([0x2a, 0x20])));
    assert_eq!(decode_all(&hex("00 00 00 3a 10")), Ok(None));
}

#[test]
fn a_length_too_short_for_the_fixed_fields_is_refused() {
    let r = decode_all(&hex("00 00 00 09  10 00  00 02  00 00 00 01  00 00"));
    assert_eq!(r, Err(Malformed::Short(9)));
}

#[test]
fn an_oversized_packet_is_refused_before_its_bytes_come() {
    // LENGTH 0x00100000: 1 MiB + 4 over a limit of 1 MiB, and only the fixed fields sent.
    let mut buf = BytesMut::from(&hex("00 10 00 00  10 00  00 02  00 00 00 01  00 01")[..]);
    let r = decode(&mut buf, 1 << 20);
    assert_eq!(
        r,
        Err(Malformed::TooLarge {
            len: (1 << 20) + 4,
            max: 1 << 20
        })
    );
}

#[test]
fn a_header_size_past_the_packet_is_refused() {
    // HEADER SIZE 3 words = 12 bytes, but LENGTH leaves 4 after the fixed fields.
    let r = decode_all(&hex(
        "00 00 00 0e  10 00  00 02  00 00 00 01  00 03  10 00 00 00",
    ));
    assert_eq!(r, Err(Malformed::HeaderSize(12)));
    // HEADER SIZE 0: not even the protocol id.
    let r = decode_all(&hex("00 00 00 0a  10 00  00 02  00 00 00 01  00 00"));
    assert_eq!(r, Err(Malformed::HeaderSize(0)));
}

#[test]
fn an_unknown_protocol_id_is_refused() {
    // Protocol id 0x02: Thrift Compact, which Kitex does not take either.
    let r = decode_all(&hex(
        "00 00 00 0e  10 00  00 00  00 00 00 01  00 01  02 00 00 00",
    ));
    assert_eq!(r, Err(Malformed::Protocol(0x02)));
}

#[test]
fn a_transform_is_refused() {
    // One transform, id 0x01 (zlib).
    let r = decode_all(&hex(
        "00 00 00 0e  10 00  00 00  00 00 00 01  00 01  00 01 01 00",
    ));
    assert_eq!(r, Err(Malformed::Transform(0x01)));
}

#[test]
fn an_unknown_info_id_is_refused() {
    let r = decode_all(&hex(
        "00 00 00 0e  10 00  00 00  00 00 00 01  00 01  00 00 07 00",
    ));
    assert_eq!(r, Err(Malformed::UnknownInfo(0x07)));
}

#[test]
fn a_pair_running_past_the_header_is_refused() {
    // INFO_KEYVALUE, 1 pair, key length 0x0010 with 3 bytes left in the header.
    let r = decode_all(&hex(
        "00 00 00 12  10 00  00 00  00 00 00 01  00 02  00 00 01 00 01 00 10 61",
    ));
    assert_eq!(r, Err(Malformed::Truncated("string key")));
    // INFO_INTKEYVALUE, 2 pairs, one there and one byte of the next.
    let r = decode_all(&hex(
        "00 00 00 16  10 00  00 00  00 00 00 01  00 03  00 00 10 00 02 00 1b 00 02 32 32 00",
    ));
    assert_eq!(r, Err(Malformed::Truncated("int key")));
}

#[test]
fn a_streaming_frame_needs_a_known_type() {
    let mut p = frame(
        FrameType::Data,
        3,
        Bytes::from_static(b"Echo"),
        Bytes::new(),
    );
    p.ints[0].1 = Bytes::from_static(b"9");
    assert_eq!(
        FrameType::of(&p),
        Err(Malformed::FrameType(Some(Bytes::from_static(b"9"))))
    );
    p.ints.remove(0);
    assert_eq!(FrameType::of(&p), Err(Malformed::FrameType(None)));
}

#[test]
fn what_the_layout_cannot_say_is_not_written() {
    let mut p = Packet::default();
    p.strs.push((Bytes::from(vec![b'k'; 70_000]), Bytes::new()));
    let mut out = BytesMut::from(&b"kept"[..]);
    let r = encode(&p, &mut out);
    assert_eq!(
        r,
        Err(Malformed::Unencodable("a key or value over 65535 bytes"))
    );
    assert_eq!(&out[..], b"kept", "nothing half-written");
}

/// Regression: with DATA frames handed over as runs, a run still being gathered when bytes
/// that break the framing came was dropped with the connection, and its stream's call
/// failed without the messages read before. Here Kitex's HEADER and two of its DATA frames
/// (one run), then a packet whose magic is wrong.
#[tokio::test]
async fn regression_frames_read_before_bytes_that_break_the_framing_reach_their_stream() {
    use std::collections::VecDeque;
    use tokio::io::AsyncWriteExt;

    let (mut peer, io) = tokio::io::duplex(1 << 16);
    let (tx, rx) = std::sync::mpsc::channel();
    let conn = Conn::new(RecvWindow::new(1 << 20, 4 << 20, 64 << 20, None));
    let task = tokio::spawn(run(io, conn, 1 << 20, move |s, _| tx.send(s).unwrap()));
    let bad_magic = hex("00 00 00 0e  20 00  00 02  00 00 00 01  00 01  10 00 00 00");
    let bytes = [
        kitex_header_frame(),
        kitex_data_frame(),
        kitex_data_frame(),
        bad_magic,
    ];
    peer.write_all(&bytes.concat()).await.unwrap();
    let ended = task.await.unwrap();
    assert!(ended.unwrap_err().contains("not TTHeader"));
    let stream = rx.recv().unwrap();
    let mut frames = VecDeque::new();
    std::future::poll_fn(|cx| stream.poll_frames(cx, &mut frames))
        .await
        .expect("the frames read before the bad bytes");
    let Some(Inbound::Data(mut run)) = frames.pop_front() else {
        panic!("one run of DATA frames");
    };
    let payload = &kitex_data_frame()[FIXED_LEN + 4 * 6..];
    for _ in 0..2 {
        assert_eq!(split_payload(&mut run).as_deref(), Some(payload));
    }
    assert!(run.is_empty() && frames.is_empty());
    let gone = std::future::poll_fn(|cx| stream.poll_frames(cx, &mut frames)).await;
    assert!(matches!(gone, Err(Gone::Closed(_))));
}

/// What the peer has sent once its writes stop for want of room, having sent at least
/// `at_least`: the connection stopped reading (or the test fails after 10 s).
async fn sent_when_stalled(sent: &std::sync::atomic::AtomicUsize, at_least: usize) -> usize {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    let by = tokio::time::Instant::now() + Duration::from_secs(10);
    let (mut last, mut same) = (usize::MAX, 0);
    loop {
        let now = sent.load(Ordering::Relaxed);
        assert!(
            tokio::time::Instant::now() < by,
            "the peer's writes went on, or stopped short: {now} bytes sent, at least {at_least} wanted"
        );
        (same, last) = if now == last {
            (same + 1, now)
        } else {
            (0, now)
        };
        if now >= at_least && same >= 5 {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `frames` of Kitex's DATA frame (stream 1) to `peer` one at a time, counting the
/// bytes of each write that got in, until a write fails; the task gives the pipe back.
fn write_data_frames(
    mut peer: tokio::io::DuplexStream,
    frames: usize,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<tokio::io::DuplexStream>,
) {
    use tokio::io::AsyncWriteExt;

    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = sent.clone();
    let writer = tokio::spawn(async move {
        let frame = kitex_data_frame();
        for _ in 0..frames {
            if peer.write_all(&frame).await.is_err() {
                break;
            }
            s.fetch_add(frame.len(), std::sync::atomic::Ordering::Relaxed);
        }
        peer
    });
    (sent, writer)
}

/// A connection reads no further while its streams hold its receive window's worth unread
/// (the configured connection window, grown by a stream window for each stream opened),
/// as HTTP/2 connections are bound by the same options. It read up to a fixed 4 MiB,
/// whatever `initial_connection_window` and `connection_receive_budget` said.
#[tokio::test]
async fn regression_a_connection_holds_unread_what_its_receive_window_allows() {
    use std::collections::VecDeque;

    const K: usize = 1024;
    const FRAMES: usize = 2000;
    // Streams of 4 KiB windows, a connection of 8 KiB growing to 64 KiB.
    let window = RecvWindow::new(4 * K as u32, 8 * K as u32, 64 * K as u32, None);
    let conn = Conn::new_client(window);
    // A pipe that holds 1 KiB: the peer's writes wait once the connection stops reading.
    let (peer, io) = tokio::io::duplex(K);
    let task = tokio::spawn(run(io, conn.clone(), 1 << 20, |_, _| {}));
    let stream = conn.open(1).expect("stream 1");
    let (sent, writer) = write_data_frames(peer, FRAMES);
    // One stream open: the configured 8 KiB, past which the connection's last read (at
    // most the pipe's 1 KiB) and the pipe itself hold the rest of what was sent.
    let held = sent_when_stalled(&sent, 8 * K).await;
    assert!(held < 11 * K, "{held} bytes went in with 8 KiB to hold");
    // A second stream: a stream window more.
    let _other = conn.open(3).expect("stream 3");
    let held = sent_when_stalled(&sent, 12 * K).await;
    assert!(held < 15 * K, "{held} bytes went in with 12 KiB to hold");
    // Reading makes room again, and every message arrives.
    let payload = &kitex_data_frame()[FIXED_LEN + 4 * 6..];
    let (mut got, mut frames) = (0, VecDeque::new());
    while got < FRAMES {
        std::future::poll_fn(|cx| stream.poll_frames(cx, &mut frames))
            .await
            .expect("stream 1's frames");
        for f in frames.drain(..) {
            let Inbound::Data(mut run) = f else {
                panic!("DATA frames only");
            };
            while let Some(m) = split_payload(&mut run) {
                assert_eq!(&m[..], payload);
                got += 1;
            }
        }
    }
    assert_eq!(got, FRAMES);
    drop(writer.await.unwrap());
    assert!(task.await.unwrap().is_ok(), "the peer closed: a clean end");
}

/// What a peer gets a server's connection to read of stream 1's DATA frames, with streams
/// 1 and 3 open and the connection window growing out of a pool of `pool` bytes: 8 KiB,
/// and 4 KiB for each stream past the first.
async fn read_by_a_server_connection(pool: Option<usize>, at_least: usize) -> usize {
    use crate::transport::window::Pool;
    use tokio::io::AsyncWriteExt;

    const K: u32 = 1024;
    let window = RecvWindow::new(4 * K, 8 * K, 64 * K, Some(Pool::new(pool)));
    let (mut peer, io) = tokio::io::duplex(K as usize);
    let (tx, rx) = std::sync::mpsc::channel();
    let task = tokio::spawn(run(io, Conn::new(window), 1 << 20, move |s, _| {
        tx.send(s).unwrap()
    }));
    let mut header_3 = kitex_header_frame();
    header_3[8..12].copy_from_slice(&3i32.to_be_bytes());
    peer.write_all(&[kitex_header_frame(), header_3].concat())
        .await
        .unwrap();
    let (sent, writer) = write_data_frames(peer, 2000);
    let held = sent_when_stalled(&sent, at_least).await;
    let streams: Vec<Stream> = rx.try_iter().collect();
    assert_eq!(streams.len(), 2, "streams 1 and 3 opened");
    task.abort();
    writer.abort();
    held
}

/// A server's TTHeader connections grow their windows out of the pool all its connections
/// share (`receive_budget`), as its HTTP/2 connections do: with the pool spent, two open
/// streams hold no more than the configured connection window.
#[tokio::test]
async fn a_server_connection_grows_its_window_out_of_the_shared_pool() {
    const K: usize = 1024;
    let held = read_by_a_server_connection(None, 12 * K).await;
    assert!(held < 15 * K, "{held} bytes went in with 12 KiB to hold");
    let held = read_by_a_server_connection(Some(0), 8 * K).await;
    assert!(held < 11 * K, "{held} bytes went in with the pool spent");
}
