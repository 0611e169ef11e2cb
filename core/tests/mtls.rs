//! Mutual TLS on the server (`ServerTls::client_ca_pem`): a client whose certificate the
//! given CA signed is served, tonic's and ours; one with no certificate, or with one
//! another CA signed, fails its handshake.

mod common;

use common::*;
use rill_testkit::rill_echo::PING_PONG;
use rill_testkit::tls::{client_pki, TestCert};
use rillrpc::{CallOptions, Channel, ChannelOptions, ClientTls, Code, ServerOptions, ServerTls};
use std::net::SocketAddr;

fn mtls_server(cert: &TestCert, client_ca_pem: &str) -> std::sync::Arc<rillrpc::Server> {
    rill_server(ServerOptions {
        tls: Some(ServerTls {
            cert_pem: cert.cert_pem.clone().into_bytes(),
            key_pem: cert.key_pem.clone().into_bytes(),
            client_ca_pem: Some(client_ca_pem.as_bytes().to_vec()),
        }),
        ..Default::default()
    })
}

async fn ping_as(
    addr: SocketAddr,
    server_ca: &str,
    identity: Option<&TestCert>,
) -> Result<(), rillrpc::Status> {
    let opts = ChannelOptions {
        tls: Some(ClientTls {
            ca_pem: Some(server_ca.as_bytes().to_vec()),
            server_name: Some("localhost".into()),
            identity: identity.map(|c| {
                (
                    c.cert_pem.clone().into_bytes(),
                    c.key_pem.clone().into_bytes(),
                )
            }),
        }),
        ..Default::default()
    };
    let ch = Channel::with_options(&format!("https://{addr}"), opts).unwrap();
    let r = ch
        .unary(PING_PONG, req(b"who", 0), CallOptions::default())
        .await?;
    assert_eq!(resp_payload(&r), b"who");
    Ok(())
}

#[tokio::test]
async fn a_client_the_ca_signed_is_served_and_no_other() {
    let cert = rill_testkit::tls::localhost();
    let pki = client_pki();
    let server = mtls_server(&cert, &pki.ca_pem);
    let addr = server.local_addr();
    ping_as(addr, &cert.cert_pem, Some(&pki.client))
        .await
        .unwrap();

    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&cert.cert_pem))
        .identity(tonic::transport::Identity::from_pem(
            &pki.client.cert_pem,
            &pki.client.key_pem,
        ))
        .domain_name("localhost");
    let ch = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut tonic = rill_testkit::TestServiceClient::new(ch);
    let request = rill_testkit::echo::Request {
        payload: b"tonic".to_vec(),
        count: 0,
    };
    let got = tonic.ping_pong(request).await.unwrap();
    assert_eq!(got.into_inner().payload, b"tonic");

    let stranger = client_pki().client;
    for (identity, what) in [(None, "no certificate"), (Some(&stranger), "another CA's")] {
        let s = ping_as(addr, &cert.cert_pem, identity).await.unwrap_err();
        assert_eq!(s.code(), Code::Unavailable, "{what}: {s:?}");
    }
    // The server goes on serving the client it trusts.
    ping_as(addr, &cert.cert_pem, Some(&pki.client))
        .await
        .unwrap();
}

#[test]
fn client_cas_that_are_not_pem_certificates_are_refused_at_bind() {
    let cert = rill_testkit::tls::localhost();
    let opts = ServerOptions {
        tls: Some(ServerTls {
            cert_pem: cert.cert_pem.into_bytes(),
            key_pem: cert.key_pem.into_bytes(),
            client_ca_pem: Some(b"not a certificate".to_vec()),
        }),
        ..Default::default()
    };
    let Err(e) = rillrpc::ServerBuilder::new(opts).bind("127.0.0.1:0") else {
        panic!("a server bound with a client CA that is no certificate");
    };
    assert!(e.message().contains("no certificate found"), "{e}");
}
