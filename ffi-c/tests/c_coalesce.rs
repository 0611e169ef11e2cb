//! Issue 17 from C: a burst of small messages must leave in few HTTP/2 DATA frames.
//!
//! tonic's h2 (0.4.20) charges each DATA frame under 256 bytes that it holds unread against
//! a budget, and past it closes the connection with GOAWAY(ENHANCE_YOUR_CALM,
//! "too_many_data_frames"); whether tonic falls behind is a race, so tonic's end of each
//! connection counts the frames it reads (`rill_testkit::frames`) and every burst of
//! 200,000 messages must take fewer than one DATA frame per 100 messages: the C client
//! (ffi-c/tests/c/coalesce_client.c) against a counted tonic echo server, and the C echo
//! server (ffi-c/tests/c/echo_server.c) read by tonic's client on a counted connection
//! (in this process, as c_server.rs drives it, rather than rill-bench's echo-client, which
//! this crate's tests do not build).
//!
//! These programs run without valgrind even under RILL_VALGRIND=1: valgrind makes a C
//! program some 50 times slower, and 200,000 messages a burst (the size the issue needs to
//! trip the guard) would take minutes. The C functions they call are the ones
//! c_client.rs, c_batch and c_server.rs run under valgrind.
//!
//! Under RILL_SANITIZE=address they are skipped (with a line saying so): they measure how
//! the library coalesces a burst, which depends on how fast the C side produces it, and the
//! C functions they call are the ones the other C tests already run under ASan.

mod support;

use rill_testkit::frames::{ConnCounts, FrameLog, FrameStats};
use rill_testkit::{EchoRequest, TestServiceClient};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use support::*;

const MESSAGES: usize = 200_000;
/// Rounds per test: whether tonic falls behind is a race, and a sender that coalesces only
/// now and then passes one round by luck. Each C client round is a process of its own, so
/// a connection of its own; the C server's rounds share one connection.
const ROUNDS: usize = 10;
const MESSAGES_PER_FRAME: usize = 100;
/// 16 bytes: an 18-byte echo.Request, 23 bytes framed, as in the issue.
const PAYLOAD: &[u8] = b"0123456789abcdef";

/// `support::build` once per program for this test binary: its tests run in parallel, and
/// rebuilding a program another test is starting fails that start (ETXTBSY).
fn program(src: &'static str, built: &'static OnceLock<PathBuf>) -> PathBuf {
    built.get_or_init(|| build(src)).clone()
}

fn client_program() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    program("ffi-c/tests/c/coalesce_client.c", &BUILT)
}

fn server_program() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    program("ffi-c/tests/c/echo_server.c", &BUILT)
}

fn assert_coalesced(what: &str, round: usize, d: &FrameStats) {
    let frames = d.inbound.data();
    let limit = (MESSAGES / MESSAGES_PER_FRAME) as u64;
    println!(
        "{what} round {round}: {frames} DATA frames for {MESSAGES} messages ({:.4} per message); {d}",
        frames as f64 / MESSAGES as f64
    );
    assert!(
        d.inbound.goaway_error().is_none() && d.outbound.goaway_error().is_none(),
        "{what}, round {round}: a GOAWAY with an error: {d}"
    );
    assert!(
        frames < limit,
        "{what}, round {round}: {frames} DATA frames for {MESSAGES} messages \
         (want < {limit}, one per {MESSAGES_PER_FRAME} messages): {d}"
    );
}

/// Whether this test is skipped under a sanitizer (see the top of the file).
fn skipped_under_asan(test: &str) -> bool {
    let skipped = sanitize();
    if skipped {
        skip(
            test,
            "a measure of coalescing, not of memory safety; its C calls run under ASan elsewhere",
        );
    }
    skipped
}

