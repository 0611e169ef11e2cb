//! The benchmark runner: every echo workload on tonic and on rillrpc in the same run, each
//! cell an `echo-server` and an `echo-client` process of its own (so the two share the
//! machine's cores as a real client and server would), then markdown tables of ratios:
//! the main table, the mixed pairs (tonic's, grpc-go's and rillrpc's clients against each
//! other's servers), with `--baseline` rillrpc before and after in the same run, and with
//! `--tables protocols` the protocols table (gRPC, Connect over HTTP/2 and HTTP/1.1 and
//! gRPC-Web: connect-go's client against rillrpc's, connect-go's and the `connectrpc`
//! crate's servers, and rillrpc's client against its own server).
//!
//!     cargo run --release -p rill-bench --bin bench -- [--duration-secs S] [--repeat N]
//!         [--only W] [--idle-streams N] [--tables main,cross,protocols] [--no-cross]
//!         [--no-main] [--no-build] [--baseline DIR] [--go-dir DIR]
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
    main: bool,
    /// The protocols table (`--tables protocols`).
    protocols: bool,
    build: bool,
    repeat: usize,
    /// echo-server and echo-client built from the commit before a change (`--baseline`).
    baseline: Option<PathBuf>,
    /// The Go echo-server and echo-client (grpc-go, connect-go; `make bench-go`); default
    /// `<target>/bench-go`.
    go_dir: Option<PathBuf>,
}

/// Who runs one side of a cell, and from which build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    Tonic,
    Rill,
    /// rillrpc from the `--baseline` binaries.
    RillBefore,
    GrpcGo,
    /// connect-go's client and server (`bench/go`).
    ConnectGo,
    /// The `connectrpc` crate's server (`echo-server --impl connectrpc`).
    ConnectRs,
}

impl Imp {
    fn label(self) -> &'static str {
        match self {
            Imp::Tonic => "tonic",
            Imp::Rill => "rill",
            Imp::RillBefore => "rill before",
            Imp::GrpcGo => "grpc-go",
            Imp::ConnectGo => "connect-go",
            Imp::ConnectRs => "connectrpc",
        }
    }

    /// The `--impl` its programs take.
    fn flag(self) -> &'static str {
        match self {
            Imp::Tonic => "tonic",
            Imp::Rill | Imp::RillBefore => "rill",
            Imp::GrpcGo => "grpc-go",
            Imp::ConnectGo => "connect-go",
            Imp::ConnectRs => "connectrpc",
        }
    }
}

/// Where each implementation's `echo-server` and `echo-client` are.
struct Bins {
    current: PathBuf,
    go: PathBuf,
    baseline: Option<PathBuf>,
}

impl Bins {
    fn program(&self, i: Imp, name: &str) -> PathBuf {
        let dir = match i {
            Imp::Tonic | Imp::Rill | Imp::ConnectRs => &self.current,
            Imp::GrpcGo | Imp::ConnectGo => &self.go,
            Imp::RillBefore => self
                .baseline
                .as_ref()
                .expect("--baseline gives rill before"),
        };
        dir.join(name)
    }
}

/// One measurement: a client of one implementation against a server of one, in the
/// client's default protocol or (the protocols table) the one given.
#[derive(Clone, Copy)]
struct Cell {
    workload: Workload,
    size: usize,
    client: Imp,
    server: Imp,
    proto: Option<Proto>,
}

impl Cell {
    fn pair(&self) -> String {
        let pair = format!("{} → {}", self.client.label(), self.server.label());
        match self.proto {
            Some(p) => format!("{pair} [{}]", p.label),
            None => pair,
        }
    }
}

/// A protocol and HTTP version a client speaks: a column of the protocols table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Proto {
    label: &'static str,
    /// The clients' `--protocol`.
    flag: &'static str,
    /// The clients' `--http1`.
    http1: bool,
}

const PROTOS: [Proto; 4] = [
    Proto {
        label: "gRPC",
        flag: "grpc",
        http1: false,
    },
    Proto {
        label: "Connect/HTTP2",
        flag: "connect",
        http1: false,
    },
    Proto {
        label: "Connect/HTTP1.1",
        flag: "connect",
        http1: true,
    },
    Proto {
        label: "gRPC-Web/HTTP2",
        flag: "grpc-web",
        http1: false,
    },
];

