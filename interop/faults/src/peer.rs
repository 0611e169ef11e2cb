//! A peer in a process of its own (this program, run as `faults serve` or `faults hold`),
//! so that it can be killed or frozen with a signal as a real peer would be.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Peer {
    child: Child,
    pub pid: i32,
    reaped: bool,
    /// What the peer said once ready, after its `ready` word.
    pub said: String,
}

impl Peer {
    /// Runs `faults <args>` and waits for its line starting `ready `.
    pub async fn start(args: &[String], ready: &str) -> Result<Peer, String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(me)
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("faults {args:?}: {e}"))?;
        let out = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(out).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| format!("faults {args:?} was not ready within 30 s"))?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("faults {args:?} exited before it was ready"))?;
        let said = line
            .strip_prefix(ready)
            .ok_or_else(|| format!("faults {args:?} said {line:?}"))?
            .trim()
            .to_owned();
        // Later lines are not needed, but the pipe must not fill.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pid = child.id().ok_or("no pid")? as i32;
        Ok(Peer {
            child,
            pid,
            reaped: false,
            said,
        })
    }

    /// A rillrpc server of the sequence service on `port` (0: any); `said` is its address.
    pub async fn server(port: u16) -> Result<Peer, String> {
        let args = ["serve".to_owned(), "--port".to_owned(), port.to_string()];
        Peer::start(&args, "listening on ").await
    }

    pub fn signal(&self, sig: i32) {
        // A reaped child's pid may be someone else's by now.
        if !self.reaped {
            // SAFETY: kill(2) takes plain integers; the pid is our unreaped child's.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// SIGKILL, and the process reaped: its sockets are closed once this returns.
    pub async fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait().await;
        self.reaped = true;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // A frozen child stays frozen, its sockets open, until it is killed: never leave
        // one behind.
        self.signal(libc::SIGKILL);
    }
}
