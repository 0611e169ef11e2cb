//! The client's process dies (SIGKILL) or freezes (SIGSTOP) holding a call of every shape
//! on a server in this process: every handler must see its call end, at once when the
//! socket closes, within the server's keepalive when the client merely stops answering.

use crate::peer::Peer;
use crate::seq::{self, Ledger};
use crate::{permissive, tally, Line, SLACK};
use rillrpc::ServerOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run() -> Vec<Line> {
    let mut lines = vec![match one("kill", permissive(), SLACK).await {
        Ok((ok, saw)) => Line::new("orphan: client SIGKILLed", ok, saw),
        Err(e) => Line::new("orphan: client SIGKILLed", false, e),
    }];
    lines.push(frozen().await);
    lines
}

async fn frozen() -> Line {
    const KEEPALIVE: Duration = Duration::from_secs(1);
    let opts = ServerOptions {
        keepalive_time: Some(KEEPALIVE),
        keepalive_timeout: KEEPALIVE,
        ..permissive()
    };
    let case = "orphan: client SIGSTOPped, server keepalive 1s/1s";
    match one("stop", opts, KEEPALIVE * 2 + SLACK).await {
        Ok((ok, saw)) => Line::new(case, ok, saw),
        Err(e) => Line::new(case, false, e),
    }
}

/// A client process holds its calls, then `how` ("kill" or "stop") befalls it: every
/// handler must end within `bound`.
async fn one(how: &str, opts: ServerOptions, bound: Duration) -> Result<(bool, String), String> {
    let server = Arc::new(seq::bind("127.0.0.1:0", opts).map_err(|e| e.to_string())?);
    let ledger = Arc::new(Ledger::default());
    let serving = tokio::spawn(seq::serve(server.clone(), ledger.clone()));
    let args = [
        "hold".to_owned(),
        "--addr".to_owned(),
        server.local_addr().to_string(),
    ];
    let mut client = Peer::start(&args, "holding").await?;
    if !ledger.until(SLACK, |started, _| started >= 4).await {
        return Err(format!(
            "{} of 4 calls reached the server",
            ledger.started()
        ));
    }
    let t0 = Instant::now();
    match how {
        "kill" => client.kill().await,
        _ => client.signal(libc::SIGSTOP),
    }
    let all = ledger.until(bound, |started, ended| ended >= started).await;
    let took = t0.elapsed();
    drop(client);
    serving.abort();
    let ended = ledger.ended();
    let saw = format!(
        "{} of {} handlers saw their call end ({}) within {:.2}s{}",
        ended.len(),
        ledger.started(),
        tally(ended.iter().cloned()),
        took.as_secs_f64(),
        if all {
            String::new()
        } else {
            format!("; the rest still open after {bound:?}")
        }
    );
    Ok((all && !ended.iter().any(|e| e == "OK"), saw))
}
