//! Listening: the accept loop, each connection's driver (TLS, then HTTP/2, HTTP/1.1 or
//! TTHeader Streaming), and the loops that hand each request or stream to dispatch.

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::dispatch::{dispatch, dispatch_pingpong, dispatch_ttheader, Budgeted};
use super::handshakes::{Handshake, Handshakes};
use super::keepalive::{PingPolicy, Pinger};
use super::shared::{Phase, Shared};
use crate::transport::budget::{Ledger, SendBudget};
use crate::transport::driver::Driver;
use crate::transport::h2_server;
use crate::transport::hosted::HostedConnection;
use crate::transport::http::{RecvBody, Respond};
use crate::transport::http1;
use crate::transport::late_ack::LateAck;
use crate::transport::sniff::{sniff, Version};
use crate::transport::socket::Socket;
use crate::transport::ttheader;
use crate::transport::watch::{Seen, Watched};
use crate::transport::window::{self, Receiving, RecvWindow};

pub(super) async fn serve(
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
    let room = shared
        .opts
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n)));
    let handshakes = Arc::new(Handshakes::default());
    if let Some(b) = &shared.budget {
        tokio::spawn(SendBudget::run(Arc::downgrade(b)));
    }
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    let permit = match &room {
                        None => None,
                        Some(room) => match room.clone().try_acquire_owned() {
                            Ok(p) => Some(p),
                            // At the limit, the newcomer takes the place of the oldest
                            // connection still in its handshake, or else waits for one to
                            // end (and those after it in the listen backlog).
                            Err(_) => {
                                handshakes.evict_oldest(1);
                                tokio::select! {
                                    p = room.clone().acquire_owned() => p.ok(),
                                    _ = phase.wait_for(|p| *p != Phase::Serving) => break,
                                }
                            }
                        },
                    };
                    let handshake = handshakes.enter();
                    start(&shared, tcp, peer, permit, handshake, &mut conns, &hosted_alive)
                }
                Err(e) if out_of_files(&e) && handshakes.evict_oldest(EVICT) > 0 => {
                    // Their descriptors are freed as their tasks end, within a moment.
                    tracing::debug!("accept failed: {e}; closed connections still in their handshake");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
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

/// How many connections still in their handshake close when accept runs out of file
/// descriptors: a few at a time, so that a backlog of a flood's connections drains at
/// more than one per turn of the accept loop.
const EVICT: usize = 8;

/// Whether accept failed for want of file descriptors (EMFILE: this process's limit;
/// ENFILE: the system's).
fn out_of_files(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Starts an accepted connection: on a task of the runtime, or handed to the host's loop.
fn start(
    shared: &Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    handshake: Handshake,
    conns: &mut JoinSet<()>,
    hosted_alive: &mpsc::Sender<()>,
) {
    let Some(to_host) = &shared.hosted else {
        let sock = Socket::new(tcp);
        let driver = connection(shared.clone(), sock, peer, None, permit, handshake);
        conns.spawn(async move {
            // Aborted with the server, the task takes the connection down with it.
            let _closer = driver.closer();
            std::future::poll_fn(|cx| driver.poll_task(cx)).await;
        });
        return;
    };
    let tcp = match tcp.into_std() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("cannot take connection from {peer} off the reactor: {e}");
            return;
        }
    };
    let (sock, ready) = Socket::hosted(tcp);
    let fd = sock.fd();
    let alive = Some(hosted_alive.clone());
    let driver = connection(shared.clone(), sock, peer, alive, permit, handshake);
    // Refused only when the server is gone; the connection then closes.
    let _ = to_host.send(HostedConnection::new(driver, ready, fd));
}

/// The driver of one accepted connection: TLS (if configured), HTTP/2, then its calls.
/// `alive` and `permit` (its place under `max_connections`) are held until the connection
/// ends; `handshake` until its protocol is known (the server may close it before).
fn connection(
    shared: Arc<Shared>,
    sock: Socket,
    peer: SocketAddr,
    alive: Option<mpsc::Sender<()>>,
    permit: Option<OwnedSemaphorePermit>,
    handshake: Handshake,
) -> Arc<Driver> {
    let rt = tokio::runtime::Handle::current();
    let handshake_by = tokio::time::Instant::now() + shared.opts.handshake_timeout;
    // The connection is polled through a driver, so that a handler's thread can put its
    // answer on the socket itself (see `driver`). Its calls hold the driver; the future
    // holds only a weak reference, or the two would keep each other alive.
    Driver::new_cyclic(
        |me| async move {
            let _alive = alive;
            let _permit = permit;
            match shared.tls.clone() {
                None => serve_http(shared, sock, peer, me, handshake_by, None, handshake).await,
                // Boxed: a TLS handshake's state is large, and a plain connection's future
                // would otherwise carry room for it.
                Some(acceptor) => {
                    let tls = serve_tls(shared, acceptor, sock, peer, me, handshake_by, handshake);
                    Box::pin(tls).await
                }
            }
        },
        rt,
    )
}

