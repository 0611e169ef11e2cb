//! The channel's HTTP/1.1 connections: one call at a time on each, kept after its
//! response for the next call (keep-alive), as many at once as calls run at once. HTTP/1.1
//! cannot carry both directions of a call at once, so bidi calls are refused, as connect-go's
//! client refuses them.

use bytes::Bytes;
use http::{HeaderValue, Request};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::runtime::Handle;

use crate::status::Status;
use crate::transport::http1::{self, BodyTx, ResponseFuture, SendRequest};
use crate::transport::tls;

/// Idle connections kept for later calls; more are closed once their call ends.
const MAX_IDLE: usize = 32;

pub(crate) struct Http1 {
    /// `host:port`, for messages and the `Host` header.
    authority: String,
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, String)>,
    connect_timeout: Duration,
    runtime: Handle,
    /// Connections that may take another call once their last response has been read.
    kept: Mutex<Vec<SendRequest>>,
    /// The server picked HTTP/1.1 by ALPN on a connection offered both (`HttpVersion::Auto`).
    negotiated: AtomicBool,
}

impl Http1 {
    pub(crate) fn new(
        authority: String,
        host: String,
        port: u16,
        tls: Option<(tokio_rustls::TlsConnector, String)>,
        connect_timeout: Duration,
        runtime: Handle,
    ) -> Http1 {
        Http1 {
            authority,
            host,
            port,
            tls,
            connect_timeout,
            runtime,
            kept: Mutex::new(Vec::new()),
            negotiated: AtomicBool::new(false),
        }
    }

    /// True once `adopt` has taken a connection.
    pub(crate) fn negotiated(&self) -> bool {
        self.negotiated.load(Ordering::Acquire)
    }

    /// Takes a connection (TLS established) on which the server picked HTTP/1.1 by ALPN:
    /// it serves the next call, and from now on `negotiated` says so.
    pub(crate) async fn adopt<T>(&self, io: T) -> Result<(), Status>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let handshaking = async {
            let mut sender = http1::connect(io, &self.runtime).await?;
            sender.ready().await?;
            Ok(sender)
        };
        let sender = handshaking.await.map_err(handshake)?;
        self.keep(sender);
        self.negotiated.store(true, Ordering::Release);
        Ok(())
    }

    /// Sends a call's request head on a free connection (a new one if none is free): the
    /// call writes the body into the returned end, and reads the response from the future.
    /// `whole`: the call sends its one message and its end at once (unary, server
    /// streaming), and the head waits for them, to give the body's length.
    pub(crate) async fn send(
        self: &Arc<Self>,
        req: Request<()>,
        whole: bool,
    ) -> Result<(BodyTx, ResponseFuture), Status> {
        let mut sender = match self.free() {
            Some(s) => s,
            None => self.connect().await?,
        };
        let (parts, ()) = req.into_parts();
        let mut req = Request::from_parts(parts, ());
        // HTTP/1.1 requests name the path alone ("origin-form", RFC 9112 §3.2.1) and the
        // server in Host: the call's authority (the channel's, which may not be ours).
        let host = req
            .uri()
            .authority()
            .map_or(&self.authority[..], |a| a.as_str());
        let host = HeaderValue::from_str(host).ok();
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *req.uri_mut() = path
            .parse()
            .map_err(|_| Status::internal(format!("invalid path {path:?}")))?;
        if let Some(host) = host {
            req.headers_mut().insert(http::header::HOST, host);
        }
        // A GET (Connect's, its message in the URL) has no body: none is framed.
        let bodiless = req.method() == http::Method::GET;
        let (tx, body) = http1::body(Bytes::new(), bodiless);
        let (parts, ()) = req.into_parts();
        let req = Request::from_parts(parts, body);
        if whole && !bodiless {
            let me = self.clone();
            let response = ResponseFuture::send_whole(sender, req, &tx, move |s| me.keep(s));
            return Ok((tx, response));
        }
        let response = ResponseFuture::send(&mut sender, req, &tx);
        self.keep(sender);
        Ok((tx, response))
    }

    /// A kept connection that can take a call now.
    fn free(&self) -> Option<SendRequest> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|s| !s.is_closed());
        let at = kept.iter().position(SendRequest::is_ready)?;
        Some(kept.swap_remove(at))
    }

    fn keep(&self, sender: SendRequest) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|s| !s.is_closed());
        if kept.len() < MAX_IDLE {
            kept.push(sender);
        }
    }

    async fn connect(&self) -> Result<SendRequest, Status> {
        let addr = format!("{}:{}", self.host, self.port);
        let connecting = async {
            let tcp = TcpStream::connect(&addr)
                .await
                .map_err(|e| Status::unavailable(format!("failed to connect to {addr}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let Some((connector, name)) = &self.tls else {
                return http1::connect(tcp, &self.runtime).await.map_err(handshake);
            };
            let name = tls::server_name(name).map_err(|e| Status::unavailable(e.to_string()))?;
            let tls = connector.connect(name, tcp).await.map_err(|e| {
                Status::unavailable(format!("TLS handshake with {addr} failed: {e}"))
            })?;
            http1::connect(tls, &self.runtime).await.map_err(handshake)
        };
        tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| Status::unavailable(format!("connecting to {addr} timed out")))?
    }
}

fn handshake(e: hyper::Error) -> Status {
    Status::unavailable(format!("HTTP/1.1 handshake failed: {e}"))
}
