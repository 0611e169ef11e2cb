//! tonic's client against our server: every call shape, metadata, status paths, deadlines,
//! cancellation, gzip, large messages, TLS, concurrency and graceful shutdown.

mod common;

use common::*;
use rill_testkit::echo::Request;
use rillrpc::{Bytes, Code, ServerBuilder, ServerOptions, ServerTls, Shape, Status};
use std::sync::Arc;
use std::time::Duration;
use tonic::codec::CompressionEncoding;

fn r(payload: &[u8], count: i32) -> Request {
    Request {
        payload: payload.to_vec(),
        count,
    }
}

#[tokio::test]
async fn all_shapes() {
    let server = rill_server(ServerOptions::default());
    let mut c = tonic_client(server.local_addr()).await;
    every_shape(&mut c, 500).await;
}

#[tokio::test]
async fn status_message_details_and_metadata() {
    let server = rill_server(ServerOptions::default());
    let mut c = tonic_client(server.local_addr()).await;
    let mut request = tonic::Request::new(r("bad \t☺ 50%".as_bytes(), -3));
    request
        .metadata_mut()
        .insert("echo-x", "y".parse().unwrap());
    request.metadata_mut().insert_bin(
        "echo-y-bin",
        tonic::metadata::MetadataValue::from_bytes(&[1, 2, 3]),
    );
    let err = c.ping_pong(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "bad \t☺ 50%");
    assert_eq!(err.metadata().get("echo-x").unwrap(), "y");
    assert_eq!(
        err.metadata()
            .get_bin("echo-y-bin")
            .unwrap()
            .to_bytes()
            .unwrap()
            .as_ref(),
        &[1, 2, 3]
    );
}

#[tokio::test]
async fn response_headers_carry_metadata() {
    let server = rill_server(ServerOptions::default());
    let mut c = tonic_client(server.local_addr()).await;
    let mut request = tonic::Request::new(r(b"p", 0));
    request
        .metadata_mut()
        .insert("echo-h", "1".parse().unwrap());
    let resp = c.ping_pong(request).await.unwrap();
    assert_eq!(resp.metadata().get("echo-h").unwrap(), "1");
}

#[tokio::test]
async fn unimplemented_method_and_service() {
    // Only PingPong is served: tonic's calls to the others must end as UNIMPLEMENTED.
    let server = Arc::new(
        ServerBuilder::new(ServerOptions::default())
            .register("/echo.TestService/PingPong", Shape::Unary)
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let mut c = tonic_client(server.local_addr()).await;
    let err = c.echo_server(r(b"", 1)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert!(
        err.message().contains("unknown method EchoServer"),
        "{}",
        err.message()
    );
    let other = Arc::new(
        ServerBuilder::new(ServerOptions::default())
            .register("/other.Svc/M", Shape::Unary)
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let mut c = tonic_client(other.local_addr()).await;
    let err = c.ping_pong(r(b"", 0)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert!(
        err.message().contains("unknown service echo.TestService"),
        "{}",
        err.message()
    );
}

/// A server whose one method never answers: it reports what the call saw.
fn silent_server(
    opts: ServerOptions,
) -> (
    Arc<rillrpc::Server>,
    tokio::sync::mpsc::UnboundedReceiver<Status>,
) {
    let server = Arc::new(
        rill_testkit::rill_echo::builder(opts)
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let s = server.clone();
    tokio::spawn(async move {
        while let Some(mut call) = s.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                // Read until the call ends one way or another, never replying.
                let outcome = loop {
                    match call.recv().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break std::future::poll_fn(|cx| call.poll_cancelled(cx)).await,
                        Err(e) => break e,
                    }
                };
                let _ = tx.send(outcome);
            });
        }
    });
    (server, rx)
}

#[tokio::test]
async fn client_deadline_reaches_the_handler() {
    let (server, mut seen) = silent_server(ServerOptions::default());
    let mut c = tonic_client(server.local_addr()).await;
    let mut request = tonic::Request::new(r(b"", 0));
    request.set_timeout(Duration::from_millis(200));
    let err = c.ping_pong(request).await.unwrap_err();
    // Our server ends the call as DEADLINE_EXCEEDED when the deadline passes; tonic's own
    // timer, armed for the same instant, reports itself as CANCELLED ("Timeout expired").
    assert!(
        matches!(
            err.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{err:?}"
    );
    let s = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{s:?}"
    );
}

#[tokio::test]
async fn client_cancel_reaches_the_handler_as_cancelled() {
    let (server, mut seen) = silent_server(ServerOptions::default());
    let mut c = tonic_client(server.local_addr()).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(r(b"one", 0)).await.unwrap();
    // tonic waits for response headers, which this server never sends: giving up on the
    // call (dropping its future) resets the HTTP/2 stream.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        c.echo(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
    .await;
    assert!(gave_up.is_err());
    drop(tx);
    let s = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.code(), Code::Cancelled, "{s:?}");
}