/// Completes a connection's TLS handshake, then serves the protocol ALPN chose.
async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: tokio_rustls::TlsAcceptor,
    sock: Socket,
    peer: SocketAddr,
    me: std::sync::Weak<Driver>,
    handshake_by: tokio::time::Instant,
    handshake: Handshake,
) {
    let accepted = tokio::select! {
        r = tokio::time::timeout_at(handshake_by, acceptor.accept(sock)) => r,
        _ = handshake.evicted() => {
            tracing::debug!("{peer} closed in its TLS handshake: the server needs its place");
            return;
        }
    };
    match accepted {
        Ok(Ok(tls)) => {
            let alpn = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => Some(Version::Http2),
                Some(b"http/1.1") => Some(Version::Http1),
                _ => None,
            };
            serve_http(shared, tls, peer, me, handshake_by, alpn, handshake).await
        }
        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
    }
}

/// Serves HTTP/2 or HTTP/1.1: the one TLS negotiated (ALPN), else the one the first bytes
/// show (HTTP/2's preface, or an HTTP/1.1 request).
async fn serve_http<T>(
    shared: Arc<Shared>,
    io: T,
    peer: SocketAddr,
    me: std::sync::Weak<Driver>,
    handshake_by: tokio::time::Instant,
    alpn: Option<Version>,
    handshake: Handshake,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let sniffed = tokio::select! {
        r = tokio::time::timeout_at(handshake_by, sniff(io)) => r,
        _ = handshake.evicted() => {
            tracing::debug!("{peer} closed before its first bytes: the server needs its place");
            return;
        }
    };
    drop(handshake);
    let (version, io) = match sniffed {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::debug!("connection from {peer} failed before its first request: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("{peer} sent nothing in time");
            return;
        }
    };
    // Each protocol's future is boxed: inline, the connection's future would be as large
    // as the largest of them (and of their TLS and plain twins) for every connection, idle
    // ones included: 12.7 KB where an HTTP/2 connection needs a fraction of it.
    match alpn.unwrap_or(version) {
        Version::Http2 => Box::pin(serve_h2(shared, io, peer, me, handshake_by)).await,
        Version::Http1 => Box::pin(serve_h1(shared, io, peer)).await,
        Version::Ttheader => Box::pin(serve_ttheader(shared, io, peer)).await,
        Version::PingPong => Box::pin(serve_pingpong(shared, io, peer)).await,
    }
}

/// Serves Thrift PingPong requests in turn until the client closes, the connection breaks,
/// no request came for `max_connection_idle`, the server drains (after the request in
/// progress: PingPong has no way to tell a client to go but closing) or stops.
async fn serve_pingpong<T>(shared: Arc<Shared>, io: T, peer: SocketAddr)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut draining = shared.phase.clone();
    let mut stopped = shared.phase.clone();
    let max = max_packet(&shared);
    let s = shared.clone();
    let on_request = move |req| dispatch_pingpong(&s, req, peer);
    // Past `max_connection_age` too, the connection closes between requests.
    let age = Age::of(&shared);
    let drained = async move {
        tokio::select! {
            _ = draining.wait_for(|p| *p != Phase::Serving) => {}
            _ = age.reached() => {}
        }
    };
    let idle = shared.opts.max_connection_idle;
    tokio::select! {
        r = ttheader::pingpong::run(io, max, on_request, drained, idle) => {
            if let Err(e) = r {
                tracing::debug!("PingPong connection from {peer}: {e}");
            }
        }
        _ = stopped.wait_for(|p| *p == Phase::Stopped) => {}
    }
}

/// The largest TTHeader packet a connection reads: a message of the receive limit and the
/// largest header.
fn max_packet(shared: &Shared) -> usize {
    shared
        .opts
        .max_recv_message_size
        .saturating_add(ttheader::HEADER_ROOM)
}

