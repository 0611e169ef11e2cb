//! A channel's calls over Kitex's TTHeader transports: streaming calls as streams of a
//! TTHeader Streaming connection, unary calls as PingPong requests (TTHeader-framed, what a
//! Kitex client sends by default; Thrift, or Kitex's Protobuf for the content subtype
//! `proto`) on connections of their own, one call at a time each, kept for the next call.
//!
//! TTHeader has no flow control: a connection whose calls leave a stream's messages unread
//! stops reading, for all of its streams, once they hold its receive window. A stream opened
//! then would wait behind them, and a caller that reads one stream only after another
//! answers (a call per message of a server stream) would wait for ever. So a new stream goes
//! on a connection none of whose streams is behind (holds more unread than an HTTP/2 stream
//! window would let it), made if need be, as Kitex's client spreads its streams over a pool
//! of connections; connections no stream uses end, but for one kept for the next stream.

use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::backoff::{Backoff, Turn};
use super::options::ChannelOptions;
use crate::call::Open;
use crate::metadata::Metadata;
use crate::protocol::envelope::DEFAULT_MAX_RECV_MESSAGE;
use crate::protocol::ttheader::metainfo::{wire_pairs, ISN};
use crate::protocol::ttheader::pingpong::{self, Payload};
use crate::protocol::ttheader::stream;
use crate::protocol::{Receiver, Sender};
use crate::runtime;
use crate::status::{Code, Status};
use crate::transport::ttheader::pingpong::{self as framing, Framing, Reply};
use crate::transport::ttheader::{self, key, Conn, ProtocolId, Stream};

/// TTHeader's int keys a PingPong request carries beside ToMethod and MsgType
/// (WIRE.md §1.1).
const TRANSPORT_TYPE: u16 = 1;
const TO_SERVICE: u16 = 6;
const RPC_TIMEOUT: u16 = 12;

/// Idle PingPong connections kept for the next calls.
const IDLE_KEPT: usize = 8;

/// The most TTHeader Streaming connections a channel makes for streams that would wait
/// behind unread ones: past it a new stream takes the newest, and may wait.
const STREAMING_CONNECTIONS: usize = 16;

pub(crate) struct Ttheader {
    /// `host:port` to connect to.
    addr: String,
    /// The service the calls go to, as Kitex names its destination (ToService).
    service: Bytes,
    /// Its connections' connect timeout and receive windows.
    opts: ChannelOptions,
    /// After a failed connection attempt: calls fail fast, or wait with wait_for_ready.
    backoff: Backoff,
    /// The TTHeader Streaming connections, once made (and until they end): more than one
    /// only while a stream is behind on each of the others (see the module doc).
    streaming: tokio::sync::Mutex<Vec<Arc<Conn>>>,
    /// Stream ids, and PingPong sequence ids: 1, 2, 3... as Kitex counts them.
    next_id: AtomicI32,
    idle: Mutex<Vec<TcpStream>>,
}