/// What a cell gave: the client's report, or why there is none.
type Outcome = Result<Report, String>;

/// A row of a table: its label, workload and message size.
type Row = (&'static str, Workload, usize);

const RATE_ROWS: [Row; 7] = [
    ("server-stream 16 B (msg/s)", Workload::ServerStream, 16),
    ("server-stream 1 KiB (msg/s)", Workload::ServerStream, 1024),
    ("client-stream 16 B (msg/s)", Workload::ClientStream, 16),
    (
        "bidi ping-pong 16 B (round trips/s)",
        Workload::PingPong,
        16,
    ),
    ("sequential unary 16 B (calls/s)", Workload::Unary, 16),
    (
        "sequential unary 16 B, 10 s deadline (calls/s)",
        Workload::UnaryDeadline,
        16,
    ),
    (
        "cancelled server streams 16 B (calls/s)",
        Workload::Cancel,
        16,
    ),
];

/// Server streams opened by a client that grants them no window, the handlers sending
/// without end: the case where a server's send queues show in its memory.
const STALLED_STREAMS: usize = 2_000;

/// The peers whose clients drive our server in the mixed pairs, each against its own
/// server too.
const PEERS: [Imp; 2] = [Imp::Tonic, Imp::GrpcGo];

/// The protocols table's rows.
const PROTO_ROWS: [Row; 3] = [
    ("server-stream 16 B (msg/s)", Workload::ServerStream, 16),
    ("sequential unary 16 B (calls/s)", Workload::Unary, 16),
    (
        "bidi ping-pong 16 B (round trips/s)",
        Workload::PingPong,
        16,
    ),
];

/// The protocols table's pairs, in each protocol: connect-go's client against our server,
/// its own and the `connectrpc` crate's; our client against our server.
const PROTO_PAIRS: [(Imp, Imp); 4] = [
    (Imp::ConnectGo, Imp::Rill),
    (Imp::ConnectGo, Imp::ConnectGo),
    (Imp::ConnectGo, Imp::ConnectRs),
    (Imp::Rill, Imp::Rill),
];

/// Whether a protocols-table cell can run: both clients refuse bidi calls over HTTP/1.1
/// (connect-go's and ours alike).
fn proto_cell_runs(w: Workload, p: Proto) -> bool {
    !(p.http1 && w == Workload::PingPong)
}

fn main() {
    let o = parse_args();
    let current = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let bins = Bins {
        go: o
            .go_dir
            .clone()
            .unwrap_or_else(|| current.join("..").join("bench-go")),
        current,
        baseline: o.baseline.clone(),
    };
    if o.build {
        build(&bins, o.cross || o.protocols);
    }
    check_baseline(&bins);
    let started = Instant::now();
    let mut raw: Vec<(Cell, Outcome)> = Vec::new();

    let mut imps = vec![Imp::Tonic];
    if o.baseline.is_some() {
        imps.push(Imp::RillBefore);
    }
    imps.push(Imp::Rill);
    let mut rows: Vec<Row> = RATE_ROWS.to_vec();
    rows.push(("idle streams", Workload::IdleStreams, 0));
    rows.push(("stalled streams", Workload::StalledStreams, 0));
    rows.retain(|r| o.only.is_none_or(|w| w == r.1));

    // The main table: each implementation against itself, in turn within every round, and
    // each keeps its best run: a loaded machine only ever slows a cell down. Memory is
    // counted, not timed: one run each.
    let mut main_rows: Vec<(Row, Vec<Outcome>)> = Vec::new();
    for row in rows.iter().filter(|_| o.main) {
        let reps = match row.1.is_memory() {
            true => 1,
            false => o.repeat,
        };
        let cells: Vec<Cell> = imps.iter().map(|&i| cell(row, i, i)).collect();
        main_rows.push((*row, rounds(&bins, &o, &cells, reps, &mut raw)));
    }

    // Mixed pairs: every client against every server (and, with a baseline, the peers'
    // clients against rill before), all of a row's pairs in turn within each round, so
    // they see the same machine.
    let mut cross = Cross {
        pairs: cross_pairs(o.baseline.is_some()),
        rows: Vec::new(),
    };
    for row in rows.iter().filter(|r| o.cross && !r.1.is_memory()) {
        let cells: Vec<Cell> = cross.pairs.iter().map(|&(c, s)| cell(row, c, s)).collect();
        cross
            .rows
            .push((*row, rounds(&bins, &o, &cells, o.repeat, &mut raw)));
    }

    // The protocols table: every protocol's pairs of a row in turn within each round.
    let mut protos = Protocols::default();
    for row in PROTO_ROWS
        .iter()
        .filter(|r| o.protocols && o.only.is_none_or(|w| w == r.1))
    {
        let keys: Vec<(Proto, Imp, Imp)> = PROTOS
            .iter()
            .filter(|&&p| proto_cell_runs(row.1, p))
            .flat_map(|&p| PROTO_PAIRS.iter().map(move |&(c, s)| (p, c, s)))
            .collect();
        let cells: Vec<Cell> = keys
            .iter()
            .map(|&(p, c, s)| Cell {
                proto: Some(p),
                ..cell(row, c, s)
            })
            .collect();
        let outs = rounds(&bins, &o, &cells, o.repeat, &mut raw);
        protos
            .rows
            .push((*row, keys.into_iter().zip(outs).collect()));
    }

    if !main_rows.is_empty() {
        print_main(&o, &imps, &main_rows);
    }
    if !cross.rows.is_empty() {
        cross.print_pairs();
        cross.print_our_server();
        cross.print_server_cpu();
    }
    if !protos.rows.is_empty() {
        protos.print_rates();
        protos.print_ratios();
        protos.print_own_grpc();
        protos.print_server_cpu();
    }
    print_footer(&o, started, &raw);
}

fn cell(row: &Row, client: Imp, server: Imp) -> Cell {
    Cell {
        workload: row.1,
        size: row.2,
        client,
        server,
        proto: None,
    }
}

fn print_footer(o: &Opts, started: Instant, raw: &[(Cell, Outcome)]) {
    println!();
    println!(
        "Cells of {} s after a warm-up, best of {} runs (memory: one run), the cells of a row \
         taking turns within each round, each a fresh echo-server and echo-client process; \
         whole run {:.0} s. client_cpu / server_cpu in the raw results: cores each process \
         used during the measured window.",
        o.duration,
        o.repeat,
        started.elapsed().as_secs_f64()
    );
    if let Some(b) = &o.baseline {
        println!(
            "rill before: the echo-server and echo-client in {}.",
            b.display()
        );
    }
    println!();
    println!("Raw results (client → server):");
    println!("```");
    for (c, x) in raw {
        match x {
            Ok(r) => println!("{}: {r}", c.pair()),
            Err(e) => println!("{}: FAILED {e}", c.pair()),
        }
    }
    println!("```");
}

/// Runs `reps` rounds of `cells`, each round every cell once in order; the best of each.
fn rounds(
    bins: &Bins,
    o: &Opts,
    cells: &[Cell],
    reps: usize,
    raw: &mut Vec<(Cell, Outcome)>,
) -> Vec<Outcome> {
    let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); cells.len()];
    for _ in 0..reps {
        for (i, c) in cells.iter().enumerate() {
            let out = run_cell(bins, o, c);
            raw.push((*c, out.clone()));
            runs[i].push(out);
        }
    }
    runs.into_iter().map(best).collect()
}

