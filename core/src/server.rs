//! The server: listens, speaks HTTP/2, checks each request, and hands calls out through
//! `accept()` (a pull model: routing calls to handlers is a layer above).

use bytes::Bytes;
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinSet;

use crate::call::{content_type, is_grpc_content_type, Shape};
use crate::codec::{self, Encoding};
use crate::driver::Driver;
use crate::error::Error;
use crate::hosted::{self, Handout, HostedConnection};
use crate::metadata::Metadata;
use crate::runtime;
use crate::server_call::{trailers_for, ServerCall};
use crate::socket::Socket;
use crate::status::{Code, Status};
use crate::timeout;
use crate::transport::DATA_FRAME_BUDGET;
use crate::transport::{self, ServerTls};

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// SETTINGS_MAX_CONCURRENT_STREAMS per connection.
    pub max_concurrent_streams: u32,
    /// Largest request message accepted (default 4 MiB).
    pub max_recv_message_size: usize,
    /// Largest header block accepted.
    pub max_header_list_size: u32,
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    pub tls: Option<ServerTls>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            max_concurrent_streams: 4096,
            max_recv_message_size: codec::DEFAULT_MAX_RECV_MESSAGE,
            max_header_list_size: 64 * 1024,
            initial_stream_window: 1 << 20,
            initial_connection_window: 4 << 20,
            tls: None,
        }
    }
}

/// Builds a server: options, then the methods it serves, then `bind`.
pub struct ServerBuilder {
    opts: ServerOptions,
    methods: HashMap<String, Shape>,
    hosted: bool,
}

impl ServerBuilder {
    pub fn new(opts: ServerOptions) -> ServerBuilder {
        ServerBuilder {
            opts,
            methods: HashMap::new(),
            hosted: false,
        }
    }

    /// Hands each accepted connection out through `Server::poll_connection` for the
    /// caller's event loop to drive, instead of serving it on the runtime (see
    /// `HostedConnection`). The caller must then take and drive every connection.
    pub fn host_connections(mut self) -> ServerBuilder {
        self.hosted = true;
        self
    }

    /// Serves `path` (`/package.Service/Method`) with the given shape. Requests for any
    /// other path end as UNIMPLEMENTED without reaching `accept`.
    pub fn register(mut self, path: &str, shape: Shape) -> ServerBuilder {
        self.methods.insert(path.to_owned(), shape);
        self
    }

    pub fn add_method(&mut self, path: &str, shape: Shape) -> Result<(), Error> {
        if !path.starts_with('/') || path[1..].split('/').count() != 2 {
            return Err(Error::invalid(format!(
                "method path must look like /package.Service/Method, got {path:?}"
            )));
        }
        self.methods.insert(path.to_owned(), shape);
        Ok(())
    }

