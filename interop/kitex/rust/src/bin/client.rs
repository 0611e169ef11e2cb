//! kitex-echo-rill-client: kitex-client's checks (interop/kitex/README.md) on the rillrpc
//! client, against a Kitex server, over one of its transports:
//! - `grpc` (the default): every call is `application/grpc+thrift`
//!   (`CallOptions::content_subtype`), its messages Thrift Binary as Kitex sends them;
//! - `ttheader`: streaming calls over TTHeader Streaming, PingPong as a TTHeader-framed
//!   Thrift PingPong request (`Protocol::Ttheader`), as kitex-client's `--transport
//!   ttheader` calls them.
//!
//!     kitex-echo-rill-client --target HOST:PORT [--transport grpc|ttheader] [--check NAME[,NAME]]
//!
//! Prints `PASS <check>` or `FAIL <check>: <why>` per check; exits 1 if any failed.
//!
//! The destination service is named `echo`, as kitex-client names it (`ChannelOptions::
//! authority`: `:authority` over gRPC, ToService over TTHeader).

use std::time::Duration;

use rill_kitex::echo::{decode, encode, PingPongArgs, PingPongResult, Request, Response};
use rill_kitex::{ECHO, ECHO_CLIENT, ECHO_SERVER, EXTRA_COUNT_KEY, PING_PONG, THRIFT};
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

const CHECKS: [(&str, CheckFn); 7] = [
    ("unary", unary),
    ("server_streaming", server_streaming),
    ("client_streaming", client_streaming),
    ("bidi", bidi),
    ("error_status", error_status),
    ("metadata", metadata),
    ("cancel", cancel),
];

fn main() {
    let (mut target, mut only) = (None, None);
    let mut protocol = rillrpc::Protocol::Grpc;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--target", Some(v)) => target = Some(v),
            ("--check", Some(v)) => only = Some(v),
            ("--transport", Some(v)) if v == "grpc" => protocol = rillrpc::Protocol::Grpc,
            ("--transport", Some(v)) if v == "ttheader" => protocol = rillrpc::Protocol::Ttheader,
            _ => usage(&format!("bad argument {a}")),
        }
    }
    let target = target.unwrap_or_else(|| usage("--target is required"));
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
        None => CHECKS.iter().map(|(n, _)| n.to_string()).collect(),
    };
    let mut failed = false;
    for name in names {
        let result = match CHECKS.iter().find(|(n, _)| *n == name) {
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
    let names: Vec<&str> = CHECKS.iter().map(|(n, _)| *n).collect();
    eprintln!(
        "kitex-echo-rill-client: {msg}\nusage: kitex-echo-rill-client --target HOST:PORT [--transport grpc|ttheader] [--check {}]",
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