/// Every client against every server, then the peers' clients against rill before.
fn cross_pairs(baseline: bool) -> Vec<(Imp, Imp)> {
    let sides = [Imp::Tonic, Imp::GrpcGo, Imp::Rill];
    let mut pairs: Vec<(Imp, Imp)> = sides
        .iter()
        .flat_map(|&c| sides.iter().map(move |&s| (c, s)))
        .collect();
    if baseline {
        pairs.extend(PEERS.iter().map(|&c| (c, Imp::RillBefore)));
    }
    pairs
}

fn value(x: &Outcome) -> Option<f64> {
    x.as_ref().ok().and_then(|r| r.get_f64("value"))
}

/// The rate per CPU-second of client and server together.
fn per_cpu(x: &Outcome) -> Option<f64> {
    let r = x.as_ref().ok()?;
    let cpu = r.get_f64("client_cpu")? + r.get_f64("server_cpu")?;
    (cpu > 0.0).then(|| r.get_f64("value").map(|v| v / cpu))?
}

/// The server's CPU-µs per operation.
fn server_us(x: &Outcome) -> Option<f64> {
    let r = x.as_ref().ok()?;
    let v = r.get_f64("value")?;
    (v > 0.0).then(|| r.get_f64("server_cpu").map(|c| c / v * 1e6))?
}

