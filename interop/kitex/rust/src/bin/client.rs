//! kitex-echo-rill-client: kitex-client's checks (interop/kitex/README.md) on the rillrpc
//! client, against a Kitex server, over one of its transports:
//! - `grpc` (the default): every call is `application/grpc+thrift`
//!   (`CallOptions::content_subtype`), its messages Thrift Binary as Kitex sends them;
//! - `ttheader`: streaming calls over TTHeader Streaming, PingPong as a TTHeader-framed
//!   Thrift PingPong request (`Protocol::Ttheader`), as kitex-client's `--transport
//!   ttheader` calls them.
//!
//! - `--codec protobuf` (with `--transport ttheader`): PingPong alone, in echo.proto's
//!   messages (`content_subtype("proto")`), which go as Kitex's Protobuf (KitexProtobuf in
//!   TTHeaderFramed), against `kitex-server --idl protobuf`: the checks `unary`,
//!   `error_status`, `metadata` and `deadline` on PingPong.
//!
//! ```text
//! kitex-echo-rill-client --target HOST:PORT [--transport grpc|ttheader]
//!                        [--codec thrift|protobuf] [--check NAME[,NAME]]
//! ```
//!
//! Prints `PASS <check>` or `FAIL <check>: <why>` per check (and `NOTE <check>: ...` lines
//! with the statuses it saw); exits 1 if any failed.
//!
//! Besides kitex-client's seven checks and `deadline` (all run by default), two fault
//! checks run only when named, under a script that kills and restarts the server
//! (scripts/rill.sh):
//! - `killed_server_streaming`, `killed_bidi`: a long EchoServer call (or an Echo call
//!   waiting for an answer) is under way when the client prints `READY kill`; the script
//!   SIGKILLs the server. The call must end within 3 s with UNAVAILABLE or INTERNAL (never
//!   OK, never a hang to the deadline). New calls on the same channel (PingPong, EchoServer)
//!   must then fail fast with UNAVAILABLE, as grpc-go's do while the server is down. The
//!   client prints `READY restart` and waits for a line on stdin: by then the script has
//!   started the server again on the same port, and new calls (PingPong waiting for ready,
//!   then EchoServer) must succeed on the same channel, as a grpc-go channel reconnects.
//!
//! The destination service is named `echo`, as kitex-client names it (`ChannelOptions::
//! authority`: `:authority` over gRPC, ToService over TTHeader).

use std::io::BufRead;
use std::time::{Duration, Instant};

use prost::Message;
use rill_kitex::echo::{decode, encode, PingPongArgs, PingPongResult, Request, Response};
use rill_kitex::{ECHO, ECHO_CLIENT, ECHO_SERVER, EXTRA_COUNT_KEY, PING_PONG, PROTO, THRIFT};
use rill_testkit::echo as pb;
use rillrpc::{Bytes, Call, CallOptions, Channel, Code, Metadata, MetadataValue, Shape, Status};

type Check = Result<(), String>;

const UNARY_PAYLOAD: &[u8] = b"matrix\x00\xffping";
const STREAM_SIZES: [usize; 4] = [1, 10, 100, 70_000];
const ERROR_MESSAGE: &str = "matrix error: 100% ünïcødé ✓";
/// kitex-client's metainfo, `metainfo.WithValue(ctx, "ECHO_KEY", "value")` and
/// `WithPersistentValue(ctx, "ECHO_PERSIST_KEY", "persist value")`, in their gRPC form.
const METAINFO: [(&str, &str); 2] = [
    ("rpc-transit-echo-key", "value"),
    ("rpc-persist-echo-persist-key", "persist value"),
];

type CheckFn = fn(&Channel) -> Check;

/// The checks a run does when given no `--check`.
const CHECKS: [(&str, CheckFn); 9] = [
    ("unary", unary),
    ("server_streaming", server_streaming),
    ("client_streaming", client_streaming),
    ("bidi", bidi),
    ("error_status", error_status),
    ("metadata", metadata),
    ("cancel", cancel),
    ("deadline", deadline),
    ("unread_stream", unread_stream),
];

