//! The Rust part of `make soak` (issue 16): thousands of concurrent streams, with churn,
//! against an echo server in a process of its own, whose memory, fds and threads are
//! sampled every second.
//!
//!     rill-soak --server PATH [--seconds 180] [--streams 10000] [--connections 8]
//!               [--unary-tasks 16] [--summary FILE]
//!
//! The server is rill-bench's `echo-server --impl rill`: the echo service every test and
//! bench speaks, already built with a stream limit flag; running it apart keeps the
//! driver's own memory out of the server's numbers.
//!
//! Each of `--streams` slots holds one streaming call (client, server or bidi streaming)
//! open at a time and starts the next when it ends; `--unary-tasks` tasks make unary calls
//! back to back. A call's fate is drawn as it starts: run to its end (OK), cancelled
//! midway, left to run past its deadline, or told to fail with a given code (the echo
//! service's `count < 0`). None of the fates depends on timing: a call that is to miss its
//! deadline never ends by itself, one to be cancelled cannot have ended before. Calls go
//! over `--connections` channels (one connection each, gRPC, gRPC-Web and Connect in turn);
//! one of them is closed and replaced every twelfth of the run.
//!
//! Fails on any status a call did not ask for, on a wrong answer, if the server's or the
//! driver's RSS in the last quarter passes the peak between warm-up (the first quarter)
//! and the last quarter by more than 20% + 8 MiB, or if the server keeps fds once every
//! connection is closed. With `--preload` (jemalloc, told to give freed pages back within
//! a second) it also fails if the server's RSS, once every connection is closed, stays
//! more than `RETURN_SLACK` above what it was before the first: what the run leaves behind
//! is then a leak, not pages glibc's allocator keeps (it keeps about 230 MiB of the 270 a
//! run of 10,000 streams peaks at).

use prost::Message;
use rill_testkit::echo::{Request, Response};
use rill_testkit::rill_echo::{ECHO, ECHO_CLIENT, ECHO_SERVER, PING_PONG};
use rillrpc::{Bytes, Call, CallOptions, Channel, ChannelOptions, Code, Protocol, Shape, Status};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

const MIB: f64 = 1024.0 * 1024.0;
/// The growth the RSS check forgives: allocators keep freed pages, and a peak lands where
/// it lands.
const RSS_SLACK: f64 = 0.20;
const RSS_SLACK_BYTES: u64 = 8 << 20;
/// What a server under jemalloc may still hold once every connection is closed, beyond
/// its RSS before the first: jemalloc's own caches and the runtime's (about 21 MiB after
/// a run of 10,000 streams and 400,000 calls).
const RETURN_SLACK: u64 = 40 << 20;
/// jemalloc's settings for the server: freed pages go back to the system within a second.
const JEMALLOC_CONF: &str = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

struct Args {
    server: String,
    /// An allocator library the server runs with (LD_PRELOAD): jemalloc.
    preload: Option<String>,
    secs: u64,
    streams: usize,
    conns: usize,
    unary_tasks: usize,
    summary: Option<String>,
}

fn main() {
    let a = parse_args();
    let mut server = spawn_server(&a.server, a.preload.as_deref());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pid = server.0.id();
    let ok = rt.block_on(soak(&a, pid, &server.1));
    let _ = server.0.kill();
    let _ = server.0.wait();
    std::process::exit(if ok { 0 } else { 1 });
}

// ------------------------------------------------------------------ the calls

const SHAPES: [&str; 4] = ["unary", "client-stream", "server-stream", "bidi"];
const FATES: [&str; 4] = ["ok", "cancel", "deadline", "error"];
const N_CODES: usize = 17;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    Cancel,
    Deadline,
    Error(Code),
}

impl Fate {
    fn index(self) -> usize {
        match self {
            Fate::Ok => 0,
            Fate::Cancel => 1,
            Fate::Deadline => 2,
            Fate::Error(_) => 3,
        }
    }

    fn expected(self) -> Code {
        match self {
            Fate::Ok => Code::Ok,
            Fate::Cancel => Code::Cancelled,
            Fate::Deadline => Code::DeadlineExceeded,
            Fate::Error(c) => c,
        }
    }
}

