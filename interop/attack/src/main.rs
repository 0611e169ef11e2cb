//! attack: hostile HTTP/2 peers against the rillrpc echo server and tonic's, side by side
//! (issue 16). Every attack runs against a fresh `echo-server` process of each, bounded in
//! count and time; then, with whatever the attack holds still open, a normal client makes
//! a unary call that must succeed within `--bound`. Prints what each server did, how long
//! the normal call took and the server's peak memory; exits 1 if the rillrpc server died,
//! hung the attack, failed the normal call after any attack, or did not answer an attack
//! as `attacks::rill_must` says, or held more than `attacks::rill_peak_bound` (tonic's row
//! is there for comparison and fails nothing).
//!
//!     attack [--echo-server PATH] [--only NAME[,NAME]] [--impls rill,tonic]
//!            [--max-streams N] [--bound SECS]

mod attacks;
mod conn;
mod frames;
mod server;

use std::time::Duration;

struct Args {
    echo_server: String,
    only: Option<Vec<String>>,
    impls: Vec<String>,
    max_streams: u32,
    bound: Duration,
}

fn usage(why: &str) -> ! {
    eprintln!("attack: {why}");
    eprintln!(
        "usage: attack [--echo-server PATH] [--only NAME[,NAME]] [--impls rill,tonic] \
         [--max-streams N] [--bound SECS]\nattacks:"
    );
    for (name, what) in attacks::ALL {
        eprintln!("  {name:20} {what}");
    }
    std::process::exit(2)
}

fn parse_args() -> Args {
    let next_to_me = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("echo-server")))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "echo-server".into());
    let mut a = Args {
        echo_server: next_to_me,
        only: None,
        impls: vec!["rill".into(), "tonic".into()],
        // The rillrpc library's default (ServerOptions::max_concurrent_streams), given to
        // both servers.
        max_streams: 4096,
        bound: Duration::from_secs(5),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--echo-server" => a.echo_server = val(),
            "--only" => a.only = Some(val().split(',').map(str::to_owned).collect()),
            "--impls" => a.impls = val().split(',').map(str::to_owned).collect(),
            "--max-streams" => {
                a.max_streams = val().parse().unwrap_or_else(|_| usage("bad --max-streams"))
            }
            "--bound" => {
                let s: f64 = val().parse().unwrap_or_else(|_| usage("bad --bound"));
                a.bound = Duration::from_secs_f64(s);
            }
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if let Some(only) = &a.only {
        for n in only {
            if !attacks::ALL.iter().any(|(name, _)| name == n) {
                usage(&format!("no attack {n}"));
            }
        }
    }
    a
}

/// One attack on one server.
struct Row {
    attack: &'static str,
    imp: String,
    did: String,
    normal: Result<Duration, String>,
    peak: Option<u64>,
    died: bool,
}

impl Row {
    fn failed(&self) -> bool {
        self.died || self.normal.is_err() || !self.did_what_rill_must()
    }

    /// Whether the rillrpc server answered the attack as it must (`attacks::rill_must`).
    fn did_what_rill_must(&self) -> bool {
        let did = attacks::rill_must(self.attack).is_none_or(|m| self.did.contains(m));
        let held = match (attacks::rill_peak_bound(self.attack), self.peak) {
            (Some(bound), Some(peak)) => peak <= bound,
            (Some(_), None) => false,
            (None, _) => true,
        };
        self.imp != "rill" || (did && held)
    }
}

/// How long an attack may take before it counts as a hang.
const ATTACK_BOUND: Duration = Duration::from_secs(60);

async fn one(a: &Args, attack: &'static str, imp: &str) -> Row {
    let mut row = Row {
        attack,
        imp: imp.to_owned(),
        did: String::new(),
        normal: Err("not called".into()),
        peak: None,
        died: false,
    };
    let nofile = attacks::nofile(attack);
    let extra = attacks::server_args(attack, imp);
    let started = server::Server::start(&a.echo_server, imp, a.max_streams, nofile, extra);
    let mut server = match started.await {
        Ok(s) => s,
        Err(e) => {
            row.did = format!("could not start: {e}");
            row.died = true;
            return row;
        }
    };
    let held = match tokio::time::timeout(ATTACK_BOUND, attacks::run(attack, &server.addr)).await {
        Ok(Ok((did, held))) => {
            row.did = did;
            Some(held)
        }
        Ok(Err(e)) => {
            row.did = format!("attack failed: {e}");
            None
        }
        Err(_) => {
            row.did = format!("attack still running after {ATTACK_BOUND:?}");
            None
        }
    };
    row.normal = server::normal_call(&server.addr, a.bound).await;
    row.peak = server.memory().map(|(_, peak)| peak);
    row.died = !server.alive();
    drop(held);
    row
}

fn main() {
    let a = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    rt.block_on(async {
        for (attack, what) in attacks::ALL {
            if a.only
                .as_ref()
                .is_some_and(|o| !o.iter().any(|n| n == attack))
            {
                continue;
            }
            eprintln!("== {attack}: {what}");
            for imp in &a.impls {
                let row = one(&a, attack, imp).await;
                eprintln!(
                    "   {imp:5} {} | normal call {} | peak {}",
                    row.did,
                    normal(&row),
                    mib(row.peak)
                );
                rows.push(row);
            }
        }
    });
    println!();
    println!("| attack | server | what the server did | normal call after | server peak RSS |");
    println!("|---|---|---|---|---:|");
    for r in &rows {
        let died = if r.died { " (server died)" } else { "" };
        let must = match (attacks::rill_must(r.attack), r.did_what_rill_must()) {
            (_, true) => String::new(),
            (Some(m), false) => format!(" (FAILED: not {m:?}, or over {})", peak_bound(r)),
            (None, false) => format!(" (FAILED: peak over {})", peak_bound(r)),
        };
        println!(
            "| {} | {} | {}{died}{must} | {} | {} |",
            r.attack,
            r.imp,
            r.did,
            normal(r),
            mib(r.peak)
        );
    }
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r.imp == "rill" && r.failed())
        .map(|r| r.attack)
        .collect();
    if failed.is_empty() {
        println!(
            "\nattack: the rillrpc server answered a normal client after every attack, \
             and each attack as it must"
        );
    } else {
        println!("\nattack: FAILED after {}", failed.join(", "));
        std::process::exit(1);
    }
}

fn normal(r: &Row) -> String {
    match &r.normal {
        Ok(d) => format!("ok in {:.1} ms", d.as_secs_f64() * 1e3),
        Err(e) => format!("FAILED: {e}"),
    }
}

fn peak_bound(r: &Row) -> String {
    mib(attacks::rill_peak_bound(r.attack))
}

fn mib(b: Option<u64>) -> String {
    match b {
        Some(b) => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        None => "?".into(),
    }
}
