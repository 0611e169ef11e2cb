//! The rillrpc (Rust core) client of the matrix: `matrix-client --target HOST:PORT` runs the
//! six checks of interop/matrix/README.md against an echo server, prints `PASS <check>` /
//! `FAIL <check>: <why>` lines and exits 1 if any failed. With `--shape-rules zero,two,...`
//! it runs those sub-checks of the shape_rules check instead. `--protocol grpc|grpc-web|connect`
//! (default grpc) is what every call speaks, over HTTP/2 (h2c): the channel's option.

use prost::Message;
use rill_testkit::echo::{Request, Response};
use rill_testkit::rill_echo::{ECHO, ECHO_CLIENT, ECHO_SERVER, PING_PONG, PROTOCOL_HEADER};
use rillrpc::{
    Bytes, Call, CallOptions, Channel, ChannelOptions, Code, Metadata, MetadataValue, Named,
    Protocol, Shape, Status,
};
use std::time::Duration;

const UNARY_PAYLOAD: &[u8] = b"matrix\x00\xffping";
const STREAM_SIZES: [usize; 4] = [1, 10, 100, 70_000];
/// The client_streaming burst: this many messages of BURST_SIZE bytes in one call. A sender
/// that writes each in a DATA frame of its own (23 bytes) gets the connection closed by
/// tonic's h2 server (0.4.20) when its handler falls behind: GOAWAY(ENHANCE_YOUR_CALM,
/// "too_many_data_frames"), issue 17.
const BURST_MESSAGES: usize = 30_000;
const BURST_SIZE: usize = 16;
const BIN_VALUE: &[u8] = &[0x00, 0xff, 0xfe, 0x80, 0x01];
/// Percent-encoded in grpc-message on the wire: `%` and the non-ASCII bytes must survive.
const ERROR_MESSAGE: &str = "matrix error: 100% ünïcødé ✓";

type Check = Result<(), String>;

fn main() {
    let mut target = None;
    let mut rules = None;
    let mut protocol = Protocol::Grpc;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--target" => target = args.next(),
            "--shape-rules" => rules = args.next(),
            "--protocol" => {
                let name = args.next().unwrap_or_default();
                protocol = Protocol::from_name(&name)
                    .unwrap_or_else(|| usage(&format!("unknown protocol {name:?}")));
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let target = target.unwrap_or_else(|| usage("--target is required"));
    let opts = ChannelOptions {
        protocol,
        ..ChannelOptions::default()
    };
    let chan = Channel::with_options(&format!("http://{target}"), opts).unwrap_or_else(|e| {
        eprintln!("matrix-client: {e}");
        std::process::exit(2)
    });
    if let Some(subs) = rules {
        std::process::exit(shape_rules(&chan, &subs));
    }
    let checks: [(&str, &dyn Fn() -> Check); 6] = [
        ("unary", &|| unary(&chan)),
        ("server_streaming", &|| server_streaming(&chan)),
        ("client_streaming", &|| client_streaming(&chan)),
        ("bidi", &|| bidi(&chan)),
        ("error_status", &|| error_status(&chan)),
        ("metadata", &|| metadata(&chan, protocol)),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match check() {
            Ok(()) => println!("PASS {name}"),
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    std::process::exit(if failed > 0 { 1 } else { 0 })
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "matrix-client: {msg}\nusage: matrix-client --target HOST:PORT [--protocol {}] [--shape-rules {}]",
        Protocol::ALL.map(Protocol::name).join("|"),
        RULES.join(",")
    );
    std::process::exit(2)
}

/// A deadline on every call, so a hung peer fails the check instead of the whole run.
fn opts() -> CallOptions {
    CallOptions::new().timeout(Duration::from_secs(20))
}

fn request(payload: &[u8], count: i32) -> Bytes {
    Bytes::from(
        Request {
            payload: payload.to_vec(),
            count,
        }
        .encode_to_vec(),
    )
}

fn response(msg: &[u8]) -> Result<Vec<u8>, String> {
    Response::decode(msg)
        .map(|r| r.payload)
        .map_err(|e| format!("bad echo.Response: {e}"))
}

fn st(s: Status) -> String {
    format!("status {} {:?}", s.code().name(), s.message())
}

/// Reads the end of a call that must have no more messages, and its OK status.
async fn expect_end(call: &mut Call) -> Check {
    match call.recv().await.map_err(st)? {
        None => {}
        Some(m) => return Err(format!("an extra message ({} bytes)", m.len())),
    }
    let s = call.finish().await;
    if s.code() != Code::Ok {
        return Err(st(s));
    }
    Ok(())
}

fn unary(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        // The empty request is a zero-length message, and so is its response.
        for want in [UNARY_PAYLOAD, b""] {
            let got = chan
                .unary(PING_PONG, request(want, 0), opts())
                .await
                .map_err(|s| format!("payload {want:?}: {}", st(s)))?;
            let p = response(&got)?;
            if p != want {
                return Err(format!("payload {p:?}, want {want:?}"));
            }
        }
        Ok(())
    })
}