/// The C client, `shape` (client|bidi) with `mode` (single|batch) sends, once per round.
fn c_client_rounds(shape: &str, mode: &str) {
    if skipped_under_asan(&format!(
        "c_coalesce: C client, {shape} streaming, {mode} sends"
    )) {
        return;
    }
    let (port, log) = counted_tonic_echo();
    let prog = client_program();
    let what = format!("C client, {shape} streaming, {mode} sends");
    for round in 0..ROUNDS {
        // Not support::run: never under valgrind (see the top of the file).
        let out = Command::new(&prog)
            .args([
                &format!("http://127.0.0.1:{port}"),
                shape,
                mode,
                &MESSAGES.to_string(),
            ])
            .output()
            .expect("running coalesce_client");
        // Each run is a process, so a connection: the round's is the last one made.
        let conns: Vec<std::sync::Arc<ConnCounts>> = log.connections();
        let counts = conns.last().map(|c| c.snapshot());
        assert!(
            out.status.success(),
            "{what}, round {round}: {}\n{}{}\nframes: {counts:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(conns.len(), round + 1, "one connection per run");
        assert_coalesced(&what, round, &counts.unwrap());
    }
}

#[test]
fn c_client_stream_of_single_sends_to_tonic_is_coalesced() {
    c_client_rounds("client", "single");
}

#[test]
fn c_client_stream_of_batches_to_tonic_is_coalesced() {
    c_client_rounds("client", "batch");
}

#[test]
fn c_bidi_of_single_sends_to_tonic_is_coalesced() {
    c_client_rounds("bidi", "single");
}

#[test]
fn c_bidi_of_batches_to_tonic_is_coalesced() {
    c_client_rounds("bidi", "batch");
}

/// The C echo server (outside valgrind), and tonic's client on a counted connection to it.
async fn c_server() -> (
    std::process::Child,
    TestServiceClient<tonic::transport::Channel>,
    FrameLog,
) {
    let prog = server_program();
    let mut child = Command::new(&prog)
        .arg("0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the C echo server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    let log = FrameLog::new();
    let ch = rill_testkit::frames::tonic_channel(addr, &log)
        .await
        .unwrap();
    (child, TestServiceClient::new(ch), log)
}

async fn stop(mut child: std::process::Child) {
    drop(child.stdin.take());
    let st = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(st.success(), "C server exited with {st}");
}

fn request() -> EchoRequest {
    EchoRequest {
        payload: PAYLOAD.to_vec(),
        count: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_server_stream_to_tonic_is_coalesced() {
    if skipped_under_asan("c_coalesce::c_server_stream_to_tonic_is_coalesced") {
        return;
    }
    let (child, mut c, log) = c_server().await;
    for round in 0..ROUNDS {
        let before = log.only().snapshot();
        let mut s = c
            .echo_server(EchoRequest {
                count: MESSAGES as i32,
                ..request()
            })
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(m) = s.message().await.unwrap() {
            assert_eq!(m.payload, PAYLOAD);
            n += 1;
        }
        assert_eq!(n, MESSAGES);
        let d = log.only().snapshot().since(&before);
        assert_coalesced("C server, server streaming", round, &d);
    }
    drop(c);
    stop(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_server_bidi_echoes_to_tonic_are_coalesced() {
    if skipped_under_asan("c_coalesce::c_server_bidi_echoes_to_tonic_are_coalesced") {
        return;
    }
    let (child, mut c, log) = c_server().await;
    for round in 0..ROUNDS {
        let before = log.only().snapshot();
        let reqs = tokio_stream::iter((0..MESSAGES).map(|_| request()));
        let mut s = c.echo(reqs).await.unwrap().into_inner();
        let mut n = 0;
        while let Some(m) = s.message().await.unwrap() {
            assert_eq!(m.payload, PAYLOAD);
            n += 1;
        }
        assert_eq!(n, MESSAGES);
        let d = log.only().snapshot().since(&before);
        assert_coalesced("C server, bidi echoes", round, &d);
    }
    drop(c);
    stop(child).await;
}
