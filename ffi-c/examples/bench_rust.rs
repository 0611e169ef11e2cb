//! The echo workloads of bench/c/bench_client.c on the Rust core API, for the C/Rust
//! ratios of bench/c/run.sh:
//!     cargo run --release -p rillrpc-ffi --example bench_rust -- TARGET WORKLOAD SECONDS
//! Both run on the core's private runtime, the driving code on the calling thread.

use bytes::Bytes;
use rillrpc::{CallOptions, Channel, Receive, TrySendError};
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

const PAYLOAD: &[u8; 64] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\0";

fn request(count: i32) -> Bytes {
    let mut v = vec![0x0a, 64];
    v.extend_from_slice(PAYLOAD);
    if count != 0 {
        v.push(0x10);
        let mut c = count as u64;
        while c >= 0x80 {
            v.push((c as u8) | 0x80);
            c >>= 7;
        }
        v.push(c as u8);
    }
    Bytes::from(v)
}

async fn unary_once(ch: &Channel, req: &Bytes) {
    unary_once_with(ch, req, CallOptions::new()).await
}

async fn unary_once_with(ch: &Channel, req: &Bytes, opts: CallOptions) {
    let mut call = ch
        .open("/echo.TestService/PingPong", rillrpc::Shape::Unary, opts)
        .unwrap();
    call.send(req.clone()).await.unwrap();
    call.close_send();
    call.recv().await.unwrap().unwrap();
    let s = call.finish().await;
    assert!(s.is_ok(), "{s:?}");
}

async fn unary1(ch: &Channel, secs: f64) -> f64 {
    unary1_with(ch, secs, CallOptions::new).await
}

/// unary1, each call with a 10 s deadline it never reaches.
async fn unary1dl(ch: &Channel, secs: f64) -> f64 {
    unary1_with(ch, secs, || {
        CallOptions::new().timeout(Duration::from_secs(10))
    })
    .await
}

async fn unary1_with(ch: &Channel, secs: f64, opts: impl Fn() -> CallOptions) -> f64 {
    let req = request(0);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while Instant::now() < end {
        for _ in 0..100 {
            unary_once_with(ch, &req, opts()).await;
            n += 1;
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

async fn unary64(ch: &Channel, secs: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (ch, done) = (ch.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let req = request(0);
            while Instant::now() < end {
                unary_once(&ch, &req).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

/// `unary64` with the 64 calls driven by the calling thread (one future polling them all,
/// outside the runtime's workers), as a C event loop drives them: not a row of the table,
/// a diagnostic that separates the cost of driving calls from another thread from the
/// cost of the C ABI.
async fn unary64_outside(ch: &Channel, secs: f64) -> f64 {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let req = request(0);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut calls = FuturesUnordered::new();
    for _ in 0..64 {
        calls.push(unary_once(ch, &req));
    }
    let mut n = 0u64;
    while calls.next().await.is_some() {
        n += 1;
        if Instant::now() < end {
            calls.push(unary_once(ch, &req));
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

async fn bidi(ch: &Channel, secs: f64) -> f64 {
    let req = request(0);
    let mut call = ch
        .open(
            "/echo.TestService/Echo",
            rillrpc::Shape::Bidi,
            CallOptions::new(),
        )
        .unwrap();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let (mut sent, mut received, mut sending) = (0u64, 0u64, true);
    let mut buf = Vec::new();
    poll_fn(|cx| loop {
        let mut progress = false;
        while sending && sent - received < 256 {
            if call.poll_send_ready(cx).is_pending() {
                break;
            }
            match call.try_send(req.clone()) {
                Ok(()) => {
                    sent += 1;
                    progress = true;
                }
                Err(TrySendError::Full(_)) => break,
                Err(TrySendError::Closed(s)) => panic!("{s:?}"),
            }
        }
        if sending && Instant::now() >= end {
            call.close_send();
            sending = false;
        }
        buf.clear();
        match call.poll_recv_batch(cx, &mut buf, 256) {
            Poll::Ready(Ok(0)) => return Poll::Ready(()),
            Poll::Ready(Ok(n)) => {
                received += n as u64;
                progress = true;
            }
            Poll::Ready(Err(s)) => panic!("{s:?}"),
            Poll::Pending => {}
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await;
    let rate = received as f64 / t0.elapsed().as_secs_f64();
    call.finish().await;
    rate
}

async fn stream(ch: &Channel, secs: f64) -> f64 {
    let mut call = ch
        .open(
            "/echo.TestService/EchoServer",
            rillrpc::Shape::ServerStreaming,
            CallOptions::new(),
        )
        .unwrap();
    call.send(request(1 << 30)).await.unwrap();
    call.close_send();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let (mut n, mut buf) = (0u64, Vec::new());
    loop {
        let stop = n + 1000;
        while n < stop {
            buf.clear();
            let got = poll_fn(|cx| call.poll_recv_batch(cx, &mut buf, 256))
                .await
                .unwrap();
            assert!(got > 0, "the stream ended early");
            n += got as u64;
        }
        if Instant::now() >= end {
            break;
        }
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    call.cancel();
    rate
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: bench_rust TARGET unary1|unary1dl|unary64|bidi|stream SECONDS");
        std::process::exit(2);
    }
    let secs: f64 = a[3].parse().expect("SECONDS");
    let rate = rillrpc::runtime::block_on(async {
        let ch = Channel::new(&a[1]).unwrap();
        unary1(&ch, 0.2).await;
        let r = match a[2].as_str() {
            "unary1" => unary1(&ch, secs).await,
            "unary1dl" => unary1dl(&ch, secs).await,
            "unary64" => unary64(&ch, secs).await,
            "unary64_outside" => unary64_outside(&ch, secs).await,
            "bidi" => bidi(&ch, secs).await,
            "stream" => stream(&ch, secs).await,
            w => panic!("unknown workload {w}"),
        };
        ch.close();
        r
    });
    println!("{} {rate:.0}", a[2]);
}
