//! tonic's client against our server, every call shape and status path.

mod common;

use common::*;
use rill_testkit::echo::Request;
use rillrpc::ServerOptions;

#[tokio::test]
async fn all_shapes() {
    let server = rill_server(ServerOptions::default());
    let mut c = tonic_client(server.local_addr()).await;
    let r = c
        .ping_pong(Request {
            payload: b"hi".to_vec(),
            count: 0,
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().payload, b"hi");

    let mut s = c
        .echo_server(Request {
            payload: b"s".to_vec(),
            count: 500,
        })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(m) = s.message().await.unwrap() {
        assert_eq!(m.payload, b"s");
        n += 1;
    }
    assert_eq!(n, 500);

    let reqs = tokio_stream::iter((0..10).map(|_| Request {
        payload: b"12345".to_vec(),
        count: 0,
    }));
    let r = c.echo_client(reqs).await.unwrap().into_inner();
    assert_eq!(r.payload, b"50");

    let reqs = tokio_stream::iter((0..20).map(|i| Request {
        payload: format!("{i}").into_bytes(),
        count: 0,
    }));
    let mut s = c.echo(reqs).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        got.push(String::from_utf8(m.payload).unwrap());
    }
    assert_eq!(got, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());

    let err = c
        .ping_pong(Request {
            payload: b"bad".to_vec(),
            count: -3,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "bad");
}
