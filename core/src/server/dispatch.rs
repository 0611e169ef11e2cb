//! Dispatch: what each request on a connection becomes — a call handed to its handler
//! (`serve`) or to `accept`, or a refusal (not a call, an unknown method, a bad header)
//! answered on the spot. The request's content type chooses the protocol (gRPC, gRPC-Web,
//! Connect), as connect-go's handler does; a TTHeader Streaming connection's streams are
//! calls too. The call is the same whichever it is.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

use super::arriving::{Arriving, Now};
use super::shared::{Method, Phase, Shared};
use crate::call::{Accepted, ServerCall, Shape};
use crate::protocol::envelope::{Accepts, Encoding};
use crate::protocol::ttheader::{metainfo, pingpong, stream as tts};
use crate::protocol::{connect, cors, grpc, NotACall, Protocol, Receiver, Sender, Wire};
use crate::status::{Code, Status};
use crate::transport::budget::{Ledger, Meter, SendBudget};
use crate::transport::driver::Driver;
use crate::transport::http::{RecvBody, Respond};
use crate::transport::ttheader::{self, key, Packet};

/// A request's place in its connection's send budget (`transport::budget`).
pub(super) enum Budgeted {
    /// The server has no budget.
    Free,
    Counted(Arc<Meter>),
    /// The server or the connection is over its budget: the call is refused.
    Over,
}

impl Budgeted {
    /// A new stream's place under the server's `budget`, counted in its connection's
    /// `ledger` by `key` (its name there).
    pub(super) fn of(budget: Option<&SendBudget>, ledger: Option<&Ledger>, key: u32) -> Budgeted {
        match (budget, ledger) {
            (Some(b), Some(l)) if b.refuses(l) => Budgeted::Over,
            (_, Some(l)) => Budgeted::Counted(l.open(key)),
            _ => Budgeted::Free,
        }
    }

    /// The call's count, and whether it is refused.
    fn split(self) -> (Option<Arc<Meter>>, bool) {
        match self {
            Budgeted::Free => (None, false),
            Budgeted::Counted(m) => (Some(m), false),
            Budgeted::Over => (None, true),
        }
    }
}

/// Hands the call a request makes to its handler, or answers the request on the spot (a
/// CORS preflight, not a call, an unknown method, a bad header, a spent send budget).
pub(super) fn dispatch(
    shared: &Shared,
    parts: http::request::Parts,
    body: RecvBody,
    respond: Respond,
    peer: SocketAddr,
    driver: Option<Arc<Driver>>,
    budgeted: Budgeted,
) {
    let cors = shared.opts.cors.as_ref();
    if let Some(cors) = cors.filter(|_| cors::is_preflight(&parts.method, &parts.headers)) {
        let mut respond = respond;
        let _ = respond.send_response(cors::preflight(cors, &parts.headers), Bytes::new(), true);
        return;
    }
    let origin = cors.and_then(|c| c.allows(&parts.headers));
    let (wire, base) = match Wire::of_request(&parts) {
        Ok(w) => w,
        Err(n) => return refuse_http(respond, body, n, origin),
    };
    let (meter, over) = budgeted.split();
    let sender = |respond, content_type| {
        let mut s = Sender::server(wire, respond, content_type, driver, meter);
        if let Some(o) = origin.clone() {
            s.allow_origin(o);
        }
        s
    };
    let incoming = match wire {
        Wire::Grpc | Wire::GrpcWeb | Wire::GrpcWebText => grpc::accept(&parts, &base),
        Wire::ConnectStream => connect::accept(&parts, &base, false),
        Wire::ConnectUnary => connect::accept(&parts, &base, true),
    };
    let incoming = match incoming {
        Ok(i) => i,
        Err(r) => return sender(respond, r.content_type).refuse(&r.status, r.accept),
    };
    if over {
        return sender(respond, incoming.content_type).refuse(&spent(), None);
    }
    let Some(&method) = shared.methods.get(&incoming.path) else {
        let s = Status::new(
            Code::Unimplemented,
            unknown_method_message(&incoming.path, &shared.methods),
        );
        return sender(respond, incoming.content_type).route_not_found(&s);
    };
    let shape = method.shape;
    let get = incoming.message.is_some();
    if let Some(why) = unfit(wire, method, get, parts.version) {
        match why {
            Err(n) => refuse_http(respond, body, n, origin),
            Ok(s) => sender(respond, incoming.content_type).refuse(&s, None),
        }
        return;
    }
    let call = ServerCall::new(Accepted {
        shape,
        protocol: wire.protocol(),
        codec: wire.codec(&base),
        metadata: incoming.metadata,
        timeout: incoming.timeout,
        peer,
        request_encoding: incoming.encoding,
        accepts: incoming.accepts,
        sender: sender(respond, incoming.content_type),
        receiver: Receiver::server(
            wire,
            body,
            shared.opts.max_recv_message_size,
            incoming.encoding,
            incoming.message,
        ),
        method: incoming.path,
    });
    hand_over(shared, Arriving(call));
}