fn print_main(o: &Opts, imps: &[Imp], rows: &[(Row, Vec<Outcome>)]) {
    let col = |i: Imp| imps.iter().position(|&x| x == i).expect("a column");
    let (tonic, rill) = (col(Imp::Tonic), col(Imp::Rill));
    let before = o.baseline.is_some().then(|| col(Imp::RillBefore));
    let names: Vec<&str> = imps
        .iter()
        .map(|i| match i {
            Imp::Rill => "rillrpc",
            other => other.label(),
        })
        .collect();
    let mut ratios = vec!["ratio rill/tonic"];
    if before.is_some() {
        ratios.push("after/before");
    }
    let head = |first: &str| {
        let mut h = vec![first.to_owned()];
        h.extend(names.iter().chain(&ratios).map(|x| x.to_string()));
        header(&h, 1);
    };
    let line = |label: &str, outs: &[Outcome], get: &dyn Fn(&Outcome) -> Option<f64>| {
        let mut cells: Vec<String> = outs.iter().map(|x| show(x, get(x))).collect();
        cells.push(ratio(get(&outs[tonic]), get(&outs[rill])));
        if let Some(b) = before {
            cells.push(ratio(get(&outs[b]), get(&outs[rill])));
        }
        println!("| {label} | {} |", cells.join(" | "));
    };
    head("workload");
    for ((label, w, _), outs) in rows {
        if !w.is_memory() {
            line(label, outs, &value);
            continue;
        }
        if *w == Workload::StalledStreams {
            let label = format!(
                "{} stalled server streams: server memory (B/stream, lower is better)",
                thousands(STALLED_STREAMS as f64)
            );
            line(&label, outs, &|x| {
                x.as_ref().ok().and_then(|r| r.get_f64("server_per_stream"))
            });
            continue;
        }
        for (side, key) in [
            ("server", "server_per_stream"),
            ("client", "client_per_stream"),
        ] {
            let label = format!(
                "{} idle streams: {side} memory (B/stream, lower is better)",
                thousands(o.idle_streams as f64)
            );
            line(&label, outs, &|x| {
                x.as_ref().ok().and_then(|r| r.get_f64(key))
            });
        }
    }
    // Rates per CPU-second: on a shared machine a process gets only part of a core, and
    // what it does with the CPU it gets is the steadier comparison.
    head("workload, per CPU-second of client + server");
    for ((label, w, _), outs) in rows {
        if !w.is_memory() {
            line(label, outs, &per_cpu);
        }
    }
}

/// The mixed pairs' outcomes: per row, one per pair, in the order of `pairs`.
struct Cross {
    pairs: Vec<(Imp, Imp)>,
    rows: Vec<(Row, Vec<Outcome>)>,
}

impl Cross {
    fn get(&self, outs: &[Outcome], c: Imp, s: Imp, f: fn(&Outcome) -> Option<f64>) -> Option<f64> {
        let i = self.pairs.iter().position(|&p| p == (c, s))?;
        f(&outs[i])
    }

    fn has_baseline(&self) -> bool {
        self.pairs.iter().any(|p| p.1 == Imp::RillBefore)
    }

    /// Every pair's rate: a line per row and client, a column per server.
    fn print_pairs(&self) {
        let mut servers = vec![Imp::Tonic, Imp::GrpcGo, Imp::Rill];
        if self.has_baseline() {
            servers.push(Imp::RillBefore);
        }
        let mut head = vec!["mixed pairs".to_owned(), "client".to_owned()];
        head.extend(servers.iter().map(|s| format!("→ {} server", s.label())));
        header(&head, 2);
        for ((label, _, _), outs) in &self.rows {
            for c in [Imp::Tonic, Imp::GrpcGo, Imp::Rill] {
                let cells: Vec<String> = servers
                    .iter()
                    .map(|&s| match self.get(outs, c, s, value) {
                        Some(v) => thousands(v),
                        None if self.pairs.contains(&(c, s)) => "failed".into(),
                        None => String::new(),
                    })
                    .collect();
                println!("| {label} | {} | {} |", c.label(), cells.join(" | "));
            }
        }
    }