/// Serves TTHeader Streaming until the client closes, the connection breaks or the server
/// stops; a draining server takes no new streams and closes once the last one is done.
async fn serve_ttheader<T>(shared: Arc<Shared>, io: T, peer: SocketAddr)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut phase = shared.phase.clone();
    let conn = ttheader::Conn::new(recv_window(&shared));
    let max_packet = max_packet(&shared);
    let s = shared.clone();
    let c = conn.clone();
    let ledger = shared.budget.as_ref().map(|b| b.ledger());
    let on_header =
        move |stream, header| dispatch_ttheader(&s, &c, ledger.as_deref(), stream, header, peer);
    let run = ttheader::run(io, conn.clone(), max_packet, on_header);
    tokio::pin!(run);
    // `max_connection_idle`: TTHeader has no GOAWAY; an idle connection is closed, as
    // Kitex's server closes one.
    let mut idle = Idle::of(&shared);
    let mut opened = 0;
    // `max_connection_age`: past it the connection takes no new stream and closes once its
    // streams are done, or when the grace is over.
    let age = Age::of(&shared);
    let mut told: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = age.reached(), if told.is_none() => {
                conn.drain();
                told = Some(Instant::now());
            }
            _ = grace_over(told, age.grace) => {
                tracing::debug!("TTHeader connection from {peer} closed: its age and grace are over");
                return;
            }
            r = &mut run => {
                if let Err(e) = r {
                    tracing::debug!("TTHeader connection from {peer}: {e}");
                }
                return;
            }
            _ = sleep_until(idle.look_at()) => {
                let seen = std::mem::replace(&mut opened, conn.opened());
                if idle.idle_for_long(conn.streams() > 0 || seen != opened) {
                    tracing::debug!("TTHeader connection from {peer} idle for {:?}: closed", idle.limit);
                    return;
                }
            }
            changed = phase.changed() => {
                let p = *phase.borrow();
                match (changed, p) {
                    (Err(_), _) | (_, Phase::Stopped) => return,
                    (_, Phase::Draining) => conn.drain(),
                    (_, Phase::Serving) => {}
                }
            }
        }
    }
}

/// When a connection is told to go (`max_connection_age`), and when it is closed after
/// that (`max_connection_age_grace`).
struct Age {
    go_at: Option<Instant>,
    grace: Option<Duration>,
}

impl Age {
    fn of(shared: &Shared) -> Age {
        let o = &shared.opts;
        Age {
            go_at: o.max_connection_age.map(|a| Instant::now() + spread(a)),
            grace: o.max_connection_age_grace,
        }
    }

    /// Waits until the connection is to go; never, without an age.
    async fn reached(&self) {
        match self.go_at {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    }
}

/// `max_connection_idle` over HTTP/2. h2 tells whether a connection has streams, not when
/// its last one ended, so the connection is looked at every eighth of the limit: idle at
/// one look, and still idle a limit later, it goes.
struct Idle {
    limit: Option<Duration>,
    /// Since when no call was seen (the connection's start, at first).
    since: Option<Instant>,
    next_look: Instant,
}

impl Idle {
    fn of(shared: &Shared) -> Idle {
        let now = Instant::now();
        let limit = shared.opts.max_connection_idle;
        Idle {
            limit,
            since: Some(now),
            next_look: now + limit.unwrap_or_default(),
        }
    }

    /// When to look next; never, without a limit.
    fn look_at(&self) -> Option<Instant> {
        self.limit.map(|_| self.next_look)
    }

    fn busy(&mut self) {
        self.since = None;
    }

