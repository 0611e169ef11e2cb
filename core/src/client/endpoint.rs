//! The channel's connection to one server address: lazy connect, reconnect with
//! backoff, keepalive pings, a server's GOAWAY, and many streams multiplexed on one HTTP/2
//! connection. Load balancing will keep several of these beneath one channel.

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::SendStream;
use http::Request;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::backoff::{Backoff, Turn};
use super::http1::Http1;
use super::options::ChannelOptions;
use crate::protocol::grpc::status_from_h2;
use crate::status::Status;
use crate::transport::driver::Driver;
use crate::transport::goaway::{GoAway, Watched};
use crate::transport::hosted::{Handout, HostedConnection};
use crate::transport::late_ack::LateAck;
use crate::transport::socket::Socket;
use crate::transport::window::{Counter, RecvWindow};
use crate::transport::{h2_client, tls};

/// An established connection: where new streams are opened.
#[derive(Clone)]
pub(crate) struct Conn {
    sender: SendRequest<Bytes>,
    generation: u64,
    /// Counts the streams opened here into the connection's receive window.
    pub(crate) window: Counter,
    pub(crate) driver: Arc<Driver>,
    pub(crate) goaway: Arc<GoAway>,
}

impl Conn {
    /// The connection, once the server has spoken (see `goaway`): until then it is not
    /// ready for calls. `connect_timeout` bounds the wait; a failed attempt drops it.
    async fn once_heard(
        sender: SendRequest<Bytes>,
        generation: u64,
        window: Counter,
        driver: Arc<Driver>,
        goaway: Arc<GoAway>,
    ) -> Result<Conn, Status> {
        if !goaway.heard().await {
            return Err(silent_server());
        }
        Ok(Conn {
            sender,
            generation,
            window,
            driver,
            goaway,
        })
    }
}

/// What a connection attempt set up.
enum Established {
    Http2(Conn),
    /// The server picked HTTP/1.1 by ALPN, and the connection went to the channel's
    /// HTTP/1.1 connections.
    Http1,
}

/// A stream just opened: its response, its send half, and its connection.
pub(crate) type Opened = (ResponseFuture, SendStream<Bytes>, Conn);

enum ConnState {
    Idle,
    Connecting(watch::Receiver<()>),
    Ready(Conn),
    /// The server picked HTTP/1.1 by ALPN: the channel's calls go to `http1` now.
    Http1,
    Closed,
}

pub(crate) struct Endpoint {
    /// `host:port`, for messages.
    authority: String,
    host: String,
    port: u16,
    opts: ChannelOptions,
    /// The TLS connector and the name the server's certificate must carry.
    tls: Option<(tokio_rustls::TlsConnector, String)>,
    /// Where a connection goes whose server picks HTTP/1.1 by ALPN, when `tls` offers it.
    http1: Option<Arc<Http1>>,
    runtime: Handle,
    state: Mutex<ConnState>,
    /// After a failed attempt: calls fail fast, or wait with wait_for_ready (`backoff`).
    backoff: Backoff,
    generation: std::sync::atomic::AtomicU64,
    /// The keepalive interval of new connections: the channel's, doubled each time a server
    /// answered our pings with GOAWAY ENHANCE_YOUR_CALM.
    keepalive: Mutex<Option<Duration>>,
    /// Where connections go when the caller hosts them (`host_connections`).
    pub(crate) hosted: Option<(mpsc::UnboundedSender<HostedConnection>, Handout)>,
}

impl Endpoint {
    pub(crate) fn new(
        authority: String,
        host: String,
        port: u16,
        opts: ChannelOptions,
        tls: Option<(tokio_rustls::TlsConnector, String)>,
        http1: Option<Arc<Http1>>,
        runtime: Handle,
    ) -> Endpoint {
        let backoff = Backoff::new(opts.initial_backoff, opts.max_backoff);
        let keepalive = Mutex::new(opts.keepalive_interval);
        let hosted = (opts.host_connections && tls.is_none()).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            (tx, Mutex::new(rx))
        });
        Endpoint {
            authority,
            host,
            port,
            opts,
            tls,
            http1,
            runtime,
            state: Mutex::new(ConnState::Idle),
            backoff,
            generation: std::sync::atomic::AtomicU64::new(0),
            keepalive,
            hosted,
        }
    }

    /// Later calls fail with UNAVAILABLE; calls in flight run to their end.
    pub(crate) fn close(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = ConnState::Closed;
    }

    /// True while a connection is established that takes new calls: not once its server
    /// said GOAWAY (the calls in flight on it run on; the next call connects anew).
    pub(crate) fn is_connected(&self) -> bool {
        matches!(
            &*self.state.lock().unwrap_or_else(|p| p.into_inner()),
            ConnState::Ready(conn) if !conn.goaway.seen()
        )
    }
}

