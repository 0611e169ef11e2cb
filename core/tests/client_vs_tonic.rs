//! Our client against tonic's server: every call shape, metadata, status paths, deadlines,
//! cancellation, gzip, large messages, TLS and many calls on one connection.

mod common;

use common::*;
use rill_testkit::rill_echo::{ECHO, ECHO_CLIENT, ECHO_SERVER, PING_PONG};
use rillrpc::{CallOptions, Channel, ChannelOptions, ClientTls, Code, Encoding, Metadata, Shape};
use std::time::{Duration, Instant};

async fn channel() -> Channel {
    let addr = tonic_server().await;
    Channel::new(&format!("http://{addr}")).unwrap()
}

#[tokio::test]
async fn unary() {
    let ch = channel().await;
    let r = ch
        .unary(PING_PONG, req(b"hello", 0), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(resp_payload(&r), b"hello");
}

/// Server streams from tonic's server that our client has not read yet leave room on the
/// connection for other calls (see `unread_server_streams_do_not_stall_the_clients_other_calls`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_server_streams_do_not_stall_other_calls() {
    unary_past_unread_server_streams(&channel().await).await;
}

#[tokio::test]
async fn server_streaming() {
    let ch = channel().await;
    let mut call = ch
        .server_streaming(ECHO_SERVER, req(b"x", 1000), CallOptions::new())
        .await
        .unwrap();
    let mut n = 0;
    while let Some(m) = call.recv().await.unwrap() {
        assert_eq!(resp_payload(&m), b"x");
        n += 1;
    }
    assert_eq!(n, 1000);
    assert!(call.finish().await.is_ok());
}

#[tokio::test]
async fn client_streaming() {
    let ch = channel().await;
    let msgs = (0..100).map(|_| req(b"abc", 0));
    let r = ch
        .client_streaming(ECHO_CLIENT, msgs, CallOptions::new())
        .await
        .unwrap();
    assert_eq!(resp_payload(&r), b"300");
}

#[tokio::test]
async fn bidi_ping_pong() {
    let ch = channel().await;
    let mut call = ch.bidi(ECHO, CallOptions::new()).unwrap();
    for i in 0..50 {
        let p = format!("m{i}");
        call.send(req(p.as_bytes(), 0)).await.unwrap();
        let m = call.recv().await.unwrap().unwrap();
        assert_eq!(resp_payload(&m), p.as_bytes());
    }
    call.close_send();
    assert_eq!(call.recv().await.unwrap(), None);
    assert!(call.finish().await.is_ok());
}

/// Regression guard for the deadlock the issue warns of: open must not wait for response
/// headers, which a bidi server may send only with its first reply.
#[tokio::test]
async fn open_does_not_wait_for_headers() {
    let ch = channel().await;
    let call = ch.bidi(ECHO, CallOptions::new()).unwrap();
    call.send(req(b"first", 0)).await.unwrap();
}

#[tokio::test]
async fn error_status_and_metadata_round_trip() {
    let ch = channel().await;
    let mut md = Metadata::new();
    md.append_ascii("echo-a", "1").unwrap();
    md.append_bin("echo-b-bin", &[0, 255]).unwrap();
    let mut call = ch
        .open(PING_PONG, Shape::Unary, CallOptions::new().metadata(md))
        .unwrap();
    call.send(req("nope ☺ 100%".as_bytes(), -5)).await.unwrap();
    call.close_send();
    let err = call.recv().await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "nope ☺ 100%");
    assert_eq!(err.trailers().get_ascii("echo-a"), Some("1"));
    assert_eq!(
        err.trailers().get_bin("echo-b-bin").unwrap().as_ref(),
        &[0, 255]
    );
}

#[tokio::test]
async fn headers_and_trailers_of_a_successful_call() {
    let ch = channel().await;
    let mut md = Metadata::new();
    md.append_ascii("echo-h", "v").unwrap();
    let mut call = ch
        .server_streaming(ECHO_SERVER, req(b"p", 2), CallOptions::new().metadata(md))
        .await
        .unwrap();
    let h = call.headers().await.unwrap();
    assert_eq!(h.get_ascii("echo-h"), Some("v"));
    let st = call.finish().await;
    assert!(st.is_ok());
}

