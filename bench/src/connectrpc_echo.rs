//! The echo service of `shared/idl/echo.proto` on the `connectrpc` crate's server
//! (crates.io), for `echo-server --impl connectrpc`: its generated `TestService` trait
//! (connectrpc-build, in build.rs) implemented with the conventions of every other echo
//! server (`count < 0` asks for status code `-count` with the payload as message; request
//! headers starting with `echo-` come back as response headers and trailers), served by the
//! crate's own hyper server: Connect, gRPC and gRPC-Web over HTTP/1.1 and h2c on one port.
//!
//! The crate is built without its compression features: like the other servers, it
//! answers uncompressed.

use connectrpc::{
    ConnectError, ErrorCode, RequestContext, Response, Router, ServiceRequest, ServiceResult,
    ServiceStream, StreamMessage,
};
use futures_util::StreamExt;
use std::sync::Arc;

/// The generated messages and service trait.
pub mod proto {
    connectrpc::include_generated!();
}

use proto::echo::{Request, TestService, TestServiceExt};

type Reply = proto::echo::Response;
type Requests = ServiceStream<StreamMessage<Request>>;

/// The echo service.
struct Echo;

fn reply(payload: Vec<u8>) -> Reply {
    Reply {
        payload,
        ..Default::default()
    }
}

fn requested(count: i32, payload: &[u8]) -> Result<(), ConnectError> {
    if count >= 0 {
        return Ok(());
    }
    let code = ErrorCode::from_grpc_code(count.unsigned_abs()).unwrap_or(ErrorCode::Unknown);
    Err(ConnectError::new(
        code,
        String::from_utf8_lossy(payload).into_owned(),
    ))
}

/// The request's `echo-*` headers as the response's headers and trailers.
fn with_echo_md<B>(ctx: &RequestContext, mut r: Response<B>) -> Response<B> {
    for (k, v) in ctx.headers() {
        if k.as_str().starts_with("echo-") {
            r.headers.append(k.clone(), v.clone());
            r.trailers.append(k.clone(), v.clone());
        }
    }
    r
}

// The handlers name their concrete reply types, as the crate's own examples write them,
// where the generated trait says `impl Encodable<Response>`.
#[allow(refining_impl_trait)]
impl TestService for Echo {
    async fn ping_pong(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, Request>,
    ) -> ServiceResult<Reply> {
        requested(request.count, request.payload)?;
        Ok(with_echo_md(
            &ctx,
            Response::new(reply(request.payload.to_vec())),
        ))
    }

    async fn echo(
        &self,
        ctx: RequestContext,
        requests: Requests,
    ) -> ServiceResult<ServiceStream<Reply>> {
        let replies = requests.map(|m| {
            let m = m?;
            requested(m.count(), m.payload())?;
            Ok(reply(m.payload().to_vec()))
        });
        Ok(with_echo_md(&ctx, Response::stream(replies)))
    }

    async fn echo_client(
        &self,
        ctx: RequestContext,
        mut requests: Requests,
    ) -> ServiceResult<Reply> {
        let mut total = 0usize;
        while let Some(m) = requests.next().await {
            let m = m?;
            requested(m.count(), m.payload())?;
            total += m.payload().len();
        }
        Ok(with_echo_md(
            &ctx,
            Response::new(reply(total.to_string().into_bytes())),
        ))
    }

    async fn echo_server(
        &self,
        ctx: RequestContext,
        request: ServiceRequest<'_, Request>,
    ) -> ServiceResult<ServiceStream<Reply>> {
        requested(request.count, request.payload)?;
        let payload = request.payload.to_vec();
        let replies = futures_util::stream::iter(0..request.count.max(0))
            .map(move |_| Ok(reply(payload.clone())));
        Ok(with_echo_md(&ctx, Response::stream(replies)))
    }
}

/// Binds `addr`, calls `bound` with the address it listens on, then serves until the
/// process ends.
pub async fn serve(
    addr: &str,
    max_streams: u32,
    bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(), String> {
    let router = Arc::new(Echo).register(Router::new());
    let server = connectrpc::Server::bind(addr)
        .await
        .map_err(|e| e.to_string())?
        .with_max_concurrent_streams(max_streams);
    bound(server.local_addr().map_err(|e| e.to_string())?);
    server.serve(router).await.map_err(|e| e.to_string())
}