/// xorshift64*: enough for drawing fates, and no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    fn fate(&mut self, cancel_and_deadline: bool) -> Fate {
        let errs = [Code::NotFound, Code::FailedPrecondition, Code::Aborted];
        match self.range(0, 99) {
            0..=59 => Fate::Ok,
            60..=74 if cancel_and_deadline => Fate::Cancel,
            75..=89 if cancel_and_deadline => Fate::Deadline,
            60..=89 => Fate::Ok,
            _ => Fate::Error(errs[self.range(0, 2) as usize]),
        }
    }
}

fn request(payload: &[u8], count: i32) -> Bytes {
    Request {
        payload: payload.to_vec(),
        count,
    }
    .encode_to_vec()
    .into()
}

/// A status for a reply that is not what the echo service answers: no call asks for
/// DATA_LOSS, so it counts as unexpected.
fn wrong(what: String) -> Status {
    Status::new(Code::DataLoss, what)
}

fn check_echo(msg: &[u8], want: &[u8]) -> Result<(), Status> {
    let r = Response::decode(msg).map_err(|e| wrong(format!("bad echo.Response: {e}")))?;
    if r.payload != want {
        return Err(wrong(format!(
            "echoed {} bytes, sent {}",
            r.payload.len(),
            want.len()
        )));
    }
    Ok(())
}

/// The channels, replaced one at a time. Calls open under the read lock so that none
/// opens on a channel just closed (it would fail UNAVAILABLE, rightly).
struct Pool {
    chans: RwLock<Vec<Channel>>,
    addr: String,
}

const PROTOCOLS: [Protocol; 3] = [Protocol::Grpc, Protocol::GrpcWeb, Protocol::Connect];

impl Pool {
    fn channel(addr: &str, i: usize) -> Channel {
        let opts = ChannelOptions {
            protocol: PROTOCOLS[i % PROTOCOLS.len()],
            ..Default::default()
        };
        Channel::with_options(&format!("http://{addr}"), opts).expect("a valid target")
    }

    fn open(
        &self,
        pick: u64,
        method: &str,
        shape: Shape,
        opts: CallOptions,
        req: Option<&[u8]>,
    ) -> Result<Call, Status> {
        let chans = self.chans.read().unwrap();
        let ch = &chans[pick as usize % chans.len()];
        match req {
            Some(r) => ch.open_with_request(method, shape, opts, r),
            None => ch.open(method, shape, opts),
        }
    }

    /// The protocol of the channel a call with this pick opens on (a replacement keeps
    /// its channel's protocol and place).
    fn protocol(&self, pick: u64) -> &'static str {
        let n = self.chans.read().unwrap().len();
        PROTOCOLS[pick as usize % n % PROTOCOLS.len()].name()
    }

    /// Replaces channel `i` by a new one and closes the old: its calls run to their end,
    /// then its connection closes.
    fn reconnect(&self, i: usize) {
        let new = Pool::channel(&self.addr, i);
        let old = {
            let mut chans = self.chans.write().unwrap();
            let n = chans.len();
            std::mem::replace(&mut chans[i % n], new)
        };
        old.close();
    }
}

fn opts(fate: Fate, rng: &mut Rng) -> CallOptions {
    match fate {
        Fate::Deadline => CallOptions::new().timeout(rng.ms(300, 2000)),
        _ => CallOptions::new(),
    }
}

/// How a streaming call ends, by its fate, once its messages went: the status, as
/// `Err` unless OK.
async fn ended(call: &mut Call, fate: Fate) -> Result<(), Status> {
    let s = match fate {
        Fate::Cancel => {
            call.cancel();
            call.finish().await
        }
        // Never half-closed: only the deadline ends it.
        Fate::Deadline => loop {
            match call.recv().await {
                Ok(Some(_)) => {}
                Ok(None) => break call.status().cloned().unwrap_or_else(Status::ok),
                Err(s) => break s,
            }
        },
        Fate::Ok | Fate::Error(_) => call.finish().await,
    };
    match s.code() {
        Code::Ok => Ok(()),
        _ => Err(s),
    }
}

