//! Dispatch: what each request on a connection becomes — a call handed to its handler
//! (`serve`) or to `accept`, or a refusal (not gRPC, an unknown method, a bad header) answered on the spot.

use bytes::Bytes;
use h2::server::SendResponse;
use http::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::shared::Shared;
use crate::call::{Accepted, ServerCall, Shape};
use crate::protocol::grpc::{self, Refusal};
use crate::protocol::{Receiver, Sender};
use crate::status::{Code, Status};
use crate::transport::driver::Driver;

pub(super) fn dispatch(
    shared: &Shared,
    req: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    peer: SocketAddr,
    driver: Option<Arc<Driver>>,
) {
    let (parts, body) = req.into_parts();
    let incoming = match grpc::accept(&parts) {
        Ok(i) => i,
        Err(Refusal::Http(status, why, grpc_status)) => {
            let mut r = plain(status);
            if let Some(s) = grpc_status {
                // A gRPC client learns the reason from the headers grpc-go sends too.
                for (k, v) in grpc::trailers(&s).iter() {
                    r.headers_mut().append(k.clone(), v.clone());
                }
            }
            refuse(respond, body, r, why);
            return;
        }
        Err(Refusal::Status(s, ct, accept)) => {
            let _ = respond.send_response(grpc::trailers_only(&ct, &s, accept), true);
            return;
        }
    };
    let Some(&shape) = shared.methods.get(&incoming.path) else {
        let s = Status::new(
            Code::Unimplemented,
            unknown_method_message(&incoming.path, &shared.methods),
        );
        let _ = respond.send_response(grpc::trailers_only(&incoming.content_type, &s, None), true);
        return;
    };
    let call = ServerCall::new(Accepted {
        shape,
        metadata: incoming.metadata,
        timeout: incoming.timeout,
        peer,
        request_encoding: incoming.encoding,
        accepts_gzip: incoming.accepts_gzip,
        sender: Sender::Grpc(grpc::Sender::server(respond, incoming.content_type, driver)),
        receiver: Receiver::Grpc(grpc::Receiver::server(
            body,
            shared.opts.max_recv_message_size,
            incoming.encoding,
        )),
        method: incoming.path,
    });
    match shared.handler.get() {
        Some(start) => start(call),
        // Refused only when the server is gone; the call then ends as it drops.
        None => {
            let _ = shared.calls.send(call);
        }
    }
}

/// How long a refused request may take to end before it is answered anyway.
const REFUSE_DRAIN: Duration = Duration::from_secs(5);

/// Answers a request that is not gRPC (405, 415) once the request has ended, with a short
/// text body. Answering earlier makes h2 end the stream itself (RST_STREAM NO_ERROR) and
/// then ignore the rest of the request, protocol errors included; the body lets a plain
/// HTTP/2 client (curl, h2spec) see why.
fn refuse(
    mut respond: SendResponse<Bytes>,
    mut body: h2::RecvStream,
    resp: Response<()>,
    why: &'static str,
) {
    tokio::spawn(async move {
        let ended = tokio::time::timeout(REFUSE_DRAIN, async {
            while let Some(chunk) = body.data().await {
                let Ok(chunk) = chunk else { return false };
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            body.trailers().await.is_ok()
        })
        .await;
        if matches!(ended, Ok(false)) {
            return; // reset by the peer or malformed: h2 has answered already
        }
        if let Ok(mut out) = respond.send_response(resp, false) {
            let _ = out.send_data(Bytes::from_static(why.as_bytes()), true);
        }
    });
}

fn unknown_method_message(path: &str, methods: &HashMap<String, Shape>) -> String {
    let trimmed = path.trim_start_matches('/');
    let Some((service, method)) = trimmed.split_once('/') else {
        return format!("malformed method name: {path:?}");
    };
    let prefix = format!("/{service}/");
    if methods.keys().any(|k| k.starts_with(&prefix)) {
        format!("unknown method {method} for service {service}")
    } else {
        format!("unknown service {service}")
    }
}

fn plain(status: StatusCode) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = status;
    r
}
