//! A rillrpc client of the echo service (echo.proto's echo.TestService), every call shape:
//!   cargo run --example client [URL]      (default http://127.0.0.1:50051)
//! Runs against any echo server of the examples (Rust, Python, Node, C); exits 1 on a wrong
//! answer.

use prost::Message;
use rillrpc::{Bytes, CallOptions, Channel, Metadata, Shape, Status};
use std::time::Duration;

/// echo.proto's messages. prost derives their encoding; tonic-prost-build or prost-build
/// would generate the same structs from the .proto file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
    #[prost(int32, tag = "2")]
    pub count: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn request(payload: &[u8], count: i32) -> Bytes {
    let req = Request {
        payload: payload.to_vec(),
        count,
    };
    Bytes::from(req.encode_to_vec())
}

fn payload(msg: &[u8]) -> Result<String> {
    Ok(String::from_utf8_lossy(&Response::decode(msg)?.payload).into_owned())
}

fn check(what: &str, got: &str, want: &str) -> Result<()> {
    if got != want {
        return Err(format!("{what}: got {got:?}, want {want:?}").into());
    }
    println!("{what}: {got:?}");
    Ok(())
}

fn opts() -> CallOptions {
    CallOptions::new().timeout(Duration::from_secs(10))
}

async fn run(ch: &Channel) -> Result<()> {
    // Unary, with metadata: x-greeting comes back as a header; the status carries a trailer.
    let mut md = Metadata::new();
    md.append_ascii("x-greeting", "hello")?;
    // A unary call's one request: the half-close follows it.
    let mut call = ch.open(
        "/echo.TestService/PingPong",
        Shape::Unary,
        opts().metadata(md),
    )?;
    call.send(request(b"ping", 0)).await?;
    let headers = call.headers().await?;
    let reply = call.recv().await?.ok_or("PingPong: no response")?;
    let status = call.finish().await;
    check("unary", &payload(&reply)?, "ping")?;
    check(
        "header x-greeting",
        headers.get_ascii("x-greeting").unwrap_or(""),
        "hello",
    )?;
    check("status", status.code().name(), "OK")?;
    let served_by = status.trailers().get_ascii("x-served-by").unwrap_or("");
    println!("trailer x-served-by: {served_by:?}");

    // Server streaming: `count` responses.
    let mut call = ch
        .server_streaming("/echo.TestService/EchoServer", request(b"tick", 3), opts())
        .await?;
    let mut got = Vec::new();
    while let Some(msg) = call.recv().await? {
        got.push(payload(&msg)?);
    }
    check("server streaming", &got.join(","), "tick,tick,tick")?;

    // Client streaming: the answer is the number of payload bytes sent.
    let reqs = ["ab", "cde", "f"].map(|p| request(p.as_bytes(), 0));
    let total = ch
        .client_streaming("/echo.TestService/EchoClient", reqs, opts())
        .await?;
    check("client streaming", &payload(&total)?, "6")?;

    // Bidirectional: send and receive as they come.
    let mut call = ch.bidi("/echo.TestService/Echo", opts())?;
    let mut got = Vec::new();
    for p in ["one", "two", "three"] {
        call.send(request(p.as_bytes(), 0)).await?;
        got.push(payload(&call.recv().await?.ok_or("Echo: ended early")?)?);
    }
    call.close_send();
    if call.recv().await?.is_some() {
        return Err("Echo: a response too many".into());
    }
    check("bidi", &got.join(","), "one,two,three")?;

    // An error: the server ends the call with INVALID_ARGUMENT and a message.
    let err: Status = match ch
        .unary("/echo.TestService/PingPong", request(b"error", 0), opts())
        .await
    {
        Ok(_) => return Err("error: the call succeeded".into()),
        Err(status) => status,
    };
    check("error", err.code().name(), "INVALID_ARGUMENT")?;
    println!("error message: {:?}", err.message());
    Ok(())
}

fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let result = rillrpc::runtime::block_on(async {
        let ch = Channel::new(&url)?;
        run(&ch).await
    });
    match result {
        Ok(()) => println!("all ok"),
        Err(e) => {
            eprintln!("client: {e}");
            std::process::exit(1);
        }
    }
}
