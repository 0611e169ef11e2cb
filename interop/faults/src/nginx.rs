//! Through a real proxy that ends connections on its own: Debian's nginx as a gRPC proxy
//! (`grpc_pass`), whose `keepalive_requests` (1,000 by default) sends a client's connection
//! GOAWAY after its 1,000th request. Calls that race the GOAWAY are refused unprocessed
//! (past its last stream id) and the streams it lets finish go on: the channel must move
//! new calls to a new connection with none failing. (tonic's client fails a call with
//! CANCELLED there, issue 16.)

use crate::link::{judge, Bed};
use crate::seq::{self, Run};
use crate::{collect, Line, SLACK};
use rillrpc::{CallOptions, Channel, Shape};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

/// nginx's default, said out loud in its configuration.
const KEEPALIVE_REQUESTS: usize = 1000;
/// Tasks calling at once, each making `CALLS` unary calls one after another: more than
/// three connections' worth, with calls in flight at each GOAWAY.
const TASKS: usize = 8;
const CALLS: usize = 400;
/// Server streams running through the GOAWAYs: 200 messages 5 ms apart.
const STREAMS: usize = 4;

pub async fn run() -> Vec<Line> {
    const CASE: &str = "nginx: keepalive_requests GOAWAYs under calls";
    let Some(bin) = nginx() else {
        let why = "no nginx on PATH or in /usr/sbin (make test-faults installs Debian's)";
        return vec![Line::new(CASE, false, why.into())];
    };
    let bed = Bed::new("127.0.0.1:0");
    let dir = std::env::temp_dir().join(format!("rill-faults-nginx-{}", std::process::id()));
    let proxy = match Nginx::start(&bin, &dir, bed.server.local_addr()).await {
        Ok(p) => p,
        Err(e) => return vec![Line::new(CASE, false, e)],
    };
    let ch = Channel::new(&format!("http://{}", proxy.addr)).expect("channel");
    let mut tasks = Vec::new();
    for _ in 0..STREAMS {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            seq::run(&ch, Shape::ServerStreaming, 200, 5, CallOptions::new()).await
        }));
    }
    for _ in 0..TASKS {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move { unary_calls(&ch).await }));
    }
    let (runs, hung) = collect(tasks, Duration::from_secs(60) + SLACK).await;
    let (ok, mut saw) = judge(&runs, hung, true, &bed.ledger);
    let connections = proxy.connections();
    saw += &format!(" (unary: {TASKS} runs of {CALLS}); {connections} connections to nginx");
    // Each connection took at most KEEPALIVE_REQUESTS requests: fewer connections would
    // mean nginx never sent its GOAWAY, and the case tested nothing.
    let requests = TASKS * CALLS + STREAMS;
    let ok = ok && connections > requests / KEEPALIVE_REQUESTS;
    vec![Line::new(CASE, ok, saw)]
}

/// `CALLS` unary calls one after another: the first that fails ends the run with its
/// status; all OK is one OK run with every answer counted.
async fn unary_calls(ch: &Channel) -> Run {
    let mut last = None;
    for i in 0..CALLS {
        let mut r = seq::run(ch, Shape::Unary, 1, 0, CallOptions::new()).await;
        if r.code != rillrpc::Code::Ok || r.broken.is_some() {
            r.message = format!("call {i}: {}", r.message);
            return r;
        }
        last = Some(r);
    }
    let mut r = last.expect("CALLS > 0");
    r.got = CALLS as u64;
    r
}

fn nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// An nginx process of its own: its configuration, logs and temporary files in `dir`.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    async fn start(bin: &Path, dir: &Path, upstream: SocketAddr) -> Result<Nginx, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // A port free a moment ago: nginx binds it itself.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, addr, upstream)).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut n = Nginx {
            child,
            addr,
            dir: dir.to_owned(),
        };
        let t0 = std::time::Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = n.child.try_wait() {
                return Err(format!("nginx exited {status}: {}", n.errors()));
            }
            if t0.elapsed() > SLACK {
                return Err(format!("nginx not listening on {addr}: {}", n.errors()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(n)
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The client connections nginx logged requests on (its `$connection` serials).
    fn connections(&self) -> usize {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        let serials: HashSet<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
        serials.len()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One process in the foreground, logs and temporary files under `dir`, HTTP/2 without
/// TLS (prior knowledge) in front of `upstream`, kept-alive upstream connections.
fn config(dir: &Path, addr: SocketAddr, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{ worker_connections 512; }}
http {{
    log_format conn '$connection $connection_requests $status';
    access_log {d}/access.log conn;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream rill {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen {addr} http2;
        keepalive_requests {KEEPALIVE_REQUESTS};
        location / {{
            grpc_pass grpc://rill;
        }}
    }}
}}
"
    )
}
