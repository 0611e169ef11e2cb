//! The client: a channel to one server, and the calls opened on it.

mod backoff;
mod endpoint;
mod http1;
mod options;
mod ttheader;

pub use options::{ChannelOptions, HttpVersion};

use bytes::Bytes;
use http::HeaderValue;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;

use crate::call::{Call, CallOptions, Idempotency, Shape, Start};
use crate::error::Error;
use crate::protocol::envelope::{Encoding, DEFAULT_MAX_RECV_MESSAGE};
use crate::protocol::grpc::status_from_h2;
use crate::protocol::replay::{Reopen, Reopening};
use crate::protocol::{connect, grpc, stream, Framing, Protocol, Receiver, Sender, Wire};
use crate::runtime;
use crate::status::Status;
use crate::transport::hosted::{self, HostedConnection};
use crate::transport::http::{ResponseHead, SendBody};
use crate::transport::tls;
use endpoint::{Endpoint, Opened};
use http1::Http1;

/// A client channel to `http://host:port` (h2c) or `https://host:port` (TLS). Cheap to clone;
/// clones share the connection.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

struct Inner {
    scheme: &'static str,
    authority: String,
    user_agent: HeaderValue,
    protocol: Protocol,
    /// `ChannelOptions::http_get`.
    http_get: bool,
    endpoint: Arc<Endpoint>,
    route: Route,
}

/// Where a channel's calls go.
enum Route {
    /// Streams on the endpoint's HTTP/2 connection.
    Http2,
    /// The channel's HTTP/1.1 connections.
    Http1(Arc<Http1>),
    /// The endpoint's connection until its ALPN says HTTP/1.1: then, and from then on,
    /// the HTTP/1.1 connections, the first of them the one that said so.
    Negotiated(Arc<Http1>),
    /// Kitex's TTHeader transports: streams of TTHeader Streaming connections, and
    /// PingPong requests for unary calls.
    Ttheader(Arc<ttheader::Ttheader>),
}

impl Channel {
    /// A channel with default options. Nothing connects until the first call.
    pub fn new(target: &str) -> Result<Channel, Error> {
        Channel::with_options(target, ChannelOptions::default())
    }

    pub fn with_options(target: &str, opts: ChannelOptions) -> Result<Channel, Error> {
        let t = Target::parse(target)?;
        let (route, tls) = t.route(&opts)?;
        let ua = opts
            .user_agent
            .clone()
            .unwrap_or_else(|| format!("grpc-rillrpc/{}", env!("CARGO_PKG_VERSION")));
        let user_agent = HeaderValue::from_str(&ua)
            .map_err(|_| Error::invalid("user agent is not printable ASCII"))?;
        let protocol = opts.protocol;
        let http_get = opts.http_get;
        let authority = match &opts.authority {
            Some(a) => valid_authority(a)?,
            None => t.authority.clone(),
        };
        let (fallback, rt) = (route.fallback(), runtime::handle());
        let endpoint = Endpoint::new(t.authority, t.host, t.port, opts, tls, fallback, rt);
        Ok(Channel {
            inner: Arc::new(Inner {
                scheme: t.scheme,
                authority,
                user_agent,
                protocol,
                http_get,
                endpoint: Arc::new(endpoint),
                route,
            }),
        })
    }

    /// The next connection for the caller to drive, with `host_connections` (always
    /// `Ready(None)` otherwise, and for a TLS target).
    pub fn poll_connection(&self, cx: &mut Context<'_>) -> Poll<Option<HostedConnection>> {
        let handout = self.inner.endpoint.hosted.as_ref().map(|(_, rx)| rx);
        hosted::poll_handout(handout, cx)
    }

    /// Starts a call of the given shape. Returns at once: it never waits for the
    /// connection or for the server's response headers (a bidi server may send those only
    /// with its first reply). The shape's single-message rules hold on both sides: a
    /// single-request call sends one message; a single-response call fails with
    /// UNIMPLEMENTED if the server answers with none or several.
    pub fn open(&self, method: &str, shape: Shape, opts: CallOptions) -> Result<Call, Status> {
        self.start(method, shape, opts, None)
    }