/// `--codec protobuf`'s checks: PingPong only.
const PROTOBUF_CHECKS: [(&str, CheckFn); 4] = [
    ("unary", pb_unary),
    ("error_status", pb_error_status),
    ("metadata", pb_metadata),
    ("deadline", pb_deadline),
];

/// The checks that need a script killing the server (only run when named).
const FAULT_CHECKS: [(&str, CheckFn); 2] = [
    ("killed_server_streaming", killed_server_streaming),
    ("killed_bidi", killed_bidi),
];

fn main() {
    let (mut target, mut only) = (None, None);
    let mut protocol = rillrpc::Protocol::Grpc;
    let mut protobuf = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--target", Some(v)) => target = Some(v),
            ("--check", Some(v)) => only = Some(v),
            ("--transport", Some(v)) if v == "grpc" => protocol = rillrpc::Protocol::Grpc,
            ("--transport", Some(v)) if v == "ttheader" => protocol = rillrpc::Protocol::Ttheader,
            ("--codec", Some(v)) if v == "thrift" => protobuf = false,
            ("--codec", Some(v)) if v == "protobuf" => protobuf = true,
            _ => usage(&format!("bad argument {a}")),
        }
    }
    let target = target.unwrap_or_else(|| usage("--target is required"));
    if protobuf && protocol != rillrpc::Protocol::Ttheader {
        usage("--codec protobuf takes --transport ttheader (Kitex's Protobuf PingPong)");
    }
    let checks: &[(&str, CheckFn)] = if protobuf { &PROTOBUF_CHECKS } else { &CHECKS };
    // As Kitex's client does, name the destination service ("echo") in `:authority`.
    let opts = rillrpc::ChannelOptions {
        authority: Some("echo".into()),
        protocol,
        ..Default::default()
    };
    let chan = Channel::with_options(&format!("http://{target}"), opts).unwrap_or_else(|e| {
        eprintln!("kitex-echo-rill-client: {e}");
        std::process::exit(2)
    });
    let names: Vec<String> = match only {
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => checks.iter().map(|(n, _)| n.to_string()).collect(),
    };
    let mut failed = false;
    for name in names {
        let result = match checks.iter().chain(&FAULT_CHECKS).find(|(n, _)| *n == name) {
            Some((_, check)) => check(&chan),
            None => Err("no such check".into()),
        };
        match result {
            Ok(()) => println!("PASS {name}"),
            Err(why) => {
                failed = true;
                println!("FAIL {name}: {why}");
            }
        }
    }
    std::process::exit(i32::from(failed))
}

fn usage(msg: &str) -> ! {
    let names: Vec<&str> = CHECKS
        .iter()
        .chain(&FAULT_CHECKS)
        .map(|(n, _)| *n)
        .collect();
    eprintln!(
        "kitex-echo-rill-client: {msg}\nusage: kitex-echo-rill-client --target HOST:PORT [--transport grpc|ttheader] [--codec thrift|protobuf] [--check {}]",
        names.join(",")
    );
    std::process::exit(2)
}

/// Thrift over gRPC, and kitex-client's 20 s deadline on every call.
fn opts() -> CallOptions {
    CallOptions::new()
        .timeout(Duration::from_secs(20))
        .content_subtype(THRIFT)
}

fn st(s: &Status) -> String {
    format!("status {} {:?}", s.code().name(), s.message())
}

fn request(payload: &[u8], count: Option<i32>) -> Bytes {
    let req = Request {
        payload: Some(payload.to_vec()),
        count,
    };
    Bytes::from(encode(&req))
}

fn ping_args(payload: &[u8], count: Option<i32>) -> Bytes {
    let args = PingPongArgs {
        req: Some(Request {
            payload: Some(payload.to_vec()),
            count,
        }),
    };
    Bytes::from(encode(&args))
}

/// A response's payload; an unset one reads as empty, as in Go (a nil slice).
fn payload(msg: &[u8]) -> Result<Vec<u8>, String> {
    let r: Response = decode(msg).map_err(|e| format!("bad echo.Response: {e}"))?;
    Ok(r.payload.unwrap_or_default())
}

