//! An echo client for `shared/idl/echo.proto`, on rillrpc or on tonic: runs one benchmark
//! workload against an echo server and prints one `RESULT ...` line.
//!
//!     echo-client --impl rill|tonic --addr 127.0.0.1:PORT --workload W
//!                 [--protocol grpc|grpc-web|connect|ttheader] [--http1] [--codec proto|thrift]
//!                 [--duration-secs S] [--warmup-secs S] [--size N] [--streams N]
//!                 [--connections N] [--server-pid PID] [--messages N] [--count-frames]
//!
//! Workloads: server-stream, client-stream, pingpong, unary, cancel (rates over `--duration-secs`
//! after a warm-up) and idle-streams (`--streams` open bidi streams, default 10000; the
//! resident memory they cost this process and, with `--server-pid`, the server).
//! With `--server-pid`, rate workloads also report the server's CPU use over the window.
//!
//! `--protocol` (rill only; default grpc) is the protocol every call speaks
//! (`ChannelOptions::protocol`), over HTTP/2, or over HTTP/1.1 with `--http1`
//! (`ChannelOptions::http_version`; gRPC-Web and Connect only, and no bidi calls: the
//! pingpong workload then fails, as the channel refuses them). Over `ttheader` the unary
//! workload's calls are PingPong requests, in Kitex's Protobuf with the default `--codec
//! proto`; the streaming workloads need `--codec thrift` (Kitex streams Thrift only there).
//!
//! `--messages N` makes the run one burst instead of a timed rate: each stream makes one
//! call of N messages (server-stream: `count = N`; client-stream: N requests, then the
//! server's byte count is checked; bidi: N requests sent while the N echoes are read),
//! checks it ended OK and reports the rate over the burst. `bidi` is a burst workload only.
//!
//! `--count-frames` (tonic only) counts the HTTP/2 frames of each connection as tonic reads
//! and writes them (`rill_testkit::frames`) and prints one line per connection after the
//! `RESULT` line: `frames peer=ADDR in_data=N in_data_bytes=N out_data=N ...` ("in" is what
//! this client read: the server's replies).
//!
//! Both implementations do the same work per message: build an `echo.Request`, encode it,
//! decode every `echo.Response`.

use prost::Message;
use rill_bench::{cpu_secs, rss_bytes, Report, Workload};
use rill_testkit::echo::{Request, Response};
use rill_testkit::rill_echo::{ECHO, ECHO_CLIENT, ECHO_SERVER, PING_PONG};
use rill_testkit::TestServiceClient;
use rillrpc::Receive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Impl {
    Rill,
    Tonic,
}

/// A fixed burst of messages on one call per stream (`--messages`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Burst {
    ServerStream,
    ClientStream,
    Bidi,
}

impl Burst {
    fn parse(s: &str) -> Option<Burst> {
        match s {
            "server-stream" => Some(Burst::ServerStream),
            "client-stream" => Some(Burst::ClientStream),
            "bidi" => Some(Burst::Bidi),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Burst::ServerStream => "server-stream",
            Burst::ClientStream => "client-stream",
            Burst::Bidi => "bidi",
        }
    }
}

/// What one run does: a timed workload, or one burst of `messages` per stream.
#[derive(Clone, Copy, Debug)]
enum Job {
    Rate(Workload),
    Burst(Burst, u64),
}

#[derive(Clone, Debug)]
struct Args {
    imp: Impl,
    /// The rill channel's protocol and HTTP version (`--protocol`, `--http1`).
    protocol: rillrpc::Protocol,
    http1: bool,
    addr: String,
    job: Job,
    duration: Duration,
    warmup: Duration,
    size: usize,
    streams: Option<usize>,
    connections: usize,
    server_pid: Option<u32>,
    /// Where the tonic connections' frames are counted (`--count-frames`).
    frames: Option<rill_testkit::frames::FrameLog>,
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(async {
        match args.job {
            Job::Rate(w) => run(args.clone(), w).await,
            Job::Burst(b, n) => burst(&args, b, n).await,
        }
    });
    match report {
        Ok(r) => {
            println!("{r}");
            if let Some(log) = &args.frames {
                for c in log.connections() {
                    println!("{}", c.snapshot());
                }
            }
            // Streams still open (a server stream the server is still filling) are torn
            // down with the process; the server sees the connection go.
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("echo-client: {e}");
            std::process::exit(1);
        }
    }
}

type Res<T> = Result<T, String>;

/// Counts messages across the workers of a rate workload; workers stop when `stop` is set.
#[derive(Default)]
struct Counter {
    n: AtomicU64,
    stop: AtomicBool,
}

