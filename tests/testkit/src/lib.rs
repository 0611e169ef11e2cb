//! What tests and benches share: the real peer (tonic's generated client and server for
//! `shared/idl/echo.proto`, with a reference echo service on tonic), the same echo service
//! on rillrpc, throwaway TLS certificates, and an HTTP/2 frame counter for tonic's
//! connections (`frames`).

pub mod echo {
    tonic::include_proto!("echo");
}
pub mod echo_thrift;
pub mod frames;
pub mod rill_echo;
pub mod tls;

pub use echo::test_service_client::TestServiceClient;
pub use echo::test_service_server::{TestService, TestServiceServer};
pub use echo::{Request as EchoRequest, Response as EchoResponse};

use std::pin::Pin;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// The echo service on tonic, as the shared IDL describes it. Metadata whose key starts
/// with `echo-` is sent back in both headers and trailers, so tests can see it cross.
#[derive(Clone, Default)]
pub struct TonicEcho;

type RespStream = Pin<Box<dyn Stream<Item = Result<EchoResponse, Status>> + Send>>;

fn echo_md<T>(req: &Request<T>) -> tonic::metadata::MetadataMap {
    let mut md = tonic::metadata::MetadataMap::new();
    for kv in req.metadata().iter() {
        match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) if k.as_str().starts_with("echo-") => {
                md.insert(k.clone(), v.clone());
            }
            tonic::metadata::KeyAndValueRef::Binary(k, v) if k.as_str().starts_with("echo-") => {
                md.insert_bin(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    md
}

/// A request asking for an error: `count` < 0 means "fail with status code -count".
fn requested_error(req: &EchoRequest, md: &tonic::metadata::MetadataMap) -> Option<Status> {
    if req.count < 0 {
        let code = tonic::Code::from(-req.count);
        let msg = String::from_utf8_lossy(&req.payload).into_owned();
        return Some(Status::with_metadata(code, msg, md.clone()));
    }
    None
}

#[tonic::async_trait]
impl TestService for TonicEcho {
    async fn ping_pong(&self, req: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let md = echo_md(&req);
        let r = req.into_inner();
        if let Some(s) = requested_error(&r, &md) {
            return Err(s);
        }
        let mut resp = Response::new(EchoResponse { payload: r.payload });
        *resp.metadata_mut() = md;
        Ok(resp)
    }

    type EchoStream = RespStream;

    async fn echo(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Self::EchoStream>, Status> {
        let md = echo_md(&req);
        let mut inbound = req.into_inner();
        let md2 = md.clone();
        let out = async_stream_like(move |tx| async move {
            let md = md2;
            while let Some(m) = inbound.next().await {
                match m {
                    Ok(r) => {
                        if let Some(s) = requested_error(&r, &md) {
                            let _ = tx.send(Err(s)).await;
                            return;
                        }
                        if tx
                            .send(Ok(EchoResponse { payload: r.payload }))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        let mut resp = Response::new(out);
        *resp.metadata_mut() = md;
        Ok(resp)
    }

    async fn echo_client(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Status> {
        let md = echo_md(&req);
        let mut inbound = req.into_inner();
        let mut total = 0usize;
        while let Some(m) = inbound.next().await {
            let r = m?;
            if let Some(s) = requested_error(&r, &md) {
                return Err(s);
            }
            total += r.payload.len();
        }
        let mut resp = Response::new(EchoResponse {
            payload: total.to_string().into_bytes(),
        });
        *resp.metadata_mut() = md;
        Ok(resp)
    }

    type EchoServerStream = RespStream;

    async fn echo_server(
        &self,
        req: Request<EchoRequest>,
    ) -> Result<Response<Self::EchoServerStream>, Status> {
        let md = echo_md(&req);
        let r = req.into_inner();
        if let Some(s) = requested_error(&r, &md) {
            return Err(s);
        }
        let count = r.count.max(0) as usize;
        let payload = r.payload;
        let out = tokio_stream::iter(
            std::iter::repeat_n(payload, count).map(|p| Ok(EchoResponse { payload: p })),
        );
        let mut resp = Response::new(Box::pin(out) as RespStream);
        *resp.metadata_mut() = md;
        Ok(resp)
    }
}

/// A boxed stream fed by a task through a small bounded channel.
fn async_stream_like<F, Fut>(f: F) -> RespStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<EchoResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