fn server_streaming(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        let mut call = chan
            .server_streaming(ECHO_SERVER, request(b"stream", 5), opts())
            .await
            .map_err(st)?;
        let mut n = 0;
        while let Some(m) = call
            .recv()
            .await
            .map_err(|s| format!("after {n} responses: {}", st(s)))?
        {
            let p = response(&m)?;
            if p != b"stream" {
                return Err(format!("response {n}: payload {p:?}"));
            }
            n += 1;
        }
        if n != 5 {
            return Err(format!("{n} responses, want 5"));
        }
        let s = call.finish().await;
        if s.code() != Code::Ok {
            return Err(st(s));
        }
        Ok(())
    })
}

fn client_streaming(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        let reqs: Vec<Bytes> = STREAM_SIZES
            .iter()
            .map(|&n| request(&vec![b'x'; n], 0))
            .collect();
        let got = chan
            .client_streaming(ECHO_CLIENT, reqs, opts())
            .await
            .map_err(st)?;
        let p = response(&got)?;
        let want = STREAM_SIZES.iter().sum::<usize>().to_string();
        if p != want.as_bytes() {
            return Err(format!(
                "total {:?}, want {want:?}",
                String::from_utf8_lossy(&p)
            ));
        }
        let m = request(&[b'x'; BURST_SIZE], 0);
        let burst = std::iter::repeat_n(m, BURST_MESSAGES);
        let got = chan
            .client_streaming(ECHO_CLIENT, burst, opts())
            .await
            .map_err(|s| format!("burst of {BURST_MESSAGES}: {}", st(s)))?;
        let p = response(&got)?;
        let want = (BURST_MESSAGES * BURST_SIZE).to_string();
        if p != want.as_bytes() {
            return Err(format!(
                "burst of {BURST_MESSAGES}: total {:?}, want {want:?}",
                String::from_utf8_lossy(&p)
            ));
        }
        Ok(())
    })
}

fn bidi(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        let mut call = chan.bidi(ECHO, opts()).map_err(st)?;
        for i in 0..5 {
            let p = format!("bidi-{i}");
            call.send(request(p.as_bytes(), 0)).await.map_err(st)?;
            let m = call
                .recv()
                .await
                .map_err(|s| format!("round {i}: {}", st(s)))?
                .ok_or_else(|| format!("round {i}: the call ended"))?;
            let got = response(&m)?;
            if got != p.as_bytes() {
                return Err(format!("round {i}: payload {got:?}, want {p:?}"));
            }
        }
        call.close_send();
        expect_end(&mut call).await
    })
}

fn wanted_error(s: Status) -> Check {
    if s.code() == Code::NotFound && s.message() == ERROR_MESSAGE {
        Ok(())
    } else {
        Err(format!("{}, want NOT_FOUND {ERROR_MESSAGE:?}", st(s)))
    }
}