fn ping_payload(msg: &[u8]) -> Result<Vec<u8>, String> {
    let r: PingPongResult =
        decode(msg).map_err(|e| format!("bad TestServicePingPongResult: {e}"))?;
    let success = r.success.ok_or("PingPong result without success")?;
    Ok(success.payload.unwrap_or_default())
}

/// Reads a stream to its end: the payloads, and the status that ended it.
async fn recv_all(call: &mut Call) -> Result<(Vec<Vec<u8>>, Status), String> {
    let mut got = Vec::new();
    loop {
        match call.recv().await {
            Ok(Some(m)) => got.push(payload(&m)?),
            Ok(None) => return Ok((got, call.finish().await)),
            Err(s) => return Ok((got, s)),
        }
    }
}

fn unary(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        for want in [UNARY_PAYLOAD, b""] {
            let got = chan
                .unary(PING_PONG, ping_args(want, None), opts())
                .await
                .map_err(|s| format!("PingPong({want:?}): {}", st(&s)))?;
            let p = ping_payload(&got)?;
            if p != want {
                return Err(format!("PingPong({want:?}) = {p:?}"));
            }
        }
        Ok(())
    })
}

fn server_streaming(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        let mut call = chan
            .server_streaming(ECHO_SERVER, request(b"stream", Some(5)), opts())
            .await
            .map_err(|s| format!("EchoServer: {}", st(&s)))?;
        let (got, s) = recv_all(&mut call).await?;
        if !s.is_ok() {
            return Err(format!(
                "EchoServer after {} responses: {}",
                got.len(),
                st(&s)
            ));
        }
        if got.len() != 5 || got.iter().any(|p| p != b"stream") {
            return Err(format!("EchoServer: {got:?}, want 5 times \"stream\""));
        }
        Ok(())
    })
}

fn client_streaming(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        let reqs = STREAM_SIZES.map(|n| request(&vec![b'c'; n], None));
        let got = chan
            .client_streaming(ECHO_CLIENT, reqs, opts())
            .await
            .map_err(|s| format!("EchoClient: {}", st(&s)))?;
        let p = payload(&got)?;
        if p != b"70111" {
            return Err(format!(
                "EchoClient = {:?}, want 70111",
                String::from_utf8_lossy(&p)
            ));
        }
        Ok(())
    })
}

/// One round of Echo: send `p`, receive its echo.
async fn round(call: &mut Call, p: &str) -> Check {
    call.send(request(p.as_bytes(), None))
        .await
        .map_err(|s| format!("Echo send {p:?}: {}", st(&s)))?;
    let m = call
        .recv()
        .await
        .map_err(|s| format!("Echo recv for {p:?}: {}", st(&s)))?
        .ok_or_else(|| format!("Echo ended before the answer to {p:?}"))?;
    let got = payload(&m)?;
    if got != p.as_bytes() {
        return Err(format!("Echo {p:?} answered {got:?}"));
    }
    Ok(())
}

fn bidi(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        let mut call = chan.bidi(ECHO, opts()).map_err(|s| st(&s))?;
        for i in 0..5 {
            round(&mut call, &format!("bidi-{i}")).await?;
        }
        call.close_send();
        let (got, s) = recv_all(&mut call).await?;
        if !got.is_empty() || !s.is_ok() {
            return Err(format!(
                "Echo after CloseSend: {got:?}, {}; want the end",
                st(&s)
            ));
        }
        Ok(())
    })
}

/// `status` must be kitex-server's biz status error for count -5.
fn want_biz(what: &str, status: &Status) -> Check {
    if status.code() != Code::Internal {
        return Err(format!("{what}: {}, want INTERNAL", st(status)));
    }
    let be = status
        .biz_status()
        .ok_or_else(|| format!("{what}: {}: no biz status", st(status)))?;
    let extra_ok = be.extra() == [(EXTRA_COUNT_KEY.to_owned(), "-5".to_owned())];
    if be.code() != 5 || be.message() != ERROR_MESSAGE || !extra_ok {
        return Err(format!(
            "{what}: biz status {} {:?} extra {:?}, want 5 {ERROR_MESSAGE:?} echo-count=-5",
            be.code(),
            be.message(),
            be.extra()
        ));
    }
    Ok(())
}

