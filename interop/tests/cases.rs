//! The client's cases against our server in-process (no Go needed), and against a server
//! that answers everything wrongly: each case must notice, so a pass means something.

use rill_interop::cases::{self, Outcome, CASES};
use rill_interop::service;
use rillrpc::{
    Bytes, Channel, ChannelOptions, ClientTls, Server, ServerBuilder, ServerOptions, Shape, Status,
};
use std::sync::Arc;
use std::time::Duration;

/// Serves `server` with `serve` on this runtime; a channel to it.
fn start<F>(server: Server, serve: impl FnOnce(Arc<Server>) -> F) -> Channel
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let server = Arc::new(server);
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    tokio::spawn(serve(server));
    ch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_against_our_server() {
    let server = service::builder(ServerOptions::default())
        .bind("127.0.0.1:0")
        .unwrap();
    let ch = start(server, service::serve);
    for case in CASES {
        match run(&ch, case).await {
            Ok(Outcome::Pass(_)) => {}
            other => panic!("{case}: {other:?}"),
        }
    }
}

/// Answers every request message, whatever the method, with one message that is no valid
/// response (and not empty), then ends with OK: no metadata, no compression.
async fn liar(server: Arc<Server>) {
    while let Some(mut call) = server.accept().await {
        tokio::spawn(async move {
            let wrong = Bytes::from_static(b"\x08\x01");
            while let Ok(Some(_)) = call.recv().await {
                let _ = call.send(wrong.clone()).await;
            }
            let _ = call.send(wrong).await;
            let _ = call.finish(Status::ok());
        });
    }
}

/// A case that hangs fails the test instead of the suite.
async fn run(ch: &Channel, case: &str) -> Result<Outcome, String> {
    tokio::time::timeout(Duration::from_secs(60), cases::run(ch, case))
        .await
        .unwrap_or_else(|_| panic!("{case} did not end within 60 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_notices_a_wrong_server() {
    let mut b = ServerBuilder::new(ServerOptions::default());
    for path in [
        "/grpc.testing.TestService/EmptyCall",
        "/grpc.testing.TestService/UnaryCall",
        "/grpc.testing.TestService/StreamingOutputCall",
        "/grpc.testing.TestService/StreamingInputCall",
        "/grpc.testing.TestService/FullDuplexCall",
        "/grpc.testing.TestService/UnimplementedCall",
        "/grpc.testing.UnimplementedService/UnimplementedCall",
    ] {
        b = b.register(path, Shape::Bidi);
    }
    let ch = start(b.bind("127.0.0.1:0").unwrap(), liar);
    // Cancelling is the client's own act, and a 1 ms deadline passes before any server
    // answers a request that is never half-closed: any server passes those three.
    let client_only = [
        "cancel_after_begin",
        "cancel_after_first_response",
        "timeout_on_sleeping_server",
    ];
    for case in CASES.iter().filter(|c| !client_only.contains(c)) {
        if let Ok(Outcome::Pass(_)) = run(&ch, case).await {
            panic!("{case} passed against a server that answers wrongly");
        }
    }
}

#[tokio::test]
async fn an_unknown_case_is_a_clear_failure() {
    let ch = Channel::new("http://127.0.0.1:1").unwrap();
    let e = cases::run(&ch, "no_such_case").await.unwrap_err();
    assert!(e.contains("unknown test case"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_pass_over_tls_and_a_wrong_name_is_refused() {
    let cert = rill_testkit::tls::localhost();
    let opts = ServerOptions {
        tls: Some(rillrpc::ServerTls {
            cert_pem: cert.cert_pem.clone().into_bytes(),
            key_pem: cert.key_pem.into_bytes(),
            client_ca_pem: None,
        }),
        ..Default::default()
    };
    let server = Arc::new(service::builder(opts).bind("127.0.0.1:0").unwrap());
    let port = server.local_addr().port();
    tokio::spawn(service::serve(server));
    let channel = |name: &str| {
        let opts = ChannelOptions {
            tls: Some(ClientTls {
                ca_pem: Some(cert.cert_pem.clone().into_bytes()),
                server_name: Some(name.to_owned()),
                identity: None,
            }),
            ..Default::default()
        };
        Channel::with_options(&format!("https://127.0.0.1:{port}"), opts).unwrap()
    };
    let ch = channel("localhost");
    for case in [
        "large_unary",
        "custom_metadata",
        "special_status_message",
        "ping_pong",
    ] {
        assert_eq!(run(&ch, case).await, Ok(Outcome::Pass(None)), "{case}");
    }
    let e = run(&channel("foo.test.google.fr"), "empty_unary")
        .await
        .unwrap_err();
    assert!(e.contains("UNAVAILABLE") && e.contains("TLS"), "{e}");
}
