//! Dispatch: what each request on a connection becomes — a call handed to its handler
//! (`serve`) or to `accept`, or a refusal (not a call, an unknown method, a bad header)
//! answered on the spot. The request's content type chooses the protocol (gRPC, gRPC-Web,
//! Connect), as connect-go's handler does; the call is the same whichever it is.

use bytes::Bytes;
use h2::server::SendResponse;
use http::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::shared::Shared;
use crate::call::{Accepted, ServerCall, Shape};
use crate::protocol::{connect, grpc, NotACall, Receiver, Refusal, Sender, Wire};
use crate::status::{Code, Status};
use crate::transport::driver::Driver;

pub(super) fn dispatch(
    shared: &Shared,
    req: Request<h2::RecvStream>,
    respond: SendResponse<Bytes>,
    peer: SocketAddr,
    driver: Option<Arc<Driver>>,
) {
    let (parts, body) = req.into_parts();
    let (wire, base) = match Wire::of_request(&parts) {
        Ok(w) => w,
        Err(n) => return refuse_http(respond, body, n),
    };
    let incoming = match wire {
        Wire::Grpc | Wire::GrpcWeb => grpc::accept(&parts, &base),
        Wire::ConnectStream => connect::accept(&parts, &base, false),
        Wire::ConnectUnary => connect::accept(&parts, &base, true),
    };
    let incoming = match incoming {
        Ok(i) => i,
        Err(r) => {
            let Refusal {
                status,
                content_type,
                accept,
            } = r;
            return Sender::server(wire, respond, content_type, driver).refuse(&status, accept);
        }
    };
    let Some(&shape) = shared.methods.get(&incoming.path) else {
        let s = Status::new(
            Code::Unimplemented,
            unknown_method_message(&incoming.path, &shared.methods),
        );
        let sender = Sender::server(wire, respond, incoming.content_type, driver);
        return sender.route_not_found(&s);
    };
    // Connect's unary form is for unary methods and its streaming form for the others, as
    // connect-go routes them: the other form is a content type the method does not take.
    let connect_unary = wire == Wire::ConnectUnary;
    if matches!(wire, Wire::ConnectStream | Wire::ConnectUnary)
        && connect_unary != (shape == Shape::Unary)
    {
        let why = if connect_unary {
            "a streaming method takes Connect's streaming content type, application/connect+<codec>\n"
        } else {
            "a unary method takes Connect's unary content type, application/<codec>\n"
        };
        let n = NotACall {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            why,
            grpc_status: None,
        };
        return refuse_http(respond, body, n);
    }
    let call = ServerCall::new(Accepted {
        shape,
        protocol: wire.protocol(),
        metadata: incoming.metadata,
        timeout: incoming.timeout,
        peer,
        request_encoding: incoming.encoding,
        accepts_gzip: incoming.accepts_gzip,
        sender: Sender::server(wire, respond, incoming.content_type, driver),
        receiver: Receiver::server(
            wire,
            body,
            shared.opts.max_recv_message_size,
            incoming.encoding,
        ),
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

/// Answers a request that is not a call with a plain HTTP status.
fn refuse_http(respond: SendResponse<Bytes>, body: h2::RecvStream, n: NotACall) {
    let mut resp = plain(n.status);
    if let Some(s) = n.grpc_status {
        // A gRPC client learns the reason from the headers grpc-go sends too.
        for (k, v) in grpc::trailers(&s).iter() {
            resp.headers_mut().append(k.clone(), v.clone());
        }
    }
    refuse(respond, body, resp, n.why);
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