fn error_status(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        let bad = ERROR_MESSAGE.as_bytes();
        match chan
            .unary(PING_PONG, ping_args(bad, Some(-5)), opts())
            .await
        {
            Ok(m) => return Err(format!("PingPong: no error, response {m:?}")),
            Err(s) => want_biz("PingPong", &s)?,
        }
        // After an answered message, on Echo.
        let mut call = chan.bidi(ECHO, opts()).map_err(|s| st(&s))?;
        round(&mut call, "bidi-0").await?;
        call.send(request(bad, Some(-5)))
            .await
            .map_err(|s| format!("Echo send error request: {}", st(&s)))?;
        match call.recv().await {
            Ok(m) => return Err(format!("Echo: {m:?}, want the biz error")),
            Err(s) => want_biz("Echo", &s)?,
        }
        // Ending a server stream with no message before it, on EchoServer.
        let mut call = chan
            .server_streaming(ECHO_SERVER, request(bad, Some(-5)), opts())
            .await
            .map_err(|s| format!("EchoServer: {}", st(&s)))?;
        let (got, s) = recv_all(&mut call).await?;
        want_biz("EchoServer", &s).map_err(|e| format!("{e} ({} responses)", got.len()))
    })
}

fn metainfo_request() -> Metadata {
    let mut md = Metadata::new();
    for (k, v) in METAINFO {
        md.append_ascii(k, v).expect("valid metadata");
    }
    md
}

fn has_metainfo(what: &str, md: &Metadata) -> Check {
    for (k, v) in METAINFO {
        match md.get(k) {
            Some(MetadataValue::Ascii(got)) if got == v => {}
            other => return Err(format!("{what}: {k} = {other:?}, want {v:?}")),
        }
    }
    Ok(())
}

/// Opens `method` with the metainfo and one request: its headers, messages and trailers.
async fn with_metainfo(chan: &Channel, method: &str, shape: Shape, req: Bytes) -> Check {
    let o = opts().metadata(metainfo_request());
    let mut call = chan
        .open_with_request(method, shape, o, &req)
        .map_err(|s| st(&s))?;
    let headers = call
        .headers()
        .await
        .map_err(|s| format!("{method} headers: {}", st(&s)))?;
    has_metainfo(&format!("{method} headers"), &headers)?;
    let (got, s) = if method == PING_PONG {
        let m = call.recv_single().await.map_err(|s| st(&s))?;
        (vec![ping_payload(&m)?], call.finish().await)
    } else {
        recv_all(&mut call).await?
    };
    if !s.is_ok() || got.len() != 1 {
        return Err(format!("{method}: {} responses, {}", got.len(), st(&s)));
    }
    let trailers = call.trailers().cloned().unwrap_or_default();
    has_metainfo(&format!("{method} trailers"), &trailers)
}

fn metadata(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        with_metainfo(chan, PING_PONG, Shape::Unary, ping_args(b"meta", None)).await?;
        let req = request(b"meta", Some(1));
        with_metainfo(chan, ECHO_SERVER, Shape::ServerStreaming, req).await
    })
}

fn cancel(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        let mut call = chan.bidi(ECHO, opts()).map_err(|s| st(&s))?;
        round(&mut call, "cancel-0").await?;
        call.cancel();
        match call.recv().await {
            Err(s) if s.code() == Code::Cancelled => Ok(()),
            other => Err(format!("Echo after cancel: {other:?}, want CANCELLED")),
        }
    })?;
    // As kitex-client: let the RST_STREAM reach the server, then the same channel must
    // still work.
    std::thread::sleep(Duration::from_millis(100));
    rillrpc::runtime::block_on(async {
        let mut call = chan
            .server_streaming(ECHO_SERVER, request(b"after-cancel", Some(1)), opts())
            .await
            .map_err(|s| format!("EchoServer after cancel: {}", st(&s)))?;
        let (got, s) = recv_all(&mut call).await?;
        if !s.is_ok() || got.len() != 1 {
            return Err(format!(
                "EchoServer after cancel: {} responses, {}",
                got.len(),
                st(&s)
            ));
        }
        Ok(())
    })
}

