//! A link that delays, loses, goes down or is cut mid-stream: with `tc netem` in a network
//! namespace of the test's own where the kernel has it, and through the fault proxy
//! always. Every stream completes with every message once and in order, or fails with a
//! status; none hangs, and the server sees no request lost, doubled or reordered.

use crate::proxy::{Mode, Proxy};
use crate::seq::{self, Ledger, Run};
use crate::{back, collect, permissive, shown, tally, Line, SLACK};
use rillrpc::{CallOptions, Channel, ChannelOptions, Code, Shape};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Streams of each shape per round.
const STREAMS: usize = 4;

fn channel(addr: SocketAddr, keepalive: Option<(Duration, Duration)>) -> Channel {
    let opts = ChannelOptions {
        keepalive_interval: keepalive.map(|k| k.0),
        keepalive_timeout: keepalive.map_or(Duration::from_secs(20), |k| k.1),
        connect_timeout: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        ..Default::default()
    };
    Channel::with_options(&format!("http://{addr}"), opts).expect("channel")
}

/// `STREAMS` calls of every shape, `n` messages each way paced by `ms`.
fn spawn_streams(ch: &Channel, n: u64, ms: u32) -> Vec<JoinHandle<Run>> {
    let mut tasks = Vec::new();
    for shape in seq::SHAPES {
        for _ in 0..STREAMS {
            let ch = ch.clone();
            tasks.push(tokio::spawn(async move {
                seq::run(&ch, shape, n, ms, CallOptions::new()).await
            }));
        }
    }
    tasks
}

/// What a round saw: its codes, messages and defects; whether every call ended intact
/// (OK with all its messages, or another status) and, with `all_ok`, OK.
pub(crate) fn judge(runs: &[Run], hung: usize, all_ok: bool, ledger: &Ledger) -> (bool, String) {
    let broken: Vec<String> = runs
        .iter()
        .filter_map(|r| r.broken.as_ref().map(|b| format!("{}: {b}", r.shape)))
        .collect();
    let server_broken = ledger.broken.load(Ordering::SeqCst);
    let ok = hung == 0
        && broken.is_empty()
        && server_broken == 0
        && (!all_ok || runs.iter().all(|r| r.code == Code::Ok));
    let messages: u64 = runs.iter().map(|r| r.got).sum();
    let longest = runs.iter().map(|r| r.took).max().unwrap_or_default();
    let mut saw = format!(
        "{} calls: {}; {messages} messages in order; longest {:.2}s",
        runs.len(),
        tally(runs.iter().map(|r| r.code.to_string())),
        longest.as_secs_f64()
    );
    if hung > 0 {
        saw += &format!("; {hung} HUNG");
    }
    if !broken.is_empty() {
        saw += &format!("; BROKEN {}", broken.join(", "));
    }
    if server_broken > 0 {
        saw += &format!("; the server saw {server_broken} requests out of order");
    }
    (ok, saw)
}

pub(crate) struct Bed {
    pub(crate) server: Arc<rillrpc::Server>,
    pub(crate) ledger: Arc<Ledger>,
    serving: JoinHandle<()>,
}