impl Endpoint {
    /// Opens a stream from the calling thread when a connection is up and has room for
    /// one more stream now; `None` otherwise (the writer task then opens it, waiting).
    pub(crate) fn try_open_now(&self, req: Request<()>) -> Option<Opened> {
        let mut conn = self.ready()?;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if !matches!(conn.sender.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
            return None;
        }
        let (resp, stream) = conn.sender.send_request(req, false).ok()?;
        Some((resp, stream, conn))
    }

    /// The established connection, unless the server has sent it GOAWAY: then the next
    /// call connects anew, while the calls on the old connection run to their end.
    fn ready(&self) -> Option<Conn> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ConnState::Ready(conn) = &*st else {
            return None;
        };
        if conn.goaway.seen() {
            *st = ConnState::Idle;
            return None;
        }
        Some(conn.clone())
    }

    /// Opens one HTTP/2 stream for `req`, connecting first when needed. A stream refused
    /// because the connection had just died is retried once on a new one: it never left
    /// this process, so the retry is safe.
    pub(crate) async fn open_stream(
        self: &Arc<Self>,
        req: Request<()>,
        wait_for_ready: bool,
    ) -> Result<Opened, Status> {
        let mut req = Some(req);
        for attempt in 0..2 {
            let mut conn = self.sender(wait_for_ready).await?;
            conn.sender = match conn.sender.ready().await {
                Ok(s) => s,
                Err(e) => {
                    self.connection_lost(conn.generation);
                    if attempt == 0 {
                        continue;
                    }
                    return Err(conn.goaway.explain(status_from_h2(&e)));
                }
            };
            let r = req.take().expect("request is sent once");
            match conn.sender.send_request(r, false) {
                Ok((resp, stream)) => return Ok((resp, stream, conn)),
                Err(e) => return Err(conn.goaway.explain(status_from_h2(&e))),
            }
        }
        Err(Status::unavailable(
            "connection lost while opening the stream",
        ))
    }

    async fn sender(self: &Arc<Self>, wait_for_ready: bool) -> Result<Conn, Status> {
        enum Next {
            Wait(watch::Receiver<()>),
            Sleep(Instant),
        }
        loop {
            if let Some(conn) = self.ready() {
                return Ok(conn);
            }
            let next = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                match &*st {
                    // Taken by another caller since `ready` looked.
                    ConnState::Ready(conn) => return Ok(conn.clone()),
                    ConnState::Closed => return Err(Status::unavailable("channel is closed")),
                    ConnState::Http1 => return Err(Status::unavailable(chose_http1(self))),
                    ConnState::Connecting(rx) => Next::Wait(rx.clone()),
                    ConnState::Idle => match self.backoff.turn(wait_for_ready) {
                        Turn::Fail(error) => return Err(error),
                        Turn::Wait(until) => Next::Sleep(until),
                        Turn::Now => {
                            let (tx, rx) = watch::channel(());
                            *st = ConnState::Connecting(rx.clone());
                            let me = self.clone();
                            self.runtime.spawn(async move { me.connect(tx).await });
                            Next::Wait(rx)
                        }
                    },
                }
            };
            match next {
                // Woken when the attempt ends (its sender is dropped).
                Next::Wait(mut rx) => {
                    let _ = rx.changed().await;
                }
                Next::Sleep(until) => tokio::time::sleep_until(until).await,
            }
        }
    }

    async fn connect(self: Arc<Self>, done: watch::Sender<()>) {
        let r = tokio::time::timeout(self.opts.connect_timeout, self.establish()).await;
        let r = match r {
            Ok(r) => r,
            Err(_) => Err(Status::unavailable(format!(
                "connecting to {} timed out after {:?}",
                self.authority, self.opts.connect_timeout
            ))),
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*st, ConnState::Closed) {
            return;
        }
        match r {
            Ok(Established::Http2(conn)) => {
                self.backoff.succeeded();
                *st = ConnState::Ready(conn);
            }
            Ok(Established::Http1) => *st = ConnState::Http1,
            Err(error) => {
                let wait = self.backoff.failed(error.clone());
                tracing::debug!(
                    "connect to {} failed: {error}; next attempt in {wait:?}",
                    self.authority
                );
                *st = ConnState::Idle;
            }
        }
        drop(st);
        drop(done);
    }

    async fn establish(self: &Arc<Self>) -> Result<Established, Status> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| Status::unavailable(format!("failed to connect to {addr}: {e}")))?;
        if let Some((to_host, _)) = &self.hosted {
            return self.hand_out(tcp, to_host).await.map(Established::Http2);
        }
        let tcp = Socket::new(tcp);
        let Some((connector, name)) = &self.tls else {
            return self.handshake(tcp).await.map(Established::Http2);
        };
        let name = tls::server_name(name).map_err(|e| Status::unavailable(e.to_string()))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| Status::unavailable(format!("TLS handshake with {addr} failed: {e}")))?;
        if tls.get_ref().1.alpn_protocol() == Some(tls::H2) {
            return self.handshake(tls).await.map(Established::Http2);
        }
        // A server that answers an ALPN offer with none speaks HTTP/1.1 (RFC 7301 §3.2
        // lets it ignore the extension).
        match &self.http1 {
            Some(h1) => h1.adopt(tls).await.map(|()| Established::Http1),
            None => Err(Status::unavailable(format!(
                "{addr} did not negotiate HTTP/2 (ALPN h2) over TLS"
            ))),
        }
    }

    fn h2_builder(&self) -> h2::client::Builder {
        let o = &self.opts;
        h2_client(
            o.initial_stream_window,
            o.initial_connection_window,
            o.max_header_list_size,
        )
    }

    /// A hosted connection: its socket leaves the reactor, and the HTTP/2 handshake, the
    /// connection and its keepalive all run in the driver the caller's loop polls.
    async fn hand_out(
        self: &Arc<Self>,
        tcp: TcpStream,
        to_host: &mpsc::UnboundedSender<HostedConnection>,
    ) -> Result<Conn, Status> {
        let tcp = tcp.into_std().map_err(|e| {
            Status::unavailable(format!("cannot take the socket off the reactor: {e}"))
        })?;
        let (sock, ready) = Socket::hosted(tcp);
        let fd = sock.fd();
        let generation = self.next_generation();
        let builder = self.h2_builder();
        let window = self.opts.recv_window();
        let counter = window.counter();
        let me = Arc::downgrade(self);
        let (tx, rx) = oneshot::channel();
        let goaway = Arc::new(GoAway::default());
        let io = Watched::new(sock, goaway.clone());
        let driver = Driver::new(
            async move {
                let (sender, conn) = match builder.handshake::<_, Bytes>(io).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(Status::unavailable(format!(
                            "HTTP/2 handshake failed: {e}"
                        ))));
                        return;
                    }
                };
                if tx.send(Ok(sender)).is_err() {
                    return; // the attempt timed out meanwhile
                }
                run(conn, window, me, generation).await
            },
            self.runtime.clone(),
        );
        to_host
            .send(HostedConnection::new(driver.clone(), ready, fd))
            .map_err(|_| Status::unavailable("channel is closed"))?;
        match rx.await {
            Ok(Ok(sender)) => Conn::once_heard(sender, generation, counter, driver, goaway).await,
            Ok(Err(s)) => Err(s),
            Err(_) => Err(Status::unavailable(
                "the connection was closed before its HTTP/2 handshake",
            )),
        }
    }

    async fn handshake<T>(self: &Arc<Self>, io: T) -> Result<Conn, Status>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let goaway = Arc::new(GoAway::default());
        // A PING ACK waits for the request written next (`late_ack`). Hosted connections
        // (`hand_out`) send theirs at once: a binding's loop polls them, and the hold has
        // not been measured there.
        let (sender, conn) = self
            .h2_builder()
            .handshake::<_, Bytes>(Watched::new(LateAck::new(io), goaway.clone()))
            .await
            .map_err(|e| Status::unavailable(format!("HTTP/2 handshake failed: {e}")))?;
        let generation = self.next_generation();
        let window = self.opts.recv_window();
        let counter = window.counter();
        let driver = Driver::new(
            run(conn, window, Arc::downgrade(self), generation),
            self.runtime.clone(),
        );
        let d = driver.clone();
        self.runtime.spawn(async move {
            // Aborted with the runtime, the task takes the connection down with it.
            let _closer = d.closer();
            std::future::poll_fn(|cx| d.poll_task(cx)).await;
        });
        Conn::once_heard(sender, generation, counter, driver, goaway).await
    }

    fn next_generation(&self) -> u64 {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// A server closed a connection of ours with GOAWAY ENHANCE_YOUR_CALM. With keepalive
    /// on, our pings are the likely cause: gRPC's keepalive design (A8) has the client
    /// "double the configured KEEPALIVE_TIME used for new connections on that channel" when
    /// the GOAWAY's debug data says "too_many_pings". h2 does not hand us the debug data,
    /// so any ENHANCE_YOUR_CALM counts; the worst a wrong guess costs is fewer pings.
    fn calm_down(&self) {
        let mut k = self.keepalive.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = k.as_mut() {
            *i = i.saturating_mul(2);
            tracing::warn!(
                "{}: the server closed the connection with ENHANCE_YOUR_CALM; keepalive pings every {:?} from now on",
                self.authority,
                *i
            );
        }
    }

    /// The connection of `generation` is gone: the next call reconnects.
    fn connection_lost(&self, generation: u64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let ConnState::Ready(conn) = &*st {
            if conn.generation == generation {
                *st = ConnState::Idle;
            }
        }
    }
}