/// The error twice: on a unary call (the status comes alone, trailers-only) and on a bidi
/// call after one answered message (status after data).
fn error_status(chan: &Channel) -> Check {
    rillrpc::runtime::block_on(async {
        match chan
            .unary(PING_PONG, request(ERROR_MESSAGE.as_bytes(), -5), opts())
            .await
        {
            Ok(_) => return Err("unary: the call succeeded, want NOT_FOUND".into()),
            Err(s) => wanted_error(s).map_err(|e| format!("unary: {e}"))?,
        }
        let mut call = chan.bidi(ECHO, opts()).map_err(st)?;
        call.send(request(b"before", 0)).await.map_err(st)?;
        let first = call.recv().await.map_err(|s| format!("bidi: {}", st(s)))?;
        if first.as_deref().map(response).transpose()?.as_deref() != Some(b"before".as_slice()) {
            return Err(format!("bidi: first answer {first:?}"));
        }
        call.send(request(ERROR_MESSAGE.as_bytes(), -5))
            .await
            .map_err(|s| format!("bidi send: {}", st(s)))?;
        match call.recv().await {
            Ok(m) => Err(format!("bidi: {m:?}, want NOT_FOUND")),
            Err(s) => wanted_error(s).map_err(|e| format!("bidi: {e}")),
        }
    })
}

fn has_echoed(what: &str, md: &Metadata, problems: &mut Vec<String>) {
    match md.get("echo-key") {
        Some(MetadataValue::Ascii(v)) if v == "value" => {}
        other => problems.push(format!("{what} echo-key = {other:?}")),
    }
    match md.get_bin("echo-bin-bin") {
        Some(v) if v == BIN_VALUE => {}
        other => problems.push(format!("{what} echo-bin-bin = {other:?}")),
    }
}

/// Whether the server saw the protocol this client was told to speak (`PROTOCOL_HEADER`:
/// every server that can tell reports it on a call with `echo-*` metadata; the gRPC-only
/// peers' servers, grpcio, grpc-js, grpc-go and tonic, cannot). Present, the header
/// must name it; absent, this client must speak gRPC: only the gRPC-only peers' servers
/// omit it, and they answer nothing else. So a row that speaks another protocol than its
/// own fails against every server that answers it.
fn spoke(protocol: Protocol, headers: &Metadata, problems: &mut Vec<String>) {
    let want = protocol.name();
    let got: Vec<String> = headers
        .get_all(PROTOCOL_HEADER)
        .into_iter()
        .map(|v| match v {
            MetadataValue::Ascii(s) => s,
            MetadataValue::Binary(b) => format!("{b:?}"),
        })
        .collect();
    match got.as_slice() {
        [v] if v == want => {}
        [] if protocol == Protocol::Grpc => {}
        [] => problems.push(format!(
            "the server sent no {PROTOCOL_HEADER} header, but this client was told to speak \
             {want} (only the gRPC-only peers' servers send none, and they answer gRPC alone)"
        )),
        _ => problems.push(format!(
            "the server saw {PROTOCOL_HEADER} {got:?}, but this client was told to speak {want}"
        )),
    }
}

