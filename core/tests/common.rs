//! Shared set-up for the tests against the real peer (tonic).
#![allow(dead_code)]

use prost::Message;
use rill_testkit::echo::{Request, Response};
use rill_testkit::{rill_echo, TestServiceServer, TonicEcho};
use rillrpc::{Bytes, Server, ServerOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub fn req(payload: &[u8], count: i32) -> Bytes {
    Bytes::from(
        Request {
            payload: payload.to_vec(),
            count,
        }
        .encode_to_vec(),
    )
}

pub fn resp_payload(b: &[u8]) -> Vec<u8> {
    Response::decode(b).expect("echo.Response").payload
}

/// A tonic echo server on a free port.
pub async fn tonic_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(
                TestServiceServer::new(TonicEcho)
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                    .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                    .max_decoding_message_size(64 << 20),
            )
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    addr
}

/// A tonic echo server on a free port whose connections count their HTTP/2 frames
/// (`rill_testkit::frames`): what tonic reads is `inbound`.
pub async fn counted_tonic_server() -> (SocketAddr, rill_testkit::frames::FrameLog) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = rill_testkit::frames::FrameLog::new();
    let incoming = log.incoming(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TestServiceServer::new(TonicEcho))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (addr, log)
}

/// A raw HTTP/2 client connected to `addr`: the frames are the test's to spell out.
pub async fn raw_client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sr, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sr
}

/// The head of a gRPC request to `path`, with `grpc-timeout` when given.
pub fn grpc_head(path: &str, timeout: Option<&str>) -> http::Request<()> {
    let mut b = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = timeout {
        b = b.header("grpc-timeout", t);
    }
    b.body(()).unwrap()
}

/// A rillrpc server of the echo service's methods whose handler does `f` with each call.
pub fn server_with<F, Fut>(f: F) -> Arc<Server>
where
    F: Fn(rillrpc::ServerCall) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    server_with_options(ServerOptions::default(), f)
}

pub fn server_with_options<F, Fut>(opts: ServerOptions, f: F) -> Arc<Server>
where
    F: Fn(rillrpc::ServerCall) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let server = Arc::new(rill_echo::builder(opts).bind("127.0.0.1:0").unwrap());
    let s = server.clone();
    tokio::spawn(async move {
        while let Some(call) = s.accept().await {
            tokio::spawn(f(call));
        }
    });
    server
}

/// A rillrpc echo server on a free port.
pub fn rill_server(opts: ServerOptions) -> Arc<Server> {
    let server = Arc::new(rill_echo::builder(opts).bind("127.0.0.1:0").unwrap());
    tokio::spawn(rill_echo::serve(server.clone()));
    server
}

pub async fn tonic_client(
    addr: SocketAddr,
) -> rill_testkit::TestServiceClient<tonic::transport::Channel> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    rill_testkit::TestServiceClient::new(ch)
}

/// A tonic echo server over TLS with a fresh self-signed certificate for `localhost`;
/// returns its address and the certificate (PEM) to trust.
pub async fn tonic_tls_server() -> (SocketAddr, String) {
    let cert = rill_testkit::tls::localhost();
    let identity = tonic::transport::Identity::from_pem(&cert.cert_pem, &cert.key_pem);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .unwrap()
            .add_service(TestServiceServer::new(TonicEcho))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (addr, cert.cert_pem)
}

/// Framed gRPC message bytes, spelled out: flag, big-endian length, payload.
pub fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![flag];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// tonic's client calls every shape on the echo service: a unary call, `streamed` server
/// streaming answers, a client stream of ten, and `streamed / 25` bidi messages in order.
pub async fn every_shape(
    c: &mut rill_testkit::TestServiceClient<tonic::transport::Channel>,
    streamed: i32,
) {
    let r = |p: &[u8], count: i32| Request {
        payload: p.to_vec(),
        count,
    };
    let resp = c.ping_pong(r(b"hi", 0)).await.unwrap();
    assert_eq!(resp.into_inner().payload, b"hi");

    let mut s = c.echo_server(r(b"s", streamed)).await.unwrap().into_inner();
    let mut n = 0;
    while let Some(m) = s.message().await.unwrap() {
        assert_eq!(m.payload, b"s");
        n += 1;
    }
    assert_eq!(n, streamed);

    let reqs = tokio_stream::iter((0..10).map(move |_| r(b"12345", 0)));
    assert_eq!(
        c.echo_client(reqs).await.unwrap().into_inner().payload,
        b"50"
    );

    let bidi = streamed / 25;
    let reqs = tokio_stream::iter((0..bidi).map(move |i| r(format!("{i}").as_bytes(), 0)));
    let mut s = c.echo(reqs).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        got.push(String::from_utf8(m.payload).unwrap());
    }
    assert_eq!(got, (0..bidi).map(|i| i.to_string()).collect::<Vec<_>>());
}

