//! What a channel may be told about its connections.

use std::time::Duration;

use crate::named::Named;
use crate::protocol::Protocol;
use crate::transport::tls::ClientTls;
use crate::transport::window::{self, RecvWindow, DEFAULT_CONNECTION_RECEIVE_BUDGET};

/// Channel settings.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// How long one connection attempt (TCP, TLS and the HTTP/2 preface) may take.
    pub connect_timeout: Duration,
    /// Send an HTTP/2 PING after this much time; `None` disables keepalive.
    pub keepalive_interval: Option<Duration>,
    /// Close the connection when a PING is not answered within this time.
    pub keepalive_timeout: Duration,
    /// TLS settings for `https://` targets (system roots when `None`).
    pub tls: Option<ClientTls>,
    /// HTTP/2 flow-control windows we grant the server: each stream's (default 1 MiB),
    /// and the connection's to begin with (default 4 MiB). The connection's window grows
    /// with the streams open on it, a stream window ahead of what they can hold unread (up
    /// to `connection_receive_budget`), so that streams the application has not read yet
    /// do not stall the others. A TTHeader Streaming connection, which has no window,
    /// stops reading while its streams hold unread what such a window would let them, and
    /// a new stream goes on a connection none of whose streams holds more unread than
    /// `initial_stream_window`.
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    /// The most a connection's receive window grows to (never less than
    /// `initial_connection_window`; HTTP/2 allows at most 2^31-1): what a server can make
    /// the channel hold of answers the application has not read. Default 64 MiB: a
    /// connection keeps up with 63 unread streams of 1 MiB windows. `None`: as far as
    /// HTTP/2 allows.
    pub connection_receive_budget: Option<usize>,
    /// Largest header block accepted from the server.
    pub max_header_list_size: u32,
    /// First wait after a failed connection attempt; grows by 1.6 up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub user_agent: Option<String>,
    /// Hands plain-TCP (`http://`) connections out through `Channel::poll_connection` for
    /// the caller's event loop to drive (see `HostedConnection`); TLS connections stay on
    /// the runtime. The caller must then take and drive every connection.
    pub host_connections: bool,
    /// The protocol every call of the channel speaks: gRPC (the default), gRPC-Web or
    /// Connect. A rillrpc server answers all three.
    pub protocol: Protocol,
    /// HTTP/2 (the default), HTTP/1.1 (for gRPC-Web and Connect to servers that speak only
    /// HTTP/1.1), or `Auto`: the server's choice by ALPN under TLS. Over HTTP/1.1 each
    /// call has a connection to itself and bidi calls are refused.
    pub http_version: HttpVersion,
    /// Connect unary calls to methods without side effects (`CallOptions::idempotency`)
    /// go as HTTP GET requests, the message in the URL, so that caches can keep them (as
    /// connect-go's `WithHTTPGet`). Off by default.
    pub http_get: bool,
    /// The `:authority` (HTTP/2) and `Host` (HTTP/1.1) of every call, in place of the
    /// target's `host:port`: Kitex's clients name the destination service there (its
    /// gRPC server routes by it), and a proxy may route by a name that is not the address
    /// (grpc-go's `WithAuthority`, grpcio's and grpc-js's `grpc.default_authority`). The
    /// TLS server name stays the target's host, or `ClientTls::server_name`.
    pub authority: Option<String>,
}

/// The HTTP version a channel's calls travel over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    #[default]
    Http2,
    Http1,
    /// Under TLS, what the server picks from the two offered by ALPN (`h2`, `http/1.1`)
    /// on the channel's first connection, which then holds for the channel: a server that
    /// picks HTTP/1.1 (or no protocol: RFC 7301 leaves HTTP/1.1 then) gets its calls over
    /// HTTP/1.1. Over plain TCP there is nothing to negotiate, and calls use HTTP/2 (prior
    /// knowledge); gRPC, which needs HTTP/2, offers only `h2`.
    Auto,
}

impl HttpVersion {
    pub const ALL: [HttpVersion; 3] = [HttpVersion::Http2, HttpVersion::Http1, HttpVersion::Auto];

    pub fn name(self) -> &'static str {
        match self {
            HttpVersion::Http2 => "http2",
            HttpVersion::Http1 => "http1",
            HttpVersion::Auto => "auto",
        }
    }
}

impl Named for HttpVersion {
    const ALL: &'static [HttpVersion] = &HttpVersion::ALL;

    fn name(self) -> &'static str {
        HttpVersion::name(self)
    }
}

impl ChannelOptions {
    /// A new connection's receive window: it grows with the streams open on it, up to
    /// the channel's cap per connection (a client's unread streams are its own
    /// application's: no pool is shared between connections).
    pub(crate) fn recv_window(&self) -> RecvWindow {
        RecvWindow::new(
            self.initial_stream_window,
            self.initial_connection_window,
            window::cap(self.connection_receive_budget),
            None,
        )
    }
}

impl Default for ChannelOptions {
    fn default() -> ChannelOptions {
        ChannelOptions {
            connect_timeout: Duration::from_secs(20),
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            tls: None,
            initial_stream_window: 1 << 20,
            initial_connection_window: 4 << 20,
            connection_receive_budget: Some(DEFAULT_CONNECTION_RECEIVE_BUDGET),
            max_header_list_size: 16 << 20,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            user_agent: None,
            host_connections: false,
            protocol: Protocol::Grpc,
            http_version: HttpVersion::Http2,
            http_get: false,
            authority: None,
        }
    }
}