fn metadata(chan: &Channel, protocol: Protocol) -> Check {
    rillrpc::runtime::block_on(async {
        let mut md = Metadata::new();
        md.append_ascii("echo-key", "value").map_err(|e| e.0)?;
        md.append_bin("echo-bin-bin", BIN_VALUE).map_err(|e| e.0)?;
        let mut call = chan
            .open(PING_PONG, Shape::Unary, opts().metadata(md))
            .map_err(st)?;
        call.send(request(b"md", 0)).await.map_err(st)?;
        call.close_send();
        let headers = call.headers().await.map_err(st)?;
        let m = call
            .recv()
            .await
            .map_err(st)?
            .ok_or("no response message")?;
        response(&m)?;
        expect_end(&mut call).await?;
        let trailers = call.trailers().cloned().unwrap_or_default();
        let mut problems = Vec::new();
        has_echoed("headers", &headers, &mut problems);
        has_echoed("trailers", &trailers, &mut problems);
        spoke(protocol, &headers, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    })
}

/// The shape_rules sub-checks, in the order they run.
const RULES: [&str; 3] = ["zero", "two", "two-requests"];
/// Methods of the grpc-go server's matrix.Rules service (go/echo/rules.go): unary for the
/// client, answered with zero, one and two response messages.
const RULES_ZERO: &str = "/matrix.Rules/Zero";
const RULES_ONE: &str = "/matrix.Rules/One";
const RULES_TWO: &str = "/matrix.Rules/Two";

/// A shorter deadline than the six checks': grpcio's and grpc-js's clients (information
/// cells) wait for it on a unary call answered twice, and every one of them adds to the
/// matrix's time. A rillrpc call here ends in milliseconds.
fn rules_opts() -> CallOptions {
    CallOptions::new().timeout(Duration::from_secs(3))
}

/// The second request of two-requests comes this long after the first: a server that takes
/// the first without waiting for the half-close (where a second one would show) has ended
/// the call by then, so it fails every run, not only when both requests arrive together.
const REQUEST_GAP: Duration = Duration::from_millis(50);

/// Runs the named shape_rules sub-checks, each printing `PASS|FAIL shape_rules/<sub>: code
/// <n> ...` (the table shows that code); returns the exit status.
fn shape_rules(chan: &Channel, subs: &str) -> i32 {
    let mut failed = 0;
    for sub in subs.split(',').filter(|s| !s.is_empty()) {
        let got = match sub {
            "zero" => rillrpc::runtime::block_on(misbehaving(chan, RULES_ZERO)),
            "two" => rillrpc::runtime::block_on(misbehaving(chan, RULES_TWO)),
            "two-requests" => two_requests(chan),
            other => usage(&format!("unknown shape_rules sub-check {other}")),
        };
        let line = match got {
            Ok(s) if s.code() == Code::Unimplemented => {
                format!("PASS shape_rules/{sub}: {}", code(&s))
            }
            Ok(s) => {
                failed += 1;
                format!("FAIL shape_rules/{sub}: {}, want code 12", code(&s))
            }
            Err(why) => {
                failed += 1;
                format!("FAIL shape_rules/{sub}: {why}")
            }
        };
        println!("{line}");
    }
    i32::from(failed > 0)
}

/// What the table shows: the code, and the message or, for OK, how many responses came.
fn code(s: &Status) -> String {
    if s.is_ok() {
        format!("code 0 ({})", s.message())
    } else {
        format!("code {} {:?}", s.code() as u32, s.message())
    }
}

/// A unary call to a method whose server breaks the single-response rule: the status this
/// client reports. One, answered by the rule, must succeed first: a server without the
/// Rules service answers UNIMPLEMENTED too, and must not pass for one that breaks it.
async fn misbehaving(chan: &Channel, method: &str) -> Result<Status, String> {
    chan.unary(RULES_ONE, request(b"one", 0), rules_opts())
        .await
        .map_err(|s| format!("the control call {RULES_ONE}: {}", code(&s)))?;
    match chan.unary(method, request(b"rules", 0), rules_opts()).await {
        Ok(_) => Ok(Status::new(Code::Ok, "responses: 1")),
        Err(s) => Ok(s),
    }
}

/// Two requests and the half-close on the single-request PingPong, sent through a bidi
/// call (a unary one would refuse the second): the status the server ends it with.
fn two_requests(chan: &Channel) -> Result<Status, String> {
    let mut call = chan
        .open(PING_PONG, Shape::Bidi, rules_opts())
        .map_err(|s| code(&s))?;
    // A send refused because the server already ended the call leaves the reason to finish.
    let sent = rillrpc::runtime::block_on(call.send(request(b"first", 0))).is_ok();
    std::thread::sleep(REQUEST_GAP);
    rillrpc::runtime::block_on(async {
        if sent {
            let _ = call.send(request(b"second", 0)).await;
        }
        call.close_send();
        let mut n = 0;
        while let Ok(Some(_)) = call.recv().await {
            n += 1;
        }
        let s = call.finish().await;
        Ok(if s.is_ok() {
            Status::new(Code::Ok, format!("responses: {n}"))
        } else {
            s
        })
    })
}
