//! What the benchmark programs share: the workloads, the result line the client prints and
//! the runner parses, reading a process's resident memory, and the echo service on the
//! `connectrpc` crate's server (`connectrpc_echo`).

use std::collections::BTreeMap;
use std::fmt;

pub mod connectrpc_echo;

/// The deadline of each call of `Workload::UnaryDeadline`: never reached, only set.
pub const UNARY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The echo workloads of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One server-streaming call, as many responses as the server can send (msg/s).
    ServerStream,
    /// One client-streaming call, as many requests as the client can send (msg/s).
    ClientStream,
    /// One bidi stream, one request and one reply at a time (round trips/s).
    PingPong,
    /// Sequential unary calls on one connection (calls/s).
    Unary,
    /// `Unary`, each call with a deadline (`UNARY_DEADLINE`), as most callers set one:
    /// what a deadline costs a call (calls/s).
    UnaryDeadline,
    /// Server streams cancelled by the client after their first response, one after the
    /// other: what a cancel costs when the handler has much more to send (calls/s).
    Cancel,
    /// Many open bidi streams doing nothing (bytes of resident memory per stream).
    IdleStreams,
    /// Many server streams whose client grants no flow-control window, the handler
    /// sending without end: what the server holds for a reader that never reads (bytes of
    /// resident memory per stream).
    StalledStreams,
}

impl Workload {
    pub const ALL: [Workload; 8] = [
        Workload::ServerStream,
        Workload::ClientStream,
        Workload::PingPong,
        Workload::Unary,
        Workload::UnaryDeadline,
        Workload::Cancel,
        Workload::IdleStreams,
        Workload::StalledStreams,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::ServerStream => "server-stream",
            Workload::ClientStream => "client-stream",
            Workload::PingPong => "pingpong",
            Workload::Unary => "unary",
            Workload::UnaryDeadline => "unary-deadline",
            Workload::Cancel => "cancel",
            Workload::IdleStreams => "idle-streams",
            Workload::StalledStreams => "stalled-streams",
        }
    }

    /// Memory per stream, not a rate.
    pub fn is_memory(self) -> bool {
        matches!(self, Workload::IdleStreams | Workload::StalledStreams)
    }

    pub fn parse(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }

    /// What the client's `value` counts.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::ServerStream | Workload::ClientStream => "msg/s",
            Workload::PingPong => "roundtrips/s",
            Workload::Unary | Workload::UnaryDeadline | Workload::Cancel => "calls/s",
            Workload::IdleStreams | Workload::StalledStreams => "B/stream",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The one machine-readable line a client prints: `RESULT key=value key=value ...`.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub fields: BTreeMap<String, String>,
}

impl Report {
    pub const PREFIX: &'static str = "RESULT";

    pub fn set(&mut self, key: &str, value: impl fmt::Display) -> &mut Report {
        self.fields.insert(key.to_owned(), value.to_string());
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// Parses a `RESULT ...` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Report> {
        let rest = line.trim().strip_prefix(Report::PREFIX)?;
        let mut r = Report::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            r.set(k, v);
        }
        Some(r)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Report::PREFIX)?;
        // The headline fields first, so the line reads well by eye.
        let head = ["workload", "impl", "value", "unit"];
        for k in head {
            if let Some(v) = self.fields.get(k) {
                write!(f, " {k}={v}")?;
            }
        }
        for (k, v) in &self.fields {
            if !head.contains(&k.as_str()) {
                write!(f, " {k}={v}")?;
            }
        }
        Ok(())
    }
}

/// Resident memory (VmRSS) of a process in bytes; `None` for this process means `self`.
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let after = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let hz = unsafe { sysconf_clk_tck() };
    Some(ticks as f64 / hz as f64)
}

extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// `sysconf(_SC_CLK_TCK)`; 100 if the call fails.
///
/// # Safety
/// Always safe to call; marked unsafe only because it crosses into libc.
unsafe fn sysconf_clk_tck() -> i64 {
    // _SC_CLK_TCK is 2 on Linux.
    let v = sysconf(2);
    if v > 0 {
        v
    } else {
        100
    }
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.unsigned_abs().to_string();
    // The first group holds 1 to 3 digits, every later one exactly 3.
    let first = (s.len() - 1) % 3 + 1;
    let mut out = s[..first].to_owned();
    for group in s.as_bytes()[first..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).expect("digits"));
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips() {
        let mut r = Report::default();
        r.set("workload", "unary")
            .set("value", 12.5)
            .set("impl", "rill");
        let line = r.to_string();
        assert!(line.starts_with("RESULT workload=unary impl=rill value=12.5"));
        let back = Report::parse(&line).unwrap();
        assert_eq!(back.get_f64("value"), Some(12.5));
        assert!(Report::parse("listening on x").is_none());
    }

    #[test]
    fn formats_thousands() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(123456.0), "123,456");
        assert_eq!(thousands(-1234.0), "-1,234");
    }

    #[test]
    fn reads_own_memory() {
        assert!(rss_bytes(None).unwrap() > 0);
        assert!(cpu_secs(None).is_some());
    }
}
