//! faults: peers that die, freeze or lose their link mid-stream, and a server draining
//! under 1,000 streams (issue 16). Every call must end with a status within its bound
//! (keepalive, deadline, or at once when the socket closes), no stream may lose, double or
//! reorder a message, and the channel must serve calls again once its peer is back.
//! Prints a line per case (PASS, FAIL or SKIP with what it saw); exits 1 on any FAIL.
//!
//!     faults [--only crash,freeze,orphan,netem,proxy,nginx,drain]
//!     faults serve --port N      (a sequence server in a process to kill; prints its address)
//!     faults hold --addr A       (a client holding a call of every shape open on A)
//!     faults netem               (inside `unshare -n`: the netem case)

mod crash;
mod drain;
mod link;
mod nginx;
mod orphan;
mod peer;
mod proxy;
mod seq;

use rillrpc::{Channel, Code};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Added to every bound: the machine is shared and noisy, and a bound is there to catch a
/// hang, not to time anything.
pub const SLACK: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
}

pub struct Line {
    pub case: String,
    pub verdict: Verdict,
    pub saw: String,
}

impl Line {
    pub fn new(case: impl Into<String>, ok: bool, saw: String) -> Line {
        let verdict = if ok { Verdict::Pass } else { Verdict::Fail };
        Line {
            case: case.into(),
            verdict,
            saw,
        }
    }

    pub fn skip(case: impl Into<String>, why: String) -> Line {
        Line {
            case: case.into(),
            verdict: Verdict::Skip,
            saw: why,
        }
    }

    pub fn print(&self) {
        let v = match self.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        println!("{v} {}: {}", self.case, self.saw);
    }
}

/// The cases, in the order they run.
const CASES: [&str; 7] = [
    "crash", "freeze", "orphan", "netem", "proxy", "nginx", "drain",
];

fn usage(why: &str) -> ! {
    eprintln!("faults: {why}");
    eprintln!(
        "usage: faults [--only {}] | serve --port N | hold --addr A | netem",
        CASES.join(",")
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("serve") => rt.block_on(serve(&args[1..])),
        Some("hold") => rt.block_on(hold(&args[1..])),
        Some("netem") => std::process::exit(rt.block_on(link::netem_inside())),
        _ => {
            let only = parse_only(&args);
            let failed = rt.block_on(suite(&only));
            std::process::exit(i32::from(failed));
        }
    }
}

fn parse_only(args: &[String]) -> Vec<String> {
    match args {
        [] => CASES.iter().map(|c| c.to_string()).collect(),
        [flag, list] if flag == "--only" => {
            let only: Vec<String> = list.split(',').map(str::to_owned).collect();
            if let Some(bad) = only.iter().find(|c| !CASES.contains(&c.as_str())) {
                usage(&format!("no case {bad}"));
            }
            only
        }
        _ => usage("bad arguments"),
    }
}

async fn suite(only: &[String]) -> bool {
    let t0 = std::time::Instant::now();
    let mut lines = Vec::new();
    for case in CASES.iter().filter(|c| only.iter().any(|o| o == *c)) {
        let got = match *case {
            "crash" => crash::killed().await,
            "freeze" => crash::frozen().await,
            "orphan" => orphan::run().await,
            "netem" => link::netem().await,
            "proxy" => link::proxy().await,
            "nginx" => nginx::run().await,
            "drain" => drain::run().await,
            _ => unreachable!(),
        };
        for l in got {
            l.print();
            lines.push(l);
        }
    }
    let count = |v| lines.iter().filter(|l| l.verdict == v).count();
    let (pass, fail, skip) = (
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Skip),
    );
    println!(
        "faults: {pass} passed, {fail} failed, {skip} skipped in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    fail > 0
}

fn arg(args: &[String], flag: &str) -> Option<String> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).cloned()
}

