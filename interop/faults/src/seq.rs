//! The sequence service: every message carries its index, so that either side can tell a
//! lost, doubled or reordered message from a stream that merely ended early. Both sides
//! check: the server the requests, the client the responses.
//!
//! A message is 12 bytes: a big-endian u64 (the index, or for a server stream's request
//! the count wanted) and a big-endian u32 (milliseconds: how long a unary call waits
//! before answering, or the pause between a server stream's responses).

use bytes::Bytes;
use rillrpc::{
    Call, CallOptions, Channel, Code, Metadata, ServerBuilder, ServerCall, ServerOptions, Shape,
    Status,
};
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

pub const UNARY: &str = "/faults.Seq/Unary";
pub const CLIENT: &str = "/faults.Seq/Client";
pub const SERVER: &str = "/faults.Seq/Server";
pub const BIDI: &str = "/faults.Seq/Bidi";

/// A server stream that runs until the call ends.
pub const ENDLESS: u64 = u64::MAX;

pub fn msg(seq: u64, ms: u32) -> Bytes {
    let mut v = Vec::with_capacity(12);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ms.to_be_bytes());
    Bytes::from(v)
}

pub fn parse(b: &[u8]) -> Option<(u64, u32)> {
    if b.len() != 12 {
        return None;
    }
    let seq = u64::from_be_bytes(b[..8].try_into().ok()?);
    let ms = u32::from_be_bytes(b[8..].try_into().ok()?);
    Some((seq, ms))
}

/// What the server's handlers did: how many started, and how each ended.
#[derive(Default)]
pub struct Ledger {
    started: AtomicUsize,
    ended: Mutex<Vec<String>>,
    /// Requests out of order, doubled or unreadable: a defect wherever seen.
    pub broken: AtomicUsize,
    changed: Notify,
}

impl Ledger {
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn ended(&self) -> Vec<String> {
        self.ended.lock().unwrap().clone()
    }

    /// Waits until `f(started, ended)` holds, or `bound` passes; whether it held.
    pub async fn until(&self, bound: Duration, f: impl Fn(usize, usize) -> bool) -> bool {
        let check = || f(self.started(), self.ended.lock().unwrap().len());
        tokio::time::timeout(bound, async {
            loop {
                let changed = self.changed.notified();
                if check() {
                    return;
                }
                changed.await;
            }
        })
        .await
        .is_ok()
    }

    fn end(&self, how: String) {
        self.ended.lock().unwrap().push(how);
        self.changed.notify_waiters();
    }
}

/// A server of the sequence service on `addr`, its handlers recorded in `ledger`.
pub fn bind(addr: &str, opts: ServerOptions) -> Result<rillrpc::Server, rillrpc::Error> {
    ServerBuilder::new(opts)
        .register(UNARY, Shape::Unary)
        .register(CLIENT, Shape::ClientStreaming)
        .register(SERVER, Shape::ServerStreaming)
        .register(BIDI, Shape::Bidi)
        .bind(addr)
}

pub async fn serve(server: Arc<rillrpc::Server>, ledger: Arc<Ledger>) {
    let _ = server
        .serve(move |call| {
            let ledger = ledger.clone();
            async move { handle(call, ledger).await }
        })
        .await;
}

pub async fn handle(mut call: ServerCall, ledger: Arc<Ledger>) {
    ledger.started.fetch_add(1, Ordering::SeqCst);
    ledger.changed.notify_waiters();
    // Headers at once: a client holding a call open knows the server has it.
    let _ = call.send_headers(&Metadata::new());
    let how = match answer(&mut call, &ledger).await {
        Ok(()) => "OK".to_owned(),
        Err(how) => how,
    };
    ledger.end(how);
}

async fn answer(call: &mut ServerCall, ledger: &Ledger) -> Result<(), String> {
    let recv_err = |s: Status| format!("recv {}", s.code());
    let send_err = |s: Status| format!("send {}", s.code());
    match call.method() {
        UNARY => {
            let req = call.recv_single().await.map_err(recv_err)?;
            let (seq, ms) = parse(&req).ok_or("bad request")?;
            pause(call, ms).await?;
            call.send(msg(seq, 0)).await.map_err(send_err)?;
        }
        SERVER => {
            let req = call.recv_single().await.map_err(recv_err)?;
            let (count, ms) = parse(&req).ok_or("bad request")?;
            for i in 0..count {
                pause(call, ms).await?;
                call.send(msg(i, 0)).await.map_err(send_err)?;
            }
        }
        CLIENT | BIDI => {
            let echo = call.method() == BIDI;
            let mut next = 0u64;
            while let Some(m) = call.recv().await.map_err(recv_err)? {
                if parse(&m).map(|p| p.0) != Some(next) {
                    ledger.broken.fetch_add(1, Ordering::SeqCst);
                    let why = format!("request {:?} where {next} was due", parse(&m));
                    let _ = call.finish(Status::new(Code::DataLoss, why.clone()));
                    return Err(why);
                }
                if echo {
                    call.send(msg(next, 0)).await.map_err(send_err)?;
                }
                next += 1;
            }
            if !echo {
                call.send(msg(next, 0)).await.map_err(send_err)?;
            }
        }
        other => return Err(format!("no method {other}")),
    }
    call.finish(Status::ok())
        .map_err(|s| format!("finish {}", s.code()))
}