impl Bed {
    pub(crate) fn new(addr: &str) -> Bed {
        let server = Arc::new(seq::bind(addr, permissive()).expect("bind"));
        let ledger = Arc::new(Ledger::default());
        let serving = tokio::spawn(seq::serve(server.clone(), ledger.clone()));
        Bed {
            server,
            ledger,
            serving,
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

pub async fn proxy() -> Vec<Line> {
    let bed = Bed::new("127.0.0.1:0");
    let upstream = bed.server.local_addr();
    let mut lines = Vec::new();
    lines.push(delayed(&bed, upstream).await);
    lines.push(blip(&bed, upstream).await);
    lines.push(down(&bed, upstream).await);
    lines.push(cut(&bed, upstream).await);
    lines
}

async fn delayed(bed: &Bed, upstream: SocketAddr) -> Line {
    let p = Proxy::start(upstream).await.expect("proxy");
    p.set(Mode::Pass(Duration::from_millis(20)));
    let ch = channel(p.addr, None);
    let (runs, hung) = collect(spawn_streams(&ch, 100, 0), Duration::from_secs(60)).await;
    let (ok, saw) = judge(&runs, hung, true, &bed.ledger);
    Line::new("proxy: 20 ms each way", ok, saw)
}

/// Down for less than the keepalive timeout: the calls may ride it out.
async fn blip(bed: &Bed, upstream: SocketAddr) -> Line {
    let p = Proxy::start(upstream).await.expect("proxy");
    let ka = (Duration::from_secs(1), Duration::from_secs(5));
    let ch = channel(p.addr, Some(ka));
    let tasks = spawn_streams(&ch, 60, 25);
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.set(Mode::Down);
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.set(Mode::Pass(Duration::ZERO));
    let (runs, hung) = collect(tasks, Duration::from_secs(30)).await;
    let (ok, saw) = judge(&runs, hung, false, &bed.ledger);
    Line::new("proxy: link down 2s, keepalive 1s/5s", ok, saw)
}

/// Down for good, as far as the keepalive can tell: every call ends in its bound; the
/// channel is back once the link is.
async fn down(bed: &Bed, upstream: SocketAddr) -> Line {
    let p = Proxy::start(upstream).await.expect("proxy");
    let ka = Duration::from_secs(1);
    let ch = channel(p.addr, Some((ka, ka)));
    let tasks = spawn_streams(&ch, 400, 25);
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.set(Mode::Down);
    let bound = ka * 2 + SLACK;
    let (runs, hung) = collect(tasks, bound).await;
    let (ok, mut saw) = judge(&runs, hung, false, &bed.ledger);
    let ended = runs.iter().all(|r| r.code != Code::Ok);
    let opts = CallOptions::new().timeout(Duration::from_secs(2));
    let meanwhile = seq::run(&ch, Shape::Unary, 1, 0, opts).await;
    p.set(Mode::Pass(Duration::ZERO));
    let again = back(&ch, SLACK * 4).await;
    saw += &format!(
        " (bound {bound:?}); a call while down: {} ({}); link up: {}",
        meanwhile.code,
        meanwhile.message,
        shown(&again)
    );
    let ok = ok && ended && meanwhile.code != Code::Ok && again.is_ok();
    Line::new("proxy: link down, keepalive 1s/1s", ok, saw)
}

async fn cut(bed: &Bed, upstream: SocketAddr) -> Line {
    let p = Proxy::start(upstream).await.expect("proxy");
    let ch = channel(p.addr, None);
    let tasks = spawn_streams(&ch, 400, 25);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = p.cut();
    let (runs, hung) = collect(tasks, SLACK).await;
    let (ok, mut saw) = judge(&runs, hung, false, &bed.ledger);
    let ended = runs.iter().all(|r| r.code != Code::Ok);
    let again = back(&ch, SLACK * 4).await;
    saw += &format!(" ({n} connections cut, bound {SLACK:?}); {}", shown(&again));
    Line::new("proxy: connections cut", ok && ended && again.is_ok(), saw)
}

const SKIPPED: i32 = 77;

/// The netem rounds, in a network namespace of their own (`faults netem` under
/// `unshare -n`): SKIP where either is not permitted.
pub async fn netem() -> Vec<Line> {
    let case = "netem";
    let me = std::env::current_exe().expect("exe");
    let out = tokio::process::Command::new("unshare")
        .arg("-n")
        .arg(me)
        .arg("netem")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(120), out).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return vec![Line::skip(case, format!("cannot run unshare -n: {e}"))],
        Err(_) => return vec![Line::new(case, false, "still running after 120 s".into())],
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<Line> = text.lines().filter_map(parse_line).collect();
    if out.status.code() != Some(0) && out.status.code() != Some(SKIPPED) && lines.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err.lines().last().unwrap_or("no reason given").to_owned();
        if out.status.code() == Some(1) && err.contains("unshare") {
            lines.push(Line::skip(case, format!("unshare -n not permitted: {why}")));
        } else {
            lines.push(Line::new(case, false, format!("{}: {why}", out.status)));
        }
    }
    lines
}

fn parse_line(l: &str) -> Option<Line> {
    let (verdict, rest) = l.split_once(' ')?;
    let (case, saw) = rest.split_once(": ")?;
    let line = match verdict {
        "PASS" => Line::new(case, true, saw.into()),
        "FAIL" => Line::new(case, false, saw.into()),
        "SKIP" => Line::skip(case, saw.into()),
        _ => return None,
    };
    Some(line)
}

async fn sh(cmd: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .await
        .map_err(|e| format!("{}: {e}", cmd.join(" ")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(format!("`{}` failed: {err}", cmd.join(" ")))
}

/// Inside the namespace: loopback up, netem on it, then the rounds. Prints its lines and
/// returns the exit code.
pub async fn netem_inside() -> i32 {
    let case = "netem";
    if let Err(e) = sh(&["ip", "link", "set", "lo", "up"]).await {
        println!("SKIP {case}: {e}");
        return SKIPPED;
    }
    let qdisc = ["tc", "qdisc", "add", "dev", "lo", "root", "netem"];
    let lossy = [&qdisc[..], &["delay", "20ms", "loss", "1%"]].concat();
    if let Err(e) = sh(&lossy).await {
        println!("SKIP {case}: the kernel cannot delay or drop packets here: {e}");
        return SKIPPED;
    }
    let bed = Bed::new("127.0.0.1:0");
    let addr = bed.server.local_addr();
    let ch = channel(addr, None);
    let (runs, hung) = collect(spawn_streams(&ch, 100, 0), Duration::from_secs(90)).await;
    let (ok, saw) = judge(&runs, hung, true, &bed.ledger);
    let mut failed = !ok;
    Line::new("netem: delay 20ms, loss 1%", ok, saw).print();

    let ka = Duration::from_secs(1);
    let ch = channel(addr, Some((ka, ka)));
    let tasks = spawn_streams(&ch, 400, 25);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let change = ["tc", "qdisc", "change", "dev", "lo", "root", "netem"];
    let gone = sh(&[&change[..], &["loss", "100%"]].concat()).await;
    let bound = ka * 2 + SLACK;
    let (runs, hung) = collect(tasks, bound).await;
    let restored = sh(&[&change[..], &["delay", "20ms"]].concat()).await;
    let again = back(&ch, SLACK * 4).await;
    let (ok, mut saw) = judge(&runs, hung, false, &bed.ledger);
    let ok = ok && gone.is_ok() && restored.is_ok() && again.is_ok();
    saw += &format!(" (bound {bound:?}); link up: {}", shown(&again));
    failed |= !ok;
    Line::new("netem: link down (loss 100%), keepalive 1s/1s", ok, saw).print();
    i32::from(failed)
}
