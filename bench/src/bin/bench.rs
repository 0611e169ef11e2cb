//! The benchmark runner: every echo workload on tonic and on rillrpc in the same run, each
//! cell an `echo-server` and an `echo-client` process of its own (so the two share the
//! machine's cores as a real client and server would), then a markdown table of ratios.
//!
//!     cargo run --release -p rill-bench --bin bench -- [--duration-secs S] [--repeat N]
//!         [--only W] [--idle-streams N] [--no-cross] [--no-build]
//!
//! Each cell is reproducible by hand with the same two binaries (see bench/README.md).

use rill_bench::{thousands, Report, Workload};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Opts {
    duration: f64,
    only: Option<Workload>,
    idle_streams: usize,
    cross: bool,
    build: bool,
    repeat: usize,
}

/// One measurement: a client of one implementation against a server of one.
#[derive(Clone)]
struct Cell {
    workload: Workload,
    size: usize,
    client: &'static str,
    server: &'static str,
}

/// What a cell gave: the client's report, or why there is none.
type Outcome = Result<Report, String>;

fn main() {
    let o = parse_args();
    if o.build {
        build();
    }
    let bins = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let started = Instant::now();

    // The rows of the main table: (label, workload, size).
    let mut rows: Vec<(String, Workload, usize)> = vec![
        (
            "server-stream 16 B (msg/s)".into(),
            Workload::ServerStream,
            16,
        ),
        (
            "server-stream 1 KiB (msg/s)".into(),
            Workload::ServerStream,
            1024,
        ),
        (
            "client-stream 16 B (msg/s)".into(),
            Workload::ClientStream,
            16,
        ),
        (
            "bidi ping-pong 16 B (round trips/s)".into(),
            Workload::PingPong,
            16,
        ),
        (
            "sequential unary 16 B (calls/s)".into(),
            Workload::Unary,
            16,
        ),
        ("idle streams".into(), Workload::IdleStreams, 0),
    ];
    if let Some(w) = o.only {
        rows.retain(|r| r.1 == w);
    }
    let mut results: Vec<(String, Workload, usize, Outcome, Outcome)> = Vec::new();
    let mut raw: Vec<Outcome> = Vec::new();
    for (label, w, size) in &rows {
        let one = |imp: &'static str| {
            run_cell(
                &bins,
                &o,
                &Cell {
                    workload: *w,
                    size: *size,
                    client: imp,
                    server: imp,
                },
            )
        };
        // Alternate the two, and keep each one's best run: a loaded machine only ever
        // slows a cell down. Memory is counted, not timed: one run each.
        let reps = if *w == Workload::IdleStreams {
            1
        } else {
            o.repeat
        };
        let (mut ts, mut rs) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            ts.push(one("tonic"));
            rs.push(one("rill"));
        }
        raw.extend(ts.iter().chain(rs.iter()).cloned());
        results.push((label.clone(), *w, *size, best(ts), best(rs)));
    }

    // Mixed pairs: each client against each server, all four interleaved in one loop so
    // they see the same machine.
    const PAIRS: [(&str, &str); 4] = [
        ("tonic", "tonic"),
        ("rill", "tonic"),
        ("tonic", "rill"),
        ("rill", "rill"),
    ];
    let mut cross: Vec<(String, Vec<Outcome>)> = Vec::new();
    let cross_rows = [
        ("server-stream 16 B (msg/s)", Workload::ServerStream, 16),
        (
            "bidi ping-pong 16 B (round trips/s)",
            Workload::PingPong,
            16,
        ),
    ];
    if o.cross {
        for (label, w, size) in cross_rows {
            if o.only.is_some_and(|x| x != w) {
                continue;
            }
            let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); PAIRS.len()];
            for _ in 0..o.repeat {
                for (i, (client, server)) in PAIRS.iter().enumerate() {
                    let c = Cell {
                        workload: w,
                        size,
                        client,
                        server,
                    };
                    runs[i].push(run_cell(&bins, &o, &c));
                }
            }
            raw.extend(runs.iter().flatten().cloned());
            cross.push((label.to_owned(), runs.into_iter().map(best).collect()));
        }
    }

    println!();
    println!("| workload | tonic | rillrpc | ratio rill/tonic |");
    println!("|---|---:|---:|---:|");
    for (label, w, _, t, r) in &results {
        if *w == Workload::IdleStreams {
            for (side, key) in [
                ("server", "server_per_stream"),
                ("client", "client_per_stream"),
            ] {
                let get = |x: &Outcome| x.as_ref().ok().and_then(|r| r.get_f64(key));
                println!(
                    "| {} idle streams: {side} memory (B/stream, lower is better) | {} | {} | {} |",
                    thousands(o.idle_streams as f64),
                    show(t, get(t)),
                    show(r, get(r)),
                    ratio(get(t), get(r)),
                );
            }
            continue;
        }
        let get = |x: &Outcome| x.as_ref().ok().and_then(|r| r.get_f64("value"));
        println!(
            "| {label} | {} | {} | {} |",
            show(t, get(t)),
            show(r, get(r)),
            ratio(get(t), get(r))
        );
    }
    // Rates per CPU-second: on a shared machine a process gets only part of a core, and
    // what it does with the CPU it gets is the steadier comparison.
    println!();
    println!(
        "| workload, per CPU-second of client + server | tonic | rillrpc | ratio rill/tonic |"
    );
    println!("|---|---:|---:|---:|");
    for (label, w, _, t, r) in &results {
        if *w == Workload::IdleStreams {
            continue;
        }
        let get = |x: &Outcome| {
            let r = x.as_ref().ok()?;
            let cpu = r.get_f64("client_cpu")? + r.get_f64("server_cpu")?;
            (cpu > 0.0).then(|| r.get_f64("value").map(|v| v / cpu))?
        };
        println!(
            "| {label} | {} | {} | {} |",
            show(t, get(t)),
            show(r, get(r)),
            ratio(get(t), get(r))
        );
    }
    if !cross.is_empty() {
        println!();
        println!(
            "| mixed pairs (client → server; ratio to tonic → tonic) | {} |",
            PAIRS.map(|(c, s)| format!("{c} → {s}")).join(" | ")
        );
        println!("|---|---:|---:|---:|---:|");
        for (label, outs) in &cross {
            let v = |x: &Outcome| x.as_ref().ok().and_then(|r| r.get_f64("value"));
            let base = v(&outs[0]);
            let cells: Vec<String> = outs
                .iter()
                .enumerate()
                .map(|(i, x)| match i {
                    0 => show(x, v(x)),
                    _ => format!("{} ({})", show(x, v(x)), ratio(base, v(x))),
                })
                .collect();
            println!("| {label} | {} |", cells.join(" | "));
        }
    }
    println!();
    println!(
        "Cells of {} s after a warm-up, best of {} alternating runs (memory: one run), each a \
         fresh echo-server and echo-client process; \
         whole run {:.0} s. client_cpu / server_cpu in the raw results: cores each process \
         used during the measured window.",
        o.duration,
        o.repeat,
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("Raw results:");
    println!("```");
    for x in &raw {
        print_raw(x);
    }
    println!("```");
}