/// Waits `ms`, unless the call ends first.
async fn pause(call: &ServerCall, ms: u32) -> Result<(), String> {
    if ms == 0 {
        return Ok(());
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms as u64)) => Ok(()),
        s = poll_fn(|cx| call.poll_cancelled(cx)) => Err(format!("cancelled {}", s.code())),
    }
}

/// How one client call ended.
#[derive(Clone, Debug)]
pub struct Run {
    pub shape: &'static str,
    pub code: Code,
    pub message: String,
    /// Messages the server confirmed (client streaming) or the client received in order.
    pub got: u64,
    /// A lost, doubled or reordered message, or OK with fewer than asked: never allowed.
    pub broken: Option<String>,
    /// From the call's start (or `held`'s readiness) to its end.
    pub took: Duration,
}

impl Run {
    fn new(shape: &'static str) -> Run {
        Run {
            shape,
            code: Code::Ok,
            message: String::new(),
            got: 0,
            broken: None,
            took: Duration::ZERO,
        }
    }

    fn ended(mut self, s: &Status, since: Instant) -> Run {
        self.code = s.code();
        self.message = s.message().to_owned();
        self.took = since.elapsed();
        if s.code() == Code::DataLoss {
            self.broken.get_or_insert_with(|| s.message().to_owned());
        }
        self
    }

    /// Checks the next response is `self.got`, and counts it.
    fn take(&mut self, m: &[u8]) -> bool {
        match parse(m) {
            Some((seq, _)) if seq == self.got => {
                self.got += 1;
                true
            }
            other => {
                let why = format!("response {other:?} where {} was due", self.got);
                self.broken.get_or_insert(why);
                false
            }
        }
    }

    fn short_if_ok(mut self, want: u64) -> Run {
        if self.code == Code::Ok && self.got != want && self.broken.is_none() {
            self.broken = Some(format!("OK after {} of {want} messages", self.got));
        }
        self
    }
}

/// One finite call of `shape` with `n` messages (unary: one, answered after `n` × `ms`),
/// each way paced by `ms`:
/// every message must arrive once and in order, or the call fail with a status.
pub async fn run(ch: &Channel, shape: Shape, n: u64, ms: u32, opts: CallOptions) -> Run {
    let t0 = Instant::now();
    let pace = || tokio::time::sleep(Duration::from_millis(ms as u64));
    match shape {
        Shape::Unary => {
            let mut r = Run::new("unary");
            // In flight as long as a stream of `n` messages would be.
            let wait = ms.saturating_mul(n.min(u32::MAX as u64) as u32);
            match ch.unary(UNARY, msg(7, wait), opts).await {
                Ok(m) if parse(&m) == Some((7, 0)) => r.got = 1,
                Ok(m) => r.broken = Some(format!("answer {:?} to 7", parse(&m))),
                Err(s) => return r.ended(&s, t0),
            }
            r.ended(&Status::ok(), t0).short_if_ok(1)
        }
        Shape::ServerStreaming => {
            let mut r = Run::new("server-stream");
            let mut call = match ch.server_streaming(SERVER, msg(n, ms), opts).await {
                Ok(c) => c,
                Err(s) => return r.ended(&s, t0),
            };
            let s = loop {
                if let Some(end) = next(&mut call, &mut r).await {
                    break end;
                }
            };
            r.ended(&s, t0).short_if_ok(n)
        }
        Shape::ClientStreaming => {
            let mut r = Run::new("client-stream");
            let mut call = match ch.open(CLIENT, Shape::ClientStreaming, opts) {
                Ok(c) => c,
                Err(s) => return r.ended(&s, t0),
            };
            for i in 0..n {
                if ms > 0 {
                    pace().await;
                }
                if call.send(msg(i, 0)).await.is_err() {
                    break;
                }
            }
            call.close_send();
            match call.recv_single().await {
                Ok(m) => match parse(&m) {
                    Some((count, _)) => r.got = count,
                    None => r.broken = Some("unreadable count".into()),
                },
                Err(s) => return r.ended(&s, t0),
            }
            r.ended(&Status::ok(), t0).short_if_ok(n)
        }
        Shape::Bidi => {
            let mut r = Run::new("bidi");
            let mut call = match ch.bidi(BIDI, opts) {
                Ok(c) => c,
                Err(s) => return r.ended(&s, t0),
            };
            let s = bidi(&mut call, &mut r, n, ms).await;
            r.ended(&s, t0).short_if_ok(n)
        }
    }
}

/// Takes the call's next message: `None` while the stream goes on, or how it ended (a
/// message out of sequence cancels it).
async fn next(call: &mut Call, r: &mut Run) -> Option<Status> {
    match call.recv().await {
        Ok(Some(m)) if r.take(&m) => None,
        Ok(Some(_)) => {
            call.cancel();
            Some(call.finish().await)
        }
        Ok(None) => Some(Status::ok()),
        Err(s) => Some(s),
    }
}