#[tokio::test]
async fn deadline_exceeded_on_a_silent_server() {
    let ch = channel().await;
    let start = Instant::now();
    let mut call = ch
        .bidi(ECHO, CallOptions::new().timeout(Duration::from_millis(200)))
        .unwrap();
    let err = call.recv().await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(start.elapsed() >= Duration::from_millis(190));
    // The connection is still good for the next call.
    ch.unary(PING_PONG, req(b"ok", 0), CallOptions::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn cancel_mid_stream() {
    let ch = channel().await;
    let mut call = ch
        .server_streaming(ECHO_SERVER, req(b"x", 1_000_000), CallOptions::new())
        .await
        .unwrap();
    assert!(call.recv().await.unwrap().is_some());
    call.cancel();
    let err = call.recv().await.unwrap_err();
    assert_eq!(err.code(), Code::Cancelled);
    assert_eq!(call.finish().await.code(), Code::Cancelled);
    ch.unary(PING_PONG, req(b"still alive", 0), CallOptions::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn gzip_both_ways() {
    let ch = channel().await;
    let big = vec![b'z'; 100_000];
    let r = ch
        .unary(
            PING_PONG,
            req(&big, 0),
            CallOptions::new().compression(Encoding::Gzip),
        )
        .await
        .unwrap();
    assert_eq!(resp_payload(&r), big);
}

#[tokio::test]
async fn large_messages() {
    let ch = channel().await;
    let big: Vec<u8> = (0..6 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let opts = CallOptions::new().max_recv_message_size(16 << 20);
    let r = ch.unary(PING_PONG, req(&big, 0), opts).await.unwrap();
    assert_eq!(resp_payload(&r), big);
}

#[tokio::test]
async fn oversized_response_is_resource_exhausted() {
    let ch = channel().await;
    let opts = CallOptions::new().max_recv_message_size(1000);
    let err = ch
        .unary(PING_PONG, req(&[1; 2000], 0), opts)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    ch.unary(PING_PONG, req(b"fine", 0), CallOptions::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_method_is_unimplemented() {
    let ch = channel().await;
    let err = ch
        .unary("/echo.TestService/Nope", req(b"", 0), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let err = ch
        .unary("/no.Such/Service", req(b"", 0), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_on_one_connection() {
    let ch = channel().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let p = format!("call {i}");
            let r = ch
                .unary(PING_PONG, req(p.as_bytes(), 0), CallOptions::new())
                .await
                .unwrap();
            assert_eq!(resp_payload(&r), p.as_bytes());
        }));
    }
    for i in 0..20 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let mut call = ch
                .server_streaming(ECHO_SERVER, req(b"s", 500 + i), CallOptions::new())
                .await
                .unwrap();
            let mut n = 0;
            while call.recv().await.unwrap().is_some() {
                n += 1;
            }
            assert_eq!(n, 500 + i);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn tls_with_a_custom_ca() {
    let (addr, ca) = tonic_tls_server().await;
    let opts = ChannelOptions {
        tls: Some(ClientTls {
            ca_pem: Some(ca.into_bytes()),
            server_name: Some("localhost".into()),
            identity: None,
        }),
        ..Default::default()
    };
    let ch = Channel::with_options(&format!("https://127.0.0.1:{}", addr.port()), opts).unwrap();
    let r = ch
        .unary(PING_PONG, req(b"secret", 0), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(resp_payload(&r), b"secret");
}

#[tokio::test]
async fn tls_with_an_untrusted_certificate_is_unavailable() {
    let (addr, _ca) = tonic_tls_server().await;
    let other = rill_testkit::tls::localhost();
    let opts = ChannelOptions {
        tls: Some(ClientTls {
            ca_pem: Some(other.cert_pem.into_bytes()),
            server_name: Some("localhost".into()),
            identity: None,
        }),
        ..Default::default()
    };
    let ch = Channel::with_options(&format!("https://127.0.0.1:{}", addr.port()), opts).unwrap();
    let err = ch
        .unary(PING_PONG, req(b"x", 0), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("TLS"), "{err}");
}
