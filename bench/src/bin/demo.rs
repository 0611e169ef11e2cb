//! The demo: an echo server and a client on loopback, through all four call shapes.

use prost::Message;
use rill_testkit::echo::{Request, Response};
use rill_testkit::rill_echo::{self, ECHO, ECHO_CLIENT, ECHO_SERVER, PING_PONG};
use rillrpc::{Bytes, CallOptions, Channel, Code, Metadata, ServerOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn req(payload: &[u8], count: i32) -> Bytes {
    Bytes::from(
        Request {
            payload: payload.to_vec(),
            count,
        }
        .encode_to_vec(),
    )
}

fn payload(b: &[u8]) -> String {
    String::from_utf8_lossy(&Response::decode(b).expect("echo.Response").payload).into_owned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Arc::new(rill_echo::builder(ServerOptions::default()).bind("127.0.0.1:0")?);
    let addr = server.local_addr();
    tokio::spawn(rill_echo::serve(server.clone()));
    println!("rillrpc {} echo server on {addr}", rillrpc::VERSION);

    let ch = Channel::new(&format!("http://{addr}"))?;

    let r = ch
        .unary(PING_PONG, req(b"hello", 0), CallOptions::new())
        .await?;
    println!("unary            PingPong(\"hello\") -> {:?}", payload(&r));

    let mut call = ch
        .server_streaming(ECHO_SERVER, req(b"tick", 5), CallOptions::new())
        .await?;
    let mut got = Vec::new();
    while let Some(m) = call.recv().await? {
        got.push(payload(&m));
    }
    println!("server streaming EchoServer(\"tick\", count=5) -> {got:?}");

    let msgs = ["one", "two", "three"].map(|s| req(s.as_bytes(), 0));
    let r = ch
        .client_streaming(ECHO_CLIENT, msgs, CallOptions::new())
        .await?;
    println!(
        "client streaming EchoClient(one, two, three) -> {:?} bytes",
        payload(&r)
    );

    let mut md = Metadata::new();
    md.append_ascii("echo-user", "demo")?;
    let mut call = ch.bidi(ECHO, CallOptions::new().metadata(md))?;
    for word in ["ping", "pong", "rill"] {
        call.send(req(word.as_bytes(), 0)).await?;
        let m = call.recv().await?.expect("a reply");
        println!(
            "bidi             Echo: sent {word:?}, got {:?}",
            payload(&m)
        );
    }
    println!(
        "bidi             response headers: {:?}",
        call.headers().await?
    );
    let status = call.finish().await;
    println!(
        "bidi             finished: {status}, trailers {:?}",
        status.trailers()
    );

    let err = ch
        .unary(
            PING_PONG,
            req(b"no such thing", -(Code::NotFound as i32)),
            CallOptions::new(),
        )
        .await
        .unwrap_err();
    println!("error status     {err}");

    let err = ch
        .unary("/echo.TestService/Missing", req(b"", 0), CallOptions::new())
        .await
        .unwrap_err();
    println!("unknown method   {err}");

    let n = 200_000;
    let start = Instant::now();
    let mut call = ch
        .server_streaming(ECHO_SERVER, req(b"0123456789abcdef", n), CallOptions::new())
        .await?;
    let mut count = 0;
    while call.recv().await?.is_some() {
        count += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput       {count} x 16 B server-streamed in {secs:.3} s = {:.0} msg/s",
        count as f64 / secs
    );

    server.shutdown(Duration::from_secs(1)).await;
    println!("server shut down gracefully");
    Ok(())
}