/// A unary call without a deadline defers its writer task until it is needed; watching
/// for cancellation must not need it (Node watches every call), and must still see the
/// client's reset.
#[tokio::test]
async fn client_cancel_of_a_unary_call_reaches_a_handler_that_never_answers() {
    let (server, mut seen) = silent_server(ServerOptions::default());
    let mut c = tonic_client(server.local_addr()).await;
    // No grpc-timeout: the client gives up by dropping the call, which resets the stream.
    let gave_up = tokio::time::timeout(Duration::from_millis(200), c.ping_pong(r(b"one", 0))).await;
    assert!(gave_up.is_err());
    let s = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.code(), Code::Cancelled, "{s:?}");
}

#[tokio::test]
async fn gzip_both_ways() {
    let server = rill_server(ServerOptions::default());
    let mut c = tonic_client(server.local_addr())
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let big = vec![b'q'; 200_000];
    let resp = c.ping_pong(r(&big, 0)).await.unwrap();
    assert_eq!(resp.into_inner().payload, big);
    let reqs = tokio_stream::iter((0..5).map(|_| r(&[7; 1000], 0)));
    assert_eq!(
        c.echo_client(reqs).await.unwrap().into_inner().payload,
        b"5000"
    );
}

#[tokio::test]
async fn large_messages_both_ways() {
    let server = rill_server(ServerOptions {
        max_recv_message_size: 16 << 20,
        ..Default::default()
    });
    let c = tonic_client(server.local_addr()).await;
    let mut c = c
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    let big: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    let resp = c.ping_pong(r(&big, 0)).await.unwrap();
    assert_eq!(resp.into_inner().payload, big);
}

#[tokio::test]
async fn oversized_request_is_resource_exhausted() {
    let server = rill_server(ServerOptions {
        max_recv_message_size: 1024,
        ..Default::default()
    });
    let mut c = tonic_client(server.local_addr()).await;
    let err = c.ping_pong(r(&[0; 4096], 0)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(
        err.message().contains("larger than max"),
        "{}",
        err.message()
    );
    c.ping_pong(r(b"small", 0)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_calls() {
    let server = rill_server(ServerOptions::default());
    let c = tonic_client(server.local_addr()).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            echo_once(&mut c, &format!("{i}"), i % 2 == 1).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn tls() {
    let cert = rill_testkit::tls::localhost();
    let opts = ServerOptions {
        tls: Some(ServerTls {
            cert_pem: cert.cert_pem.clone().into_bytes(),
            key_pem: cert.key_pem.into_bytes(),
            client_ca_pem: None,
        }),
        ..Default::default()
    };
    let server = rill_server(opts);
    let mut c = tonic_tls_client(server.local_addr().port(), &cert.cert_pem).await;
    let resp = c.ping_pong(r(b"over tls", 0)).await.unwrap();
    assert_eq!(resp.into_inner().payload, b"over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_calls_finish_then_cancels_the_rest() {
    let server = Arc::new(
        rill_testkit::rill_echo::builder(ServerOptions::default())
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let s = server.clone();
    // A handler that finishes 300 ms after its request, unless told to hang.
    tokio::spawn(async move {
        while let Some(mut call) = s.accept().await {
            tokio::spawn(async move {
                let m = call.recv().await.unwrap().unwrap();
                let hang = m.len() > 3;
                tokio::time::sleep(Duration::from_millis(if hang { 60_000 } else { 300 })).await;
                let _ = call.send(Bytes::new()).await;
                let _ = call.finish(Status::ok());
            });
        }
    });
    let c = tonic_client(server.local_addr()).await;
    let mut quick = c.clone();
    let quick = tokio::spawn(async move { quick.ping_pong(r(b"", 0)).await });
    let mut slow = c.clone();
    let slow = tokio::spawn(async move { slow.ping_pong(r(b"hang-forever", 0)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    server.shutdown(Duration::from_millis(800)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        quick.await.unwrap().is_ok(),
        "an in-flight call finishes within the grace period"
    );
    let err = slow.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::Unavailable
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
                | tonic::Code::Internal
        ),
        "{err:?}"
    );
    assert!(
        server.accept().await.is_none(),
        "accept ends after shutdown"
    );
    let Err(_) = tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
        .unwrap()
        .connect()
        .await
    else {
        panic!("the listener is closed after shutdown");
    };
}