/// A method path's Thrift names: `/echo.TestService/Echo` is service `TestService`,
/// method `Echo`.
fn names(path: &str) -> Result<(String, String), Status> {
    let (svc, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .ok_or_else(|| Status::internal(format!("malformed method name: {path:?}")))?;
    let svc = svc.rsplit('.').next().unwrap_or(svc);
    Ok((svc.to_owned(), method.to_owned()))
}

fn unavailable(e: std::io::Error) -> Status {
    Status::unavailable(format!("TTHeader connection: {e}"))
}

impl Ttheader {
    pub(crate) fn new(addr: String, service: String, opts: &ChannelOptions) -> Ttheader {
        Ttheader {
            addr,
            service: Bytes::from(service),
            opts: opts.clone(),
            backoff: Backoff::new(opts.initial_backoff, opts.max_backoff),
            streaming: tokio::sync::Mutex::new(Vec::new()),
            next_id: AtomicI32::new(1),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn next_id(&self) -> i32 {
        // Past i32::MAX the ids start again at 1; never 0 (Kitex's `genStreamID`).
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id <= 0 {
            self.next_id.store(2, Ordering::Relaxed);
            return 1;
        }
        id
    }

    /// Opens a streaming call to `path`: a stream of the TTHeader Streaming connection,
    /// once there is one (unary calls are PingPong requests: `open_pingpong`).
    pub(crate) fn open_streaming(
        self: &Arc<Self>,
        path: &str,
        subtype: Option<&str>,
        metadata: Metadata,
        asked: Asking,
    ) -> Open {
        let (me, path) = (self.clone(), path.to_owned());
        let payload = Payload::of_subtype(subtype);
        Box::pin(async move {
            let (svc, method) = names(&path)?;
            if payload != Payload::Thrift {
                // Kitex's ttstream frames carry Thrift structs only (protocol id 0x10).
                return Err(Status::new(
                    Code::Unimplemented,
                    "TTHeader Streaming carries Thrift only: call a protobuf streaming method \
                     over gRPC",
                ));
            }
            me.open_stream(svc, method, metadata, asked.wait_for_ready, asked.max_recv)
                .await
        })
    }

    /// A unary call's two ends, made on the caller's thread: a PingPong call needs no
    /// connection to begin (its request takes one as it leaves).
    pub(crate) fn open_pingpong(
        self: &Arc<Self>,
        path: &str,
        subtype: Option<&str>,
        metadata: Metadata,
        asked: Asking,
    ) -> Result<(Sender, Receiver), Status> {
        let (svc, method) = names(path)?;
        let payload = Payload::of_subtype(subtype);
        Ok(self.clone().pingpong(payload, svc, method, metadata, asked))
    }

    /// A new connection, as the channel's backoff allows (`backoff`): within it a call
    /// fails at once with the last attempt's error, or waits for the next attempt.
    async fn connect(&self, wait_for_ready: bool) -> Result<TcpStream, Status> {
        loop {
            match self.backoff.turn(wait_for_ready) {
                Turn::Fail(error) => return Err(error),
                Turn::Wait(until) => tokio::time::sleep_until(until).await,
                Turn::Now => match self.attempt().await {
                    Err(_) if wait_for_ready => {}
                    r => return r,
                },
            }
        }
    }

    /// One connection attempt, its outcome told to the backoff.
    async fn attempt(&self) -> Result<TcpStream, Status> {
        let r = tokio::time::timeout(self.opts.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| Status::unavailable(format!("connecting to {} timed out", self.addr)))
            .and_then(|r| r.map_err(unavailable));
        match &r {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                self.backoff.succeeded();
            }
            Err(e) => {
                self.backoff.failed(e.clone());
            }
        }
        r
    }

    /// A new stream `id`, on the first TTHeader Streaming connection no unread stream holds
    /// up, or on a new one. Calls that find no connection wait for one attempt to make it,
    /// as for the HTTP/2 connection; the backoff is waited out without holding them up.
    async fn open_on(&self, id: i32, wait_for_ready: bool) -> Result<Stream, Status> {
        let ended = || Status::unavailable("the TTHeader connection ended");
        let (mut conns, tcp) = loop {
            let mut conns = self.streaming.lock().await;
            let mut free = None;
            conns.retain(|c| {
                let load = c.load();
                // One connection no stream uses is kept for the next; others end.
                if load.closed || (load.streams == 0 && free.is_some()) {
                    c.drain();
                    return false;
                }
                if !load.held_up && free.is_none() {
                    free = Some(c.clone());
                }
                true
            });
            // Under the lock: a connection made for this stream is not idle to others.
            if let Some(c) = free {
                return c.open(id).ok_or_else(ended);
            }
            // Held up is better than refused: past the most connections, or when one cannot
            // be made now, the stream goes on the newest there is.
            let fallback = conns.last().cloned();
            if let Some(c) = fallback
                .as_ref()
                .filter(|_| conns.len() >= STREAMING_CONNECTIONS)
            {
                return c.open(id).ok_or_else(ended);
            }
            let failed = |error| match &fallback {
                Some(c) => c.open(id).ok_or_else(ended),
                None => Err(error),
            };
            match self.backoff.turn(wait_for_ready && fallback.is_none()) {
                Turn::Fail(error) => return failed(error),
                Turn::Wait(until) => {
                    drop(conns);
                    tokio::time::sleep_until(until).await;
                }
                Turn::Now => match self.attempt().await {
                    Ok(tcp) => break (conns, tcp),
                    Err(_) if wait_for_ready && fallback.is_none() => {}
                    Err(e) => return failed(e),
                },
            }
        };
        let conn = Conn::new_client(self.opts.recv_window());
        let max = DEFAULT_MAX_RECV_MESSAGE.saturating_add(ttheader::HEADER_ROOM);
        let run = ttheader::run(tcp, conn.clone(), max, |_, _| {});
        runtime::handle().spawn(async move {
            if let Err(e) = run.await {
                tracing::debug!("TTHeader Streaming connection: {e}");
            }
        });
        conns.push(conn.clone());
        conn.open(id).ok_or_else(ended)
    }

    async fn open_stream(
        &self,
        svc: String,
        method: String,
        metadata: Metadata,
        wait_for_ready: bool,
        max_recv: usize,
    ) -> Result<(Sender, Receiver), Status> {
        let stream = self.open_on(self.next_id(), wait_for_ready).await?;
        let mut strs = wire_pairs(&metadata);
        strs.push((Bytes::from_static(ISN.as_bytes()), Bytes::from(svc)));
        let sender = stream::Sender::client(stream.clone(), Bytes::from(method), strs)?;
        let receiver = stream::Receiver::client(stream, max_recv);
        Ok((
            Sender::Ttheader(Box::new(sender)),
            Receiver::Ttheader(Box::new(receiver)),
        ))
    }

    /// A PingPong call's two ends: the request leaves when the call half-closes.
    fn pingpong(
        self: Arc<Self>,
        payload: Payload,
        svc: String,
        method: String,
        metadata: Metadata,
        asked: Asking,
    ) -> (Sender, Receiver) {
        let Asking {
            timeout,
            wait_for_ready,
            max_recv,
        } = asked;
        let (mut tx, rx) = oneshot::channel();
        let seq_id = self.next_id();
        let mut strs = wire_pairs(&metadata);
        strs.push((Bytes::from_static(ISN.as_bytes()), Bytes::from(svc)));
        let mut ints = vec![
            framing::msg_type(1),
            (TRANSPORT_TYPE, Bytes::from_static(b"framed")),
            (TO_SERVICE, self.service.clone()),
            (key::TO_METHOD, Bytes::from(method.clone())),
        ];
        if let Some(t) = timeout {
            ints.push((RPC_TIMEOUT, Bytes::from(t.as_millis().to_string())));
        }
        let name = method.clone();
        let send = move |args: Bytes| {
            let request = Reply {
                strs,
                ints,
                message: pingpong::call_message(payload, &name, seq_id, &args),
            };
            runtime::handle().spawn(async move {
                // Protocol id 00 whatever the payload, as Kitex sends it (the payload's
                // first bytes say which it is).
                let framing = Framing::Ttheader {
                    framed: true,
                    protocol: ProtocolId::ThriftBinary,
                };
                let exchange = self.exchange(framing, seq_id, request, wait_for_ready, max_recv);
                // Bounded by the call: it drops the receiver when it ends (its deadline,
                // a cancel) or is dropped.
                let answer = tokio::select! {
                    a = exchange => a,
                    () = tx.closed() => return,
                };
                let _ = tx.send(answer);
            });
        };
        let sender = pingpong::Sender::Ask(pingpong::Ask::new(Box::new(send)));
        let receiver = pingpong::Receiver::reply(payload, method, rx);
        (
            Sender::PingPong(Box::new(sender)),
            Receiver::PingPong(Box::new(receiver)),
        )
    }

    /// Sends a PingPong request and reads its answer, on a kept connection if there is one
    /// (and again on a new one if the kept one turns out closed before any answer).
    async fn exchange(
        &self,
        framing: Framing,
        seq_id: i32,
        request: Reply,
        wait_for_ready: bool,
        max: usize,
    ) -> Result<Reply, Status> {
        let bytes = framing::encode(framing, seq_id, request)
            .map_err(|e| Status::internal(e.to_string()))?;
        let max = max.saturating_add(ttheader::HEADER_ROOM);
        let kept = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(tcp) = kept {
            match self.ask(tcp, &bytes, max).await {
                Err(Asked::Unanswered) => {}
                other => return other.map_err(Asked::status),
            }
        }
        let tcp = self.connect(wait_for_ready).await?;
        self.ask(tcp, &bytes, max).await.map_err(Asked::status)
    }

    async fn ask(&self, mut tcp: TcpStream, request: &[u8], max: usize) -> Result<Reply, Asked> {
        let failed = |e| Asked::Failed(unavailable(e));
        tcp.write_all(request)
            .await
            .map_err(|_| Asked::Unanswered)?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            let got = framing::next_answer(&mut buf, max)
                .map_err(|e| Asked::Failed(Status::internal(format!("a PingPong answer: {e}"))))?;
            if let Some(r) = got {
                if buf.is_empty() {
                    let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                    if idle.len() < IDLE_KEPT {
                        idle.push(tcp);
                    }
                }
                return Ok(Reply {
                    strs: r.packet.strs,
                    ints: r.packet.ints,
                    message: r.message,
                });
            }
            match tcp.read_buf(&mut buf).await {
                Ok(0) if buf.is_empty() => return Err(Asked::Unanswered),
                Ok(0) => {
                    return Err(Asked::Failed(Status::unavailable(
                        "the connection closed mid-answer",
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(failed(e)),
            }
        }
    }
}

/// What a call asked for beyond its method and metadata (`CallOptions`).
pub(crate) struct Asking {
    pub(crate) timeout: Option<Duration>,
    pub(crate) wait_for_ready: bool,
    pub(crate) max_recv: usize,
}

/// How a PingPong request failed.
enum Asked {
    /// The connection closed before any answer (a kept connection the server had closed).
    Unanswered,
    Failed(Status),
}

impl Asked {
    fn status(self) -> Status {
        match self {
            Asked::Unanswered => Status::unavailable("the server closed the connection unanswered"),
            Asked::Failed(s) => s,
        }
    }
}