    /// Listens on `addr` (port 0 picks a free port; `local_addr` tells which) and starts
    /// serving on the core's runtime. Callable from any thread, inside a runtime or not.
    pub fn bind(self, addr: &str) -> Result<Server, Error> {
        let tls = match &self.opts.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(transport::server_config(
                t,
            )?)),
            None => None,
        };
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|e| Error::io(&format!("cannot bind {addr}"), e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("set_nonblocking", e))?;
        let local_addr = std_listener
            .local_addr()
            .map_err(|e| Error::io("local_addr", e))?;
        let (call_tx, call_rx) = mpsc::unbounded_channel();
        let (shutdown_tx, shutdown_rx) = watch::channel(Phase::Serving);
        let (hosted_tx, hosted_rx) = match self.hosted {
            true => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(std::sync::Mutex::new(rx)))
            }
            false => (None, None),
        };
        let shared = Arc::new(Shared {
            opts: self.opts,
            methods: self.methods,
            tls,
            calls: call_tx,
            hosted: hosted_tx,
            phase: shutdown_rx,
        });
        let rt = runtime::handle();
        let (done_tx, done_rx) = watch::channel(false);
        rt.spawn(serve(shared, std_listener, done_tx));
        Ok(Server {
            local_addr,
            incoming: Mutex::new(call_rx),
            hosted: hosted_rx,
            phase: shutdown_tx,
            done: done_rx,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    /// GOAWAY sent; calls in flight may finish.
    Draining,
    /// Grace period over: connections are dropped.
    Stopped,
}

struct Shared {
    opts: ServerOptions,
    methods: HashMap<String, Shape>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    calls: mpsc::UnboundedSender<ServerCall>,
    /// Where accepted connections go when the caller hosts them.
    hosted: Option<mpsc::UnboundedSender<HostedConnection>>,
    phase: watch::Receiver<Phase>,
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    incoming: Mutex<mpsc::UnboundedReceiver<ServerCall>>,
    hosted: Option<Handout>,
    phase: watch::Sender<Phase>,
    done: watch::Receiver<bool>,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new(ServerOptions::default())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next incoming call; `None` once the server has shut down and every accepted
    /// call was handed out.
    pub async fn accept(&self) -> Option<ServerCall> {
        self.incoming.lock().await.recv().await
    }

    /// An incoming call if one is waiting: `Ok(None)` when none is, `Err` once the server
    /// has shut down.
    pub fn try_accept(&self) -> Result<Option<ServerCall>, Error> {
        let Ok(mut rx) = self.incoming.try_lock() else {
            return Ok(None);
        };
        match rx.try_recv() {
            Ok(c) => Ok(Some(c)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(Error::new(
                crate::error::ErrorKind::Closed,
                "server is shut down",
            )),
        }
    }

    /// Polls for the next incoming call (for bindings that drive their own event loop).
    pub fn poll_accept(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ServerCall>> {
        match self.incoming.try_lock() {
            Ok(mut rx) => rx.poll_recv(cx),
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }

    /// The next accepted connection, for a server built with `host_connections` (always
    /// `Ready(None)` otherwise, and once the server has stopped listening).
    pub fn poll_connection(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<HostedConnection>> {
        hosted::poll_handout(self.hosted.as_ref(), cx)
    }

    /// Graceful shutdown: stop accepting connections, send GOAWAY, let calls in flight
    /// finish for up to `grace`, then cancel the rest.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.phase.send(Phase::Draining);
        let mut done = self.done.clone();
        let finished = tokio::time::timeout(grace, done.wait_for(|d| *d))
            .await
            .is_ok();
        if !finished {
            let _ = self.phase.send(Phase::Stopped);
            let _ = done.wait_for(|d| *d).await;
        }
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        let _ = self.phase.send_if_modified(|p| {
            if *p == Phase::Serving {
                *p = Phase::Draining;
                true
            } else {
                false
            }
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.phase.send(Phase::Stopped);
    }
}

async fn serve(
    shared: Arc<Shared>,
    std_listener: std::net::TcpListener,
    done: watch::Sender<bool>,
) {
    let listener = match TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("rillrpc server: cannot register the listener: {e}");
            let _ = done.send(true);
            return;
        }
    };
    let mut phase = shared.phase.clone();
    let mut conns = JoinSet::new();
    // Hosted connections each hold a sender; `recv` ends once all of them have ended.
    let (hosted_alive, mut hosted_done) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => match &shared.hosted {
                    None => {
                        let driver = connection(shared.clone(), Socket::new(tcp), peer, None);
                        conns.spawn(async move {
                            // Aborted with the server, the task takes the connection down
                            // with it.
                            let _closer = driver.closer();
                            std::future::poll_fn(|cx| driver.poll_task(cx)).await;
                        });
                    }
                    Some(to_host) => {
                        let tcp = match tcp.into_std() {
                            Ok(t) => t,
                            Err(e) => {
                                tracing::warn!("cannot take connection from {peer} off the reactor: {e}");
                                continue;
                            }
                        };
                        let (sock, ready) = Socket::hosted(tcp);
                        let fd = sock.fd();
                        let driver = connection(shared.clone(), sock, peer, Some(hosted_alive.clone()));
                        // Refused only when the server is gone; the connection then closes.
                        let _ = to_host.send(HostedConnection::new(driver, ready, fd));
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = phase.changed() => {
                if *phase.borrow() != Phase::Serving {
                    break;
                }
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
    drop(hosted_alive);
    let _ = hosted_done.recv().await;
    let _ = done.send(true);
}

/// The driver of one accepted connection: TLS (if configured), HTTP/2, then its calls.
/// `alive` is held until the connection ends.
fn connection(
    shared: Arc<Shared>,
    sock: Socket,
    peer: SocketAddr,
    alive: Option<mpsc::Sender<()>>,
) -> Arc<Driver> {
    let rt = tokio::runtime::Handle::current();
    // The connection is polled through a driver, so that a handler's thread can put its
    // answer on the socket itself (see `driver`). Its calls hold the driver; the future
    // holds only a weak reference, or the two would keep each other alive.
    Driver::new_cyclic(
        |me| async move {
            let _alive = alive;
            match shared.tls.clone() {
                None => serve_h2(shared, sock, peer, me).await,
                Some(acceptor) => match acceptor.accept(sock).await {
                    Ok(tls) => serve_h2(shared, tls, peer, me).await,
                    Err(e) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                },
            }
        },
        rt,
    )
}

async fn serve_h2<T>(shared: Arc<Shared>, io: T, peer: SocketAddr, me: std::sync::Weak<Driver>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let o = &shared.opts;
    let conn = h2::server::Builder::new()
        .max_concurrent_streams(o.max_concurrent_streams)
        .max_header_list_size(o.max_header_list_size)
        .initial_window_size(o.initial_stream_window)
        .initial_connection_window_size(o.initial_connection_window)
        .max_frame_size(1 << 20)
        .max_send_buffer_size(256 * 1024)
        // Peers such as grpcio send one DATA frame per message; h2's default budget
        // for buffered small frames (half the connection window) is spent by a few
        // thousand of them waiting for a slow reader, and the connection is closed
        // with ENHANCE_YOUR_CALM. Flow control already bounds the payload.
        .data_frame_budget(DATA_FRAME_BUDGET)
        .handshake::<T, Bytes>(io)
        .await;
    let mut conn = match conn {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("HTTP/2 handshake with {peer} failed: {e}");
            return;
        }
    };
    let mut phase = shared.phase.clone();
    let mut draining = false;
    if *phase.borrow() != Phase::Serving {
        conn.graceful_shutdown();
        draining = true;
    }
    loop {
        tokio::select! {
            r = conn.accept() => match r {
                Some(Ok((req, respond))) => dispatch(&shared, req, respond, peer, me.upgrade()),
                Some(Err(e)) => {
                    tracing::debug!("connection from {peer}: {e}");
                    if e.is_io() || e.is_go_away() {
                        break;
                    }
                }
                None => break,
            },
            _ = phase.changed() => {
                let p = *phase.borrow();
                if p == Phase::Stopped {
                    conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                    // Let h2 write the GOAWAY, briefly, then drop the connection.
                    let _ = tokio::time::timeout(Duration::from_millis(100), std::future::poll_fn(|cx| conn.poll_closed(cx))).await;
                    break;
                }
                if p == Phase::Draining && !draining {
                    conn.graceful_shutdown();
                    draining = true;
                }
            }
        }
    }
}

fn dispatch(
    shared: &Shared,
    req: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    peer: SocketAddr,
    driver: Option<Arc<Driver>>,
) {
    let (parts, body) = req.into_parts();
    if parts.method != http::Method::POST {
        refuse(
            respond,
            body,
            plain(StatusCode::METHOD_NOT_ALLOWED),
            "gRPC requests are POST\n",
        );
        return;
    }
    let ct = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_grpc_content_type(ct) {
        // The spec: "If Content-Type does not begin with "application/grpc", gRPC servers
        // SHOULD respond with HTTP status of 415 (Unsupported Media Type)."
        let mut r = plain(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        r.headers_mut()
            .insert("grpc-status", HeaderValue::from_static("3"));
        let msg =
            crate::status::percent_encode(&format!("invalid gRPC request content-type {ct:?}"));
        if let Ok(v) = HeaderValue::from_str(&msg) {
            r.headers_mut().insert("grpc-message", v);
        }
        refuse(
            respond,
            body,
            r,
            "gRPC requests have content-type application/grpc\n",
        );
        return;
    }
    let resp_ct = HeaderValue::from_str(ct.split(';').next().unwrap_or("application/grpc").trim())
        .unwrap_or_else(|_| content_type(None).expect("static"));
    let path = parts.uri.path().to_owned();
    let Some(&shape) = shared.methods.get(&path) else {
        let msg = unknown_method_message(&path, &shared.methods);
        trailers_only(
            &mut respond,
            &resp_ct,
            Status::new(Code::Unimplemented, msg),
            None,
        );
        return;
    };
    let encoding = match parts
        .headers
        .get("grpc-encoding")
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None => Encoding::Identity,
        Some(name) => match Encoding::from_name(name) {
            Some(e) => e,
            None => {
                let s = Status::new(
                    Code::Unimplemented,
                    format!("grpc-encoding {name:?} is not supported"),
                );
                trailers_only(&mut respond, &resp_ct, s, Some(codec::ACCEPT_ENCODING));
                return;
            }
        },
    };
    let timeout = match parts.headers.get("grpc-timeout") {
        None => None,
        Some(v) => match timeout::parse(v.as_bytes()) {
            Some(t) => Some(t),
            None => {
                let s = Status::internal(format!("malformed grpc-timeout {v:?}"));
                trailers_only(&mut respond, &resp_ct, s, None);
                return;
            }
        },
    };
    let accepts_gzip = parts
        .headers
        .get_all("grpc-accept-encoding")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.trim() == "gzip");
    let call = ServerCall::new(crate::server_call::Incoming {
        method: path,
        shape,
        metadata: Metadata::from_headers(&parts.headers),
        timeout,
        peer,
        body,
        respond,
        content_type: resp_ct,
        request_encoding: encoding,
        accepts_gzip,
        max_recv: shared.opts.max_recv_message_size,
        driver,
    });
    // Refused only when the server is gone; the call then ends as it drops.
    let _ = shared.calls.send(call);
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

/// A response that is only a header block with the status: for calls that end before
/// any message (the spec's "Trailers-Only").
pub(crate) fn trailers_only(
    respond: &mut SendResponse<Bytes>,
    ct: &HeaderValue,
    status: Status,
    accept: Option<&'static str>,
) {
    let mut r = plain(StatusCode::OK);
    let h: &mut HeaderMap = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, ct.clone());
    if let Some(a) = accept {
        h.insert("grpc-accept-encoding", HeaderValue::from_static(a));
    }
    for (k, v) in trailers_for(&status).iter() {
        h.append(k.clone(), v.clone());
    }
    let _ = respond.send_response(r, true);
}