    /// Our server as users' servers meet it: driven by each peer's client, against that
    /// peer's own server driven by the same client.
    fn print_our_server(&self) {
        let before = self.has_baseline();
        let mut head = vec!["our server under other clients".to_owned()];
        for p in PEERS {
            let own = p.label();
            head.push(format!("{own} client: rill / {own} server"));
            if before {
                head.push(format!("{own} client: rill before / {own} server"));
                head.push(format!("{own} client: rill after/before"));
            }
        }
        header(&head, 1);
        for ((label, _, _), outs) in &self.rows {
            let mut cells = Vec::new();
            for p in PEERS {
                let own = self.get(outs, p, p, value);
                let after = self.get(outs, p, Imp::Rill, value);
                cells.push(ratio(own, after));
                if before {
                    let old = self.get(outs, p, Imp::RillBefore, value);
                    cells.push(ratio(own, old));
                    cells.push(ratio(old, after));
                }
            }
            println!("| {label} | {} |", cells.join(" | "));
        }
    }

    /// What a message costs each server under the same client: the rate hides it when the
    /// client sets the pace (ping-pong, unary).
    fn print_server_cpu(&self) {
        let mut servers = vec![Imp::Rill];
        if self.has_baseline() {
            servers.push(Imp::RillBefore);
        }
        let mut head = vec!["server CPU-µs per message or call".to_owned()];
        let mut cols = Vec::new();
        for p in PEERS {
            cols.push((p, p));
            cols.extend(servers.iter().map(|&s| (p, s)));
        }
        cols.push((Imp::Rill, Imp::Rill));
        head.extend(
            cols.iter()
                .map(|(c, s)| format!("{} → {}", c.label(), s.label())),
        );
        header(&head, 1);
        for ((label, _, _), outs) in &self.rows {
            let cells: Vec<String> = cols
                .iter()
                .map(|&(c, s)| {
                    self.get(outs, c, s, server_us)
                        .map_or("–".to_owned(), |v| format!("{v:.2}"))
                })
                .collect();
            println!("| {label} | {} |", cells.join(" | "));
        }
    }
}

/// The protocols table's outcomes: per row, one per protocol and pair that ran.
#[derive(Default)]
struct Protocols {
    rows: Vec<(Row, Vec<(ProtoKey, Outcome)>)>,
}

/// A protocols-table cell: its protocol, client and server.
type ProtoKey = (Proto, Imp, Imp);

/// What one line of a protocols table shows in one protocol's column.
type ProtoItem = Box<dyn Fn(&[(ProtoKey, Outcome)], Proto) -> String>;

fn proto_get(outs: &[(ProtoKey, Outcome)], key: ProtoKey) -> Option<&Outcome> {
    outs.iter().find(|(k, _)| *k == key).map(|(_, x)| x)
}

/// The value of one pair in one protocol.
fn proto_value(outs: &[(ProtoKey, Outcome)], key: ProtoKey) -> Option<f64> {
    proto_get(outs, key).and_then(value)
}

const GRPC: Proto = PROTOS[0];

impl Protocols {
    /// A line per row and item, a column per protocol; a cell that cannot run reads n/a.
    fn print(&self, title: &str, items: &[(String, ProtoItem)]) {
        let mut head = vec![title.to_owned(), String::new()];
        head.extend(PROTOS.iter().map(|p| p.label.to_owned()));
        header(&head, 2);
        for ((label, w, _), outs) in &self.rows {
            for (name, item) in items {
                let cells: Vec<String> = PROTOS
                    .iter()
                    .map(|&p| match proto_cell_runs(*w, p) {
                        true => item(outs, p),
                        false => "n/a".to_owned(),
                    })
                    .collect();
                println!("| {label} | {name} | {} |", cells.join(" | "));
            }
        }
    }

