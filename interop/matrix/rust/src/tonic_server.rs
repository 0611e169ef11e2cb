//! The tonic server of the matrix: `matrix-server-tonic --port N` serves the echo service on
//! tonic (the peer the Rust tests use, rill-testkit's `TonicEcho`) and prints `listening on
//! HOST:PORT`. Its h2 (0.4.20) closes a connection whose client sends small DATA frames
//! faster than the handler reads them (GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames",
//! issue 17), which the client_streaming check's burst is there to catch. (The rillrpc
//! servers run h2 too, but take what it receives off its hands at once: none of them
//! tripped on a client that framed each message alone.)
//!
//! The server contract also wants `echo-*` request metadata back in the trailers of a
//! successful call; tonic has no API for trailers on an OK response, so [`EchoTrailers`]
//! adds them to the trailers frame tonic writes.

use http_body_util::BodyExt;
use rill_testkit::{TestServiceServer, TonicEcho};
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;

fn main() {
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--port", Some(p)) => port = p.parse().unwrap_or_else(|_| usage("bad --port")),
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        println!("listening on {}", listener.local_addr().unwrap());
        let _ = std::io::stdout().flush();
        tonic::transport::Server::builder()
            .add_service(EchoTrailers(TestServiceServer::new(TonicEcho)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
    });
}

fn fail(msg: &str) -> ! {
    eprintln!("matrix-server-tonic: {msg}");
    std::process::exit(1)
}

fn usage(msg: &str) -> ! {
    eprintln!("matrix-server-tonic: {msg}\nusage: matrix-server-tonic [--port N]");
    std::process::exit(2)
}

/// A tonic service whose successful responses also carry the request's `echo-*` metadata
/// in their trailers (unless the service put that key there itself).
#[derive(Clone)]
struct EchoTrailers<S>(S);

impl<S: tonic::server::NamedService> tonic::server::NamedService for EchoTrailers<S> {
    const NAME: &'static str = S::NAME;
}

type Echoed = Vec<(http::HeaderName, http::HeaderValue)>;

impl<S> tower_service::Service<http::Request<Body>> for EchoTrailers<S>
where
    S: tower_service::Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = Infallible,
    >,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let echoed: Echoed = req
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("echo-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let resp = self.0.call(req);
        Box::pin(async move {
            let resp = resp.await?;
            if echoed.is_empty() {
                return Ok(resp);
            }
            Ok(resp.map(|body| {
                Body::new(body.map_frame(move |mut f| {
                    if let Some(t) = f.trailers_mut() {
                        let ok = t.get("grpc-status").is_some_and(|s| s == "0");
                        for (k, v) in &echoed {
                            if ok && !t.contains_key(k) {
                                t.append(k.clone(), v.clone());
                            }
                        }
                    }
                    f
                }))
            }))
        })
    }
}