/// The run with the highest value; the first failure if none succeeded.
fn best(runs: Vec<Outcome>) -> Outcome {
    let value = |x: &Outcome| x.as_ref().ok().and_then(|r| r.get_f64("value"));
    let mut it = runs.into_iter();
    let mut top = it.next().unwrap_or_else(|| Err("no run".into()));
    for x in it {
        if value(&x).unwrap_or(f64::MIN) > value(&top).unwrap_or(f64::MIN) {
            top = x;
        }
    }
    top
}

fn print_raw(x: &Outcome) {
    match x {
        Ok(r) => println!("{r}"),
        Err(e) => println!("FAILED {e}"),
    }
}

fn show(x: &Outcome, v: Option<f64>) -> String {
    match (x, v) {
        (_, Some(v)) => thousands(v),
        (Err(e), None) if e.contains("timed out") => "hang".into(),
        _ => "failed".into(),
    }
}

fn ratio(tonic: Option<f64>, rill: Option<f64>) -> String {
    match (tonic, rill) {
        (Some(t), Some(r)) if t != 0.0 => format!("{:.2}", r / t),
        _ => "–".into(),
    }
}

/// Builds the two binaries the runner starts, so they are never older than the core.
fn build() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    eprintln!("bench: building echo-server and echo-client (release)");
    let st = Command::new(cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "-p",
            "rill-bench",
            "--bin",
            "echo-server",
            "--bin",
            "echo-client",
        ])
        .status();
    match st {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("bench: building the echo binaries failed: {other:?}");
            std::process::exit(1);
        }
    }
}

