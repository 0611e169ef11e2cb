//! `HttpVersion::Auto`: under TLS the server picks HTTP/2 or HTTP/1.1 by ALPN, and the
//! channel follows. The HTTP/1.1-only servers here are what a TLS-terminating proxy
//! offering only `http/1.1` (or no ALPN at all) looks like: a rustls acceptor in front of
//! the echo server's plain port, which answers HTTP/1.1 there.

mod common;

use common::*;
use rill_testkit::rill_echo::{ECHO, ECHO_SERVER, PING_PONG};
use rillrpc::{
    CallOptions, Channel, ChannelOptions, ClientTls, Code, HttpVersion, Protocol, ServerOptions,
    ServerTls, Shape,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// A TLS front for `backend` whose ALPN offers `alpn` (nothing: no ALPN extension in its
/// answer); counts the connections it accepted.
async fn tls_front(
    backend: SocketAddr,
    cert: &rill_testkit::tls::TestCert,
    alpn: &[&[u8]],
) -> (SocketAddr, Arc<AtomicUsize>) {
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut cert.key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut plain = TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, accepted)
}

fn channel(addr: SocketAddr, ca: &str, protocol: Protocol, version: HttpVersion) -> Channel {
    let opts = ChannelOptions {
        protocol,
        http_version: version,
        tls: Some(ClientTls {
            ca_pem: Some(ca.as_bytes().to_vec()),
            server_name: Some("localhost".into()),
            identity: None,
        }),
        ..Default::default()
    };
    Channel::with_options(&format!("https://{addr}"), opts).unwrap()
}

async fn ping(ch: &Channel, payload: &[u8]) -> Result<Vec<u8>, rillrpc::Status> {
    let r = ch
        .unary(PING_PONG, req(payload, 0), CallOptions::default())
        .await?;
    Ok(resp_payload(&r))
}

/// A bidi round trip: it only works over HTTP/2.
async fn bidi_round_trip(ch: &Channel) -> Result<(), rillrpc::Status> {
    let mut call = ch.open(ECHO, Shape::Bidi, CallOptions::default())?;
    call.send(req(b"both ways", 0)).await?;
    let got = call.recv().await?.expect("an answer");
    assert_eq!(resp_payload(&got), b"both ways");
    call.close_send();
    assert!(call.recv().await?.is_none());
    Ok(())
}

#[tokio::test]
async fn auto_speaks_http2_to_a_server_that_picks_it() {
    let cert = rill_testkit::tls::localhost();
    let server = rill_server(ServerOptions {
        tls: Some(ServerTls {
            cert_pem: cert.cert_pem.clone().into_bytes(),
            key_pem: cert.key_pem.clone().into_bytes(),
            client_ca_pem: None,
        }),
        ..Default::default()
    });
    for p in [Protocol::Connect, Protocol::GrpcWeb, Protocol::Grpc] {
        let ch = channel(server.local_addr(), &cert.cert_pem, p, HttpVersion::Auto);
        assert_eq!(ping(&ch, b"h2").await.unwrap(), b"h2", "{p:?}");
        bidi_round_trip(&ch)
            .await
            .unwrap_or_else(|s| panic!("{p:?}: {s:?}"));
    }
}

#[tokio::test]
async fn auto_follows_a_server_that_picks_http1_on_the_connection_it_chose() {
    let cert = rill_testkit::tls::localhost();
    let backend = rill_server(ServerOptions::default());
    for (alpn, what) in [(&[&b"http/1.1"[..]][..], "http/1.1"), (&[][..], "no ALPN")] {
        let (front, accepted) = tls_front(backend.local_addr(), &cert, alpn).await;
        for p in [Protocol::Connect, Protocol::GrpcWeb] {
            let before = accepted.load(Ordering::SeqCst);
            let ch = channel(front, &cert.cert_pem, p, HttpVersion::Auto);
            // The first call waits for the connection that learns the server's choice,
            // and then takes that connection; the second one reuses it.
            for payload in [&b"one"[..], b"two"] {
                let got = ping(&ch, payload)
                    .await
                    .unwrap_or_else(|s| panic!("{what}, {p:?}: {s:?}"));
                assert_eq!(got, payload, "{what}, {p:?}");
            }
            assert_eq!(
                accepted.load(Ordering::SeqCst) - before,
                1,
                "{what}, {p:?}: the connection ALPN was negotiated on carried the calls"
            );
            let mut call = ch
                .server_streaming(ECHO_SERVER, req(b"s", 3), CallOptions::default())
                .await
                .unwrap();
            let mut n = 0;
            while call.recv().await.unwrap().is_some() {
                n += 1;
            }
            assert_eq!(n, 3, "{what}, {p:?}");
            // Known to be HTTP/1.1 now: refused before anything is sent.
            let Err(s) = ch.open(ECHO, Shape::Bidi, CallOptions::default()) else {
                panic!("{what}, {p:?}: a bidi call over HTTP/1.1 opened");
            };
            assert_eq!(s.code(), Code::Unimplemented, "{what}, {p:?}: {s:?}");
        }
    }
}

/// A bidi call that is the channel's first learns of HTTP/1.1 once it is opening: it ends
/// with the same status as one refused when the call is made.
#[tokio::test]
async fn a_first_bidi_call_ends_unimplemented_when_the_server_picks_http1() {
    let cert = rill_testkit::tls::localhost();
    let backend = rill_server(ServerOptions::default());
    let (front, _) = tls_front(backend.local_addr(), &cert, &[b"http/1.1"]).await;
    let ch = channel(front, &cert.cert_pem, Protocol::Connect, HttpVersion::Auto);
    let s = bidi_round_trip(&ch).await.unwrap_err();
    assert_eq!(
        (s.code(), s.message()),
        (Code::Unimplemented, "bidi streams require at least HTTP/2")
    );
    assert_eq!(ping(&ch, b"after").await.unwrap(), b"after");
}

/// What `Auto` does not do: an HTTP/2 channel does not fall back, and gRPC offers only
/// `h2`, so a server that takes only HTTP/1.1 fails the TLS handshake.
#[tokio::test]
async fn http2_and_grpc_do_not_fall_back_to_http1() {
    let cert = rill_testkit::tls::localhost();
    let backend = rill_server(ServerOptions::default());
    let (front, _) = tls_front(backend.local_addr(), &cert, &[]).await;
    let ch = channel(front, &cert.cert_pem, Protocol::Connect, HttpVersion::Http2);
    let s = ping(&ch, b"x").await.unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert!(
        s.message().contains("did not negotiate HTTP/2"),
        "{}",
        s.message()
    );

    let (front, _) = tls_front(backend.local_addr(), &cert, &[b"http/1.1"]).await;
    let ch = channel(front, &cert.cert_pem, Protocol::Grpc, HttpVersion::Auto);
    let s = ping(&ch, b"x").await.unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert!(s.message().contains("TLS handshake"), "{}", s.message());
}

#[test]
fn auto_is_named_auto() {
    assert_eq!(
        rillrpc::by_name::<HttpVersion>("http_version", "auto").unwrap(),
        HttpVersion::Auto
    );
    assert_eq!(HttpVersion::Auto.name(), "auto");
}
