//! The server under attack: an `echo-server` process of its own for every attack (so that
//! its peak memory is that attack's), and the normal client that must get through after.

use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    pub addr: String,
    pid: u32,
}

impl Server {
    /// Starts `echo-server --impl <imp>` on a free loopback port, with `max_streams`
    /// concurrent streams per connection (the rillrpc library's default for both, so that
    /// the two face the same limit) and, with `nofile`, that many open files at most (the
    /// common default limit is 1,024), and `extra` arguments.
    pub async fn start(
        bin: &str,
        imp: &str,
        max_streams: u32,
        nofile: Option<u32>,
        extra: &[&str],
    ) -> Result<Server, String> {
        let mut cmd = match nofile {
            // `exec` keeps the pid: the memory read is the server's.
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin]);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args(["--impl", imp, "--port", "0", "--max-streams"])
            .arg(max_streams.to_string())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{bin}: {e}"))?;
        let out = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(out).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| "echo-server did not say where it listens".to_owned())?
            .map_err(|e| e.to_string())?
            .ok_or("echo-server exited before listening")?;
        let addr = line
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("echo-server said {line:?}"))?
            .to_owned();
        // Its later lines are not needed, but its pipe must not fill.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pid = child.id().ok_or("echo-server has no pid")?;
        Ok(Server { child, addr, pid })
    }

    /// (current, peak) resident memory, in bytes (`VmRSS`, `VmHWM`).
    pub fn memory(&self) -> Option<(u64, u64)> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kb = |key: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                .map(|k| k * 1024)
        };
        Some((kb("VmRSS:")?, kb("VmHWM:")?))
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A unary call on a fresh channel: how long it took, or why it failed within `bound`.
pub async fn normal_call(addr: &str, bound: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let ch = rillrpc::Channel::new(&format!("http://{addr}")).map_err(|s| s.to_string())?;
    let opts = rillrpc::CallOptions::default().timeout(bound);
    let req = crate::frames::echo_request(b"ok", 0);
    let answer = ch
        .unary("/echo.TestService/PingPong", req.into(), opts)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    if answer.as_ref() != [0x0a, 0x02, b'o', b'k'] {
        return Err(format!("answered {answer:?}"));
    }
    Ok(start.elapsed())
}
