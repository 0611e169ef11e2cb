//! Our client against our server: the paths the peers do not reach, and regressions.

mod common;

use common::*;
use prost::Message as _;
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

/// A bidi call to `server`'s echo method that compresses what it sends with gzip.
fn gzip_echo(server: &rillrpc::Server) -> rillrpc::Call {
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    ch.open(
        rill_testkit::rill_echo::ECHO,
        rillrpc::Shape::Bidi,
        CallOptions::new().compression(rillrpc::Encoding::Gzip),
    )
    .unwrap()
}

#[tokio::test]
async fn a_handler_that_drops_the_call_ends_it_as_unknown() {
    let server = server_with(|call| async move { drop(call) });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let err = ch
        .unary(
            rill_testkit::rill_echo::PING_PONG,
            req(b"", 0),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), rillrpc::Code::Unknown);
    assert!(err.message().contains("without finishing"), "{err}");
}

#[tokio::test]
async fn server_cancel_reaches_the_client_as_cancelled() {
    let server = server_with(|mut call| async move {
        let _ = call.recv().await;
        call.send(rillrpc::Bytes::from_static(b"one"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        call.cancel();
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let mut call = ch
        .bidi(rill_testkit::rill_echo::ECHO, CallOptions::new())
        .unwrap();
    call.send(req(b"x", 0)).await.unwrap();
    assert!(call.recv().await.unwrap().is_some());
    let err = call.recv().await.unwrap_err();
    assert_eq!(err.code(), rillrpc::Code::Cancelled, "{err}");
}

#[tokio::test]
async fn deadline_is_seen_on_both_sides() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = server_with(move |call| {
        let tx = tx.clone();
        async move {
            assert!(call.time_remaining().unwrap() <= Duration::from_millis(300));
            let s = std::future::poll_fn(|cx| call.poll_cancelled(cx)).await;
            let _ = tx.send(s);
        }
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let mut call = ch
        .bidi(
            rill_testkit::rill_echo::ECHO,
            CallOptions::new().timeout(Duration::from_millis(300)),
        )
        .unwrap();
    let err = call.recv().await.unwrap_err();
    assert_eq!(err.code(), rillrpc::Code::DeadlineExceeded);
    let seen = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            seen.code(),
            rillrpc::Code::DeadlineExceeded | rillrpc::Code::Cancelled
        ),
        "{seen:?}"
    );
}

#[tokio::test]
async fn send_after_finish_is_refused() {
    let server = rill_server(ServerOptions::default());
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let mut call = ch
        .server_streaming(ECHO_SERVER, req(b"a", 1), CallOptions::new())
        .await
        .unwrap();
    assert!(call.finish().await.is_ok());
    assert!(call.send(req(b"late", 0)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_bounds_the_writer() {
    // The server streams far more than the windows and queues hold; the client reads
    // nothing for a while. The handler must be held back by flow control: it cannot have
    // queued everything.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = server_with(move |mut call| {
        let tx = tx.clone();
        async move {
            let _ = call.recv().await;
            let chunk = rillrpc::Bytes::from(vec![0u8; 64 * 1024]);
            let mut sent = 0usize;
            while sent < 256 << 20 {
                if tokio::time::timeout(Duration::from_millis(500), call.send(chunk.clone()))
                    .await
                    .is_err()
                {
                    break;
                }
                sent += chunk.len();
            }
            let _ = tx.send(sent);
        }
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let call = ch
        .server_streaming(ECHO_SERVER, req(b"", 0), CallOptions::new())
        .await
        .unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    // Windows (1 MiB stream, 4 MiB connection) + h2's send buffer + our queue: a few MiB.
    assert!(
        sent < 16 << 20,
        "the writer queued {sent} bytes for a reader that reads nothing"
    );
    drop(call);
}

/// Issue 12: a stream whose client grants no window (SETTINGS_INITIAL_WINDOW_SIZE 0, as h2's
/// client sends it) holds the queue's least and no more: a handler sending 64-byte messages
/// waits after about 2 KiB of them. Its bound grew from 16 KiB (237 such messages, 22 KB
/// a stream for 2,000 stalled streams; tonic's server holds one message, 6 KB a stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_client_grants_no_window_holds_the_queues_least() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = server_with(move |mut call| {
        let tx = tx.clone();
        async move {
            let _ = call.recv().await;
            let msg = rillrpc::Bytes::from(vec![7u8; 64]);
            let mut sent = 0usize;
            while tokio::time::timeout(Duration::from_millis(300), call.send(msg.clone()))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                sent += 1;
            }
            let _ = tx.send(sent);
        }
    });
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (mut client, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, rillrpc::Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(conn);
    let head = http::Request::post(format!("http://rill{ECHO_SERVER}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(head, false).unwrap();
    body.send_data(frame(0, &req(b"", 0)).into(), true).unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    // 2 KiB of 69-byte frames, and the one that found room under the bound.
    assert!(
        (1..=31).contains(&sent),
        "the handler queued {sent} messages for a client that grants no window"
    );
    drop(response);
}

/// Regression: a client cancel that arrived while the server was writing failed the
/// handler's later sends but never reached `poll_cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cancel_mid_write_reaches_poll_cancelled() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = server_with(move |mut call| {
        let tx = tx.clone();
        async move {
            let _ = call.recv().await;
            let msg = rillrpc::Bytes::from(vec![1u8; 16]);
            let call = std::sync::Arc::new(call);
            let writer = call.clone();
            tokio::spawn(async move { while writer.send(msg.clone()).await.is_ok() {} });
            let s = std::future::poll_fn(|cx| call.poll_cancelled(cx)).await;
            let _ = tx.send(s);
        }
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let mut call = ch
        .server_streaming(ECHO_SERVER, req(b"", 0), CallOptions::new())
        .await
        .unwrap();
    for _ in 0..100 {
        call.recv().await.unwrap().unwrap();
    }
    call.cancel();
    let seen = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("poll_cancelled fired")
        .unwrap();
    assert_eq!(seen.code(), rillrpc::Code::Cancelled, "{seen:?}");
}

/// Regression: a server that answered (Trailers-Only) and then sent RST_STREAM(NO_ERROR)
/// while the client was still sending turned the call's UNIMPLEMENTED into INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_server_answer_keeps_its_status_while_the_client_sends() {
    let server = rill_server(ServerOptions::default());
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    for _ in 0..50 {
        let mut call = ch
            .bidi("/echo.TestService/NoSuchMethod", CallOptions::new())
            .unwrap();
        for _ in 0..20 {
            call.send(req(b"more", 0))
                .await
                .expect("sends after the server's answer are dropped, not failed");
            tokio::task::yield_now().await;
        }
        let err = call.recv().await.unwrap_err();
        assert_eq!(err.code(), rillrpc::Code::Unimplemented, "{err}");
    }
}

/// Each side can tell whether the last message arrived compressed (the interop suite's
/// `expect_compressed` and `*_compressed_*` cases check it): per message, not per call.
#[tokio::test]
async fn last_recv_compressed_reports_the_wire_flag_of_each_message() {
    let server = server_with(|mut call| async move {
        let mut seen = Vec::new();
        while let Some(_m) = call.recv().await.unwrap() {
            seen.push(call.last_recv_compressed());
        }
        assert!(call.set_compression(rillrpc::Encoding::Gzip));
        for (i, was) in seen.iter().enumerate() {
            let reply = if *was { "z" } else { "p" };
            call.send_with(rillrpc::Bytes::from(reply), i % 2 == 0)
                .await
                .unwrap();
        }
        call.finish(rillrpc::Status::ok()).unwrap();
    });
    let mut call = gzip_echo(&server);
    // The client compresses every message it sends with an encoding set; an empty one
    // too, so both requests arrive flagged.
    call.send(rillrpc::Bytes::from_static(b"first"))
        .await
        .unwrap();
    call.send(rillrpc::Bytes::from_static(b"")).await.unwrap();
    call.close_send();
    let mut got = Vec::new();
    while let Some(m) = call.recv().await.unwrap() {
        got.push((m, call.last_recv_compressed()));
    }
    assert_eq!(got.len(), 2);
    assert_eq!(&got[0].0[..], b"z");
    assert!(got[0].1, "the server compressed message 0");
    assert_eq!(&got[1].0[..], b"z");
    assert!(!got[1].1, "the server sent message 1 uncompressed");
    assert!(
        !call.last_recv_compressed(),
        "the flag of the last message outlives the call"
    );
}

/// Answers to received messages skip the writer task (written by the sender's thread into
/// the lent stream, see `outbound`), while other sends queue: mixing the two must keep the
/// order, on both sides, from a runtime thread and from a plain thread alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_answers_and_queued_sends_keep_their_order() {
    let server = rill_server(ServerOptions::default());
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let check = |call: &mut rillrpc::Call, rounds: usize, rt: &tokio::runtime::Handle| {
        let mut next = 0u32;
        let mut expect = 0u32;
        for round in 0..rounds {
            // One answer (direct when the stream is idle), sometimes followed by more that
            // must queue behind it.
            let extra = round % 3;
            for _ in 0..=extra {
                rt.block_on(call.send(req(&next.to_be_bytes(), 0))).unwrap();
                next += 1;
            }
            for _ in 0..=extra {
                let m = rt.block_on(call.recv()).unwrap().expect("an echo");
                assert_eq!(resp_payload(&m), expect.to_be_bytes(), "round {round}");
                expect += 1;
            }
        }
    };
    // From a plain thread (as bindings call), blocking on each step.
    let mut call = ch
        .bidi(rill_testkit::rill_echo::ECHO, CallOptions::new())
        .unwrap();
    let rt = tokio::runtime::Handle::current();
    let mut call = tokio::task::spawn_blocking(move || {
        check(&mut call, 500, &rt);
        call
    })
    .await
    .unwrap();
    call.close_send();
    assert!(call.recv().await.unwrap().is_none());
    assert!(call.status().unwrap().is_ok());
}

/// A client call with an encoding may still send one message uncompressed (the interop
/// suite's client_compressed_streaming sends a compressed then an uncompressed one).
#[tokio::test]
async fn client_send_with_chooses_compression_per_message() {
    let server = server_with(|mut call| async move {
        let mut flags = String::new();
        while call.recv().await.unwrap().is_some() {
            flags.push(if call.last_recv_compressed() {
                'z'
            } else {
                'p'
            });
        }
        call.send(rillrpc::Bytes::from(flags)).await.unwrap();
        call.finish(rillrpc::Status::ok()).unwrap();
    });
    let mut call = gzip_echo(&server);
    let m = || rillrpc::Bytes::from_static(b"payload");
    call.send_with(m(), true).await.unwrap();
    call.send_with(m(), false).await.unwrap();
    call.try_send_with(m(), true).unwrap();
    call.send(m()).await.unwrap();
    call.close_send();
    let got = call.recv().await.unwrap().unwrap();
    assert_eq!(&got[..], b"zpzz");
}

/// Calls opened while the connection is up are opened and written from the caller's thread,
/// their writer task deferred until needed. Each way that needs it must still work: a
/// request in one go, a cancel (the deferred writer starts to send the reset), a deadline,
/// and a burst that outgrows the direct path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_opened_on_a_ready_connection_cover_every_path() {
    let cancelled = std::sync::Arc::new(tokio::sync::Notify::new());
    let seen = cancelled.clone();
    let server = server_with(move |mut call| {
        let seen = seen.clone();
        async move {
            if call.method() == rill_testkit::rill_echo::PING_PONG {
                let m = call.recv().await.unwrap().unwrap();
                let r = rill_testkit::echo::Request::decode(&m[..]).unwrap();
                if r.count == 1 {
                    // Hold the call until the client gives up on it.
                    std::future::poll_fn(|cx| call.poll_cancelled(cx)).await;
                    seen.notify_one();
                    return;
                }
                call.send(m).await.unwrap();
                call.finish(rillrpc::Status::ok()).unwrap();
            } else {
                let mut n = 0u32;
                while call.recv().await.unwrap().is_some() {
                    n += 1;
                }
                call.send(rillrpc::Bytes::from(n.to_string()))
                    .await
                    .unwrap();
                call.finish(rillrpc::Status::ok()).unwrap();
            }
        }
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let ping = rill_testkit::rill_echo::PING_PONG;
    // The first call connects (through the writer task); the rest find the connection up.
    for i in 0..20u8 {
        let mut call = ch
            .open_with_request(
                ping,
                rillrpc::Shape::Unary,
                CallOptions::new(),
                &req(&[i], 0),
            )
            .unwrap();
        let m = call.recv().await.unwrap().unwrap();
        assert_eq!(m, req(&[i], 0));
        assert!(call.recv().await.unwrap().is_none());
    }
    // Cancel: dropping the call starts its deferred writer, which resets the stream.
    let mut call = ch
        .open_with_request(
            ping,
            rillrpc::Shape::Unary,
            CallOptions::new(),
            &req(b"hold", 1),
        )
        .unwrap();
    let pending = tokio::time::timeout(Duration::from_millis(100), call.recv()).await;
    assert!(pending.is_err(), "the server holds the call");
    drop(call);
    tokio::time::timeout(Duration::from_secs(5), cancelled.notified())
        .await
        .expect("the server saw the cancel");
    // Deadline.
    let mut call = ch
        .open_with_request(
            ping,
            rillrpc::Shape::Unary,
            CallOptions::new().timeout(Duration::from_millis(50)),
            &req(b"hold", 1),
        )
        .unwrap();
    let err = call.recv().await.unwrap_err();
    assert_eq!(err.code(), rillrpc::Code::DeadlineExceeded, "{err}");
    // A burst from a directly opened call: the first message goes direct, the rest queue.
    let call = ch
        .open(
            rill_testkit::rill_echo::ECHO_CLIENT,
            rillrpc::Shape::ClientStreaming,
            CallOptions::new(),
        )
        .unwrap();
    for _ in 0..10_000 {
        call.send(req(b"0123456789", 0)).await.unwrap();
    }
    call.close_send();
    let mut call = call;
    let total = call.recv().await.unwrap().unwrap();
    assert_eq!(&total[..], b"10000");
}

/// Regression: a send could go out directly while the writer task held a batch it had
/// taken but not yet written (it still had the stream on loan), overtaking that batch: a
/// server stream arrived out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_send_never_overtakes_a_taken_batch() {
    let server = server_with(|mut call| async move {
        let _ = call.recv().await;
        for i in 0..1002u32 {
            if call
                .send(rillrpc::Bytes::from(i.to_be_bytes().to_vec()))
                .await
                .is_err()
            {
                return;
            }
        }
        call.finish(rillrpc::Status::ok()).unwrap();
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    for round in 0..60 {
        let mut call = ch
            .server_streaming(ECHO_SERVER, req(b"", 0), CallOptions::new())
            .await
            .unwrap();
        let mut next = 0u32;
        while let Some(m) = call.recv().await.unwrap() {
            assert_eq!(&m[..], next.to_be_bytes(), "round {round}");
            next += 1;
        }
        assert_eq!(next, 1002);
    }
}

/// Batched sends (`try_send_batch`) on both sides: order kept across refills of a full
/// queue, and a message over the send limit stops the batch at its index with
/// RESOURCE_EXHAUSTED, the ones before it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_sends_keep_order_and_stop_at_an_oversized_message() {
    let server = server_with(|mut call| async move {
        let mut got = Vec::new();
        while let Some(m) = call.recv().await.unwrap() {
            got.push(m);
        }
        // Echo everything back in batches of 100, waiting for room when the queue fills.
        let all: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
        let mut done = 0;
        while done < all.len() {
            let end = (done + 100).min(all.len());
            let (n, failed) = call.try_send_batch(all[done..end].iter().copied());
            assert!(failed.is_none(), "{failed:?}");
            done += n;
            if done < end {
                std::future::poll_fn(|cx| call.poll_send_ready(cx)).await;
            }
        }
        call.finish(rillrpc::Status::ok()).unwrap();
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let mut call = ch
        .open(
            rill_testkit::rill_echo::ECHO,
            rillrpc::Shape::Bidi,
            CallOptions::new().max_send_message_size(1000),
        )
        .unwrap();
    let msgs: Vec<Vec<u8>> = (0..20_000u32).map(|i| i.to_be_bytes().repeat(8)).collect();
    let mut sent = 0;
    while sent < msgs.len() {
        let (n, failed) = call.try_send_batch(msgs[sent..].iter().map(|m| &m[..]));
        assert!(failed.is_none(), "{failed:?}");
        sent += n;
        if sent < msgs.len() {
            std::future::poll_fn(|cx| call.poll_send_ready(cx)).await;
        }
    }
    let big = vec![0u8; 1001];
    let (n, failed) = call.try_send_batch([&b"ok"[..], &big[..], b"never"]);
    assert_eq!(n, 1);
    assert_eq!(
        failed.expect("over the limit").code(),
        rillrpc::Code::ResourceExhausted
    );
    call.close_send();
    let mut got = Vec::new();
    while let Some(m) = call.recv().await.unwrap() {
        got.push(m);
    }
    assert_eq!(got.len(), msgs.len() + 1);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(&got[i][..], &m[..], "message {i}");
    }
    assert_eq!(&got[msgs.len()][..], b"ok");
}

/// `serve` hands the calls that arrived before it to the handler too, refuses a second
/// handler, and returns once the server has shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_earlier_calls_refuses_a_second_handler_and_ends_with_the_server() {
    use rill_testkit::rill_echo::PING_PONG;
    let server = std::sync::Arc::new(
        rill_testkit::rill_echo::builder(ServerOptions::default())
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    // Dispatched before any handler exists: it waits in `accept`'s queue.
    let early = {
        let ch = ch.clone();
        tokio::spawn(async move {
            ch.unary(PING_PONG, req(b"early", 0), CallOptions::new())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!early.is_finished(), "answered without a handler");
    let s = server.clone();
    let serving = tokio::spawn(async move { s.serve(rill_testkit::rill_echo::handle).await });
    let got = tokio::time::timeout(Duration::from_secs(10), early)
        .await
        .expect("the early call was never served")
        .unwrap()
        .unwrap();
    assert_eq!(resp_payload(&got), b"early");
    let later = ch
        .unary(PING_PONG, req(b"later", 0), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(resp_payload(&later), b"later");

    let err = server.serve(|_call| async {}).await.unwrap_err();
    assert!(err.to_string().contains("already has its handler"), "{err}");

    server.shutdown(Duration::from_secs(5)).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), serving).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "serve did not return after shutdown: {ended:?}"
    );
}

/// Regression: a client that cancelled server streams one after another lost its connection
/// after a few thousand cancels: h2 remembered 10 streams it had reset, answered the
/// server's in-flight DATA on a forgotten one with RST_STREAM, counted those, and past 1,024
/// closed the connection with GOAWAY ENHANCE_YOUR_CALM "too_many_internal_resets", failing
/// every call on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_thousands_of_server_streams_keeps_the_connection() {
    // A handler that sends until the call ends, so DATA is in flight at every cancel.
    let server = server_with(|call| async move {
        let chunk = bytes::Bytes::from(vec![7u8; 16 * 1024]);
        while call.send(chunk.clone()).await.is_ok() {}
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    for i in 0..3_000 {
        let mut call = open_server_stream(&ch).await;
        let first = call
            .recv()
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert!(first.is_some(), "call {i} ended before its first message");
        call.cancel();
    }
    let mut after = open_server_stream(&ch).await;
    assert!(after.recv().await.unwrap().is_some());
}

/// A server-streaming call with its request sent and its sending side closed.
async fn open_server_stream(ch: &Channel) -> rillrpc::Call {
    let call = ch
        .open(
            ECHO_SERVER,
            rillrpc::Shape::ServerStreaming,
            CallOptions::new(),
        )
        .unwrap();
    call.send(req(b"", 0)).await.unwrap();
    call.close_send();
    call
}

/// Regression: server streams a client opened and did not read yet held the connection's
/// receive window with their unread data (h2 gives it back only as a stream is read), and
/// four of them (1 MiB stream windows in a 4 MiB connection window) stalled every other
/// call on the connection: a unary call timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_server_streams_do_not_stall_the_clients_other_calls() {
    let server = rill_server(ServerOptions::default());
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    unary_past_unread_server_streams(&ch).await;
}

/// The growth that lets calls pass unread server streams is the application's to bound:
/// with none allowed, the connection's configured 4 MiB is all 8 unread streams get (1 MiB
/// windows), and a unary call waits until they are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channels_receive_budget_bounds_what_unread_server_streams_hold() {
    let server = rill_server(ServerOptions::default());
    let opts = rillrpc::ChannelOptions {
        connection_receive_budget: Some(0),
        ..Default::default()
    };
    let ch = Channel::with_options(&format!("http://{}", server.local_addr()), opts).unwrap();
    let through = unary_past_unread_server_streams_within(&ch, Duration::from_secs(2)).await;
    assert!(
        !through,
        "connection_receive_budget 0: the window stayed at 4 MiB"
    );
}

/// Regression: the same on the server, for request streams its handlers do not read
/// yet: four of them stalled every other call their client made on the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_streams_a_handler_has_not_read_do_not_stall_the_connection() {
    let through =
        unary_past_unread_request_streams(ServerOptions::default(), Duration::from_secs(10)).await;
    assert!(
        through,
        "a unary call stalled behind 8 unread request streams"
    );
}

/// The growth that lets calls pass unread request streams is the operator's to bound: with
/// none allowed, per connection or over the server, the connection's configured 4 MiB is
/// all 8 unread streams get (1 MiB windows), and a unary call waits until they are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receive_budgets_bound_what_unread_request_streams_hold() {
    let defaults = ServerOptions::default;
    for (opts, what) in [
        (
            ServerOptions {
                connection_receive_budget: Some(0),
                ..defaults()
            },
            "connection_receive_budget 0: the window stayed at 4 MiB",
        ),
        (
            ServerOptions {
                receive_budget: Some(0),
                ..defaults()
            },
            "receive_budget 0: no connection's window grew",
        ),
    ] {
        let through = unary_past_unread_request_streams(opts, Duration::from_secs(2)).await;
        assert!(!through, "{what}");
    }
}

/// Opens 8 client streams of 2 MiB each whose handlers read nothing yet, and tries a
/// unary call on the same connection for up to `bound`: whether it got through. Then lets
/// the handlers read, and checks that every stream arrived whole.
async fn unary_past_unread_request_streams(opts: ServerOptions, bound: Duration) -> bool {
    let (go, gone) = tokio::sync::watch::channel(false);
    let server = server_with_options(opts, move |mut call| {
        let mut gone = gone.clone();
        async move {
            if call.method() == rill_testkit::rill_echo::PING_PONG {
                let m = call.recv_single().await.unwrap();
                let _ = call.send(m).await;
                let _ = call.finish(rillrpc::Status::ok());
                return;
            }
            // Reads nothing until told to, then counts what came.
            let _ = gone.wait_for(|g| *g).await;
            let mut n = 0u32;
            while let Ok(Some(_)) = call.recv().await {
                n += 1;
            }
            let _ = call
                .send(rillrpc::Bytes::from(n.to_be_bytes().to_vec()))
                .await;
            let _ = call.finish(rillrpc::Status::ok());
        }
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    assert!(unary_within(&ch, Duration::from_secs(10)).await);
    let mut senders = Vec::new();
    for _ in 0..8 {
        let ch = ch.clone();
        senders.push(tokio::spawn(async move {
            let chunk = rillrpc::Bytes::from(vec![5u8; 32 * 1024]);
            let reqs = std::iter::repeat_n(chunk, 64);
            let opts = CallOptions::new();
            let answer = ch.client_streaming(rill_testkit::rill_echo::ECHO_CLIENT, reqs, opts);
            answer.await.unwrap()
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let through = unary_within(&ch, bound).await;
    go.send(true).unwrap();
    for s in senders {
        assert_eq!(&s.await.unwrap()[..], &64u32.to_be_bytes());
    }
    through
}

/// `recv_ref` lends the messages of a burst where they lie and hands the rest out as `recv`
/// would; either way each side reads exactly what the other sent, in order: empty, small,
/// large and compressed messages, bursts that end mid-chunk and the chunk's last message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_ref_reads_what_recv_would_on_both_sides() {
    let sent: Vec<Vec<u8>> = (0..3_000usize)
        .map(|i| vec![(i % 251) as u8; (i * 7) % 700])
        .collect();
    let server = server_with(|mut call| async move {
        let mut got = Vec::new();
        while let Some(m) = call.recv_ref().await.unwrap() {
            got.push(m.to_vec());
        }
        for m in &got {
            call.send_ref(m).await.unwrap();
        }
        call.finish(rillrpc::Status::ok()).unwrap();
    });
    let mut call = gzip_echo(&server);
    for (i, m) in sent.iter().enumerate() {
        // Every fifth message compressed: those come as `Bytes`, between lent ones.
        call.send_with(rillrpc::Bytes::from(m.clone()), i % 5 == 0)
            .await
            .unwrap();
    }
    call.close_send();
    let mut echoed = Vec::new();
    while let Some(m) = call.recv_ref().await.unwrap() {
        echoed.push(m.to_vec());
    }
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "the echo differs from what was sent");
}

/// A single-request call's request is read whole before the handler runs: `recv_ref`
/// hands it out as `recv` does, then the end; and the single-message rule still holds.
#[tokio::test]
async fn recv_ref_of_a_unary_request_then_the_end() {
    let server = server_with(|mut call| async move {
        let m = call.recv_ref().await.unwrap().map(<[u8]>::to_vec);
        let end = call.recv_ref().await.unwrap().is_none();
        let answer = format!("{:?} {end}", m.as_deref().map(String::from_utf8_lossy));
        call.send(rillrpc::Bytes::from(answer)).await.unwrap();
        call.finish(rillrpc::Status::ok()).unwrap();
    });
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    let got = ch
        .unary(
            rill_testkit::rill_echo::PING_PONG,
            rillrpc::Bytes::from_static(b"one"),
            CallOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(&got[..], b"Some(\"one\") true");
}
