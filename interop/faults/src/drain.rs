//! The server drains (GOAWAY, then `shutdown`'s grace) under 1,000 streams in flight:
//! every stream that ends OK got every message once and in order; with the grace long
//! enough every stream ends OK; with a short one the rest end with a status; calls made
//! after the GOAWAY are refused with a status; none hangs.

use crate::seq::{self, Ledger, Run};
use crate::{collect, tally, Line, SLACK};
use rillrpc::{CallOptions, Channel, Code, ServerOptions, Shape};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STREAMS: usize = 1000;
/// Messages per stream, one every `PACE` ms: each stream runs about two seconds, so all
/// are in flight when the drain begins.
const MESSAGES: u64 = 100;
const PACE: u32 = 20;
/// Calls opened as the drain begins, racing its GOAWAY.
const RACING: usize = 50;

pub async fn run() -> Vec<Line> {
    vec![
        drain(Duration::from_secs(60), true).await,
        drain(Duration::from_millis(500), false).await,
    ]
}

fn spawn(ch: &Channel, i: usize) -> tokio::task::JoinHandle<Run> {
    let ch = ch.clone();
    let shape = if i % 2 == 0 {
        Shape::ServerStreaming
    } else {
        Shape::Bidi
    };
    tokio::spawn(async move { seq::run(&ch, shape, MESSAGES, PACE, CallOptions::new()).await })
}

async fn drain(grace: Duration, all_must_finish: bool) -> Line {
    let case = format!("drain: grace {grace:?}, {STREAMS} streams");
    let server = seq::bind("127.0.0.1:0", ServerOptions::default()).expect("bind");
    let server = Arc::new(server);
    let addr = server.local_addr();
    let ledger = Arc::new(Ledger::default());
    let serving = tokio::spawn(seq::serve(server.clone(), ledger.clone()));
    let ch = Channel::new(&format!("http://{addr}")).expect("channel");
    let tasks: Vec<_> = (0..STREAMS).map(|i| spawn(&ch, i)).collect();
    if !ledger
        .until(SLACK * 6, |started, _| started >= STREAMS)
        .await
    {
        let saw = format!(
            "only {} of {STREAMS} streams reached the server",
            ledger.started()
        );
        return Line::new(case, false, saw);
    }
    let racing: Vec<_> = (0..RACING).map(|i| spawn(&ch, i)).collect();
    let t0 = Instant::now();
    let draining = {
        let server = server.clone();
        tokio::spawn(async move { server.shutdown(grace).await })
    };
    // Once the GOAWAY has reached the channel, call again: on this channel and a new one.
    // (After a fixed 200 ms, on a loaded machine the GOAWAY had not always come, and the
    // same channel's call went out on the draining connection before it, and was served.)
    let heard = Instant::now();
    while ch.is_connected() && heard.elapsed() < SLACK {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opts = || CallOptions::new().timeout(SLACK);
    let same = seq::run(&ch, Shape::Unary, 1, 0, opts()).await;
    let fresh = Channel::new(&format!("http://{addr}")).expect("channel");
    let new = seq::run(&fresh, Shape::Unary, 1, 0, opts()).await;

    let bound = grace + Duration::from_secs(2 * MESSAGES * PACE as u64 / 1000) + SLACK * 4;
    let (runs, hung) = collect(tasks, bound).await;
    let (raced, raced_hung) = collect(racing, bound).await;
    let drained = tokio::time::timeout(bound, draining).await.is_ok();
    let took = t0.elapsed();
    serving.abort();

    let broken: Vec<String> = runs
        .iter()
        .chain(&raced)
        .filter_map(|r| r.broken.clone())
        .collect();
    let server_broken = ledger.broken.load(Ordering::SeqCst);
    let oks = runs.iter().filter(|r| r.code == Code::Ok).count();
    let messages: u64 = runs
        .iter()
        .filter(|r| r.code == Code::Ok)
        .map(|r| r.got)
        .sum();
    let ok = hung == 0
        && raced_hung == 0
        && drained
        && broken.is_empty()
        && server_broken == 0
        && same.code != Code::Ok
        && new.code != Code::Ok
        && (!all_must_finish || oks == STREAMS);
    let mut saw = format!(
        "in flight: {}, the {oks} OK with all {messages} messages in order; racing the GOAWAY: {}; \
         after it: same channel {} ({}), new channel {} ({}); shutdown {} in {:.2}s",
        tally(runs.iter().map(|r| r.code.to_string())),
        tally(raced.iter().map(|r| r.code.to_string())),
        same.code,
        same.message,
        new.code,
        new.message,
        if drained { "returned" } else { "HUNG" },
        took.as_secs_f64(),
    );
    if hung + raced_hung > 0 {
        saw += &format!("; {} HUNG past {bound:?}", hung + raced_hung);
    }
    if !broken.is_empty() {
        saw += &format!("; BROKEN: {}", broken[..broken.len().min(3)].join(", "));
    }
    if server_broken > 0 {
        saw += &format!("; the server saw {server_broken} requests out of order");
    }
    let cut: Vec<String> = runs
        .iter()
        .filter(|r| r.code != Code::Ok)
        .map(|r| r.message.clone())
        .take(1)
        .collect();
    if let Some(m) = cut.first() {
        saw += &format!("; a cut stream said {m:?}");
    }
    Line::new(case, ok, saw)
}
