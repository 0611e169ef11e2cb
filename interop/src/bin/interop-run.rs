//! Plays gRPC's interop suite between grpc-go and rillrpc, both ways, over h2c and TLS,
//! and prints one table. Exits non-zero if any cell fails.
//!
//!     interop-run --go_client PATH --go_server PATH --testdata DIR
//!                 [--bin_dir DIR] [--log_dir DIR] [--cases a,b,...]
//!                 [--known_failures case@column,...]
//!
//! `--testdata` is grpc-go's (ca.pem, server1.pem, server1.key); `--bin_dir` holds
//! interop-server and interop-client (default: next to this program). A known failure
//! (`timeout_on_sleeping_server@rill-go-h2c`: case, then the column as `client-server-
//! transport`) still shows as FAIL* in the table but does not fail the run.

use rill_interop::cases::CASES;
use rill_interop::flags::{self, Spec};
use rill_interop::run::{self, Setup};
use std::path::PathBuf;

const SPEC: Spec = Spec {
    bools: &[],
    values: &[
        "go_client",
        "go_server",
        "testdata",
        "bin_dir",
        "log_dir",
        "cases",
        "known_failures",
    ],
};

const USAGE: &str = "usage: interop-run --go_client PATH --go_server PATH --testdata DIR \
[--bin_dir DIR] [--log_dir DIR] [--cases a,b,...] [--known_failures case@column,...]";

fn main() {
    match setup().and_then(|s| run::run(&s)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("interop-run: {e}");
            std::process::exit(2);
        }
    }
}

fn setup() -> Result<Setup, String> {
    let Some(f) = flags::parse(&SPEC, std::env::args().skip(1))? else {
        println!("{USAGE}");
        std::process::exit(0);
    };
    let need = |name: &str| {
        f.str(name)
            .map(PathBuf::from)
            .ok_or_else(|| format!("--{name} is required\n{USAGE}"))
    };
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let bin_dir = f.str("bin_dir").map(PathBuf::from).unwrap_or(here.clone());
    let log_dir = f
        .str("log_dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("interop-logs"));
    let cases: Vec<String> = match f.str("cases") {
        None => CASES.iter().map(|c| c.to_string()).collect(),
        Some(list) => list.split(',').map(str::to_owned).collect(),
    };
    if let Some(c) = cases.iter().find(|c| !CASES.contains(&c.as_str())) {
        return Err(format!("unknown case {c:?}; known: {}", CASES.join(", ")));
    }
    let keys = run::column_keys();
    let mut known_failures = Vec::new();
    for cell in f
        .str("known_failures")
        .unwrap_or("")
        .split(',')
        .filter(|c| !c.is_empty())
    {
        match cell.split_once('@') {
            Some((case, col)) if CASES.contains(&case) && keys.iter().any(|k| k == col) => {
                known_failures.push(cell.to_owned())
            }
            _ => {
                return Err(format!(
                    "--known_failures: {cell:?} is not case@column (columns: {})",
                    keys.join(", ")
                ))
            }
        }
    }
    Ok(Setup {
        known_failures,
        go_client: need("go_client")?,
        go_server: need("go_server")?,
        testdata: need("testdata")?,
        bin_dir,
        log_dir,
        cases,
    })
}