/// One call through tonic's client: a unary echo of `p`, or (`streamed`) 100 server
/// streaming answers.
pub async fn echo_once(
    c: &mut rill_testkit::TestServiceClient<tonic::transport::Channel>,
    p: &str,
    streamed: bool,
) {
    let r = Request {
        payload: p.as_bytes().to_vec(),
        count: if streamed { 100 } else { 0 },
    };
    if !streamed {
        let resp = c.ping_pong(r).await.unwrap();
        assert_eq!(resp.into_inner().payload, p.as_bytes());
        return;
    }
    let mut s = c.echo_server(r).await.unwrap().into_inner();
    let mut n = 0;
    while s.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 100);
}

/// tonic's client over TLS to `localhost` at `port`, trusting `ca_pem`.
pub async fn tonic_tls_client(
    port: u16,
    ca_pem: &str,
) -> rill_testkit::TestServiceClient<tonic::transport::Channel> {
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    let ch = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    rill_testkit::TestServiceClient::new(ch)
}

/// Writes `request` on a new connection and reads what comes until `done` holds of it, the
/// server closes the connection, or `within` passes.
pub async fn exchange(
    addr: SocketAddr,
    request: &[u8],
    done: impl Fn(&[u8]) -> bool,
    within: Duration,
) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut t = tokio::net::TcpStream::connect(addr).await.unwrap();
    t.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = t.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
            if done(&out) {
                break;
            }
        }
    })
    .await;
    out
}

/// A unary call on `ch` answers within `bound`.
pub async fn unary_within(ch: &rillrpc::Channel, bound: std::time::Duration) -> bool {
    let call = ch.unary(
        rill_testkit::rill_echo::PING_PONG,
        req(b"through", 0),
        rillrpc::CallOptions::new(),
    );
    match tokio::time::timeout(bound, call).await {
        Ok(r) => {
            r.expect("the unary call");
            true
        }
        Err(_) => false,
    }
}

/// Opens eight server streams of 2 MiB each on `ch` and reads none of them: a unary call
/// on the same channel must still answer (the streams' unread data must not spend the
/// connection's receive window), and then the streams are read whole.
pub async fn unary_past_unread_server_streams(ch: &rillrpc::Channel) {
    let through = unary_past_unread_server_streams_within(ch, std::time::Duration::from_secs(10));
    assert!(
        through.await,
        "a unary call stalled behind 8 unread streams"
    );
}

/// Opens eight server streams of 2 MiB each on `ch`, reads none of them yet, and tries a
/// unary call on the same channel for up to `bound`: whether it got through. Then reads
/// the streams, each whole.
pub async fn unary_past_unread_server_streams_within(
    ch: &rillrpc::Channel,
    bound: std::time::Duration,
) -> bool {
    use rill_testkit::rill_echo::ECHO_SERVER;
    assert!(unary_within(ch, std::time::Duration::from_secs(10)).await);
    // Bytes that do not compress: a server that compresses its answers (tonic's, here)
    // must still send 2 MiB on each stream.
    let mut x = 0x2545_f491_u32;
    let payload: Vec<u8> = (0..32 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut unread = Vec::new();
    for _ in 0..8 {
        let r = req(&payload, 64);
        let opts = rillrpc::CallOptions::new();
        unread.push(ch.server_streaming(ECHO_SERVER, r, opts).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let through = unary_within(ch, bound).await;
    // All at once: read one at a time, the others could take the window it frees and
    // hold it unread, the connection's first 4 MiB when it cannot grow.
    let reading = unread.into_iter().map(|mut call| {
        tokio::spawn(async move {
            let mut n = 0;
            while call.recv().await.unwrap().is_some() {
                n += 1;
            }
            n
        })
    });
    for r in reading.collect::<Vec<_>>() {
        assert_eq!(r.await.unwrap(), 64);
    }
    through
}
