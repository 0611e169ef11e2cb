//! Issue 17: a burst of small messages must leave in few DATA frames, whoever sends them.
//!
//! h2 (0.4.20, tonic's) charges each DATA frame under 256 bytes that it holds unread
//! against a budget of max(25,600, window/2) bytes of overhead, and past it closes the
//! connection with GOAWAY(ENHANCE_YOUR_CALM, "too_many_data_frames"): a client that sends
//! one 23-byte frame per message fails whenever tonic's handler falls a little behind.
//! Whether it falls behind is a race, so these tests count frames on the wire instead of
//! waiting for the GOAWAY: tonic's end of each connection runs on a socket that counts the
//! frames it reads ([`rill_testkit::frames`]). Our client sends to tonic's server, and
//! tonic's client reads our server's replies, 200,000 small messages per call, in several
//! rounds on one connection; each round must take fewer than one DATA frame per 100
//! messages (23 bytes a message: the ideal is one frame per ~700 messages at the default
//! 16 KiB frame size, flow control cuts some short).

mod common;

use common::*;
use rill_testkit::echo::Request;
use rill_testkit::frames::{ConnCounts, FrameLog, FrameStats};
use rill_testkit::rill_echo::{ECHO, ECHO_CLIENT};
use rill_testkit::TestServiceClient;
use rillrpc::{Bytes, Call, CallOptions, Channel, Receive, ServerOptions, Status, TrySendError};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

const MESSAGES: usize = 200_000;
/// Rounds per test, on one connection: the budget is the connection's, and a sender that
/// coalesces only now and then would pass a single round by luck.
const ROUNDS: usize = 10;
/// A round may use fewer DATA frames than messages / MESSAGES_PER_FRAME.
const MESSAGES_PER_FRAME: usize = 100;
/// 16 bytes of payload: an 18-byte echo.Request, 23 bytes framed, as in the issue.
const PAYLOAD: &[u8] = b"0123456789abcdef";

fn small() -> Bytes {
    req(PAYLOAD, 0)
}

/// Generous: a debug build on a loaded 2-core machine moves 200,000 messages in seconds.
fn opts() -> CallOptions {
    CallOptions::new().timeout(Duration::from_secs(120))
}

/// Fails unless the round's MESSAGES crossed in few enough DATA frames: `d` is the round's
/// counts at the receiving end (tonic's server reading our client, tonic's client reading
/// our server), whose `inbound` holds the sender's frames.
fn assert_coalesced(what: &str, round: usize, d: &FrameStats) {
    let frames = d.inbound.data();
    let limit = (MESSAGES / MESSAGES_PER_FRAME) as u64;
    println!(
        "{what} round {round}: {frames} DATA frames for {MESSAGES} messages ({:.4} per message); {d}",
        frames as f64 / MESSAGES as f64
    );
    assert!(
        frames < limit,
        "{what}, round {round}: {frames} DATA frames for {MESSAGES} messages \
         (want < {limit}, one per {MESSAGES_PER_FRAME} messages): {d}"
    );
}

/// No GOAWAY with an error code crossed the connection (a graceful one may, at the end).
fn assert_no_goaway_error(conn: &ConnCounts) {
    let s = conn.snapshot();
    assert!(
        s.inbound.goaway_error().is_none() && s.outbound.goaway_error().is_none(),
        "a GOAWAY with an error crossed the connection: {s}"
    );
}

/// Which thread sends, and how.
#[derive(Clone, Copy, Debug)]
enum Sender {
    /// A tokio task awaiting each send (client streaming: `call.send(m).await`; bidi, whose
    /// call the reader task shares: `try_send`, awaiting `poll_send_ready` when full).
    Task,
    /// A thread of its own, outside any runtime, on a channel of the core's private
    /// runtime: `try_send_ref`, parking on `poll_send_ready` when full — what the bindings
    /// do from Python's, Node's or C's thread.
    ForeignThread,
    /// A thread of its own as above, blocking on each `send` with
    /// `rillrpc::runtime::block_on` (a synchronous wrapper's way; client streaming only).
    ForeignBlockOn,
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn lock(call: &Mutex<Call>) -> std::sync::MutexGuard<'_, Call> {
    call.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends `n` copies of `msg` from the calling (non-runtime) thread, as a binding does.
fn send_from_this_thread(call: &Mutex<Call>, msg: &[u8], n: usize) -> Result<(), Status> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut sent = 0;
    while sent < n {
        if lock(call).try_send_ref(msg)? {
            sent += 1;
            continue;
        }
        if lock(call).poll_send_ready(&mut cx).is_pending() {
            std::thread::park();
        }
    }
    Ok(())
}