    /// Every pair's rate in every protocol.
    fn print_rates(&self) {
        let items: Vec<(String, ProtoItem)> = PROTO_PAIRS
            .iter()
            .map(|&(c, s)| {
                let item: ProtoItem = Box::new(move |outs, p| match proto_get(outs, (p, c, s)) {
                    Some(x) => show(x, value(x)),
                    None => String::new(),
                });
                (format!("{} → {}", c.label(), s.label()), item)
            })
            .collect();
        self.print("protocols: rates", &items);
    }

    /// Our server against connect-go's and connectrpc's under connect-go's client, and our
    /// client and server against connect-go's pair.
    fn print_ratios(&self) {
        let over = |(c1, s1): (Imp, Imp), (c0, s0): (Imp, Imp)| -> ProtoItem {
            Box::new(move |outs, p| {
                ratio(
                    proto_value(outs, (p, c0, s0)),
                    proto_value(outs, (p, c1, s1)),
                )
            })
        };
        let cg = Imp::ConnectGo;
        let items: Vec<(String, ProtoItem)> = vec![
            (
                "connect-go client: rill / connect-go server".into(),
                over((cg, Imp::Rill), (cg, cg)),
            ),
            (
                "connect-go client: rill / connectrpc server".into(),
                over((cg, Imp::Rill), (cg, Imp::ConnectRs)),
            ),
            (
                "rill → rill / connect-go → connect-go".into(),
                over((Imp::Rill, Imp::Rill), (cg, cg)),
            ),
        ];
        self.print("protocols: ratios (≥ 1.00: rill at least as fast)", &items);
    }

    /// Each protocol against gRPC on our server, under our client and connect-go's.
    fn print_own_grpc(&self) {
        let items: Vec<(String, ProtoItem)> = [Imp::Rill, Imp::ConnectGo]
            .iter()
            .map(|&c| {
                let item: ProtoItem = Box::new(move |outs, p| {
                    ratio(
                        proto_value(outs, (GRPC, c, Imp::Rill)),
                        proto_value(outs, (p, c, Imp::Rill)),
                    )
                });
                (format!("{} → rill: protocol / gRPC", c.label()), item)
            })
            .collect();
        self.print("protocols against our own gRPC", &items);
    }

    /// What an operation costs each server in each protocol.
    fn print_server_cpu(&self) {
        let items: Vec<(String, ProtoItem)> = PROTO_PAIRS
            .iter()
            .map(|&(c, s)| {
                let item: ProtoItem = Box::new(move |outs, p| {
                    proto_get(outs, (p, c, s))
                        .and_then(server_us)
                        .map_or("–".to_owned(), |v| format!("{v:.2}"))
                });
                (format!("{} → {}", c.label(), s.label()), item)
            })
            .collect();
        self.print("protocols: server CPU-µs per message or call", &items);
    }
}

/// A markdown table's head: `left` left-aligned columns, the rest right-aligned.
fn header(head: &[String], left: usize) {
    println!();
    println!("| {} |", head.join(" | "));
    println!(
        "|{}{}",
        "---|".repeat(left),
        "---:|".repeat(head.len() - left)
    );
}

/// The run with the highest value; the first failure if none succeeded.
fn best(runs: Vec<Outcome>) -> Outcome {
    let mut it = runs.into_iter();
    let mut top = it.next().unwrap_or_else(|| Err("no run".into()));
    for x in it {
        if value(&x).unwrap_or(f64::MIN) > value(&top).unwrap_or(f64::MIN) {
            top = x;
        }
    }
    top
}

fn show(x: &Outcome, v: Option<f64>) -> String {
    match (x, v) {
        (_, Some(v)) => thousands(v),
        (Err(e), None) if e.contains("timed out") => "hang".into(),
        _ => "failed".into(),
    }
}

/// `new / base`, two decimals.
fn ratio(base: Option<f64>, new: Option<f64>) -> String {
    match (base, new) {
        (Some(b), Some(n)) if b != 0.0 => format!("{:.2}", n / b),
        _ => "–".into(),
    }
}

