//! Our client against our server: the paths the peers do not reach, and regressions.

mod common;

use common::*;
use rill_testkit::rill_echo::ECHO_SERVER;
use rillrpc::{CallOptions, Channel, ServerOptions};
use std::time::Duration;

/// Regression: a long server stream of small messages stalled: a sender woken as "ready"
/// found the queue "full", spun without yielding, and starved the writer task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_server_stream_of_small_messages_completes() {
    let server = rill_server(ServerOptions::default());
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let n = 200_000;
    let mut call = ch
        .server_streaming(ECHO_SERVER, req(b"0123456789abcdef", n), CallOptions::new())
        .await
        .unwrap();
    let mut got = 0;
    let r = tokio::time::timeout(Duration::from_secs(60), async {
        while call.recv().await.unwrap().is_some() {
            got += 1;
        }
    })
    .await;
    assert!(r.is_ok(), "stalled after {got} messages");
    assert_eq!(got, n);
}