/// Kills a child this runner started when it goes out of scope.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a child's stdout on a thread, line by line, so waits can time out.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn run_cell(bins: &Path, o: &Opts, c: &Cell) -> Outcome {
    let what = format!(
        "{} size={} client={} server={}",
        c.workload, c.size, c.client, c.server
    );
    eprintln!("bench: {what} ...");
    let out = run_cell_inner(bins, o, c);
    match &out {
        Ok(r) => eprintln!(
            "bench:   {} {}",
            r.get("value").unwrap_or("?"),
            r.get("unit").unwrap_or("")
        ),
        Err(e) => eprintln!("bench:   FAILED: {e}"),
    }
    out.map_err(|e| format!("{what}: {e}"))
}

fn run_cell_inner(bins: &Path, o: &Opts, c: &Cell) -> Outcome {
    let server = Command::new(bins.join("echo-server"))
        .args(["--impl", c.server, "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start echo-server: {e}"))?;
    let mut server = Reaper(server);
    let server_lines = lines_of(&mut server.0);
    let addr = loop {
        match server_lines.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => {
                if let Some(a) = l.trim().strip_prefix("listening on ") {
                    break a.to_owned();
                }
            }
            Err(_) => return Err("echo-server did not say where it listens".into()),
        }
    };
    let server_pid = server.0.id();

    let mut cmd = Command::new(bins.join("echo-client"));
    cmd.args(["--impl", c.client, "--addr", &addr])
        .args(["--workload", c.workload.name()])
        .args(["--duration-secs", &o.duration.to_string()]);
    cmd.args(["--server-pid", &server_pid.to_string()]);
    if c.workload == Workload::IdleStreams {
        cmd.args(["--streams", &o.idle_streams.to_string()]);
    } else {
        cmd.args(["--size", &c.size.to_string()]);
    }
    let client = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start echo-client: {e}"))?;
    let mut client = Reaper(client);
    let client_lines = lines_of(&mut client.0);
    let started = Instant::now();
    // Generous: a cell that takes this long has hung.
    let limit = Duration::from_secs_f64(o.duration * 2.0 + 30.0);
    let report = loop {
        let left = limit.saturating_sub(started.elapsed());
        match client_lines.recv_timeout(left) {
            Ok(l) => {
                if let Some(r) = Report::parse(&l) {
                    break r;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "timed out after {:.0} s (the client hung)",
                    limit.as_secs_f64()
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let st = client.0.wait().ok();
                return Err(format!("echo-client ended without a result ({st:?})"));
            }
        }
    };
    Ok(report)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        duration: 3.0,
        only: None,
        idle_streams: 10_000,
        cross: true,
        build: true,
        repeat: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--duration-secs" => {
                o.duration = match val().parse::<f64>() {
                    Ok(v) if v > 0.0 && v.is_finite() => v,
                    _ => usage("--duration-secs must be a positive number"),
                }
            }
            "--only" => {
                let v = val();
                o.only = Some(
                    Workload::parse(&v).unwrap_or_else(|| usage(&format!("unknown workload {v}"))),
                )
            }
            "--idle-streams" => {
                o.idle_streams = val()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage("--idle-streams must be a positive integer"))
            }
            "--no-cross" => o.cross = false,
            "--repeat" => {
                o.repeat = val()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage("--repeat must be a positive integer"))
            }
            "--no-build" => o.build = false,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    o
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("bench: {msg}");
    }
    eprintln!(
        "usage: bench [--duration-secs S] [--repeat N] [--only WORKLOAD] [--idle-streams N]\n\
         \x20            [--no-cross] [--no-build]\n\
         workloads: server-stream client-stream pingpong unary idle-streams"
    );
    std::process::exit(2)
}