/// Sends the burst on a call shared with a reader, from `sender`, then half-closes. The
/// lock is only held for one poll or one try at a time, so the reader goes on reading —
/// except by `ForeignBlockOn`, which holds it throughout (client streaming: no reader).
async fn send_shared(call: Arc<Mutex<Call>>, sender: Sender) -> Result<(), Status> {
    match sender {
        Sender::Task => {
            let m = small();
            for _ in 0..MESSAGES {
                loop {
                    let r = lock(&call).try_send(m.clone());
                    match r {
                        Ok(()) => break,
                        Err(TrySendError::Full(_)) => {
                            poll_fn(|cx| lock(&call).poll_send_ready(cx)).await;
                        }
                        Err(TrySendError::Closed(s)) => return Err(s),
                    }
                }
            }
            lock(&call).close_send();
            Ok(())
        }
        Sender::ForeignThread => {
            on_a_thread(move || {
                send_from_this_thread(&call, &small(), MESSAGES)?;
                lock(&call).close_send();
                Ok(())
            })
            .await
        }
        Sender::ForeignBlockOn => {
            on_a_thread(move || {
                let m = small();
                let c = lock(&call);
                for _ in 0..MESSAGES {
                    rillrpc::runtime::block_on(c.send(m.clone()))?;
                }
                c.close_send();
                Ok(())
            })
            .await
        }
    }
}

/// Runs `f` on a new thread, outside any runtime (unlike `spawn_blocking`'s threads), and
/// waits for it without blocking the test's runtime.
async fn on_a_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("the thread panicked")
}

/// A channel to a counted tonic echo server. A foreign-thread sender gets a channel made
/// outside any runtime, so on the core's private runtime, as the bindings' channels are;
/// a task's channel runs on the test's runtime.
async fn counted_tonic(sender: Sender) -> (Channel, FrameLog) {
    let (addr, log) = counted_tonic_server().await;
    let target = format!("http://{addr}");
    let ch = match sender {
        Sender::Task => Channel::new(&target).unwrap(),
        Sender::ForeignThread | Sender::ForeignBlockOn => {
            on_a_thread(move || Channel::new(&target).unwrap()).await
        }
    };
    (ch, log)
}

async fn client_streaming_rounds(sender: Sender) {
    let (ch, log) = counted_tonic(sender).await;
    for round in 0..ROUNDS {
        let before = log.connections().first().map(|c| c.snapshot());
        let mut call = ch
            .open(ECHO_CLIENT, rillrpc::Shape::ClientStreaming, opts())
            .unwrap();
        let sent = match sender {
            Sender::Task => {
                let m = small();
                let mut r = Ok(());
                for _ in 0..MESSAGES {
                    r = call.send(m.clone()).await;
                    if r.is_err() {
                        break;
                    }
                }
                call.close_send();
                r
            }
            Sender::ForeignThread | Sender::ForeignBlockOn => {
                let shared = Arc::new(Mutex::new(call));
                let r = send_shared(shared.clone(), sender).await;
                call = Arc::try_unwrap(shared)
                    .ok()
                    .expect("the sender let go of the call")
                    .into_inner()
                    .unwrap();
                r
            }
        };
        // A failed send says little; the call's status says why (UNAVAILABLE after a GOAWAY).
        let r = call.recv().await;
        if let Err(s) = sent {
            panic!("round {round}: sending failed: {s:?}; the call: {r:?}");
        }
        let r = r
            .unwrap_or_else(|s| panic!("round {round}: the call failed: {s:?}"))
            .expect("the response");
        assert_eq!(
            resp_payload(&r),
            (MESSAGES * PAYLOAD.len()).to_string().as_bytes()
        );
        assert!(call.finish().await.is_ok());
        let now = log.only().snapshot();
        let d = before.map_or(now.clone(), |b| now.since(&b));
        assert_coalesced(&format!("client streaming from a {sender:?}"), round, &d);
    }
    assert_no_goaway_error(&log.only());
}