impl Counter {
    fn add(&self, k: u64) {
        self.n.fetch_add(k, Ordering::Relaxed);
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

async fn run(a: Args, workload: Workload) -> Res<Report> {
    let mut r = Report::default();
    r.set("workload", workload)
        .set("impl", imp_name(a.imp))
        .set("unit", workload.unit())
        .set("addr", &a.addr)
        .set("connections", a.connections);
    if a.imp == Impl::Rill {
        let http = if a.http1 { "1.1" } else { "2" };
        r.set("protocol", a.protocol.name()).set("http", http);
    }
    if workload.is_memory() {
        let stalled = workload == Workload::StalledStreams;
        let n = a.streams.unwrap_or(if stalled { 2_000 } else { 10_000 });
        r.set("streams", n);
        open_streams(&a, n, stalled, &mut r).await?;
        return Ok(r);
    }
    let streams = a.streams.unwrap_or(1);
    r.set("streams", streams).set("size", a.size);
    let conns = Conns::connect(&a, Window::Default).await?;
    let counter = Arc::new(Counter::default());
    let mut workers = Vec::new();
    for i in 0..streams {
        let c = counter.clone();
        let conn = conns.pick(i);
        let (w, size) = (workload, a.size);
        workers.push(tokio::spawn(async move { worker(conn, w, size, c).await }));
    }
    // A worker that fails early (server gone, protocol error) fails the run.
    let check = |workers: &mut Vec<tokio::task::JoinHandle<Res<()>>>| -> Res<()> {
        if !workers.iter().all(|w| w.is_finished()) {
            return Ok(());
        }
        // Finished handles are ready: the first worker's reason is the run's.
        let why = workers
            .iter_mut()
            .find_map(|w| match futures_util::FutureExt::now_or_never(w) {
                Some(Ok(Err(e))) => Some(e),
                Some(Err(e)) => Some(format!("worker panicked: {e}")),
                _ => None,
            })
            .unwrap_or_else(|| "no error".into());
        Err(format!(
            "every worker ended before the measurement did ({why})"
        ))
    };
    tokio::time::sleep(a.warmup).await;
    check(&mut workers)?;
    let spid = a.server_pid;
    let (n0, t0) = (counter.n.load(Ordering::Relaxed), Instant::now());
    let (cpu0, scpu0) = (cpu_secs(None), spid.and_then(|p| cpu_secs(Some(p))));
    tokio::time::sleep(a.duration).await;
    let (n1, t1) = (counter.n.load(Ordering::Relaxed), Instant::now());
    let (cpu1, scpu1) = (cpu_secs(None), spid.and_then(|p| cpu_secs(Some(p))));
    check(&mut workers)?;
    counter.stop.store(true, Ordering::Relaxed);
    let secs = (t1 - t0).as_secs_f64();
    let count = n1 - n0;
    r.set("value", format!("{:.0}", count as f64 / secs))
        .set("count", count)
        .set("secs", format!("{secs:.3}"));
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        r.set("client_cpu", format!("{:.3}", (c1 - c0) / secs));
    }
    if let (Some(c0), Some(c1)) = (scpu0, scpu1) {
        r.set("server_cpu", format!("{:.3}", (c1 - c0) / secs));
    }
    // Client streams end cleanly, and the server's byte count checks what was sent.
    if workload == Workload::ClientStream {
        for w in workers {
            // A slow server still has the flow-control windows' worth of small messages to
            // drain (grpcio's aio server takes over a minute), and the rate above is already
            // taken: wait for the count generously.
            match tokio::time::timeout(Duration::from_secs(180), w).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(e),
                Ok(Err(e)) => return Err(format!("worker panicked: {e}")),
                Err(_) => return Err("client stream did not finish within 180 s".into()),
            }
        }
    }
    Ok(r)
}

fn imp_name(i: Impl) -> &'static str {
    match i {
        Impl::Rill => "rill",
        Impl::Tonic => "tonic",
    }
}

/// The client connections: `--connections` channels, streams spread over them.
enum Conns {
    Rill(Vec<rillrpc::Channel>),
    Tonic(Vec<TestServiceClient<tonic::transport::Channel>>),
}

#[derive(Clone)]
enum Conn {
    Rill(rillrpc::Channel),
    Tonic(TestServiceClient<tonic::transport::Channel>),
}

/// The flow-control window the client grants each stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Window {
    Default,
    /// None: the server can send headers and trailers, never a message.
    Zero,
}

/// The first call's request: with no window, one whose answer carries no message (the
/// echo service answers `count < 0` with that status code, NOT_FOUND here).
fn first_request(w: Window) -> (i32, bool) {
    match w {
        Window::Default => (0, true),
        Window::Zero => (-5, false),
    }
}