/// The messages of 1 KiB the `unread_stream` check leaves unread a while: 20 MB, past
/// any receive window of the channel's connection.
const UNREAD_COUNT: usize = 20_000;

/// A stream opened while another is left unread does not wait behind it (TTHeader has no
/// flow control: a connection holding its window unread reads nothing more), and the
/// unread stream then delivers every message.
fn unread_stream(chan: &Channel) -> Check {
    let big = vec![b'u'; 1024];
    let count = Some(UNREAD_COUNT as i32);
    let mut unread = rillrpc::runtime::block_on(async {
        let mut call = chan
            .server_streaming(ECHO_SERVER, request(&big, count), opts())
            .await
            .map_err(|s| format!("EchoServer: {}", st(&s)))?;
        match call.recv().await {
            Ok(Some(m)) if payload(&m)? == big => Ok(call),
            other => Err(format!("EchoServer's first message: {other:?}")),
        }
    })?;
    // Time for the unread messages to fill the window (if they do not, the check is weaker).
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..3 {
        let chan = chan.clone();
        let beside = bounded(HANG, move || {
            rillrpc::runtime::block_on(async move {
                let mut call = chan.bidi(ECHO, opts()).map_err(|s| st(&s))?;
                round(&mut call, &format!("beside-{i}")).await?;
                call.close_send();
                match recv_all(&mut call).await? {
                    (got, s) if got.is_empty() && s.is_ok() => Ok(()),
                    (got, s) => Err(format!("Echo's end: {got:?}, {}", st(&s))),
                }
            })
        });
        beside.unwrap_or_else(|| {
            Err(format!(
                "Echo beside the unread stream: no answer in {HANG:?}"
            ))
        })?;
    }
    let (got, s) = rillrpc::runtime::block_on(recv_all(&mut unread))?;
    if !s.is_ok() || got.len() != UNREAD_COUNT - 1 || got.iter().any(|p| *p != big) {
        return Err(format!(
            "EchoServer, read at last: {} more messages, {}; want {} of 1 KiB and OK",
            got.len(),
            st(&s),
            UNREAD_COUNT - 1
        ));
    }
    Ok(())
}

/// How long a call may take to fail when it should fail at once (the server was killed, or
/// is down): a hang, or a retry until the deadline, takes longer.
const PROMPT: Duration = Duration::from_secs(3);

/// The deadline of the `deadline` check's calls, and how long the server is asked to wait
/// (kitex-server's slow path: a payload `sleep:<ms>`).
const SHORT_DEADLINE: Duration = Duration::from_millis(300);
const SLOW_PAYLOAD: &[u8] = b"sleep:3000";

/// A call given `SHORT_DEADLINE` must end DEADLINE_EXCEEDED, well before the server answers.
fn want_deadline(what: &str, started: Instant, r: Result<usize, Status>) -> Check {
    let took = started.elapsed();
    match r {
        Err(s) if s.code() == Code::DeadlineExceeded && took < SHORT_DEADLINE * 3 => {
            println!("NOTE deadline: {what}: {} after {took:?}", st(&s));
            Ok(())
        }
        Err(s) => Err(format!(
            "{what}: {} after {took:?}, want DEADLINE_EXCEEDED after about {SHORT_DEADLINE:?}",
            st(&s)
        )),
        Ok(n) => Err(format!(
            "{what}: OK with {n} responses after {took:?}, want DEADLINE_EXCEEDED"
        )),
    }
}

/// How long a `deadline` call may run before it counts as a hang (it is left behind on its
/// thread, and the next one starts).
const HANG: Duration = Duration::from_secs(5);

/// The result of `f` run on a thread of its own, or None if it takes longer than `limit`.
fn bounded<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

type SlowCall = fn(Channel, CallOptions) -> Result<usize, Status>;