    /// Opens a call whose whole request is `request`: one message, then the half-close
    /// (unary and server streaming). With the connection up, the request is written from
    /// the calling thread at once.
    pub fn open_with_request(
        &self,
        method: &str,
        shape: Shape,
        opts: CallOptions,
        request: &[u8],
    ) -> Result<Call, Status> {
        self.start(method, shape, opts, Some(request))
    }

    fn start(
        &self,
        method: &str,
        shape: Shape,
        opts: CallOptions,
        first: Option<&[u8]>,
    ) -> Result<Call, Status> {
        if let Route::Ttheader(t) = &self.inner.route {
            return self.start_ttheader(t, method, shape, opts, first);
        }
        let compression = opts.compression.unwrap_or(Encoding::Identity);
        let head = grpc::RequestHead {
            scheme: self.inner.scheme,
            authority: &self.inner.authority,
            path: method,
            user_agent: &self.inner.user_agent,
            timeout: opts.timeout,
            encoding: compression,
            content_subtype: opts.content_subtype.as_deref(),
            metadata: &opts.metadata,
        };
        let wire = wire_for(self.inner.protocol, shape);
        let (req, framing) = self.request(wire, &head, opts.idempotency, first)?;
        let start = starting(shape, &opts, compression, framing, first)?;
        let max_recv = opts
            .max_recv_message_size
            .unwrap_or(DEFAULT_MAX_RECV_MESSAGE);
        let h1 = match &self.inner.route {
            Route::Http2 | Route::Ttheader(_) => None,
            Route::Http1(h1) => Some(h1),
            Route::Negotiated(h1) => h1.negotiated().then_some(h1),
        };
        if let Some(h1) = h1 {
            if shape == Shape::Bidi {
                return Err(bidi_over_http1());
            }
            let open = over_http1(h1.clone(), shape, req, wire, max_recv);
            return Call::opening(start, Box::pin(open), first);
        }
        let endpoint = &self.inner.endpoint;
        if let Some(opened) = endpoint.try_open_now(req.clone()) {
            // A whole request sent with the opening may go again if the server refuses
            // its stream unprocessed (`protocol::replay`).
            let whole = first.is_some() && matches!(shape, Shape::Unary | Shape::ServerStreaming);
            let reopen = whole.then(|| reopen(endpoint.clone(), req));
            let (sender, receiver) = halves(opened, max_recv, wire, reopen);
            return Call::opened(start, sender, receiver, first);
        }
        let endpoint = endpoint.clone();
        let wait = opts.wait_for_ready;
        let fallback = self.inner.route.fallback();
        let open = Box::pin(async move {
            match endpoint.open_stream(req.clone(), wait).await {
                Ok(opened) => Ok(halves(opened, max_recv, wire, None)),
                // The connection this call waited for chose HTTP/1.1.
                Err(_) if fallback.as_ref().is_some_and(|h1| h1.negotiated()) => {
                    let h1 = fallback.expect("checked in the guard");
                    over_http1(h1, shape, req, wire, max_recv).await
                }
                Err(e) => Err(e),
            }
        });
        Call::opening(start, open, first)
    }

    /// Starts a call over Kitex's TTHeader transports (messages uncompressed: TTHeader
    /// carries no compressed ones).
    fn start_ttheader(
        &self,
        t: &Arc<ttheader::Ttheader>,
        method: &str,
        shape: Shape,
        opts: CallOptions,
        first: Option<&[u8]>,
    ) -> Result<Call, Status> {
        let framing = match shape {
            Shape::Unary => Framing::Bare,
            _ => Framing::Envelope,
        };
        let start = starting(shape, &opts, Encoding::Identity, framing, first)?;
        let max_recv = opts
            .max_recv_message_size
            .unwrap_or(DEFAULT_MAX_RECV_MESSAGE);
        let subtype = opts.content_subtype.as_deref();
        let asked = ttheader::Asking {
            timeout: opts.timeout,
            wait_for_ready: opts.wait_for_ready,
            max_recv,
        };
        if shape == Shape::Unary {
            // Opened here, its request handed on at once: no writer task to spawn first.
            return match t.open_pingpong(method, subtype, opts.metadata, asked) {
                Ok((sender, receiver)) => Call::opened(start, sender, receiver, first),
                // Reported by the call, as any other failure to open.
                Err(e) => Call::opening(start, Box::pin(async move { Err(e) }), first),
            };
        }
        let open = t.open_streaming(method, subtype, opts.metadata, asked);
        Call::opening(start, open, first)
    }

