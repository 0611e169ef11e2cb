//! Reproduces a core bug seen as `timeout_on_sleeping_server` failing against grpc-go's
//! server: when a call's deadline has passed and the server's RST_STREAM(CANCEL) (what
//! grpc-go's server sends at the deadline) arrives before the client's own deadline timer
//! has fired, the call ends CANCELLED instead of DEADLINE_EXCEEDED. grpc-go's client maps
//! a CANCEL reset that comes after its deadline to DEADLINE_EXCEEDED.
//!
//! Fixed in the core (call.rs, past_deadline); this guards it.
//!
//! A second cause, seen once in 100 calls under CI load: the call took its deadline after
//! its request had left, so a server that got the request quickly reached its own deadline
//! first, and its reset looked early. The deadline is now taken before the request is
//! built.

use rillrpc::{Bytes, CallOptions, Channel, Code, ServerBuilder, ServerOptions, Shape};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reset_after_the_deadline_is_deadline_exceeded() {
    let server = Arc::new(
        ServerBuilder::new(ServerOptions::default())
            .register("/t.S/M", Shape::Bidi)
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    // The server resets each call exactly at its deadline, on a thread of its own with a
    // precise (blocking) timer, as grpc-go's server does.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            while let Some(mut call) = server.accept().await {
                if let Some(d) = call.deadline() {
                    let left = d
                        .into_std()
                        .saturating_duration_since(std::time::Instant::now());
                    std::thread::sleep(left);
                }
                call.cancel();
            }
        });
    });
    let mut cancelled = 0;
    for _ in 0..100 {
        let opts = CallOptions::new().timeout(Duration::from_millis(1));
        let mut call = ch.open("/t.S/M", rillrpc::Shape::Unary, opts).unwrap();
        let _ = call.send(Bytes::from_static(b"x")).await;
        match call.recv().await {
            Err(s) if s.code() == Code::DeadlineExceeded => {}
            Err(s) if s.code() == Code::Cancelled => cancelled += 1,
            other => panic!("unexpected end: {other:?}"),
        }
    }
    assert_eq!(
        cancelled, 0,
        "calls past their deadline that ended CANCELLED, of 100"
    );
}