async fn client_stream(pool: &Pool, pick: u64, rng: &mut Rng, fate: Fate) -> Result<(), Status> {
    let n = rng.range(2, 10);
    let think = rng.ms(100, 800);
    let payload = vec![b'c'; rng.range(1, 256) as usize];
    let o = opts(fate, rng);
    let mut call = pool.open(pick, ECHO_CLIENT, Shape::ClientStreaming, o, None)?;
    for i in 0..n {
        let count = match fate {
            Fate::Error(c) if i + 1 == n => -(c as i32),
            _ => 0,
        };
        if call.send(request(&payload, count)).await.is_err() {
            // The call ended early (its deadline, an error asked for): its status says how.
            break;
        }
        tokio::time::sleep(think).await;
    }
    match fate {
        Fate::Ok => {
            call.close_send();
            let got = call.recv_single().await?;
            let r = Response::decode(&got[..]).map_err(|e| wrong(e.to_string()))?;
            let want = (n as usize * payload.len()).to_string();
            if r.payload != want.as_bytes() {
                return Err(wrong(format!(
                    "client stream: total {:?}, want {want}",
                    r.payload
                )));
            }
            Ok(())
        }
        _ => ended(&mut call, fate).await,
    }
}

async fn server_stream(pool: &Pool, pick: u64, rng: &mut Rng, fate: Fate) -> Result<(), Status> {
    let n = rng.range(2, 10);
    let think = rng.ms(100, 800);
    let payload = vec![b's'; rng.range(1, 256) as usize];
    let count = match fate {
        Fate::Ok => n as i32,
        Fate::Error(c) => -(c as i32),
        // Endless: the server fills the window and waits.
        Fate::Cancel | Fate::Deadline => i32::MAX,
    };
    let o = opts(fate, rng);
    let req = request(&payload, count);
    let mut call = pool.open(pick, ECHO_SERVER, Shape::ServerStreaming, o, Some(&req))?;
    let reads = match fate {
        Fate::Ok | Fate::Cancel => n,
        Fate::Deadline => u64::MAX,
        Fate::Error(_) => 0,
    };
    let mut got = 0;
    while got < reads {
        match call.recv().await? {
            Some(m) => check_echo(&m, &payload)?,
            None => break,
        }
        got += 1;
        tokio::time::sleep(think).await;
    }
    if fate == Fate::Ok {
        if got != n {
            return Err(wrong(format!(
                "server stream: {got} messages, asked for {n}"
            )));
        }
        if let Some(extra) = call.recv().await? {
            return Err(wrong(format!(
                "server stream: {} bytes past the end",
                extra.len()
            )));
        }
    }
    ended(&mut call, fate).await
}

async fn bidi(pool: &Pool, pick: u64, rng: &mut Rng, fate: Fate) -> Result<(), Status> {
    let n = match fate {
        Fate::Deadline => u64::MAX,
        _ => rng.range(2, 10),
    };
    let think = rng.ms(100, 800);
    let payload = vec![b'b'; rng.range(1, 256) as usize];
    let o = opts(fate, rng);
    let mut call = pool.open(pick, ECHO, Shape::Bidi, o, None)?;
    let mut i = 0;
    while i < n {
        let count = match fate {
            Fate::Error(c) if i + 1 == n => -(c as i32),
            _ => 0,
        };
        if call.send(request(&payload, count)).await.is_err() {
            break;
        }
        match call.recv().await {
            Ok(Some(m)) => check_echo(&m, &payload)?,
            Ok(None) => return Err(wrong("bidi: ended before its echo".into())),
            Err(s) => return Err(s),
        }
        tokio::time::sleep(think).await;
        i += 1;
    }
    ended(&mut call, fate).await
}

async fn unary(pool: &Pool, pick: u64, rng: &mut Rng, fate: Fate) -> Result<(), Status> {
    let payload = vec![b'u'; rng.range(1, 256) as usize];
    let count = match fate {
        Fate::Error(c) => -(c as i32),
        _ => 0,
    };
    let req = request(&payload, count);
    let o = CallOptions::new();
    let mut call = pool.open(pick, PING_PONG, Shape::Unary, o, Some(&req))?;
    check_echo(&call.recv_single().await?, &payload)
}

// ------------------------------------------------------------------ counting

struct Stats {
    /// Calls by shape, fate and status code.
    by: Vec<AtomicU64>,
    open: AtomicU64,
    done: AtomicU64,
    unexpected: AtomicU64,
    reconnects: AtomicU64,
    /// The first few unexpected outcomes, to print.
    samples: Mutex<Vec<String>>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            by: (0..SHAPES.len() * FATES.len() * N_CODES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            open: AtomicU64::new(0),
            done: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, shape: usize, fate: Fate, protocol: &str, r: Result<(), Status>) {
        let code = match &r {
            Ok(()) => Code::Ok,
            Err(s) => s.code(),
        };
        let i = (shape * FATES.len() + fate.index()) * N_CODES + code as usize;
        self.by[i].fetch_add(1, Relaxed);
        self.done.fetch_add(1, Relaxed);
        if code != fate.expected() {
            self.unexpected.fetch_add(1, Relaxed);
            let mut s = self.samples.lock().unwrap();
            if s.len() < 10 {
                let msg = r.err().map(|s| s.message().to_string()).unwrap_or_default();
                s.push(format!(
                    "{protocol} {} {}: {} (wanted {}): {msg}",
                    SHAPES[shape],
                    FATES[fate.index()],
                    code.name(),
                    fate.expected().name()
                ));
            }
        }
    }
}

