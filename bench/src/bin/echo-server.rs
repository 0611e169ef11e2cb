//! An echo server for `shared/idl/echo.proto`, on rillrpc, on tonic or on the `connectrpc`
//! crate, for benchmarks and for reproducing a benchmark cell by hand.
//!
//!     echo-server --impl rill|tonic|connectrpc [--port 50051] [--host 127.0.0.1]
//!                 [--max-streams N] [--threads N] [--count-frames] [--cors ORIGIN]...
//!
//! The rill server answers gRPC, gRPC-Web and Connect on its one port, over HTTP/1.1 and
//! HTTP/2, and also serves `shared/idl/echo.thrift`'s TestService there, as Kitex's server
//! does: Thrift payloads over gRPC (`application/grpc+thrift`), TTHeader Streaming and
//! Thrift PingPong (the messages in Thrift Binary whenever a call's codec is Thrift). `--cors ORIGIN` (repeatable; `*` for any) lets browser pages from that origin
//! call it. The connectrpc server (`rill_bench::connectrpc_echo`) answers the same three
//! protocols over both HTTP versions on its one port.
//!
//! Prints `listening on <addr>` once it accepts connections. With `--count-frames` (tonic
//! only), each connection's HTTP/2 frames are counted as tonic reads and writes them, and
//! when it closes one line goes to stdout, flushed (`rill_testkit::frames`):
//! `frames peer=ADDR in_data=N in_data_bytes=N out_data=N out_data_bytes=N ... goaway_out=N`
//! ("in" is what the server read). Tests of other languages' clients read it.

use std::io::Write;
use std::sync::Arc;

fn main() {
    let mut imp = "rill".to_string();
    let mut host = "127.0.0.1".to_string();
    let mut port = 50051u16;
    let mut max_streams = 100_000u32;
    let mut threads = 0usize;
    let mut count_frames = false;
    let mut cors = Vec::new();
    let mut header_read_timeout = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--impl" => imp = val(),
            "--host" => host = val(),
            "--port" => port = val().parse().unwrap_or_else(|_| usage("bad --port")),
            "--max-streams" => {
                max_streams = val().parse().unwrap_or_else(|_| usage("bad --max-streams"))
            }
            "--threads" => threads = val().parse().unwrap_or_else(|_| usage("bad --threads")),
            "--count-frames" => count_frames = true,
            "--cors" => cors.push(val()),
            "--header-read-timeout-ms" => {
                let ms = val()
                    .parse()
                    .unwrap_or_else(|_| usage("bad --header-read-timeout-ms"));
                header_read_timeout = Some(std::time::Duration::from_millis(ms));
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        rt.worker_threads(threads);
    }
    if count_frames && imp != "tonic" {
        usage("--count-frames needs --impl tonic");
    }
    if (!cors.is_empty() || header_read_timeout.is_some()) && imp != "rill" {
        usage("--cors and --header-read-timeout-ms need --impl rill");
    }
    let rt = rt.enable_all().build().expect("runtime");
    rt.block_on(async move {
        let addr = format!("{host}:{port}");
        match imp.as_str() {
            "rill" => {
                let defaults = rillrpc::ServerOptions::default();
                let opts = rillrpc::ServerOptions {
                    max_concurrent_streams: max_streams,
                    header_read_timeout: header_read_timeout
                        .unwrap_or(defaults.header_read_timeout),
                    cors: (!cors.is_empty()).then(|| rillrpc::Cors {
                        allowed_origins: cors,
                        ..rillrpc::Cors::any_origin()
                    }),
                    ..defaults
                };
                let server = Arc::new(
                    rill_testkit::rill_echo::builder(opts)
                        .bind(&addr)
                        .unwrap_or_else(|e| fail(&e.to_string())),
                );
                announce(server.local_addr());
                rill_testkit::rill_echo::serve_with_thrift(server).await;
            }
            "tonic" => {
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .unwrap_or_else(|e| fail(&e.to_string()));
                announce(listener.local_addr().unwrap());
                let server = tonic::transport::Server::builder()
                    .max_concurrent_streams(max_streams)
                    .tcp_nodelay(true)
                    .add_service(rill_testkit::TestServiceServer::new(
                        rill_testkit::TonicEcho,
                    ));
                let served = if count_frames {
                    let log = rill_testkit::frames::FrameLog::printing();
                    server.serve_with_incoming(log.incoming(listener)).await
                } else {
                    // serve_with_incoming ignores the builder's tcp_nodelay: without this, the
                    // tonic server's replies wait on Nagle for a client that delays its ACKs
                    // (grpc-go's: a unary call then takes 40 ms).
                    let incoming = tonic::transport::server::TcpIncoming::from(listener)
                        .with_nodelay(Some(true));
                    server.serve_with_incoming(incoming).await
                };
                served.unwrap_or_else(|e| fail(&e.to_string()));
            }
            "connectrpc" => {
                rill_bench::connectrpc_echo::serve(&addr, max_streams, announce)
                    .await
                    .unwrap_or_else(|e| fail(&e));
            }
            other => usage(&format!(
                "--impl must be rill, tonic or connectrpc, not {other}"
            )),
        }
    });
}

fn announce(addr: std::net::SocketAddr) {
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
}

fn fail(msg: &str) -> ! {
    eprintln!("echo-server: {msg}");
    std::process::exit(1)
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("echo-server: {msg}");
    }
    eprintln!(
        "usage: echo-server --impl rill|tonic|connectrpc [--port N] [--host H] [--max-streams N]\n\
         \x20      [--threads N]\n\
         \x20      [--count-frames]   (tonic: a line of HTTP/2 frame counts per closed connection)\n\
         \x20      [--cors ORIGIN]... (rill: browser pages from ORIGIN, or * for any, may call)\n\
         \x20      [--header-read-timeout-ms N] (rill: a request's head must be in N ms after it began)"
    );
    std::process::exit(2)
}