fn slow_ping_pong(chan: Channel, o: CallOptions) -> Result<usize, Status> {
    rillrpc::runtime::block_on(chan.unary(PING_PONG, ping_args(SLOW_PAYLOAD, None), o)).map(|_| 1)
}

fn slow_echo_server(chan: Channel, o: CallOptions) -> Result<usize, Status> {
    rillrpc::runtime::block_on(async {
        let req = request(SLOW_PAYLOAD, Some(1));
        let mut call = chan.server_streaming(ECHO_SERVER, req, o).await?;
        let (got, s) = recv_all(&mut call)
            .await
            .map_err(|e| Status::new(Code::Internal, e))?;
        if s.is_ok() {
            Ok(got.len())
        } else {
            Err(s)
        }
    })
}

fn slow_echo(chan: Channel, o: CallOptions) -> Result<usize, Status> {
    rillrpc::runtime::block_on(async {
        let mut call = chan.bidi(ECHO, o)?;
        call.send(request(SLOW_PAYLOAD, None)).await?;
        call.recv().await.map(|m| usize::from(m.is_some()))
    })
}

/// `SHORT_DEADLINE` on calls the server answers slowly (PingPong: gRPC's `grpc-timeout`, or
/// Kitex's RPCTimeout in TTHeader; EchoServer before its first response; Echo before its
/// answer): each ends DEADLINE_EXCEEDED. All three are tried, each on a thread of its own
/// given `HANG` (a call that never ends is reported, and does not stop the others); the
/// failures are reported together. Then the channel still works.
fn deadline(chan: &Channel) -> Check {
    let calls: [(&str, SlowCall); 3] = [
        ("PingPong", slow_ping_pong),
        ("EchoServer", slow_echo_server),
        ("Echo", slow_echo),
    ];
    let mut failures = Vec::new();
    for (what, call) in calls {
        let (c, t) = (chan.clone(), Instant::now());
        let o = opts().timeout(SHORT_DEADLINE);
        match bounded(HANG, move || call(c, o)) {
            Some(r) => failures.extend(want_deadline(what, t, r).err()),
            None => failures.push(format!(
                "{what}: no end {HANG:?} after its {SHORT_DEADLINE:?} deadline (a hang)"
            )),
        }
    }
    let after = bounded(HANG, {
        let c = chan.clone();
        move || {
            rillrpc::runtime::block_on(c.unary(
                PING_PONG,
                ping_args(b"after-deadline", None),
                opts(),
            ))
        }
    });
    match after.map(|r| r.map_err(|s| st(&s)).and_then(|m| ping_payload(&m))) {
        Some(Ok(p)) if p == b"after-deadline" => {}
        Some(Ok(p)) => failures.push(format!("PingPong after the deadlines: {p:?}")),
        Some(Err(e)) => failures.push(format!("PingPong after the deadlines: {e}")),
        None => failures.push(format!(
            "PingPong after the deadlines: no answer in {HANG:?}"
        )),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

// ---- `--codec protobuf`: PingPong in echo.proto's messages ----

fn pb_opts() -> CallOptions {
    CallOptions::new()
        .timeout(Duration::from_secs(20))
        .content_subtype(PROTO)
}

fn pb_request(payload: &[u8], count: i32) -> Bytes {
    let req = pb::Request {
        payload: payload.to_vec(),
        count,
    };
    Bytes::from(req.encode_to_vec())
}

fn pb_payload(msg: Bytes) -> Result<Vec<u8>, String> {
    let r = pb::Response::decode(msg).map_err(|e| format!("bad echo.Response: {e}"))?;
    Ok(r.payload)
}

fn pb_unary(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        for want in [UNARY_PAYLOAD, b""] {
            let got = chan
                .unary(PING_PONG, pb_request(want, 0), pb_opts())
                .await
                .map_err(|s| format!("PingPong({want:?}): {}", st(&s)))?;
            let p = pb_payload(got)?;
            if p != want {
                return Err(format!("PingPong({want:?}) = {p:?}"));
            }
        }
        Ok(())
    })
}