/// Counts a call as open while it runs.
async fn counted<F: std::future::Future<Output = Result<(), Status>>>(
    stats: &Stats,
    (shape, fate, protocol): (usize, Fate, &str),
    f: F,
) {
    stats.open.fetch_add(1, Relaxed);
    let r = f.await;
    stats.open.fetch_sub(1, Relaxed);
    stats.record(shape, fate, protocol, r);
}

async fn slot(id: u64, pool: Arc<Pool>, stats: Arc<Stats>, stop: Arc<AtomicBool>, ramp: Duration) {
    let mut rng = Rng::new(id + 1);
    // Opening them all in the same instant would measure a burst, not a soak.
    tokio::time::sleep(ramp.mul_f64(rng.range(0, 1000) as f64 / 1000.0)).await;
    while !stop.load(Relaxed) {
        let fate = rng.fate(true);
        let shape = rng.range(1, 3) as usize;
        let pick = rng.next();
        let what = (shape, fate, pool.protocol(pick));
        let (p, r) = (&pool, &mut rng);
        match shape {
            1 => counted(&stats, what, client_stream(p, pick, r, fate)).await,
            2 => counted(&stats, what, server_stream(p, pick, r, fate)).await,
            _ => counted(&stats, what, bidi(p, pick, r, fate)).await,
        }
    }
}

async fn unary_task(id: u64, pool: Arc<Pool>, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    let mut rng = Rng::new(id + 1_000_000);
    while !stop.load(Relaxed) {
        let fate = rng.fate(false);
        let pick = rng.next();
        let what = (0, fate, pool.protocol(pick));
        counted(&stats, what, unary(&pool, pick, &mut rng, fate)).await;
        // Leaves the CPU to the streams: unary calls back to back would take it all.
        tokio::time::sleep(rng.ms(1, 10)).await;
    }
}

// ------------------------------------------------------------------ the server process

/// `echo-server` on a free port; returns it and its address.
fn spawn_server(path: &str, preload: Option<&str>) -> (Child, String) {
    let mut cmd = Command::new(path);
    if let Some(lib) = preload {
        cmd.env("LD_PRELOAD", lib).env("MALLOC_CONF", JEMALLOC_CONF);
    }
    let mut child = cmd
        .args(["--impl", "rill", "--host", "127.0.0.1", "--port", "0"])
        .args(["--max-streams", "100000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot run {path}: {e}")));
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    out.read_line(&mut line)
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    // Whatever else it prints goes on to ours: a closed pipe would fail its writes.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::stdout()));
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| fail(&format!("{path} said {line:?}")))
        .to_string();
    (child, addr)
}

#[derive(Clone, Copy, Default)]
struct Proc {
    rss: u64,
    threads: u64,
    fds: u64,
}

/// RSS, threads and open fds of a process (`None`: this one), from /proc.
fn proc_stats(pid: Option<u32>) -> Proc {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    };
    let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("{dir}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Proc {
        rss: field("VmRSS:") * 1024,
        threads: field("Threads:"),
        fds,
    }
}

struct Sample {
    t: u64,
    server: Proc,
    driver: Proc,
    open: u64,
    done: u64,
    rate: u64,
    unexpected: u64,
    reconnects: u64,
}

fn header() {
    println!(
        "{:>5} {:>7} {:>8} {:>10} {:>6} {:>9} {:>7} {:>7} {:>9} {:>6}",
        "t s",
        "open",
        "calls/s",
        "calls",
        "unexp",
        "srv MiB",
        "srv fd",
        "srv thr",
        "drv MiB",
        "recon"
    );
}