impl Conns {
    async fn connect(a: &Args, window: Window) -> Res<Conns> {
        let uri = format!("http://{}", a.addr);
        let (count, ok) = first_request(window);
        let first = |r: Result<(), String>| match (r, ok) {
            (Ok(()), true) => Ok(()),
            (Err(e), false) if e.contains("NOT_FOUND") || e.contains("NotFound") => Ok(()),
            (Ok(()), false) => Err("first call: expected NOT_FOUND".to_string()),
            (Err(e), _) => Err(format!("first call: {e}")),
        };
        match a.imp {
            Impl::Rill => {
                let mut opts = rillrpc::ChannelOptions {
                    protocol: a.protocol,
                    ..Default::default()
                };
                if a.http1 {
                    opts.http_version = rillrpc::HttpVersion::Http1;
                }
                if window == Window::Zero {
                    opts.initial_stream_window = 0;
                }
                let mut v = Vec::new();
                for _ in 0..a.connections {
                    let ch = rillrpc::Channel::with_options(&uri, opts.clone())
                        .map_err(|e| e.to_string())?;
                    // Connect now, outside the measurement.
                    let r = ch
                        .unary(PING_PONG, unary_request(&Vec::new(), count), call_opts())
                        .await;
                    first(r.map(drop).map_err(|e| format!("{:?}: {e}", e.code())))?;
                    v.push(ch);
                }
                Ok(Conns::Rill(v))
            }
            Impl::Tonic => {
                let mut v = Vec::new();
                for _ in 0..a.connections {
                    let mut ep = tonic::transport::Endpoint::from_shared(uri.clone())
                        .map_err(|e| e.to_string())?
                        .tcp_nodelay(true);
                    if window == Window::Zero {
                        ep = ep.initial_stream_window_size(0);
                    }
                    let ch = match &a.frames {
                        // The counting connector sets TCP_NODELAY itself.
                        Some(log) => ep.connect_with_connector(log.connector()).await,
                        None => ep.connect().await,
                    }
                    .map_err(|e| format!("connect {uri}: {e:?}"))?;
                    let mut c = TestServiceClient::new(ch)
                        .max_decoding_message_size(usize::MAX)
                        .max_encoding_message_size(usize::MAX);
                    let r = c
                        .ping_pong(Request {
                            payload: Vec::new(),
                            count,
                        })
                        .await;
                    first(r.map(drop).map_err(|e| format!("{:?}: {e}", e.code())))?;
                    v.push(c);
                }
                Ok(Conns::Tonic(v))
            }
        }
    }

    fn pick(&self, i: usize) -> Conn {
        match self {
            Conns::Rill(v) => Conn::Rill(v[i % v.len()].clone()),
            Conns::Tonic(v) => Conn::Tonic(v[i % v.len()].clone()),
        }
    }
}

/// An encoded `echo.Request`, written field by field with prost's encoders so the payload
/// is copied once, straight into the message (as tonic copies it once into its buffer).
// A `Vec` because that is what prost's bytes encoder takes.
#[allow(clippy::ptr_arg)]
fn request(payload: &Vec<u8>, count: i32) -> rillrpc::Bytes {
    if codec() == Codec::Thrift {
        return thrift::request(payload, count);
    }
    use prost::encoding::{bytes, int32};
    // Exactly the encoded length, as prost's `encode_to_vec` allocates: `Bytes::from` then
    // takes the Vec as it is, where spare capacity costs a second allocation and a shared,
    // atomically counted drop.
    let len = if payload.is_empty() {
        0
    } else {
        bytes::encoded_len(1, payload)
    } + if count != 0 {
        int32::encoded_len(2, &count)
    } else {
        0
    };
    let mut buf = Vec::with_capacity(len);
    if !payload.is_empty() {
        bytes::encode(1, payload, &mut buf);
    }
    if count != 0 {
        int32::encode(2, &count, &mut buf);
    }
    rillrpc::Bytes::from(buf)
}

fn decode(m: &[u8]) -> Res<Response> {
    if codec() == Codec::Thrift {
        return thrift::response(m).map(|payload| Response { payload });
    }
    Response::decode(m).map_err(|e| format!("bad echo.Response: {e}"))
}

/// A unary call's request: in Thrift, wrapped in PingPong's args struct (field 1), as Kitex
/// sends a non-streaming method's request.
fn unary_request(payload: &Vec<u8>, count: i32) -> rillrpc::Bytes {
    match codec() {
        Codec::Proto => request(payload, count),
        Codec::Thrift => thrift::args(&request(payload, count)),
    }
}

/// A unary call's response: in Thrift, PingPong's result struct (field 0, success).
fn decode_unary(m: &[u8]) -> Res<Response> {
    match codec() {
        Codec::Proto => decode(m),
        Codec::Thrift => thrift::result(m).and_then(|r| decode(&r)),
    }
}

/// The messages' codec (`--codec`): echo.proto's, or echo.thrift's as Kitex encodes them
/// (Thrift Binary structs), to call Kitex's server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Proto,
    Thrift,
}

static CODEC: std::sync::OnceLock<Codec> = std::sync::OnceLock::new();
/// Set for `--protocol ttheader`, whose calls carry Thrift unless told protobuf.
static TTHEADER: std::sync::OnceLock<()> = std::sync::OnceLock::new();

fn codec() -> Codec {
    CODEC.get().copied().unwrap_or(Codec::Proto)
}

/// Every call's options: Thrift over gRPC says so in its content type
/// (`application/grpc+thrift`); TTHeader carries Thrift unless a call says `proto` (unary
/// calls then go as Kitex's Protobuf; TTHeader Streaming refuses protobuf streams).
fn call_opts() -> rillrpc::CallOptions {
    match codec() {
        Codec::Proto if TTHEADER.get().is_some() => {
            rillrpc::CallOptions::new().content_subtype("proto")
        }
        Codec::Proto => rillrpc::CallOptions::default(),
        Codec::Thrift => rillrpc::CallOptions::new().content_subtype("thrift"),
    }
}