fn pb_error_status(chan: &Channel) -> Check {
    let call = chan.unary(
        PING_PONG,
        pb_request(ERROR_MESSAGE.as_bytes(), -5),
        pb_opts(),
    );
    match rillrpc::runtime::block_on(call) {
        Ok(m) => Err(format!("PingPong: no error, response {m:?}")),
        Err(s) => want_biz("PingPong", &s),
    }
}

/// kitex-server's backward values come back as the answer's headers and trailers both.
fn pb_metadata(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        let o = pb_opts().metadata(metainfo_request());
        let req = pb_request(b"meta", 0);
        let mut call = chan
            .open_with_request(PING_PONG, Shape::Unary, o, &req)
            .map_err(|s| st(&s))?;
        let headers = call.headers().await.map_err(|s| st(&s))?;
        has_metainfo("PingPong headers", &headers)?;
        let m = call.recv_single().await.map_err(|s| st(&s))?;
        if pb_payload(m)? != b"meta" {
            return Err("PingPong: not the payload sent".into());
        }
        let s = call.finish().await;
        if !s.is_ok() {
            return Err(format!("PingPong: {}", st(&s)));
        }
        has_metainfo(
            "PingPong trailers",
            call.trailers().unwrap_or(&Metadata::new()),
        )
    })
}

fn pb_deadline(chan: &Channel) -> Check {
    let (c, t) = (chan.clone(), Instant::now());
    let o = pb_opts().timeout(SHORT_DEADLINE);
    let slow = move || {
        rillrpc::runtime::block_on(c.unary(PING_PONG, pb_request(SLOW_PAYLOAD, 0), o)).map(|_| 1)
    };
    match bounded(HANG, slow) {
        Some(r) => want_deadline("PingPong", t, r)?,
        None => {
            return Err(format!(
                "PingPong: no end {HANG:?} after its deadline (a hang)"
            ))
        }
    }
    let c = chan.clone();
    let after = bounded(HANG, move || {
        rillrpc::runtime::block_on(c.unary(PING_PONG, pb_request(b"after", 0), pb_opts()))
    });
    match after.map(|r| r.map_err(|s| st(&s)).and_then(pb_payload)) {
        Some(Ok(p)) if p == b"after" => Ok(()),
        other => Err(format!("PingPong after the deadline: {other:?}")),
    }
}

/// EchoServer's count in `killed_server_streaming`: more than it can send before the kill.
const KILLED_COUNT: i32 = 10_000_000;
/// Responses received before the client asks for the kill.
const KILL_AFTER: usize = 100;

/// Asks the script for `what` (`kill`, `restart`), on stdout.
fn ready(what: &str) {
    println!("READY {what}");
}

/// Waits for the script's line on stdin, saying it did what `ready` asked.
fn wait_script(what: &str) -> Check {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 => Ok(()),
        other => Err(format!(
            "no word from the script after READY {what}: {other:?}"
        )),
    }
}

/// The status ending a call whose server was killed `since` ago (after `got` responses).
fn want_killed(name: &str, what: &str, got: usize, since: Instant, s: &Status) -> Check {
    let took = since.elapsed();
    if took > PROMPT {
        return Err(format!(
            "{what}: {} only after {took:?} (after {got} responses)",
            st(s)
        ));
    }
    match s.code() {
        Code::Unavailable | Code::Internal => {
            println!(
                "NOTE {name}: {what} ended {} {took:?} after READY kill, {got} responses",
                st(s)
            );
            Ok(())
        }
        _ => Err(format!(
            "{what} after the kill: {} (after {got} responses), want UNAVAILABLE or INTERNAL",
            st(s)
        )),
    }
}

