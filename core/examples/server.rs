//! The echo service (echo.proto's echo.TestService) on a rillrpc server, every call shape:
//!   cargo run --example server [PORT]     (then: cargo run --example client)
//! PingPong also shows metadata (the client's `x-greeting` comes back as a header, and a
//! trailer names the server) and an error (a request whose payload is "error").

use prost::Message;
use rillrpc::{Bytes, Code, Metadata, Server, ServerCall, Shape, Status};

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

fn response(payload: Vec<u8>) -> Bytes {
    Bytes::from(Response { payload }.encode_to_vec())
}

fn request(msg: &[u8]) -> Result<Request, Status> {
    Request::decode(msg).map_err(|e| Status::new(Code::InvalidArgument, e.to_string()))
}

async fn ping_pong(call: &mut ServerCall) -> Result<Status, Status> {
    let req = request(&call.recv_single().await?)?;
    if req.payload == b"error" {
        return Ok(Status::new(
            Code::InvalidArgument,
            "the request asked for an error",
        ));
    }
    if let Some(greeting) = call.metadata().get_ascii("x-greeting") {
        let mut headers = Metadata::new();
        headers
            .append_ascii("x-greeting", greeting)
            .expect("an ASCII value");
        call.send_headers(&headers)?;
    }
    call.send(response(req.payload)).await?;
    let mut trailers = Metadata::new();
    trailers
        .append_ascii("x-served-by", "rillrpc-rust")
        .expect("an ASCII value");
    Ok(Status::ok().with_trailers(trailers))
}

async fn serve(call: &mut ServerCall) -> Result<Status, Status> {
    match call.method() {
        "/echo.TestService/PingPong" => return ping_pong(call).await,
        "/echo.TestService/Echo" => {
            while let Some(msg) = call.recv().await? {
                call.send(response(request(&msg)?.payload)).await?;
            }
        }
        "/echo.TestService/EchoClient" => {
            let mut total = 0;
            while let Some(msg) = call.recv().await? {
                total += request(&msg)?.payload.len();
            }
            call.send(response(total.to_string().into_bytes())).await?;
        }
        "/echo.TestService/EchoServer" => {
            let req = request(&call.recv_single().await?)?;
            for _ in 0..req.count {
                call.send(response(req.payload.clone())).await?;
            }
        }
        other => return Err(Status::new(Code::Unimplemented, other)),
    }
    Ok(Status::ok())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "50051".into());
    // The core's own runtime runs everything: no tokio setup needed here.
    rillrpc::runtime::block_on(async {
        let server = Server::builder()
            .register("/echo.TestService/PingPong", Shape::Unary)
            .register("/echo.TestService/Echo", Shape::Bidi)
            .register("/echo.TestService/EchoClient", Shape::ClientStreaming)
            .register("/echo.TestService/EchoServer", Shape::ServerStreaming)
            .bind(&format!("127.0.0.1:{port}"))?;
        println!("listening on {}", server.local_addr());
        // Each call is served by a task of its own, until the server shuts down.
        server
            .serve(|mut call| async move {
                let status = serve(&mut call).await.unwrap_or_else(|s| s);
                let _ = call.finish(status);
            })
            .await?;
        Ok(())
    })
}