/// A connection's life inside its driver: the connection with its keepalive pings (when
/// the channel asks for them), then the channel hears that it is gone. Ending the future
/// drops the connection, which fails its calls with UNAVAILABLE.
async fn run<T>(
    mut conn: h2::client::Connection<T, Bytes>,
    mut window: RecvWindow,
    me: std::sync::Weak<Endpoint>,
    generation: u64,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let keepalive = me.upgrade().and_then(|c| {
        let interval = *c.keepalive.lock().unwrap_or_else(|p| p.into_inner());
        interval.map(|i| (i, c.opts.keepalive_timeout))
    });
    let ended = match (keepalive, conn.ping_pong()) {
        (Some((interval, timeout)), Some(pp)) => {
            keep_alive(&mut conn, &mut window, pp, interval, timeout).await
        }
        _ => std::future::poll_fn(|cx| poll_conn(&mut conn, &mut window, cx)).await,
    };
    if let Some(me) = me.upgrade() {
        let calm = |e: &h2::Error| {
            e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM)
        };
        if ended.as_ref().is_err_and(calm) {
            me.calm_down();
        }
        me.connection_lost(generation);
    }
}

/// Runs a connection with keepalive pings: ends when the connection does (with how it
/// ended), or when a ping goes unanswered for `timeout` (the connection is dead even if TCP
/// has not noticed).
async fn keep_alive<T>(
    conn: &mut h2::client::Connection<T, Bytes>,
    window: &mut RecvWindow,
    mut pp: h2::PingPong,
    interval: Duration,
    timeout: Duration,
) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            r = std::future::poll_fn(|cx| poll_conn(conn, window, cx)) => return r,
            _ = tokio::time::sleep(interval) => {}
        }
        let ping = tokio::time::timeout(timeout, pp.ping(h2::Ping::opaque()));
        tokio::select! {
            r = std::future::poll_fn(|cx| poll_conn(conn, window, cx)) => return r,
            r = ping => match r {
                Ok(Ok(_)) => {}
                // The connection failed: how, from the connection itself.
                Ok(Err(_)) => return tokio::time::timeout(timeout, &mut *conn).await.unwrap_or(Ok(())),
                Err(_) => return Ok(()),
            },
        }
    }
}

/// Polls the connection, its receive window first fitted to the streams open now (a
/// stream opened from another thread polls the connection to send its HEADERS).
fn poll_conn<T>(
    conn: &mut h2::client::Connection<T, Bytes>,
    window: &mut RecvWindow,
    cx: &mut Context<'_>,
) -> Poll<Result<(), h2::Error>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(target) = window.retarget() {
        conn.set_target_window_size(target);
    }
    std::future::Future::poll(std::pin::Pin::new(conn), cx)
}

#[cold]
fn silent_server() -> Status {
    Status::unavailable("the server closed the connection before its HTTP/2 preface")
}

#[cold]
fn chose_http1(e: &Endpoint) -> String {
    format!("{} chose HTTP/1.1 by ALPN", e.authority)
}