/// Hands the call a TTHeader stream makes to its handler, or ends the stream on the spot
/// (an unknown method, too many streams, a server going away). The HEADER names the method
/// by Thrift's service and method names (`isn`, ToMethod); the method registered as
/// `/<namespace>.<service>/<method>` (as Kitex's gRPC transport names it) or
/// `/<service>/<method>` answers it.
pub(super) fn dispatch_ttheader(
    shared: &Shared,
    conn: &ttheader::Conn,
    ledger: Option<&Ledger>,
    stream: ttheader::Stream,
    header: Packet,
    peer: SocketAddr,
) {
    let method = header.int(key::TO_METHOD).cloned().unwrap_or_default();
    let sender = Sender::Ttheader(Box::new(tts::Sender::new(stream.clone(), method.clone())));
    let name = String::from_utf8_lossy(&method);
    let service = header
        .str(metainfo::ISN)
        .map(|s| String::from_utf8_lossy(s));
    let Some((path, &found)) = thrift_method(&shared.methods, service.as_deref(), &name) else {
        return sender.refuse(&unknown_thrift_method(&name, service.as_deref()), None);
    };
    if *shared.phase.borrow() != Phase::Serving || conn.is_draining() {
        return sender.refuse(&Status::unavailable("the server is going away"), None);
    }
    let max = shared.opts.max_concurrent_streams as usize;
    if conn.streams() > max {
        let s = Status::new(
            Code::ResourceExhausted,
            format!("over the server's limit of {max} streams on a connection"),
        );
        return sender.refuse(&s, None);
    }
    match Budgeted::of(shared.budget.as_deref(), ledger, stream.serial() as u32) {
        Budgeted::Over => return sender.refuse(&spent(), None),
        Budgeted::Counted(m) => stream.metered(m),
        Budgeted::Free => {}
    }
    let call = ServerCall::new(Accepted {
        shape: found.shape,
        protocol: Protocol::Ttheader,
        codec: Cow::Borrowed("thrift"),
        metadata: metainfo::metadata(&header.strs),
        timeout: None,
        peer,
        request_encoding: Encoding::Identity,
        accepts: Accepts::default(),
        sender,
        receiver: Receiver::Ttheader(Box::new(tts::Receiver::new(
            stream,
            shared.opts.max_recv_message_size,
        ))),
        method: path.clone(),
    });
    hand_over(shared, Arriving(call));
}

/// Hands a PingPong request (Thrift, or Kitex's Protobuf) to its handler as a unary call
/// of codec `thrift` or `proto`, or answers it on the spot (a message that is no CALL, an
/// unknown or streaming method); returns where the answer comes. The message names the
/// method, the TTHeader's `isn` its service (a Framed request names none).
pub(super) fn dispatch_pingpong(
    shared: &Shared,
    req: ttheader::pingpong::Request,
    peer: SocketAddr,
) -> oneshot::Receiver<ttheader::pingpong::Reply> {
    let (tx, rx) = oneshot::channel();
    let call = match pingpong::Call::parse(req.message) {
        Ok(c) => c,
        // With no CALL to answer, nothing answers: the connection closes.
        Err(e) => {
            tracing::debug!("PingPong request from {peer}: {e}");
            return rx;
        }
    };
    let service = req
        .packet
        .str(metainfo::ISN)
        .map(|s| String::from_utf8_lossy(s));
    let answer = pingpong::Sender::Answer(pingpong::Answer::new(&call, tx));
    let sender = Sender::PingPong(Box::new(answer));
    let found = thrift_method(&shared.methods, service.as_deref(), &call.name);
    let Some((path, &method)) = found else {
        sender.refuse(&unknown_thrift_method(&call.name, service.as_deref()), None);
        return rx;
    };
    if method.shape != Shape::Unary {
        let s = Status::new(
            Code::Unimplemented,
            format!("{path} is a streaming method: call it over TTHeader Streaming or gRPC"),
        );
        sender.refuse(&s, None);
        return rx;
    }
    if shared.budget.as_ref().is_some_and(|b| b.is_over()) {
        sender.refuse(&spent(), None);
        return rx;
    }
    let call = ServerCall::new(Accepted {
        shape: Shape::Unary,
        protocol: Protocol::Ttheader,
        codec: Cow::Borrowed(call.payload.codec()),
        metadata: metainfo::metadata(&req.packet.strs),
        timeout: None,
        peer,
        request_encoding: Encoding::Identity,
        accepts: Accepts::default(),
        sender,
        receiver: Receiver::PingPong(Box::new(pingpong::Receiver::request(call.args))),
        method: path.clone(),
    });
    hand_over(shared, Arriving(call));
    rx
}