/// Bidi in windows of eight: sends run ahead of the echoes, and the window bounds them.
async fn bidi(call: &mut Call, r: &mut Run, n: u64, ms: u32) -> Status {
    const WINDOW: u64 = 8;
    let mut sent = 0;
    while sent < n {
        let burst = WINDOW.min(n - sent);
        for i in sent..sent + burst {
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms as u64)).await;
            }
            if call.send(msg(i, 0)).await.is_err() {
                return call.finish().await;
            }
        }
        sent += burst;
        while r.got < sent {
            if let Some(end) = next(call, r).await {
                return end;
            }
        }
    }
    call.close_send();
    match call.recv().await {
        Ok(None) => Status::ok(),
        Ok(Some(m)) => {
            r.take(&m);
            call.cancel();
            call.finish().await
        }
        Err(s) => s,
    }
}

pub const SHAPES: [Shape; 4] = [
    Shape::Unary,
    Shape::ClientStreaming,
    Shape::ServerStreaming,
    Shape::Bidi,
];

/// A call of `shape` held open: it has reached the server (`ready` fires) and runs until the
/// call fails, sending or receiving a message every `ms`. Its `Run.took` counts from
/// readiness.
pub async fn hold(
    ch: Channel,
    shape: Shape,
    ms: u32,
    opts: CallOptions,
    ready: oneshot::Sender<()>,
) -> Run {
    let pace = || tokio::time::sleep(Duration::from_millis(ms as u64));
    let t0 = Instant::now();
    let (mut r, opened) = match shape {
        Shape::Unary => (Run::new("unary"), ch.open(UNARY, shape, opts)),
        Shape::ClientStreaming => (Run::new("client-stream"), ch.open(CLIENT, shape, opts)),
        Shape::ServerStreaming => (Run::new("server-stream"), ch.open(SERVER, shape, opts)),
        Shape::Bidi => (Run::new("bidi"), ch.open(BIDI, shape, opts)),
    };
    let mut call = match opened {
        Ok(c) => c,
        Err(s) => return r.ended(&s, t0),
    };
    let first = match shape {
        // An hour: the answer never comes while the test runs.
        Shape::Unary => msg(0, 3_600_000),
        Shape::ServerStreaming => msg(ENDLESS, ms),
        _ => msg(0, 0),
    };
    if let Err(s) = call.send(first).await {
        return r.ended(&s, t0);
    }
    if shape.single_request() {
        call.close_send();
    }
    if let Err(s) = call.headers().await {
        return r.ended(&s, t0);
    }
    let _ = ready.send(());
    let t0 = Instant::now();
    let s = match shape {
        Shape::Unary => match call.recv().await {
            Err(s) => s,
            Ok(_) => call.finish().await,
        },
        Shape::ServerStreaming => loop {
            if let Some(end) = next(&mut call, &mut r).await {
                break end;
            }
        },
        Shape::ClientStreaming => {
            let mut i = 1;
            loop {
                pace().await;
                if call.send(msg(i, 0)).await.is_err() {
                    break call.finish().await;
                }
                i += 1;
            }
        }
        Shape::Bidi => {
            r.got = 0;
            let mut sent = 1;
            match call.recv().await {
                Ok(Some(m)) if r.take(&m) => loop {
                    pace().await;
                    if call.send(msg(sent, 0)).await.is_err() {
                        break call.finish().await;
                    }
                    sent += 1;
                    if let Some(end) = next(&mut call, &mut r).await {
                        break end;
                    }
                },
                Ok(_) => {
                    call.cancel();
                    call.finish().await
                }
                Err(s) => s,
            }
        }
    };
    r.ended(&s, t0)
}

/// Holds a call of every shape on `ch`: their tasks, once all four are ready (or the first
/// `Run` of one that could not get ready within `bound`).
pub async fn hold_all(
    ch: &Channel,
    ms: u32,
    opts: CallOptions,
    bound: Duration,
) -> Result<Vec<tokio::task::JoinHandle<Run>>, String> {
    let mut tasks = Vec::new();
    let mut readies = Vec::new();
    for shape in SHAPES {
        let (tx, rx) = oneshot::channel();
        tasks.push(tokio::spawn(hold(ch.clone(), shape, ms, opts.clone(), tx)));
        readies.push(rx);
    }
    for (i, rx) in readies.into_iter().enumerate() {
        if !matches!(tokio::time::timeout(bound, rx).await, Ok(Ok(()))) {
            let why = match tokio::time::timeout(Duration::from_millis(100), &mut tasks[i]).await {
                Ok(Ok(r)) => format!(
                    "{} ended {} before it was ready: {}",
                    r.shape, r.code, r.message
                ),
                _ => format!("call {i} not ready within {bound:?}"),
            };
            for t in &tasks {
                t.abort();
            }
            return Err(why);
        }
    }
    Ok(tasks)
}
