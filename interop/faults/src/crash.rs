//! The server's process dies (SIGKILL) or freezes (SIGSTOP) under a client holding a call
//! of every shape: every call ends with a status in bound, and the same channel serves
//! calls again once the server is back.

use crate::peer::Peer;
use crate::seq::{self, Run};
use crate::{back, collect, describe, shown, Line, SLACK};
use rillrpc::{CallOptions, Channel, ChannelOptions, Code, Shape};
use std::time::Duration;

/// Reconnect quickly, so that the bounds below are about the fault and not the backoff.
fn channel(addr: &str, keepalive: Option<Duration>) -> Channel {
    let opts = ChannelOptions {
        keepalive_interval: keepalive,
        keepalive_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        ..Default::default()
    };
    Channel::with_options(&format!("http://{addr}"), opts).expect("channel")
}

fn ended_with_status(runs: &[Run], hung: usize) -> bool {
    hung == 0
        && runs
            .iter()
            .all(|r| r.code != Code::Ok && r.broken.is_none())
}

/// Every shape once more, finite, on the channel that lost its server.
async fn every_shape(ch: &Channel) -> Vec<Run> {
    let mut runs = Vec::new();
    for shape in seq::SHAPES {
        let opts = CallOptions::new().timeout(Duration::from_secs(20));
        runs.push(seq::run(ch, shape, 50, 0, opts).await);
    }
    runs
}

fn all_ok(runs: &[Run]) -> bool {
    runs.iter()
        .all(|r| r.code == Code::Ok && r.broken.is_none())
}

pub async fn killed() -> Vec<Line> {
    let case = "crash: server SIGKILLed mid-stream";
    match killed_inner().await {
        Ok(l) => vec![l],
        Err(e) => vec![Line::new(case, false, e)],
    }
}

async fn killed_inner() -> Result<Line, String> {
    let case = "crash: server SIGKILLed mid-stream";
    let mut server = Peer::server(0).await?;
    let addr = server.said.clone();
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("no port")?;
    let ch = channel(&addr, None);
    let held = seq::hold_all(&ch, 50, CallOptions::new(), SLACK * 4).await?;
    server.kill().await;
    // The socket closes with the process: the calls end at once, bar the noise.
    let bound = SLACK;
    let (runs, hung) = collect(held, bound).await;
    let down = seq::run(&ch, Shape::Unary, 1, 0, CallOptions::new()).await;
    let _again = Peer::server(port).await?;
    let reconnect = back(&ch, SLACK * 4).await;
    let after = every_shape(&ch).await;
    let ok = ended_with_status(&runs, hung)
        && down.code != Code::Ok
        && reconnect.is_ok()
        && all_ok(&after);
    let saw = format!(
        "held calls ended ({}), {hung} still open after {bound:?}; a call while it was down: {} ({}); \
         same port again: {}; then {}",
        describe(&runs),
        down.code,
        down.message,
        shown(&reconnect),
        describe(&after),
    );
    Ok(Line::new(case, ok, saw))
}

/// Keepalive: a PING every second, answered within a second, else the connection goes.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// Calls on the channel without keepalive end by their deadline.
const DEADLINE: Duration = Duration::from_secs(4);

pub async fn frozen() -> Vec<Line> {
    let case = "freeze: server SIGSTOPped mid-stream";
    match frozen_inner().await {
        Ok(l) => l,
        Err(e) => vec![Line::new(case, false, e)],
    }
}

async fn frozen_inner() -> Result<Vec<Line>, String> {
    let server = Peer::server(0).await?;
    let addr = server.said.clone();
    let pinging = channel(&addr, Some(KEEPALIVE));
    let plain = channel(&addr, None);
    let held = seq::hold_all(&pinging, 50, CallOptions::new(), SLACK * 4).await?;
    let timed = CallOptions::new().timeout(DEADLINE);
    let dated = seq::hold_all(&plain, 50, timed, SLACK * 4).await?;
    server.signal(libc::SIGSTOP);
    let kept = tokio::spawn(collect(held, KEEPALIVE * 2 + SLACK));
    // Held calls count from their readiness, a moment after their deadline started.
    let (dated, dated_hung) = collect(dated, DEADLINE + SLACK).await;
    let (kept, kept_hung) = kept.await.expect("collect");
    server.signal(libc::SIGCONT);
    let reconnect = back(&pinging, SLACK * 4).await;
    let plain_back = back(&plain, SLACK * 4).await;
    let after = every_shape(&pinging).await;

    let keepalive_ok = ended_with_status(&kept, kept_hung);
    let deadline_ok = ended_with_status(&dated, dated_hung)
        && dated.iter().all(|r| r.code == Code::DeadlineExceeded);
    let back_ok = reconnect.is_ok() && plain_back.is_ok() && all_ok(&after);
    Ok(vec![
        Line::new(
            "freeze: keepalive 1s/1s, no deadline",
            keepalive_ok,
            format!(
                "{}; {kept_hung} still open after {:?}",
                describe(&kept),
                KEEPALIVE * 2 + SLACK
            ),
        ),
        Line::new(
            "freeze: deadline 4s, no keepalive",
            deadline_ok,
            format!(
                "{}; {dated_hung} still open after {:?}",
                describe(&dated),
                DEADLINE + SLACK
            ),
        ),
        Line::new(
            "freeze: after SIGCONT",
            back_ok,
            format!(
                "keepalive channel {}, deadline channel {}; then {}",
                shown(&reconnect),
                shown(&plain_back),
                describe(&after)
            ),
        ),
    ])
}
