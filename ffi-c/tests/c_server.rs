//! The C echo server (ffi-c/tests/c/echo_server.c: one thread, a poll loop) driven by
//! tonic's client: the four shapes, metadata, status, deadline, cancel, concurrency.

mod support;

use rill_testkit::{EchoRequest, TestServiceClient};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;
use support::*;
use tonic::metadata::{BinaryMetadataValue, MetadataValue};
use tonic::Code;

fn req(payload: &[u8], count: i32) -> EchoRequest {
    EchoRequest {
        payload: payload.to_vec(),
        count,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_server_driven_by_tonic() {
    let prog = build("ffi-c/tests/c/echo_server.c");
    let mut child = command(&prog)
        .arg("0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the C echo server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = TestServiceClient::new(ch);

    // Unary, with metadata both ways and the deadline seen by the server.
    let mut r = tonic::Request::new(req(b"hello", 0));
    r.metadata_mut()
        .insert("echo-text", MetadataValue::from_static("v1"));
    r.metadata_mut().insert_bin(
        "echo-data-bin",
        BinaryMetadataValue::from_bytes(&[0, 1, 255]),
    );
    r.metadata_mut()
        .insert("other", MetadataValue::from_static("x"));
    r.set_timeout(Duration::from_secs(30));
    let resp = c.ping_pong(r).await.unwrap();
    assert_eq!(resp.metadata().get("echo-text").unwrap(), "v1");
    assert_eq!(
        resp.metadata()
            .get_bin("echo-data-bin")
            .unwrap()
            .to_bytes()
            .unwrap()
            .as_ref(),
        &[0, 1, 255]
    );
    assert!(resp.metadata().get("other").is_none());
    let left: i64 = resp
        .metadata()
        .get("rill-deadline-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(left > 0 && left <= 30_000, "{left}");
    assert_eq!(resp.into_inner().payload, b"hello");

    // Client streaming.
    let s = tokio_stream::iter(vec![req(b"abc", 0), req(b"de", 0), req(b"f", 0)]);
    let resp = c.echo_client(s).await.unwrap().into_inner();
    assert_eq!(resp.payload, b"6");

    // Server streaming.
    let mut s = c.echo_server(req(b"tick", 100)).await.unwrap().into_inner();
    let mut n = 0;
    while let Some(m) = s.message().await.unwrap() {
        assert_eq!(m.payload, b"tick");
        n += 1;
    }
    assert_eq!(n, 100);

    // Bidi, many messages.
    let msgs: Vec<_> = (0..500)
        .map(|i| req(format!("m{i}").as_bytes(), 0))
        .collect();
    let mut s = c.echo(tokio_stream::iter(msgs)).await.unwrap().into_inner();
    for i in 0..500 {
        assert_eq!(
            s.message().await.unwrap().unwrap().payload,
            format!("m{i}").as_bytes()
        );
    }
    assert!(s.message().await.unwrap().is_none());

    // Status, with trailers.
    let mut r = tonic::Request::new(req(b"no such thing", -5));
    r.metadata_mut()
        .insert("echo-why", MetadataValue::from_static("because"));
    let e = c.ping_pong(r).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "no such thing");
    assert_eq!(e.metadata().get("echo-why").unwrap(), "because");
    let e = c
        .echo_client(tokio_stream::iter(vec![req(b"a", 0), req(b"bad", -3)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Deadline: a bidi call that never sends.
    let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(1);
    let mut r = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    r.set_timeout(Duration::from_millis(300));
    let e = match c.echo(r).await {
        Err(e) => e,
        Ok(resp) => resp.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(e.code(), Code::DeadlineExceeded);
    drop(tx);

    // Cancel: the client cancels a bidi call in the middle. Dropping tonic's halves races
    // its END_STREAM against its RST_STREAM (the server may see a clean end first), so the
    // cancel comes from the core's client, whose `cancel()` sends RST_STREAM(CANCEL) at once.
    {
        use prost::Message;
        let rc = rillrpc::Channel::new(&format!("http://{addr}")).unwrap();
        let mut call = rc
            .bidi("/echo.TestService/Echo", rillrpc::CallOptions::new())
            .unwrap();
        call.send(req(b"one", 0).encode_to_vec().into())
            .await
            .unwrap();
        let m = call.recv().await.unwrap().unwrap();
        assert_eq!(
            rill_testkit::echo::Response::decode(&m[..])
                .unwrap()
                .payload,
            b"one"
        );
        call.cancel();
        assert_eq!(call.finish().await.code(), rillrpc::Code::Cancelled);
    }

    // Many calls at once, all served by the C server's one thread.
    let mut joins = Vec::new();
    for i in 0..300 {
        let mut c = c.clone();
        joins.push(tokio::spawn(async move {
            let p = format!("c{i}");
            let r = c
                .ping_pong(req(p.as_bytes(), 0))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.payload, p.as_bytes());
        }));
    }
    for j in joins {
        j.await.unwrap();
    }

    // Stop: closing stdin ends the server's loop; under valgrind the exit status also
    // says there were no errors and no definite leaks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(child.stdin.take());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    assert!(out.status.success(), "C server exited with {}", out.status);
    // The deadline and the cancel both reached the C server as an early end.
    let early: u32 = err
        .lines()
        .find_map(|l| l.strip_prefix("echo_server: stopped ("))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the server's last line");
    assert!(
        early >= 2,
        "{early} calls ended early, want the deadline and the cancel"
    );
}