async fn bidi_rounds(sender: Sender) {
    let (ch, log) = counted_tonic(sender).await;
    for round in 0..ROUNDS {
        let before = log.connections().first().map(|c| c.snapshot());
        let call = Arc::new(Mutex::new(ch.bidi(ECHO, opts()).unwrap()));
        // The echoes are read as they come, by a task of their own.
        let reader = {
            let call = call.clone();
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(1024);
                let mut n = 0usize;
                loop {
                    batch.clear();
                    let k = poll_fn(|cx| lock(&call).poll_recv_batch(cx, &mut batch, 1024)).await?;
                    if k == 0 {
                        return Ok::<_, Status>(n);
                    }
                    for m in &batch {
                        assert_eq!(resp_payload(m), PAYLOAD);
                    }
                    n += k;
                }
            })
        };
        let sent = send_shared(call.clone(), sender).await;
        let n = reader.await.unwrap();
        if let Err(s) = sent {
            panic!("round {round}: sending failed: {s:?}; the call: {n:?}");
        }
        let n = n.unwrap_or_else(|s| panic!("round {round}: the call failed: {s:?}"));
        assert_eq!(n, MESSAGES, "round {round}: echoes");
        let conn = log.only();
        let now = conn.snapshot();
        let d = before.map_or(now.clone(), |b| now.since(&b));
        assert_coalesced(&format!("bidi from a {sender:?}"), round, &d);
    }
    assert_no_goaway_error(&log.only());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_burst_to_tonic_from_a_task_is_coalesced() {
    client_streaming_rounds(Sender::Task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_burst_to_tonic_from_a_foreign_thread_is_coalesced() {
    client_streaming_rounds(Sender::ForeignThread).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_burst_to_tonic_blocking_on_each_send_is_coalesced() {
    client_streaming_rounds(Sender::ForeignBlockOn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_burst_to_tonic_from_a_task_is_coalesced() {
    bidi_rounds(Sender::Task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_burst_to_tonic_from_a_foreign_thread_is_coalesced() {
    bidi_rounds(Sender::ForeignThread).await;
}

/// tonic's client on a counted connection to our echo server.
async fn counted_tonic_client_to_rill() -> (TestServiceClient<tonic::transport::Channel>, FrameLog)
{
    let server = rill_server(ServerOptions::default());
    let log = FrameLog::new();
    let ch = rill_testkit::frames::tonic_channel(server.local_addr(), &log)
        .await
        .unwrap();
    // The server lives as long as its accept loop's task holds it.
    (TestServiceClient::new(ch), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stream_burst_from_rill_to_tonic_is_coalesced() {
    let (mut c, log) = counted_tonic_client_to_rill().await;
    for round in 0..ROUNDS {
        let before = log.connections().first().map(|c| c.snapshot());
        let mut s = c
            .echo_server(Request {
                payload: PAYLOAD.to_vec(),
                count: MESSAGES as i32,
            })
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(m) = s.message().await.unwrap() {
            assert_eq!(m.payload, PAYLOAD);
            n += 1;
        }
        assert_eq!(n, MESSAGES);
        let now = log.only().snapshot();
        let d = before.map_or(now.clone(), |b| now.since(&b));
        assert_coalesced("server streaming from rill", round, &d);
    }
    assert_no_goaway_error(&log.only());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_burst_from_rill_to_tonic_is_coalesced() {
    let (mut c, log) = counted_tonic_client_to_rill().await;
    for round in 0..ROUNDS {
        let before = log.connections().first().map(|c| c.snapshot());
        let reqs = tokio_stream::iter((0..MESSAGES).map(|_| Request {
            payload: PAYLOAD.to_vec(),
            count: 0,
        }));
        let mut s = c.echo(reqs).await.unwrap().into_inner();
        let mut n = 0;
        while let Some(m) = s.message().await.unwrap() {
            assert_eq!(m.payload, PAYLOAD);
            n += 1;
        }
        assert_eq!(n, MESSAGES);
        let now = log.only().snapshot();
        let d = before.map_or(now.clone(), |b| now.since(&b));
        assert_coalesced("bidi replies from rill", round, &d);
    }
    assert_no_goaway_error(&log.only());
}

/// The count must see a sender that frames each message alone: tonic's own client, fed by
/// a stream that yields a message a millisecond, writes a DATA frame per message, and the
/// server's count says so (a round with one frame a message fails `assert_coalesced`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_count_sees_a_data_frame_per_message_sent_alone() {
    let (addr, log) = counted_tonic_server().await;
    let client_log = FrameLog::new();
    let mut c = TestServiceClient::new(
        rill_testkit::frames::tonic_channel(addr, &client_log)
            .await
            .unwrap(),
    );
    const N: usize = 200;
    let reqs = async_stream_of(N);
    let r = c.echo_client(reqs).await.unwrap().into_inner();
    assert_eq!(r.payload, (N * PAYLOAD.len()).to_string().as_bytes());
    let s = log.only().snapshot();
    println!("{s}");
    assert!(
        s.inbound.data() as usize >= N,
        "one DATA frame per message was written, the counter saw {}",
        s.inbound.data()
    );
}

/// `n` requests, each yielded only after the previous one had time to be written.
fn async_stream_of(n: usize) -> impl tokio_stream::Stream<Item = Request> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for _ in 0..n {
            if tx
                .send(Request {
                    payload: PAYLOAD.to_vec(),
                    count: 0,
                })
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
