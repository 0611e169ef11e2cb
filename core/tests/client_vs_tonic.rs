//! Our client against tonic's server, every call shape and status path.

mod common;

use common::*;
use rill_testkit::rill_echo::{ECHO, ECHO_CLIENT, ECHO_SERVER, PING_PONG};
use rillrpc::{CallOptions, Channel, Code, Metadata};

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

#[tokio::test]
async fn error_status_and_metadata_round_trip() {
    let ch = channel().await;
    let mut md = Metadata::new();
    md.append_ascii("echo-a", "1").unwrap();
    md.append_bin("echo-b-bin", &[0, 255]).unwrap();
    let mut call = ch.open(PING_PONG, CallOptions::new().metadata(md)).unwrap();
    call.send(req("nope ☺".as_bytes(), -5)).await.unwrap();
    call.close_send();
    let err = call.recv().await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "nope ☺");
    assert_eq!(err.trailers().get_ascii("echo-a"), Some("1"));
    assert_eq!(
        err.trailers().get_bin("echo-b-bin").unwrap().as_ref(),
        &[0, 255]
    );
}