    /// A call's request head, and how its messages are framed: Connect's GET (which
    /// carries the whole request in its URL, so only a call opened with its request can
    /// take it) or the wire's POST.
    fn request(
        &self,
        wire: Wire,
        head: &grpc::RequestHead<'_>,
        idempotency: Idempotency,
        first: Option<&[u8]>,
    ) -> Result<(http::Request<()>, Framing), Status> {
        let get = wire == Wire::ConnectUnary
            && self.inner.http_get
            && idempotency == Idempotency::NoSideEffects;
        if let Some(msg) = first.filter(|_| get) {
            if let Some(req) = connect::get_request(head, msg)? {
                return Ok((req, Framing::InHead));
            }
        }
        Ok((wire.request(head)?, wire.framing()))
    }

    /// Unary: one request, one response.
    pub async fn unary(
        &self,
        method: &str,
        req: Bytes,
        opts: CallOptions,
    ) -> Result<Bytes, Status> {
        let mut call = self.open_with_request(method, Shape::Unary, opts, &req)?;
        call.recv_single().await
    }

    /// Client streaming: every request from `reqs`, then one response.
    pub async fn client_streaming<I>(
        &self,
        method: &str,
        reqs: I,
        opts: CallOptions,
    ) -> Result<Bytes, Status>
    where
        I: IntoIterator<Item = Bytes>,
    {
        let mut call = self.open(method, Shape::ClientStreaming, opts)?;
        for m in reqs {
            if call.send(m).await.is_err() {
                // The server ended the call early; its status says why.
                break;
            }
        }
        call.close_send();
        call.recv_single().await
    }

    /// Server streaming: one request; read the responses with `recv` on the call.
    pub async fn server_streaming(
        &self,
        method: &str,
        req: Bytes,
        opts: CallOptions,
    ) -> Result<Call, Status> {
        self.open_with_request(method, Shape::ServerStreaming, opts, &req)
    }

    /// Bidirectional streaming: the call itself.
    pub fn bidi(&self, method: &str, opts: CallOptions) -> Result<Call, Status> {
        self.open(method, Shape::Bidi, opts)
    }

    /// Closes the channel: later calls fail with UNAVAILABLE; calls in flight run to their
    /// end, and the connection closes after the last one.
    pub fn close(&self) {
        self.inner.endpoint.close();
    }

    /// True while a connection is established that takes new calls: not once its server
    /// said GOAWAY.
    pub fn is_connected(&self) -> bool {
        self.inner.endpoint.is_connected()
    }
}

impl Route {
    /// Where the endpoint hands a connection whose server picked HTTP/1.1.
    fn fallback(&self) -> Option<Arc<Http1>> {
        match self {
            Route::Negotiated(h1) => Some(h1.clone()),
            Route::Http2 | Route::Http1(_) | Route::Ttheader(_) => None,
        }
    }
}

/// `ChannelOptions::authority`, if it is one (RFC 3986 §3.2: `host[:port]`, no path).
fn valid_authority(a: &str) -> Result<String, Error> {
    match a.parse::<http::uri::Authority>() {
        Ok(ok) if !a.contains('@') => Ok(ok.as_str().to_owned()),
        _ => Err(Error::invalid(format!(
            "authority {a:?} is not host[:port]"
        ))),
    }
}