fn row(s: &Sample) {
    println!(
        "{:>5} {:>7} {:>8} {:>10} {:>6} {:>9.1} {:>7} {:>7} {:>9.1} {:>6}",
        s.t,
        s.open,
        s.rate,
        s.done,
        s.unexpected,
        s.server.rss as f64 / MIB,
        s.server.fds,
        s.server.threads,
        s.driver.rss as f64 / MIB,
        s.reconnects
    );
    let _ = std::io::stdout().flush();
}

// ------------------------------------------------------------------ the run

async fn soak(a: &Args, pid: u32, addr: &str) -> bool {
    let idle = proc_stats(Some(pid));
    println!(
        "rill-soak: {} streams, {} unary tasks, {} connections, {} s against echo-server (pid {pid}, {addr})",
        a.streams, a.unary_tasks, a.conns, a.secs
    );
    let pool = Arc::new(Pool {
        chans: RwLock::new((0..a.conns).map(|i| Pool::channel(addr, i)).collect()),
        addr: addr.to_string(),
    });
    let stats = Arc::new(Stats::new());
    let stop = Arc::new(AtomicBool::new(false));
    let ramp = Duration::from_secs((a.secs / 20).clamp(1, 10));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.streams as u64 {
        tasks.spawn(slot(i, pool.clone(), stats.clone(), stop.clone(), ramp));
    }
    for i in 0..a.unary_tasks as u64 {
        tasks.spawn(unary_task(i, pool.clone(), stats.clone(), stop.clone()));
    }

    let every = (a.secs / 60).max(1);
    let reconnect_every = (a.secs / 12).max(2);
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    header();
    let mut last_done = 0;
    for t in 1..=a.secs {
        tick.tick().await;
        if t % reconnect_every == 0 {
            pool.reconnect((t / reconnect_every) as usize);
            stats.reconnects.fetch_add(1, Relaxed);
        }
        let done = stats.done.load(Relaxed);
        let s = Sample {
            t,
            server: proc_stats(Some(pid)),
            driver: proc_stats(None),
            open: stats.open.load(Relaxed),
            done,
            rate: done - last_done,
            unexpected: stats.unexpected.load(Relaxed),
            reconnects: stats.reconnects.load(Relaxed),
        };
        last_done = done;
        if t % every == 0 || t == a.secs {
            row(&s);
        }
        samples.push(s);
    }

    // Every call in flight ends by itself: finite ones run out, the rest have deadlines or
    // are cancelled. A call still open long after is a hang.
    stop.store(true, Relaxed);
    let drained = tokio::time::timeout(Duration::from_secs(120), async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    let peak_open = samples.iter().map(|s| s.open).max().unwrap_or(0);
    drop(pool);
    // The server closes a connection once the client has; give it a while to see it.
    let mut after = proc_stats(Some(pid));
    for _ in 0..60 {
        if after.fds <= idle.fds {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = proc_stats(Some(pid));
    }
    let returned = idle.rss + RETURN_SLACK;
    if a.preload.is_some() {
        // jemalloc gives pages back a second after they are freed, from its own thread.
        for _ in 0..20 {
            if after.rss <= returned {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            after = proc_stats(Some(pid));
        }
    }

    let mut failures = Vec::new();
    if !drained {
        failures.push(format!(
            "{} calls still open 120 s after the stop",
            stats.open.load(Relaxed)
        ));
    }
    let unexpected = stats.unexpected.load(Relaxed);
    if unexpected > 0 {
        failures.push(format!(
            "{unexpected} calls ended with a status they did not ask for"
        ));
    }
    if peak_open < a.streams as u64 {
        failures.push(format!(
            "at most {peak_open} calls open at once, not {}",
            a.streams
        ));
    }
    let warm = a.secs / 4;
    let last = a.secs - a.secs / 4;
    let peak = |from: u64, to: u64, f: &dyn Fn(&Sample) -> u64| {
        samples
            .iter()
            .filter(|s| s.t > from && s.t <= to)
            .map(f)
            .max()
            .unwrap_or(0)
    };
    let mut flat = |who: &str, f: &dyn Fn(&Sample) -> u64| -> (u64, u64) {
        let (mid, end) = (peak(warm, last, f), peak(last, a.secs, f));
        let bound = (mid as f64 * (1.0 + RSS_SLACK)) as u64 + RSS_SLACK_BYTES;
        if end > bound {
            failures.push(format!(
                "{who} RSS grew: last-quarter peak {:.1} MiB, after warm-up {:.1} MiB (bound {:.1})",
                end as f64 / MIB,
                mid as f64 / MIB,
                bound as f64 / MIB
            ));
        }
        (mid, end)
    };
    let srv = flat("server", &|s| s.server.rss);
    let drv = flat("driver", &|s| s.driver.rss);
    if a.preload.is_some() && after.rss > returned {
        failures.push(format!(
            "the server holds {:.1} MiB with no connection, {:.1} MiB before the first \
             (bound {:.1}): a leak",
            after.rss as f64 / MIB,
            idle.rss as f64 / MIB,
            returned as f64 / MIB
        ));
    }
    if after.fds > idle.fds {
        failures.push(format!(
            "the server holds {} fds with no connection, {} before the first",
            after.fds, idle.fds
        ));
    }

    println!();
    println!("calls by shape and fate (status: count)");
    for (sh, shape) in SHAPES.iter().enumerate() {
        for (fa, fate) in FATES.iter().enumerate() {
            let codes: Vec<String> = (0..N_CODES)
                .filter_map(|c| {
                    let n = stats.by[(sh * FATES.len() + fa) * N_CODES + c].load(Relaxed);
                    (n > 0).then(|| format!("{} {n}", Code::from_u32(c as u32).name()))
                })
                .collect();
            if !codes.is_empty() {
                println!("  {shape:<14} {fate:<9} {}", codes.join(", "));
            }
        }
    }
    for s in stats.samples.lock().unwrap().iter() {
        println!("  unexpected: {s}");
    }
    let total = stats.done.load(Relaxed);
    println!();
    println!(
        "server: RSS idle {:.1} MiB, peak after warm-up {:.1} MiB, last-quarter peak {:.1} MiB, \
         after the run {:.1} MiB; fds {} idle, {} after; threads {} idle, {} after",
        idle.rss as f64 / MIB,
        srv.0 as f64 / MIB,
        srv.1 as f64 / MIB,
        after.rss as f64 / MIB,
        idle.fds,
        after.fds,
        idle.threads,
        after.threads
    );
    println!(
        "driver: RSS peak after warm-up {:.1} MiB, last-quarter peak {:.1} MiB; \
         {total} calls, at most {peak_open} open at once, {} reconnects",
        drv.0 as f64 / MIB,
        drv.1 as f64 / MIB,
        stats.reconnects.load(Relaxed)
    );
    for f in &failures {
        println!("rill-soak: FAIL: {f}");
    }
    let verdict = if failures.is_empty() { "ok" } else { "FAIL" };
    if let Some(path) = &a.summary {
        let line = format!(
            "rust    {total:>9} calls ({peak_open} streams open at most, {unexpected} unexpected)  \
             server RSS {:.1} -> {:.1} MiB (after warm-up -> last quarter), fds {} -> {}  {verdict}\n",
            srv.0 as f64 / MIB,
            srv.1 as f64 / MIB,
            idle.fds,
            after.fds
        );
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        let _ = f.write_all(line.as_bytes());
    }
    failures.is_empty()
}

fn parse_args() -> Args {
    let mut a = Args {
        server: String::new(),
        preload: None,
        secs: 180,
        streams: 10_000,
        conns: 8,
        unary_tasks: 16,
        summary: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(k) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{k} needs a value")))
        };
        let num = |v: String| -> u64 { v.parse().unwrap_or_else(|_| usage(&format!("bad {k}"))) };
        match k.as_str() {
            "--server" => a.server = val(),
            "--preload" => a.preload = Some(val()),
            "--seconds" => a.secs = num(val()),
            "--streams" => a.streams = num(val()) as usize,
            "--connections" => a.conns = num(val()) as usize,
            "--unary-tasks" => a.unary_tasks = num(val()) as usize,
            "--summary" => a.summary = Some(val()),
            "-h" | "--help" => usage(""),
            _ => usage(&format!("unknown argument {k}")),
        }
    }
    if a.server.is_empty() || a.secs < 4 || a.conns == 0 {
        usage("--server is needed, --seconds at least 4, --connections at least 1");
    }
    a
}

fn fail(msg: &str) -> ! {
    eprintln!("rill-soak: {msg}");
    std::process::exit(1)
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("rill-soak: {msg}");
    }
    eprintln!(
        "usage: rill-soak --server ECHO_SERVER [--seconds S] [--streams N] [--connections N]\n\
         \x20                [--unary-tasks N] [--summary FILE] [--preload LIBJEMALLOC]"
    );
    std::process::exit(2)
}