    /// A look, `busy` if the connection has streams: whether it has been idle for the limit.
    fn idle_for_long(&mut self, busy: bool) -> bool {
        let (now, limit) = (Instant::now(), self.limit.unwrap_or_default());
        match (busy, self.since) {
            (true, _) => self.since = None,
            (false, None) => self.since = Some(now),
            (false, Some(_)) => {}
        }
        self.next_look = now + (limit / 8).max(Duration::from_millis(1));
        self.since.is_some_and(|s| now >= s + limit)
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// `d` ±10%, from the clock's nanoseconds: connections made at once go at different times.
fn spread(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d.mul_f64(0.9 + 0.2 * f64::from(nanos % 1000) / 1000.0)
}

/// Waits out `grace` after the connection was told to go; never, without one.
async fn grace_over(told: Option<Instant>, grace: Option<Duration>) {
    match (told, grace) {
        (Some(t), Some(g)) => tokio::time::sleep_until(t + g).await,
        _ => std::future::pending().await,
    }
}

/// Serves HTTP/1.1 requests (gRPC-Web and Connect, and gRPC to clients that take
/// trailers) until the client closes, the server drains or the connection's age is
/// reached (after the request in progress), or the server stops.
async fn serve_h1<T>(shared: Arc<Shared>, io: T, peer: SocketAddr)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut phase = shared.phase.clone();
    let mut stopped = shared.phase.clone();
    let age = Age::of(&shared);
    let grace = age.grace;
    // When the age was reached (hyper then closes after the request in progress).
    let (told, told_at) = tokio::sync::oneshot::channel();
    let draining = async move {
        let server_drains = async {
            while *phase.borrow_and_update() == Phase::Serving {
                if phase.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = server_drains => {}
            _ = age.reached() => {
                let _ = told.send(Instant::now());
            }
        }
    };
    let s = shared.clone();
    let ledger = shared.budget.as_ref().map(|b| b.ledger());
    let requests = std::sync::atomic::AtomicU32::new(0);
    let on_request = move |req: http::Request<hyper::body::Incoming>, mut r: http1::Responder| {
        let (parts, body) = req.into_parts();
        let body = RecvBody::H1(Box::new(http1::RecvBody::new(body)));
        let n = requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let budgeted = Budgeted::of(s.budget.as_deref(), ledger.as_deref(), n);
        if let Budgeted::Counted(m) = &budgeted {
            r.metered(m.clone());
        }
        dispatch(&s, parts, body, Respond::H1(r), peer, None, budgeted);
    };
    let aged_out = async {
        // No time when the server's draining ended `draining` instead: no grace to keep.
        grace_over(told_at.await.ok(), grace).await
    };
    tokio::select! {
        r = http1::serve(io, shared.opts.header_read_timeout, on_request, draining) => {
            if let Err(e) = r {
                tracing::debug!("HTTP/1.1 connection from {peer}: {e}");
            }
        }
        _ = stopped.wait_for(|p| *p == Phase::Stopped) => {}
        _ = aged_out => tracing::debug!("HTTP/1.1 connection from {peer} closed: its age and grace are over"),
    }
}

async fn serve_h2<T>(
    shared: Arc<Shared>,
    io: T,
    peer: SocketAddr,
    me: std::sync::Weak<Driver>,
    handshake_by: Instant,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let o = &shared.opts;
    let ledger = shared.budget.as_ref().map(|b| b.ledger());
    let (io, seen) = Watched::new(LateAck::new(io), o.header_read_timeout, ledger.clone());
    let conn = h2_server(
        o.max_concurrent_streams,
        o.max_header_list_size,
        o.initial_stream_window,
        o.initial_connection_window,
    )
    .handshake::<Watched<LateAck<T>>, Bytes>(io);
    // h2's handshake ends once the client's connection preface has arrived.
    let conn = match tokio::time::timeout_at(handshake_by, conn).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!("HTTP/2 handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("{peer} sent no HTTP/2 connection preface in time");
            return;
        }
    };
    let window = recv_window(&shared);
    run_h2(conn, seen, ledger, window, shared, peer, me).await
}

/// A new connection's receive window: it grows with the streams open on it, up to the
/// cap per connection, out of the pool the server's connections share.
fn recv_window(shared: &Shared) -> RecvWindow {
    let o = &shared.opts;
    RecvWindow::new(
        o.initial_stream_window,
        o.initial_connection_window,
        window::cap(o.connection_receive_budget),
        Some(shared.window_pool.clone()),
    )
}

/// Hands each request of an HTTP/2 connection to dispatch, until the client goes, the
/// server stops, or the grace after a GOAWAY of ours (the server draining, or the
/// connection's age) is over.
async fn run_h2<T>(
    mut conn: h2::server::Connection<T, Bytes>,
    seen: Arc<Seen>,
    ledger: Option<Arc<Ledger>>,
    mut window: RecvWindow,
    shared: Arc<Shared>,
    peer: SocketAddr,
    me: std::sync::Weak<Driver>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let age = Age::of(&shared);
    // When our GOAWAY went out: the server draining, or the connection's age.
    let mut told: Option<Instant> = None;
    if *shared.phase.borrow() != Phase::Serving {
        tell_to_go(&mut conn, &mut told);
    }
    let mut aged = false;
    let mut idle = Idle::of(&shared);
    let (mut pings, mut pinger) = keepalive(&shared, &mut conn);
    // Kept across requests: each registers a waiter or a timer when first polled.
    let pinged = seen.pings();
    let gone = pinger.client_gone(&seen);
    let changed = next_phase(shared.phase.clone());
    tokio::pin!(pinged, gone, changed);
    loop {
        tokio::select! {
            r = conn.accept() => match r {
                Some(Ok((req, respond))) => {
                    idle.busy();
                    let receiving = counted_in(&mut conn, &mut window);
                    take_request(&shared, ledger.as_deref(), req, receiving, respond, peer, &me);
                }
                Some(Err(e)) => {
                    tracing::debug!("connection from {peer}: {e}");
                    if e.is_io() || e.is_go_away() {
                        break;
                    }
                }
                None => break,
            },
            _ = age.reached(), if !aged => {
                aged = true;
                tell_to_go(&mut conn, &mut told);
            }
            _ = sleep_until(idle.look_at()), if told.is_none() => {
                if idle.idle_for_long(conn.has_streams()) {
                    tracing::debug!("connection from {peer} idle for {:?}: GOAWAY", idle.limit);
                    tell_to_go(&mut conn, &mut told);
                }
            }
            (n, sent_since) = &mut pinged => {
                pinged.set(seen.pings());
                if pings.pinged(n, conn.has_streams(), sent_since) {
                    tracing::debug!("{peer} pinged too often: GOAWAY ENHANCE_YOUR_CALM");
                    close_now(&mut conn, h2::Reason::ENHANCE_YOUR_CALM).await;
                    break;
                }
            }
            _ = &mut gone => {
                tracing::debug!("{peer} did not answer a keepalive PING: closing");
                break;
            }
            _ = grace_over(told, age.grace), if aged => {
                close_now(&mut conn, h2::Reason::NO_ERROR).await;
                break;
            }
            (p, rx) = &mut changed => {
                changed.set(next_phase(rx));
                if p == Phase::Stopped {
                    close_now(&mut conn, h2::Reason::NO_ERROR).await;
                    break;
                }
                if p == Phase::Draining {
                    tell_to_go(&mut conn, &mut told);
                }
            }
        }
    }
}

/// What a connection allows of the client's PINGs, and its own PINGs to a client gone quiet.
fn keepalive<T, B>(shared: &Shared, conn: &mut h2::server::Connection<T, B>) -> (PingPolicy, Pinger)
where
    T: AsyncRead + AsyncWrite + Unpin,
    B: bytes::Buf,
{
    let o = &shared.opts;
    (
        PingPolicy::new(o.permit_keepalive_time, o.permit_keepalive_without_calls),
        Pinger::new(conn.ping_pong(), o.keepalive_time, o.keepalive_timeout),
    )
}

/// The server's next phase, and the receiver to wait on for the one after it; `Stopped`
/// once the server is gone.
async fn next_phase(mut rx: watch::Receiver<Phase>) -> (Phase, watch::Receiver<Phase>) {
    let p = match rx.changed().await {
        Ok(()) => *rx.borrow_and_update(),
        Err(_) => Phase::Stopped,
    };
    (p, rx)
}

/// Hands a request to dispatch, counted in the connection's send budget; refused with
/// REFUSED_STREAM while the server or the connection is over it (RFC 9113 §8.7: the
/// request was not processed, and a client may retry it).
fn take_request(
    shared: &Shared,
    ledger: Option<&Ledger>,
    req: http::Request<h2::RecvStream>,
    receiving: Receiving,
    mut respond: h2::server::SendResponse<Bytes>,
    peer: SocketAddr,
    me: &std::sync::Weak<Driver>,
) {
    let id = respond.stream_id().into();
    let budgeted = Budgeted::of(shared.budget.as_deref(), ledger, id);
    if let Budgeted::Over = budgeted {
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return;
    }
    let (parts, body) = req.into_parts();
    let (body, respond) = (RecvBody::H2(body, receiving), Respond::H2(respond));
    dispatch(shared, parts, body, respond, peer, me.upgrade(), budgeted)
}

/// A new stream's place in the connection's receive window, the window grown for it.
fn counted_in<T>(conn: &mut h2::server::Connection<T, Bytes>, window: &mut RecvWindow) -> Receiving
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let receiving = window.count();
    if let Some(target) = window.retarget() {
        conn.set_target_window_size(target);
    }
    receiving
}

/// A graceful GOAWAY, unless one went out already (`told`: when).
fn tell_to_go<T>(conn: &mut h2::server::Connection<T, Bytes>, told: &mut Option<Instant>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    if told.is_none() {
        conn.graceful_shutdown();
        *told = Some(Instant::now());
    }
}

/// GOAWAY with `reason`, a moment for h2 to write it, then the connection is dropped (and
/// its streams with it).
async fn close_now<T>(conn: &mut h2::server::Connection<T, Bytes>, reason: h2::Reason)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    conn.abrupt_shutdown(reason);
    let closed = std::future::poll_fn(|cx| conn.poll_closed(cx));
    let _ = tokio::time::timeout(Duration::from_millis(100), closed).await;
}