/// A PingPong call and an EchoServer call (one response): its outcome, and how long it took.
async fn probe(
    chan: &Channel,
    o: CallOptions,
) -> Vec<(&'static str, Result<(), Status>, Duration)> {
    let mut out = Vec::new();
    let t = Instant::now();
    let r = chan
        .unary(PING_PONG, ping_args(b"probe", None), o.clone())
        .await
        .map(|_| ());
    out.push(("PingPong", r, t.elapsed()));
    let t = Instant::now();
    let r = async {
        let mut call = chan
            .server_streaming(ECHO_SERVER, request(b"probe", Some(1)), o)
            .await?;
        let (got, s) = recv_all(&mut call)
            .await
            .map_err(|e| Status::new(Code::Internal, e))?;
        match (s.is_ok(), got.len()) {
            (true, 1) => Ok(()),
            (true, n) => Err(Status::new(
                Code::Internal,
                format!("{n} responses, want 1"),
            )),
            _ => Err(s),
        }
    }
    .await;
    out.push(("EchoServer", r, t.elapsed()));
    out
}

/// After the kill: new calls fail fast while the server is down; once the script has
/// restarted it on the same port, new calls on the same channel succeed.
fn after_kill(chan: &Channel, name: &str) -> Check {
    let probes = rillrpc::runtime::block_on(probe(chan, opts().timeout(Duration::from_secs(10))));
    for (what, r, took) in probes {
        match r {
            Err(s) if s.code() == Code::Unavailable && took < PROMPT => {
                println!(
                    "NOTE {name}: new {what} with the server down: {} after {took:?}",
                    st(&s)
                )
            }
            Err(s) => {
                return Err(format!(
                    "new {what} with the server down: {} after {took:?}, want UNAVAILABLE at once",
                    st(&s)
                ))
            }
            Ok(()) => return Err(format!("new {what} with the server down: OK")),
        }
    }
    ready("restart");
    wait_script("restart")?;
    // As a grpc-go user would: a call that waits for the channel to be ready (the HTTP/2
    // channel is backing off after the refused connection), then an ordinary one.
    let o = opts().timeout(Duration::from_secs(5)).wait_for_ready(true);
    let probes = rillrpc::runtime::block_on(probe(chan, o));
    for (what, r, took) in probes {
        match r {
            Ok(()) => println!("NOTE {name}: new {what} after the restart: OK after {took:?}"),
            Err(s) => {
                return Err(format!(
                    "new {what} after the restart: {} after {took:?}",
                    st(&s)
                ))
            }
        }
    }
    Ok(())
}

/// EchoServer with a count it cannot finish; the server is killed after `KILL_AFTER`
/// responses, while the client keeps reading.
fn killed_server_streaming(chan: &Channel) -> Check {
    let name = "killed_server_streaming";
    rillrpc::runtime::block_on(async {
        let mut call = chan
            .server_streaming(ECHO_SERVER, request(b"killed", Some(KILLED_COUNT)), opts())
            .await
            .map_err(|s| format!("EchoServer: {}", st(&s)))?;
        let (mut got, mut since) = (0, None);
        let s = loop {
            match call.recv().await {
                Ok(Some(_)) => {
                    got += 1;
                    if got == KILL_AFTER {
                        ready("kill");
                        since = Some(Instant::now());
                    }
                }
                Ok(None) => break call.finish().await,
                Err(s) => break s,
            }
        };
        let since =
            since.ok_or_else(|| format!("EchoServer ended after {got} responses: {}", st(&s)))?;
        if s.is_ok() {
            return Err(format!(
                "EchoServer ended OK after {got} responses: the server was killed"
            ));
        }
        want_killed(name, "EchoServer", got, since, &s)
    })?;
    after_kill(chan, name)
}

/// Echo, three rounds; the server is killed while the client waits for an answer it will
/// not get.
fn killed_bidi(chan: &Channel) -> Check {
    let name = "killed_bidi";
    rillrpc::runtime::block_on(async {
        let mut call = chan.bidi(ECHO, opts()).map_err(|s| st(&s))?;
        for i in 0..3 {
            round(&mut call, &format!("killed-{i}")).await?;
        }
        ready("kill");
        let since = Instant::now();
        let s = match call.recv().await {
            Ok(Some(m)) => return Err(format!("Echo after the kill: a message {m:?}")),
            Ok(None) => call.finish().await,
            Err(s) => s,
        };
        if s.is_ok() {
            return Err("Echo ended OK: the server was killed".into());
        }
        want_killed(name, "Echo", 3, since, &s)
    })?;
    after_kill(chan, name)
}
