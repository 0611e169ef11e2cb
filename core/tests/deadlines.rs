//! Deadlines of the calls that start no writer task (a unary request written at once, a
//! server's single answer), which one task per thread watches beside each other's.

mod common;

use common::*;
use rill_testkit::rill_echo::PING_PONG;
use rillrpc::{CallOptions, Channel, Code, Server, Shape, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A server whose unary handler answers a request of payload "ping" and leaves any other
/// unanswered, reporting how the call ended on its side.
fn silent_server() -> (Arc<Server>, mpsc::UnboundedReceiver<Status>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = server_with(move |mut call| {
        let tx = tx.clone();
        async move {
            let m = call.recv().await.unwrap().unwrap();
            if m == req(b"ping", 0) {
                call.send(m).await.unwrap();
                let _ = call.finish(Status::ok());
                return;
            }
            let s = std::future::poll_fn(|cx| call.poll_cancelled(cx)).await;
            let _ = tx.send(s);
        }
    });
    (server, rx)
}

/// A channel to `addr` whose connection is up, so that its next calls open on the
/// caller's thread.
async fn connected(addr: std::net::SocketAddr) -> Channel {
    let ch = Channel::new(&format!("http://{addr}")).unwrap();
    ch.unary(PING_PONG, req(b"ping", 0), CallOptions::new())
        .await
        .unwrap();
    ch
}

/// An HTTP/2 server that answers a unary request of payload "ping" and holds any other
/// unanswered, reporting the reason its client reset it with: a peer that does not
/// enforce the deadline itself, so that only our client's does.
async fn holding_server() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<h2::Reason>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(r) = conn.accept().await {
                    let (request, respond) = r.unwrap();
                    tokio::spawn(hold_or_answer(request, respond, tx.clone()));
                }
            });
        }
    });
    (addr, rx)
}

async fn hold_or_answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<rillrpc::Bytes>,
    reset: mpsc::UnboundedSender<h2::Reason>,
) {
    let mut body = request.into_body();
    let mut got = Vec::new();
    while let Some(d) = body.data().await {
        let d = d.unwrap();
        let _ = body.flow_control().release_capacity(d.len());
        got.extend_from_slice(&d);
    }
    if got == frame(0, &req(b"ping", 0)) {
        let head = http::Response::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let mut send = respond.send_response(head, false).unwrap();
        send.send_data(got.into(), false).unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        send.send_trailers(trailers).unwrap();
        return;
    }
    if let Ok(reason) = std::future::poll_fn(|cx| respond.poll_reset(cx)).await {
        let _ = reset.send(reason);
    }
}

/// Calls with deadlines, written at once, to a server that enforces none: each fails with
/// DEADLINE_EXCEEDED once its own deadline passes, and resets its stream with CANCEL. The
/// second call's deadline comes before the first's, which the watcher already sleeps
/// for: it must wake for the earlier one.
#[tokio::test]
async fn calls_written_at_once_end_at_their_own_deadlines() {
    let (addr, mut reset) = holding_server().await;
    let ch = connected(addr).await;
    let timed = |ms| CallOptions::new().timeout(Duration::from_millis(ms));
    let start = Instant::now();
    // Both calls start on this thread: one watcher has both deadlines, the later first.
    let mut late = ch
        .open_with_request(PING_PONG, Shape::Unary, timed(3000), &req(b"late", 0))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut early = ch
        .open_with_request(PING_PONG, Shape::Unary, timed(300), &req(b"early", 0))
        .unwrap();
    let e = early.recv().await.unwrap_err();
    let early_took = start.elapsed();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(early_took >= Duration::from_millis(340), "{early_took:?}");
    assert!(
        early_took < Duration::from_millis(2500),
        "the earlier deadline waited for the later one: {early_took:?}"
    );
    let l = late.recv().await.unwrap_err();
    assert_eq!(l.code(), Code::DeadlineExceeded, "{l:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(3000),
        "{:?}",
        start.elapsed()
    );
    for _ in 0..2 {
        let r = tokio::time::timeout(Duration::from_secs(10), reset.recv())
            .await
            .expect("each stream is reset")
            .unwrap();
        assert_eq!(r, h2::Reason::CANCEL);
    }
    // The connection is still good.
    ch.unary(PING_PONG, req(b"ping", 0), CallOptions::new())
        .await
        .unwrap();
}

/// The server watches a unary call's deadline (its `grpc-timeout`) when its handler never
/// answers and the client does not enforce one: the trailers say DEADLINE_EXCEEDED, and
/// the handler sees its call end so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ends_an_unanswered_unary_call_at_its_deadline() {
    let (server, mut ended) = silent_server();
    let sr = raw_client(server.local_addr()).await;
    let head = grpc_head(PING_PONG, Some("300m"));
    let mut sr = sr.ready().await.unwrap();
    let (resp, mut send) = sr.send_request(head, false).unwrap();
    send.send_data(frame(0, &req(b"silence", 0)).into(), true)
        .unwrap();
    let (head, mut body) = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("the server answers at its deadline")
        .unwrap()
        .into_parts();
    // Trailers-Only (the status in the head) or trailers after the head.
    let trailers = body.trailers().await.unwrap();
    let status = match &trailers {
        Some(t) => t.get("grpc-status"),
        None => head.headers.get("grpc-status"),
    };
    assert_eq!(
        status.map(|v| v.as_bytes()),
        Some(&b"4"[..]),
        "{head:?} {trailers:?}"
    );
    let s = tokio::time::timeout(Duration::from_secs(10), ended.recv())
        .await
        .expect("the handler sees its call end")
        .unwrap();
    assert_eq!(s.code(), Code::DeadlineExceeded, "{s:?}");
}

/// A thread's deadlines are watched by a task of the runtime it ran; once that runtime is
/// gone, the next call with a deadline on the thread gets a watcher on the new one.
#[test]
fn deadlines_are_watched_again_once_the_watchers_runtime_is_gone() {
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, _reset) = server_rt.block_on(holding_server());
    for round in 0..2 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        held_call_times_out(&rt, addr, round);
    }
}

/// A thread that runs two runtimes by turns (a `block_on` of one, then of the other, both
/// alive) has a watcher on each. Before, the watcher spawned on the first runtime watched
/// the second's calls too, and while the first was not driven their deadlines never fired.
#[test]
fn a_thread_running_two_runtimes_by_turns_has_a_watcher_on_each() {
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, _reset) = server_rt.block_on(holding_server());
    let runtimes = [(); 2].map(|()| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    for round in 0..4 {
        held_call_times_out(&runtimes[round % 2], addr, round);
    }
}

/// On `rt`, a unary call with a 200 ms deadline that `holding_server` at `addr` holds
/// ends with DEADLINE_EXCEEDED.
fn held_call_times_out(rt: &tokio::runtime::Runtime, addr: std::net::SocketAddr, round: usize) {
    rt.block_on(async {
        let ch = connected(addr).await;
        let opts = CallOptions::new().timeout(Duration::from_millis(200));
        let call = ch.unary(PING_PONG, req(b"held", 0), opts);
        let r = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the deadline never fired"));
        assert_eq!(r.unwrap_err().code(), Code::DeadlineExceeded);
    });
}