/// Builds the two binaries the runner starts, so they are never older than the core, and
/// (for the mixed pairs and the protocols table) the Go two with `make bench-go`.
fn build(bins: &Bins, go: bool) {
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
    if !go {
        return;
    }
    // The make target is where the Go build is spelled out (and Go installed if missing);
    // its output directory is the one this runner reads.
    eprintln!("bench: building the Go echo-server and echo-client (make bench-go)");
    let target = bins.current.join("..");
    let st = Command::new("make")
        .current_dir(dir.join(".."))
        .args(["--no-print-directory", "bench-go"])
        .arg(format!("CARGO_TARGET_DIR={}", target.display()))
        .arg(format!("BENCH_GO_BIN={}", bins.go.display()))
        .stdout(Stdio::null())
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        eprintln!("bench: make bench-go failed ({st:?}): the Go cells will fail");
    }
}

/// A missing baseline binary would fail every "rill before" cell: say so once, up front.
fn check_baseline(bins: &Bins) {
    if let Some(dir) = &bins.baseline {
        for name in ["echo-server", "echo-client"] {
            if !dir.join(name).is_file() {
                usage(&format!(
                    "--baseline {}: no {name} there (build the old commit's rill-bench \
                     release binaries, see bench/README.md)",
                    dir.display()
                ));
            }
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

fn run_cell(bins: &Bins, o: &Opts, c: &Cell) -> Outcome {
    let what = format!("{} size={} {}", c.workload, c.size, c.pair());
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

fn run_cell_inner(bins: &Bins, o: &Opts, c: &Cell) -> Outcome {
    let server_bin = bins.program(c.server, "echo-server");
    let server = Command::new(&server_bin)
        .args(["--impl", c.server.flag(), "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server_bin.display()))?;
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

    // Only flags every client has: the baseline's echo-client is an older program, and
    // the Go clients run the rate workloads only. The protocols table's cells add the
    // protocol flags, which rill's and connect-go's clients take.
    let client_bin = bins.program(c.client, "echo-client");
    let mut cmd = Command::new(&client_bin);
    cmd.args(["--impl", c.client.flag(), "--addr", &addr])
        .args(["--workload", c.workload.name()])
        .args(["--duration-secs", &o.duration.to_string()]);
    if let Some(p) = c.proto {
        cmd.args(["--protocol", p.flag]);
        if p.http1 {
            cmd.arg("--http1");
        }
    }
    cmd.args(["--server-pid", &server_pid.to_string()]);
    if c.workload == Workload::IdleStreams {
        cmd.args(["--streams", &o.idle_streams.to_string()]);
    } else if c.workload == Workload::StalledStreams {
        cmd.args(["--streams", &STALLED_STREAMS.to_string()]);
    } else {
        cmd.args(["--size", &c.size.to_string()]);
    }
    let client = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", client_bin.display()))?;
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
        main: true,
        protocols: false,
        build: true,
        repeat: 2,
        baseline: None,
        go_dir: None,
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
            "--tables" => {
                (o.main, o.cross, o.protocols) = (false, false, false);
                for t in val().split(',') {
                    match t.trim() {
                        "main" => o.main = true,
                        "cross" => o.cross = true,
                        "protocols" => o.protocols = true,
                        other => usage(&format!("unknown table {other}")),
                    }
                }
            }
            "--no-cross" => o.cross = false,
            "--no-main" => o.main = false,
            "--repeat" => {
                o.repeat = val()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage("--repeat must be a positive integer"))
            }
            "--no-build" => o.build = false,
            "--baseline" => o.baseline = Some(PathBuf::from(val())),
            "--go-dir" => o.go_dir = Some(PathBuf::from(val())),
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
         \x20            [--tables main,cross,protocols] [--no-cross] [--no-main] [--no-build]\n\
         \x20            [--baseline DIR] [--go-dir DIR]\n\
         workloads: server-stream client-stream pingpong unary unary-deadline cancel idle-streams stalled-streams\n\
         --baseline DIR: echo-server and echo-client built from an older commit, run as\n\
         \x20 \"rill before\" in the same rounds (main table and the peers' clients' pairs)\n\
         --tables: which tables run (default main,cross; protocols: gRPC, Connect over HTTP/2\n\
         \x20 and HTTP/1.1, gRPC-Web, against connect-go and the connectrpc crate)\n\
         --go-dir DIR: the Go echo-server and echo-client (grpc-go, connect-go; default\n\
         \x20 <target>/bench-go)"
    );
    std::process::exit(2)
}
