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