/// `faults serve`: a sequence server that clients may ping often (the freeze case's
/// keepalive would otherwise be answered with ENHANCE_YOUR_CALM).
async fn serve(args: &[String]) {
    let port = arg(args, "--port").unwrap_or_else(|| usage("serve needs --port"));
    let server = seq::bind(&format!("127.0.0.1:{port}"), permissive())
        .unwrap_or_else(|e| usage(&format!("cannot serve: {e}")));
    let server = Arc::new(server);
    println!("listening on {}", server.local_addr());
    seq::serve(server, Arc::new(seq::Ledger::default())).await;
}

pub fn permissive() -> rillrpc::ServerOptions {
    rillrpc::ServerOptions {
        permit_keepalive_time: Duration::ZERO,
        permit_keepalive_without_calls: true,
        ..Default::default()
    }
}

/// `faults hold`: a call of every shape held open until this process is killed.
async fn hold(args: &[String]) {
    let addr = arg(args, "--addr").unwrap_or_else(|| usage("hold needs --addr"));
    let ch = Channel::new(&format!("http://{addr}")).unwrap_or_else(|e| usage(&e.to_string()));
    let opts = rillrpc::CallOptions::new();
    match seq::hold_all(&ch, 50, opts, Duration::from_secs(20)).await {
        Ok(tasks) => {
            println!("holding");
            for t in tasks {
                let _ = t.await;
            }
        }
        Err(e) => {
            println!("could not hold: {e}");
            std::process::exit(1);
        }
    }
}

/// "unary UNAVAILABLE 0.01s, bidi ..." for a set of runs.
pub fn describe(runs: &[seq::Run]) -> String {
    if runs.is_empty() {
        return "none ended".into();
    }
    let mut s = String::new();
    for (i, r) in runs.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(
            s,
            "{sep}{} {} {:.2}s",
            r.shape,
            r.code,
            r.took.as_secs_f64()
        );
        if let Some(b) = &r.broken {
            let _ = write!(s, " BROKEN({b})");
        }
    }
    s
}

/// Codes and how many of each, "UNAVAILABLE×3 OK×1".
pub fn tally(codes: impl IntoIterator<Item = String>) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for c in codes {
        match counts.iter_mut().find(|(k, _)| *k == c) {
            Some((_, n)) => *n += 1,
            None => counts.push((c, 1)),
        }
    }
    counts
        .iter()
        .map(|(c, n)| format!("{c}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs still going after `bound` are hung: each is reported as such.
pub async fn collect(
    tasks: Vec<tokio::task::JoinHandle<seq::Run>>,
    bound: Duration,
) -> (Vec<seq::Run>, usize) {
    let until = tokio::time::Instant::now() + bound;
    let (mut runs, mut hung) = (Vec::new(), 0);
    for t in tasks {
        let abort = t.abort_handle();
        match tokio::time::timeout_at(until, t).await {
            Ok(Ok(r)) => runs.push(r),
            Ok(Err(e)) => panic!("a call's task failed: {e}"),
            Err(_) => {
                abort.abort();
                hung += 1;
            }
        }
    }
    (runs, hung)
}

/// The channel is back once a unary call succeeds. The call waits for the channel to
/// connect (`wait_for_ready`), so it fails only by its deadline: one that fails otherwise
/// went to a connection that was not ready (as one did before a connection waited for
/// the server's preface: made while the link was down, it counted as ready without a
/// word from the server, and its keepalive then ended the call).
pub async fn back(ch: &Channel, bound: Duration) -> Back {
    let t0 = std::time::Instant::now();
    let opts = rillrpc::CallOptions::new()
        .timeout(bound)
        .wait_for_ready(true);
    let r = seq::run(ch, rillrpc::Shape::Unary, 1, 0, opts).await;
    match r.code {
        Code::Ok if r.broken.is_none() => Ok(t0.elapsed()),
        _ => Err(format!(
            "a wait_for_ready call ended {} after {:.2}s: {}",
            r.code,
            t0.elapsed().as_secs_f64(),
            r.message
        )),
    }
}

pub type Back = Result<Duration, String>;

pub fn shown(b: &Back) -> String {
    match b {
        Ok(t) => format!("back in {:.2}s", t.as_secs_f64()),
        Err(e) => format!("NOT back: {e}"),
    }
}