/// The status of a Thrift call to a method the server does not have.
/// Why a call is refused while the server or its connection is over its send budget.
fn spent() -> Status {
    Status::new(
        Code::ResourceExhausted,
        "the server's send budget is spent: it holds too much its clients have not read",
    )
}

fn unknown_thrift_method(method: &str, service: Option<&str>) -> Status {
    let service = service.unwrap_or("(none named)");
    Status::new(
        Code::Unimplemented,
        format!("unknown method {method} for service {service}"),
    )
}

/// The registered method a Thrift service and method name call: `/<ns>.<service>/<method>`
/// or `/<service>/<method>`; without a service name, the one method of that name.
fn thrift_method<'a>(
    methods: &'a HashMap<String, Method>,
    service: Option<&str>,
    method: &str,
) -> Option<(&'a String, &'a Method)> {
    let mut found = methods.iter().filter(|(path, _)| {
        let Some((svc, m)) = path.trim_start_matches('/').split_once('/') else {
            return false;
        };
        m == method
            && service.is_none_or(|want| svc == want || svc.rsplit('.').next() == Some(want))
    });
    let first = found.next()?;
    // Two services of one name in different namespaces: the HEADER cannot say which.
    found.next().is_none().then_some(first)
}

/// Starts the call's handler (`Server::serve`), or queues the call for `accept` once its
/// request is in: at once if it came with the call's headers, else from a task that waits.
fn hand_over(shared: &Shared, call: Arriving) {
    if let Some(start) = shared.handler.get() {
        return start(call);
    }
    // Refused only when the server is gone; the call then ends as it drops.
    let call = match call.now() {
        Now::Arrived(call) => return drop(shared.calls.send(call)),
        Now::Waiting(call) => call,
    };
    let calls = shared.calls.clone();
    tokio::spawn(async move {
        let _ = calls.send(call.arrive().await);
    });
}

/// Why a method cannot be called this way, if it cannot: a content type it does not take
/// (`Err`), or a call the protocol cannot carry (`Ok`, the status to end it with).
fn unfit(
    wire: Wire,
    method: Method,
    get: bool,
    version: http::Version,
) -> Option<Result<Status, NotACall>> {
    if get && !method.takes_get() {
        // connect-go's answer to a GET of a method that may have side effects.
        return Some(Err(NotACall {
            status: StatusCode::METHOD_NOT_ALLOWED,
            why: "only methods without side effects take GET requests\n",
            grpc_status: None,
        }));
    }
    let shape = method.shape;
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
        return Some(Err(NotACall {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            why,
            grpc_status: None,
        }));
    }
    if shape == Shape::Bidi && version < http::Version::HTTP_2 {
        // A bidi call needs both directions at once, which HTTP/1.1 cannot give: connect-go
        // refuses it the same way.
        let s = Status::new(Code::Unimplemented, "bidi streams require at least HTTP/2");
        return Some(Ok(s));
    }
    None
}

/// Answers a request that is not a call with a plain HTTP status.
fn refuse_http(respond: Respond, body: RecvBody, n: NotACall, origin: Option<HeaderValue>) {
    let mut resp = plain(n.status);
    if n.status == StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110 §15.5.6: a 405 "MUST generate an Allow header field".
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(o) = origin {
        cors::expose(resp.headers_mut(), &o);
    }
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

/// Answers a request that is not a call (405, 415) once the request has ended, with a
/// short text body. Answering earlier makes h2 end the stream itself (RST_STREAM
/// NO_ERROR) and then ignore the rest of the request, protocol errors included; the body
/// lets a plain HTTP client (curl, h2spec) see why.
fn refuse(mut respond: Respond, mut body: RecvBody, resp: Response<()>, why: &'static str) {
    tokio::spawn(async move {
        let ended = tokio::time::timeout(REFUSE_DRAIN, async {
            while let Some(chunk) = std::future::poll_fn(|cx| body.poll_data(cx)).await {
                let Ok(chunk) = chunk else { return false };
                body.release(chunk.len());
            }
            std::future::poll_fn(|cx| body.poll_trailers(cx))
                .await
                .is_ok()
        })
        .await;
        if matches!(ended, Ok(false)) {
            return; // reset by the peer or malformed: h2 has answered already
        }
        let _ = respond.send_response(resp, Bytes::from_static(why.as_bytes()), true);
    });
}

fn unknown_method_message(path: &str, methods: &HashMap<String, Method>) -> String {
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