/// A channel's target, `http://host:port` or `https://host:port`.
struct Target {
    scheme: &'static str,
    host: String,
    port: u16,
    /// `host:port` as given, for `:authority` and `Host`.
    authority: String,
}

impl Target {
    fn parse(target: &str) -> Result<Target, Error> {
        let uri: http::Uri = target
            .parse()
            .map_err(|e| Error::invalid(format!("invalid target {target:?}: {e}")))?;
        let (scheme, default_port) = match uri.scheme_str() {
            Some("http") => ("http", 80),
            Some("https") => ("https", 443),
            other => {
                return Err(Error::invalid(format!(
                "target {target:?} has scheme {other:?}; use http://host:port or https://host:port"
            )))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| Error::invalid(format!("target {target:?} has no host")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(default_port);
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| format!("{host}:{port}"));
        Ok(Target {
            scheme,
            host,
            port,
            authority,
        })
    }

    /// Where the channel's calls go, and the TLS connector of its HTTP/2 endpoint (offering
    /// what ALPN may choose from).
    fn route(
        &self,
        opts: &ChannelOptions,
    ) -> Result<(Route, Option<(tokio_rustls::TlsConnector, String)>), Error> {
        let https = self.scheme == "https";
        if opts.protocol == Protocol::Ttheader {
            if https {
                return Err(Error::invalid(
                    "TTHeader runs over plain TCP: use http:// or host:port",
                ));
            }
            // Kitex names the destination service as `NewClient` was given it: the
            // authority's host (`ChannelOptions::authority` sets it).
            let authority = opts.authority.as_deref().unwrap_or(&self.authority);
            let service = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
            let addr = format!("{}:{}", self.host, self.port);
            let t = ttheader::Ttheader::new(addr, service.to_owned(), opts);
            return Ok((Route::Ttheader(Arc::new(t)), None));
        }
        let version = match opts.http_version {
            // Nothing to negotiate without TLS, and nothing but HTTP/2 for gRPC.
            HttpVersion::Auto if !https || opts.protocol == Protocol::Grpc => HttpVersion::Http2,
            v => v,
        };
        if version == HttpVersion::Http1 && opts.protocol == Protocol::Grpc {
            // gRPC's status is in HTTP/2 trailers, which HTTP/1.1 responses do not carry.
            return Err(Error::invalid(
                "gRPC needs HTTP/2: over HTTP/1.1 choose gRPC-Web or Connect",
            ));
        }
        let connector = |alpn: &[&[u8]]| -> Result<_, Error> {
            let cfg = tls::client_config(&opts.tls.clone().unwrap_or_default(), alpn)?;
            Ok(tokio_rustls::TlsConnector::from(cfg))
        };
        let h1 = || -> Result<Arc<Http1>, Error> {
            let tls = match https {
                true => Some((connector(&[tls::HTTP1])?, self.tls_name(opts))),
                false => None,
            };
            let (timeout, rt) = (opts.connect_timeout, runtime::handle());
            let (a, h) = (self.authority.clone(), self.host.clone());
            Ok(Arc::new(Http1::new(a, h, self.port, tls, timeout, rt)))
        };
        let (route, alpn): (Route, &[&[u8]]) = match version {
            HttpVersion::Http2 => (Route::Http2, &[tls::H2]),
            HttpVersion::Http1 => (Route::Http1(h1()?), &[tls::HTTP1]),
            HttpVersion::Auto => (Route::Negotiated(h1()?), &[tls::H2, tls::HTTP1]),
        };
        let tls = https.then(|| connector(alpn)).transpose()?;
        Ok((route, tls.map(|c| (c, self.tls_name(opts)))))
    }

    /// The name the server's certificate must carry.
    fn tls_name(&self, opts: &ChannelOptions) -> String {
        let name = opts.tls.as_ref().and_then(|t| t.server_name.clone());
        name.unwrap_or_else(|| self.host.clone())
    }
}

/// Opens a call on one of the channel's HTTP/1.1 connections.
async fn over_http1(
    h1: Arc<Http1>,
    shape: Shape,
    req: http::Request<()>,
    wire: Wire,
    max_recv: usize,
) -> Result<(Sender, Receiver), Status> {
    if shape == Shape::Bidi {
        return Err(bidi_over_http1());
    }
    let whole = matches!(shape, Shape::Unary | Shape::ServerStreaming);
    let (body, head) = h1.send(req, whole).await?;
    let sender = stream::Sender::client(wire, SendBody::H1(body), None, None);
    let receiver = stream::Receiver::client(wire, ResponseHead::H1(head), max_recv, None);
    Ok((Sender::client(sender), Receiver::client(receiver)))
}

/// HTTP/1.1 cannot carry both directions of a call at once (connect-go's client refuses
/// bidi there too).
#[cold]
fn bidi_over_http1() -> Status {
    Status::new(
        crate::status::Code::Unimplemented,
        "bidi streams require at least HTTP/2",
    )
}

/// A call's two ends on a stream just opened; `reopen` lets its receiver send the request
/// again on a new stream.
fn halves(
    (response, stream, conn): Opened,
    max_recv: usize,
    wire: Wire,
    reopen: Option<Reopen>,
) -> (Sender, Receiver) {
    let goaway = conn.goaway.clone();
    let body = SendBody::H2(stream);
    let head = ResponseHead::H2(response, conn.window.count());
    let sender = stream::Sender::client(wire, body, Some(conn.driver), Some(goaway.clone()));
    let mut receiver = stream::Receiver::client(wire, head, max_recv, Some(goaway));
    if let Some(reopen) = reopen {
        receiver = receiver.with_reopen(reopen);
    }
    (Sender::client(sender), Receiver::client(receiver))
}

/// Opens `req`'s stream anew on the endpoint's connection (a new one: the refusing one has
/// sent GOAWAY) and sends the framed request on it.
fn reopen(endpoint: Arc<Endpoint>, req: http::Request<()>) -> Reopen {
    Box::new(move |request: Bytes| -> Reopening {
        Box::pin(async move {
            let (response, mut stream, conn) = endpoint.open_stream(req, false).await?;
            let sent = stream.send_data(request, true);
            sent.map_err(|e| conn.goaway.explain(status_from_h2(&e)))?;
            Ok((
                ResponseHead::H2(response, conn.window.count()),
                Some(conn.goaway),
            ))
        })
    })
}

#[cold]
fn too_large_to_send(len: usize, max: usize) -> Status {
    Status::new(
        crate::status::Code::ResourceExhausted,
        format!("trying to send message larger than max ({len} vs. {max})"),
    )
}

/// A call's start: its request checked against the send limit, and its deadline taken
/// before the request can leave (the server's deadline, its receipt plus the timeout, must
/// not come before ours).
fn starting(
    shape: Shape,
    opts: &CallOptions,
    compression: Encoding,
    framing: Framing,
    first: Option<&[u8]>,
) -> Result<Start, Status> {
    if let (Some(msg), Some(max)) = (first, opts.max_send_message_size) {
        if msg.len() > max {
            return Err(too_large_to_send(msg.len(), max));
        }
    }
    Ok(Start {
        shape,
        deadline: opts.timeout.map(|t| Instant::now() + t),
        compression,
        framing,
        max_send: opts.max_send_message_size,
        runtime: runtime::handle(),
    })
}

/// How a call of `shape` travels in `protocol`: Connect's unary form for unary calls, its
/// streaming form for the rest.
fn wire_for(protocol: Protocol, shape: Shape) -> Wire {
    match (protocol, shape) {
        (Protocol::Grpc, _) => Wire::Grpc,
        (Protocol::GrpcWeb, _) => Wire::GrpcWeb,
        (Protocol::Connect, Shape::Unary) => Wire::ConnectUnary,
        (Protocol::Connect, _) => Wire::ConnectStream,
        (Protocol::Ttheader, _) => unreachable!("a channel over TTHeader is refused as it opens"),
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Channel({}://{})",
            self.inner.scheme, self.inner.authority
        )
    }
}