use rill_testkit::echo_thrift as thrift;

/// How often a sending loop looks at the clock or the stop flag (messages).
const CHECK_EVERY: u64 = 256;

async fn worker(conn: Conn, w: Workload, size: usize, c: Arc<Counter>) -> Res<()> {
    let payload = vec![b'x'; size];
    match (conn, w) {
        (Conn::Rill(ch), Workload::ServerStream) => {
            let mut call = ch
                .server_streaming(ECHO_SERVER, request(&payload, i32::MAX), call_opts())
                .await
                .map_err(|e| e.to_string())?;
            let mut batch = Vec::with_capacity(1024);
            while !c.stopped() {
                batch.clear();
                let n = std::future::poll_fn(|cx| call.poll_recv_batch(cx, &mut batch, 1024))
                    .await
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("server stream ended early".into());
                }
                for m in &batch {
                    decode(m)?;
                }
                c.add(n as u64);
            }
            Ok(())
        }
        (Conn::Tonic(mut cl), Workload::ServerStream) => {
            let mut s = cl
                .echo_server(Request {
                    payload,
                    count: i32::MAX,
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let mut k = 0u64;
            while let Some(_m) = s.message().await.map_err(|e| e.to_string())? {
                k += 1;
                if k == CHECK_EVERY {
                    c.add(k);
                    k = 0;
                    if c.stopped() {
                        return Ok(());
                    }
                }
            }
            Err("server stream ended early".into())
        }
        (Conn::Rill(ch), Workload::ClientStream) => {
            let call = ch
                .open(ECHO_CLIENT, rillrpc::Shape::ClientStreaming, call_opts())
                .map_err(|e| e.to_string())?;
            let mut call = call;
            let mut sent = 0u64;
            let mut k = 0u64;
            loop {
                if call.send(request(&payload, 0)).await.is_err() {
                    break;
                }
                sent += 1;
                k += 1;
                if k == CHECK_EVERY {
                    c.add(k);
                    k = 0;
                    if c.stopped() {
                        break;
                    }
                }
            }
            call.close_send();
            let m = call
                .recv()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no response to the client stream")?;
            check_total(&decode(&m)?.payload, sent, size)
        }
        (Conn::Tonic(mut cl), Workload::ClientStream) => {
            let sent = Arc::new(AtomicU64::new(0));
            let (c2, sent2) = (c.clone(), sent.clone());
            let mut k = 0u64;
            let reqs = futures_util::stream::poll_fn(move |_| {
                if k == CHECK_EVERY {
                    c2.add(k);
                    sent2.fetch_add(k, Ordering::Relaxed);
                    k = 0;
                    if c2.stopped() {
                        return std::task::Poll::Ready(None);
                    }
                }
                k += 1;
                std::task::Poll::Ready(Some(Request {
                    payload: payload.clone(),
                    count: 0,
                }))
            });
            let resp = cl
                .echo_client(reqs)
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            check_total(&resp.payload, sent.load(Ordering::Relaxed), size)
        }
        (Conn::Rill(ch), Workload::PingPong) => {
            let mut call = ch.bidi(ECHO, call_opts()).map_err(|e| e.to_string())?;
            while !c.stopped() {
                call.send(request(&payload, 0))
                    .await
                    .map_err(|e| e.to_string())?;
                let m = call
                    .recv()
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("bidi stream ended early")?;
                decode(&m)?;
                c.add(1);
            }
            Ok(())
        }
        (Conn::Tonic(mut cl), Workload::PingPong) => {
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            // A server may send its headers only with the first reply: queue the first
            // request before waiting for them.
            let req = || Request {
                payload: payload.clone(),
                count: 0,
            };
            tx.send(req()).await.map_err(|e| e.to_string())?;
            let mut s = cl
                .echo(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let mut first = true;
            while !c.stopped() {
                if !first {
                    tx.send(req()).await.map_err(|e| e.to_string())?;
                }
                first = false;
                s.message()
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("bidi stream ended early")?;
                c.add(1);
            }
            Ok(())
        }
        (Conn::Rill(ch), w @ (Workload::Unary | Workload::UnaryDeadline)) => {
            while !c.stopped() {
                let opts = match w {
                    Workload::UnaryDeadline => call_opts().timeout(rill_bench::UNARY_DEADLINE),
                    _ => call_opts(),
                };
                let m = ch
                    .unary(PING_PONG, unary_request(&payload, 0), opts)
                    .await
                    .map_err(|e| e.to_string())?;
                decode_unary(&m)?;
                c.add(1);
            }
            Ok(())
        }
        (Conn::Tonic(mut cl), w @ (Workload::Unary | Workload::UnaryDeadline)) => {
            while !c.stopped() {
                let mut r = tonic::Request::new(Request {
                    payload: payload.clone(),
                    count: 0,
                });
                if w == Workload::UnaryDeadline {
                    r.set_timeout(rill_bench::UNARY_DEADLINE);
                }
                cl.ping_pong(r).await.map_err(|e| e.to_string())?;
                c.add(1);
            }
            Ok(())
        }
        (Conn::Rill(ch), Workload::Cancel) => {
            // As tonic's below: h2 charges the small DATA frames that arrive on a stream it
            // reset against a connection-wide budget it never gives back, and past it closes
            // the connection (a grpc-go server sends a frame per message). The call in
            // flight fails; the channel opens a new connection for the next.
            let mut failed_in_a_row = 0;
            while !c.stopped() {
                let first = async {
                    let mut call = ch
                        .server_streaming(ECHO_SERVER, request(&payload, i32::MAX), call_opts())
                        .await?;
                    let m = call.recv().await?;
                    call.cancel();
                    Ok::<_, rillrpc::Status>(m)
                };
                let first = match first.await {
                    Ok(Some(m)) => {
                        // A wrong answer ends the worker; only transport failures retry.
                        decode(&m)?;
                        Ok(true)
                    }
                    Ok(None) => Ok(false),
                    Err(e) => Err(e.to_string()),
                };
                tally_cancel(first, &mut failed_in_a_row, &c)?;
            }
            Ok(())
        }
        (Conn::Tonic(mut cl), Workload::Cancel) => {
            // tonic's h2 closes its connection after 1,024 streams it had to reset a second
            // time (frames that arrive after it forgot a cancelled stream), or once the
            // small frames of cancelled streams spent its budget, failing the call in
            // flight; its channel reconnects on the next call, as a tonic user's would.
            // Those failed calls are not counted; a run of them ends the worker.
            let mut failed_in_a_row = 0;
            while !c.stopped() {
                let first = async {
                    let mut s = cl
                        .echo_server(Request {
                            payload: payload.clone(),
                            count: i32::MAX,
                        })
                        .await?
                        .into_inner();
                    let m = s.message().await?;
                    // Dropping the stream resets it (CANCEL).
                    drop(s);
                    Ok::<_, tonic::Status>(m)
                };
                let first = first.await.map(|m| m.is_some()).map_err(|e| e.to_string());
                tally_cancel(first, &mut failed_in_a_row, &c)?;
            }
            Ok(())
        }
        (_, Workload::IdleStreams | Workload::StalledStreams) => {
            unreachable!("memory workloads are not rates")
        }
    }
}

/// Counts one call of the cancel workload: `Ok(true)`, its first response came; `Ok(false)`,
/// the stream ended without one. A failed call is not counted, and the fourth in a row ends
/// the worker.
fn tally_cancel(first: Res<bool>, failed_in_a_row: &mut u32, c: &Counter) -> Res<()> {
    match first {
        Ok(true) => {
            *failed_in_a_row = 0;
            c.add(1);
            Ok(())
        }
        Ok(false) => Err("server stream ended early".into()),
        Err(_) if *failed_in_a_row < 3 => {
            *failed_in_a_row += 1;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// One burst of `n` messages per stream (`--messages`): every call must end OK with every
/// message accounted for; reports the rate over the whole burst.
async fn burst(a: &Args, kind: Burst, n: u64) -> Res<Report> {
    let streams = a.streams.unwrap_or(1);
    let mut r = Report::default();
    r.set("workload", kind.name())
        .set("impl", imp_name(a.imp))
        .set("unit", "msg/s")
        .set("addr", &a.addr)
        .set("connections", a.connections)
        .set("streams", streams)
        .set("size", a.size)
        .set("messages", n);
    let conns = Conns::connect(a, Window::Default).await?;
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for i in 0..streams {
        let (conn, size) = (conns.pick(i), a.size);
        workers.push(tokio::spawn(async move {
            burst_call(conn, kind, n, size).await
        }));
    }
    for w in workers {
        w.await.map_err(|e| format!("worker panicked: {e}"))??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let count = n * streams as u64;
    r.set("value", format!("{:.0}", count as f64 / secs))
        .set("count", count)
        .set("secs", format!("{secs:.3}"));
    Ok(r)
}

async fn burst_call(conn: Conn, kind: Burst, n: u64, size: usize) -> Res<()> {
    let payload = vec![b'x'; size];
    let count = i32::try_from(n).map_err(|_| "--messages must fit an i32 for server-stream")?;
    let want = |got: u64| -> Res<()> {
        if got != n {
            return Err(format!("{got} messages came back, want {n}"));
        }
        Ok(())
    };
    match (conn, kind) {
        (Conn::Tonic(mut cl), Burst::ServerStream) => {
            let mut s = cl
                .echo_server(Request { payload, count })
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let mut got = 0;
            while s.message().await.map_err(|e| e.to_string())?.is_some() {
                got += 1;
            }
            want(got)
        }
        (Conn::Rill(ch), Burst::ServerStream) => {
            let mut call = ch
                .server_streaming(ECHO_SERVER, request(&payload, count), call_opts())
                .await
                .map_err(|e| e.to_string())?;
            let mut batch = Vec::with_capacity(1024);
            let mut got = 0u64;
            loop {
                batch.clear();
                let k = std::future::poll_fn(|cx| call.poll_recv_batch(cx, &mut batch, 1024))
                    .await
                    .map_err(|e| e.to_string())?;
                if k == 0 {
                    break;
                }
                for m in &batch {
                    decode(m)?;
                }
                got += k as u64;
            }
            want(got)
        }
        (Conn::Tonic(mut cl), Burst::ClientStream) => {
            let reqs = tokio_stream::iter((0..n).map(move |_| Request {
                payload: payload.clone(),
                count: 0,
            }));
            let resp = cl
                .echo_client(reqs)
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            check_exact_total(&resp.payload, n, size)
        }
        (Conn::Rill(ch), Burst::ClientStream) => {
            let mut call = ch
                .open(ECHO_CLIENT, rillrpc::Shape::ClientStreaming, call_opts())
                .map_err(|e| e.to_string())?;
            let msg = request(&payload, 0);
            for _ in 0..n {
                if call.send(msg.clone()).await.is_err() {
                    break;
                }
            }
            call.close_send();
            let m = call
                .recv()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no response to the client stream")?;
            check_exact_total(&decode(&m)?.payload, n, size)
        }
        (Conn::Tonic(mut cl), Burst::Bidi) => {
            let reqs = tokio_stream::iter((0..n).map(move |_| Request {
                payload: payload.clone(),
                count: 0,
            }));
            let mut s = cl.echo(reqs).await.map_err(|e| e.to_string())?.into_inner();
            let mut got = 0;
            while s.message().await.map_err(|e| e.to_string())?.is_some() {
                got += 1;
            }
            want(got)
        }
        (Conn::Rill(ch), Burst::Bidi) => {
            // Sending and reading in one task: the call is one object, so one poll does both.
            let mut call = ch.bidi(ECHO, call_opts()).map_err(|e| e.to_string())?;
            let msg = request(&payload, 0);
            let (mut sent, mut got, mut bad) = (0u64, 0u64, None);
            let mut batch = Vec::with_capacity(1024);
            std::future::poll_fn(|cx| {
                while sent < n {
                    match call.try_send(msg.clone()) {
                        Ok(()) => sent += 1,
                        Err(rillrpc::TrySendError::Full(_)) => {
                            if call.poll_send_ready(cx).is_pending() {
                                break;
                            }
                        }
                        Err(rillrpc::TrySendError::Closed(s)) => {
                            return std::task::Poll::Ready(Err(s.to_string()))
                        }
                    }
                }
                if sent == n {
                    call.close_send();
                }
                loop {
                    batch.clear();
                    match call.poll_recv_batch(cx, &mut batch, 1024) {
                        std::task::Poll::Ready(Ok(0)) => return std::task::Poll::Ready(Ok(())),
                        std::task::Poll::Ready(Ok(k)) => {
                            got += k as u64;
                            if bad.is_none() {
                                bad = batch.iter().find_map(|m| decode(m).err());
                            }
                        }
                        std::task::Poll::Ready(Err(s)) => {
                            return std::task::Poll::Ready(Err(s.to_string()))
                        }
                        std::task::Poll::Pending => return std::task::Poll::Pending,
                    }
                }
            })
            .await?;
            if let Some(e) = bad {
                return Err(e);
            }
            want(got)
        }
    }
}

/// A burst's client stream: the server must have counted exactly what was sent.
fn check_exact_total(payload: &[u8], sent: u64, size: usize) -> Res<()> {
    let got = std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("client stream response is not a decimal byte count")?;
    if got != sent * size as u64 {
        return Err(format!(
            "server counted {got} bytes, client sent {}",
            sent * size as u64
        ));
    }
    Ok(())
}

fn check_total(payload: &[u8], sent: u64, size: usize) -> Res<()> {
    let got: u64 = std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("client stream response is not a decimal byte count")?;
    // The sender may have queued more than it counted when it stopped.
    if got < sent * size as u64 {
        return Err(format!(
            "server counted {got} bytes, client sent at least {}",
            sent * size as u64
        ));
    }
    Ok(())
}

/// Opens `n` bidi streams, makes one round trip on each (so each is open at the server, its
/// handler running) and measures what they cost in resident memory, then lets them go.
async fn open_streams(a: &Args, n: usize, stalled: bool, r: &mut Report) -> Res<()> {
    let window = match stalled {
        true => Window::Zero,
        false => Window::Default,
    };
    let conns = Conns::connect(a, window).await?;
    settle().await;
    let (client0, server0) = (
        rss_bytes(None),
        a.server_pid.and_then(|p| rss_bytes(Some(p))),
    );
    let t0 = Instant::now();
    let ping = Request {
        payload: b"idle".to_vec(),
        count: 0,
    };
    // What keeps each stream open: the call (and, for tonic, its request sender).
    let mut rill_calls = Vec::new();
    let mut tonic_calls = Vec::new();
    let mut stalled_tonic = Vec::new();
    match &conns {
        Conns::Rill(chs) if stalled => {
            // The response head shows the stream open, its handler sending.
            for i in 0..n {
                let mut call = chs[i % chs.len()]
                    .server_streaming(ECHO_SERVER, request(&vec![b'x'; 16], i32::MAX), call_opts())
                    .await
                    .map_err(|e| e.to_string())?;
                call.headers().await.map_err(|e| e.to_string())?;
                rill_calls.push(call);
            }
        }
        Conns::Tonic(cls) if stalled => {
            for i in 0..n {
                let s = cls[i % cls.len()]
                    .clone()
                    .echo_server(Request {
                        payload: vec![b'x'; 16],
                        count: i32::MAX,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                stalled_tonic.push(s);
            }
        }
        Conns::Rill(chs) => {
            // Its first reply shows a stream is open; at most OPENING await one at a time.
            let mut waiting = std::collections::VecDeque::new();
            for i in 0..n {
                let call = chs[i % chs.len()]
                    .bidi(ECHO, call_opts())
                    .map_err(|e| e.to_string())?;
                call.send(ping.encode_to_vec().into())
                    .await
                    .map_err(|e| e.to_string())?;
                waiting.push_back(call);
                if waiting.len() == OPENING || i + 1 == n {
                    while let Some(mut call) = waiting.pop_front() {
                        call.recv()
                            .await
                            .map_err(|e| e.to_string())?
                            .ok_or("idle stream ended")?;
                        rill_calls.push(call);
                    }
                }
            }
        }
        Conns::Tonic(cls) => {
            // Opening waits for the response headers: OPENING opens run at once.
            let mut set = tokio::task::JoinSet::new();
            for i in 0..n {
                let mut cl = cls[i % cls.len()].clone();
                let ping = ping.clone();
                set.spawn(async move {
                    let (tx, rx) = tokio::sync::mpsc::channel(1);
                    tx.send(ping).await.map_err(|e| e.to_string())?;
                    let mut s = cl
                        .echo(tokio_stream::wrappers::ReceiverStream::new(rx))
                        .await
                        .map_err(|e| e.to_string())?
                        .into_inner();
                    s.message()
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or("idle stream ended")?;
                    Ok::<_, String>((tx, s))
                });
                if set.len() == OPENING || i + 1 == n {
                    while let Some(j) = set.join_next().await {
                        tonic_calls.push(j.map_err(|e| e.to_string())??);
                    }
                }
            }
        }
    }
    let open_secs = t0.elapsed().as_secs_f64();
    settle().await;
    let (client1, server1) = (
        rss_bytes(None),
        a.server_pid.and_then(|p| rss_bytes(Some(p))),
    );
    let per = |b0: Option<u64>, b1: Option<u64>| -> Option<f64> {
        Some((b1? as f64 - b0? as f64) / n as f64)
    };
    let client_per = per(client0, client1).ok_or("cannot read this process's memory")?;
    r.set("open_secs", format!("{open_secs:.3}"))
        .set("client_rss_before", client0.unwrap_or(0))
        .set("client_rss_after", client1.unwrap_or(0))
        .set("client_per_stream", format!("{client_per:.0}"));
    match per(server0, server1) {
        Some(s) => {
            r.set("server_rss_before", server0.unwrap_or(0))
                .set("server_rss_after", server1.unwrap_or(0))
                .set("server_per_stream", format!("{s:.0}"))
                .set("value", format!("{s:.0}"))
                .set("measured", "server");
        }
        None => {
            r.set("value", format!("{client_per:.0}"))
                .set("measured", "client");
        }
    }
    // Hold the streams until here.
    drop(rill_calls);
    drop(tonic_calls);
    drop(stalled_tonic);
    Ok(())
}

/// How many streams are opened at once. h2 (0.4.20) counts small DATA frames a server has
/// received but its application has not read yet, and above a budget closes the connection
/// with GOAWAY(ENHANCE_YOUR_CALM, "too_many_data_frames"): thousands of streams each opened
/// with one small message, all at once, hit it (tonic's server does at about 2,000).
const OPENING: usize = 100;

/// Lets background tasks finish what they are doing before memory is read.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn parse_args() -> Args {
    let mut imp = None;
    let mut addr = None;
    let mut workload: Option<String> = None;
    let mut messages = None;
    let mut count_frames = false;
    let mut duration = 3.0f64;
    let mut warmup = None;
    let mut size = 16usize;
    let mut streams = None;
    let mut connections = 1usize;
    let mut server_pid = None;
    let mut protocol = None;
    let mut http1 = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--impl" => {
                imp = Some(match val().as_str() {
                    "rill" => Impl::Rill,
                    "tonic" => Impl::Tonic,
                    o => usage(&format!("--impl must be rill or tonic, not {o}")),
                })
            }
            "--addr" => addr = Some(val()),
            "--protocol" => {
                let name = val();
                protocol = Some(
                    rillrpc::by_name::<rillrpc::Protocol>("--protocol", &name)
                        .unwrap_or_else(|e| usage(e.message())),
                )
            }
            "--http1" => http1 = true,
            "--codec" => {
                let c = match val().as_str() {
                    "proto" => Codec::Proto,
                    "thrift" => Codec::Thrift,
                    o => usage(&format!("--codec must be proto or thrift, not {o}")),
                };
                let _ = CODEC.set(c);
            }
            "--workload" => workload = Some(val()),
            "--messages" => messages = Some(num(&val(), "--messages") as u64),
            "--count-frames" => count_frames = true,
            "--duration-secs" => duration = num(&val(), "--duration-secs"),
            "--warmup-secs" => warmup = Some(num(&val(), "--warmup-secs")),
            "--size" => size = num(&val(), "--size") as usize,
            "--streams" => streams = Some(num(&val(), "--streams") as usize),
            "--connections" => connections = num(&val(), "--connections") as usize,
            "--server-pid" => server_pid = Some(num(&val(), "--server-pid") as u32),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if streams == Some(0) || connections == 0 {
        usage("--streams and --connections must be at least 1");
    }
    let warmup = warmup.unwrap_or((duration / 5.0).min(0.5));
    let imp = imp.unwrap_or_else(|| usage("--impl is required"));
    let w = workload.unwrap_or_else(|| usage("--workload is required"));
    let job = match messages {
        Some(n) => Job::Burst(
            Burst::parse(&w).unwrap_or_else(|| {
                usage(&format!(
                    "--messages takes server-stream, client-stream or bidi, not {w}"
                ))
            }),
            n,
        ),
        None => Job::Rate(
            Workload::parse(&w).unwrap_or_else(|| usage(&format!("unknown workload {w}"))),
        ),
    };
    if count_frames && imp != Impl::Tonic {
        usage("--count-frames needs --impl tonic");
    }
    if imp == Impl::Tonic && (http1 || protocol.is_some_and(|p| p != rillrpc::Protocol::Grpc)) {
        usage("tonic speaks gRPC over HTTP/2 only; --protocol and --http1 are for --impl rill");
    }
    let protocol = protocol.unwrap_or(rillrpc::Protocol::Grpc);
    if protocol == rillrpc::Protocol::Ttheader {
        let _ = TTHEADER.set(());
    }
    if http1 && protocol == rillrpc::Protocol::Grpc {
        usage("gRPC needs HTTP/2; --http1 is for --protocol connect and grpc-web");
    }
    Args {
        imp,
        protocol,
        http1,
        addr: addr.unwrap_or_else(|| usage("--addr is required")),
        job,
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs_f64(warmup),
        size,
        streams,
        connections,
        server_pid,
        frames: count_frames.then(rill_testkit::frames::FrameLog::new),
    }
}

fn num(s: &str, what: &str) -> f64 {
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => v,
        _ => usage(&format!("{what}: not a non-negative number: {s}")),
    }
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("echo-client: {msg}");
    }
    eprintln!(
        "usage: echo-client --impl rill|tonic --addr HOST:PORT --workload W\n\
         \x20      [--protocol grpc|grpc-web|connect|ttheader] [--http1] [--codec proto|thrift]   (rill)\n\
         \x20      [--duration-secs S] [--warmup-secs S] [--size N] [--streams N]\n\
         \x20      [--connections N] [--server-pid PID] [--messages N] [--count-frames]\n\
         workloads: server-stream client-stream pingpong unary unary-deadline cancel idle-streams;\n\
         with --messages N (one burst per stream): server-stream client-stream bidi"
    );
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// echo.thrift's messages as Kitex's frames carry them (interop/kitex/WIRE.md §2.1).
    #[test]
    fn thrift_messages_read_and_write_as_kitex_does() {
        let req = thrift::request(b"stream", 5);
        let want = [
            11, 0, 1, 0, 0, 0, 6, b's', b't', b'r', b'e', b'a', b'm', 8, 0, 2, 0, 0, 0, 5, 0,
        ];
        assert_eq!(&req[..], &want[..]);
        let resp = [11, 0, 1, 0, 0, 0, 6, b's', b't', b'r', b'e', b'a', b'm', 0];
        assert_eq!(thrift::response(&resp).unwrap(), b"stream");
        // PingPong's wrappers: args {1: req}, result {0: success}.
        assert_eq!(&thrift::args(&req)[..3], [12, 0, 1]);
        let mut result = vec![12, 0, 0];
        result.extend(resp);
        result.push(0);
        assert_eq!(&thrift::result(&result).unwrap()[..], &resp[..]);
        assert!(thrift::result(&[0]).is_err(), "a result without success");
        assert!(
            thrift::response(&[11, 0, 1, 0, 0, 0, 9, b'x']).is_err(),
            "cut short"
        );
    }

    #[test]
    fn request_encodes_as_prost_does() {
        for (p, c) in [(vec![], 0), (b"abc".to_vec(), 0), (vec![7; 1024], i32::MAX)] {
            let want = Request {
                payload: p.clone(),
                count: c,
            }
            .encode_to_vec();
            assert_eq!(request(&p, c).as_ref(), &want[..]);
        }
    }
}
