//! What a server may be told about its connections and calls.

use std::time::Duration;

use crate::protocol::cors::Cors;
use crate::protocol::envelope::DEFAULT_MAX_RECV_MESSAGE;
use crate::transport::tls::ServerTls;
use crate::transport::window::DEFAULT_CONNECTION_RECEIVE_BUDGET;

/// A client on a slow mobile network finishes a TLS handshake and its preface within a few
/// round trips; ten seconds leaves room for that and little for a peer that stalls on
/// purpose. (grpc-go's `ConnectionTimeout` allows 120 s; nginx's `client_header_timeout`
/// 60 s.)
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// hyper's default for HTTP/1.1, taken for HTTP/2 too: a request's head is a few hundred
/// bytes, so a client still sending one after 30 s is either gone or stalling on purpose.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// grpc-go's and grpc-java's default `MinTime` / `permitKeepAliveTime`.
const DEFAULT_PERMIT_KEEPALIVE_TIME: Duration = Duration::from_secs(5 * 60);

/// grpc-go's `ServerParameters.Time` and `.Timeout` defaults: a client that vanished without
/// a FIN (its host down, a NAT that forgot the flow) is found within about two hours.
const DEFAULT_KEEPALIVE_TIME: Duration = Duration::from_secs(2 * 60 * 60);
const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the server may hold for clients that do not read, over all its connections and
/// per connection (see `send_budget`). A server with 4,096 such streams on one
/// connection would otherwise hold about 2 GiB.
const DEFAULT_SEND_BUDGET: usize = 512 << 20;
const DEFAULT_CONNECTION_SEND_BUDGET: usize = 64 << 20;

/// What clients may send ahead of the handlers' reading: with 1 MiB stream windows a
/// connection's window keeps up with 63 request streams that handlers have not read yet
/// (`DEFAULT_CONNECTION_RECEIVE_BUDGET`), and eight such connections at full growth fill
/// the server's part.
const DEFAULT_RECEIVE_BUDGET: usize = 512 << 20;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// SETTINGS_MAX_CONCURRENT_STREAMS per connection.
    pub max_concurrent_streams: u32,
    /// Largest request message accepted (default 4 MiB).
    pub max_recv_message_size: usize,
    /// Largest header block accepted.
    pub max_header_list_size: u32,
    /// HTTP/2 flow-control windows granted to clients: each stream's (default 1 MiB), and
    /// each connection's to begin with (default 4 MiB). A connection's window grows with
    /// the streams open on it, a stream window ahead of what they can hold unread (up to
    /// `connection_receive_budget`, and `receive_budget` over all of the server's
    /// connections), so that request streams handlers have not read yet do not stall the
    /// connection's other calls. A TTHeader Streaming connection, which has no window,
    /// stops reading while its streams hold unread what such a window would let them.
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    pub tls: Option<ServerTls>,
    /// How long a new connection may take to finish its TLS handshake and send the
    /// HTTP/2 connection preface; past it the server closes the connection. A peer that
    /// opens connections and sends nothing (or half a preface) would otherwise hold a file
    /// descriptor each for as long as it likes.
    pub handshake_timeout: Duration,
    /// How long a request's head may take to arrive once it has begun: an HTTP/2 header
    /// block (HEADERS and its CONTINUATIONs), an HTTP/1.1 request line and headers. Past it
    /// the server closes the connection, so that a client sending headers a byte at a time
    /// cannot hold one for as long as it likes. Default 30 s.
    pub header_read_timeout: Duration,
    /// Keepalive enforcement (grpc-go's `EnforcementPolicy.MinTime`, grpc-java's
    /// `permitKeepAliveTime`): an HTTP/2 client that pings more often than this, while the
    /// server sends it nothing, gets two strikes forgiven, then GOAWAY ENHANCE_YOUR_CALM and
    /// the connection closes; gRPC clients then ping less often. Default 5 minutes, as
    /// grpc-go and grpc-java; zero, with `permit_keepalive_without_calls`, permits any
    /// rate.
    pub permit_keepalive_time: Duration,
    /// Whether clients may ping at that rate on connections without calls too (grpc-go's
    /// `PermitWithoutStream`); otherwise such pings must be two hours apart. Default false.
    pub permit_keepalive_without_calls: bool,
    /// An HTTP/2 connection from which nothing has arrived for this long gets a PING; if
    /// its answer does not come within `keepalive_timeout`, the connection closes and its
    /// calls end (CANCELLED to their handlers). Without it a client that froze or vanished
    /// without closing its socket holds its calls, and whatever they buffer, until TCP
    /// gives up, which can take hours. Default 2 hours, as grpc-go's
    /// `ServerParameters.Time`; `None` turns the pings off. Clients ping on their own too
    /// (`ChannelOptions::keepalive_interval`); this is the server's half.
    pub keepalive_time: Option<Duration>,
    /// How long a keepalive PING may go unanswered (default 20 s, as grpc-go).
    pub keepalive_timeout: Duration,
    /// At most this many bytes held for clients to read, over all connections whatever
    /// their protocol: what calls have queued and what is waiting for the socket,
    /// including what finished calls left unwritten. Past it the server refuses new
    /// streams (over HTTP/2 with REFUSED_STREAM, which gRPC clients retry; over HTTP/1.1
    /// and TTHeader, and Thrift PingPong calls, with RESOURCE_EXHAUSTED) and cuts the streams whose clients have
    /// stopped reading, those holding the most first, until it is back under (over HTTP/2
    /// RST_STREAM ENHANCE_YOUR_CALM, over TTHeader an RST frame, over HTTP/1.1 the
    /// connection closes; the handler's call ends RESOURCE_EXHAUSTED).
    /// A stream whose client keeps reading is never cut. Bounds what clients that open
    /// streams and read nothing (or grant no window) can make the server hold. Besides,
    /// once half of it waits unwritten in the server's transports, a connection holding
    /// more than its share of that half hands its transport nothing more until its client
    /// reads. Default 512 MiB; `None`: no limit.
    pub send_budget: Option<usize>,
    /// The same for each connection. Besides, once half of it waits unwritten in a
    /// connection's transport (its socket not taking more), that connection's streams hand
    /// the transport nothing more until the client reads. Default 64 MiB; `None`: no limit.
    pub connection_send_budget: Option<usize>,
    /// How far the HTTP/2 connection windows granted to clients may grow together, in
    /// bytes, beyond each connection's `initial_connection_window`: what clients can make
    /// the server hold of requests its handlers have not read yet, however many
    /// connections and streams they open. Past it, request streams that are not read
    /// stall their connection's other calls until they are. Default 512 MiB; `None`: no
    /// limit.
    pub receive_budget: Option<usize>,
    /// The most one HTTP/2 connection's window grows to (never less than
    /// `initial_connection_window`; HTTP/2 allows at most 2^31-1). Default 64 MiB: a
    /// connection keeps up with 63 unread request streams of 1 MiB windows. `None`: as
    /// far as HTTP/2 allows.
    pub connection_receive_budget: Option<usize>,
    /// At most this many connections at once (`None`: no limit). At the limit a new
    /// connection takes the place of the oldest one still in its handshake (TLS, or its
    /// first bytes: no call in flight), so that a flood of connections that never finish
    /// one cannot keep clients out; with none such, it waits for a connection to end, and
    /// later ones wait in the listen backlog. Each connection costs a file descriptor and
    /// its buffers, so this bounds what many peers, or one that opens connections without
    /// end, can take. Out of file descriptors, the server closes such connections the
    /// same way.
    pub max_connections: Option<usize>,
    /// Past this age (±10%, so that connections made together do not all go at once) a
    /// connection is told to go: GOAWAY over HTTP/2 (its calls run on; the client opens a
    /// new connection for new ones), `Connection: close` after the request in progress
    /// over HTTP/1.1. Clients then spread over servers added since they connected, as
    /// behind a load balancer (grpc-go's `MaxConnectionAge`). `None` (default): no limit.
    pub max_connection_age: Option<Duration>,
    /// How long the calls of a connection told to go by `max_connection_age` may run on
    /// before it closes and ends them (grpc-go's `MaxConnectionAgeGrace`). `None`
    /// (default): as long as they take.
    pub max_connection_age_grace: Option<Duration>,
    /// An HTTP/2 connection without a call this long (since its last call ended, or since
    /// it was made) is told to go with a GOAWAY, and closes: idle clients give back their
    /// file descriptors and buffers, and the client reconnects when it next calls
    /// (grpc-go's `MaxConnectionIdle`). It goes within an eighth of this after the limit.
    /// `None` (default): idle connections stay.
    pub max_connection_idle: Option<Duration>,
    /// Browser pages from these origins may call the server (gRPC-Web, Connect): their
    /// preflights are answered and the responses readable by them. `None` (the default):
    /// no CORS, so browsers let only same-origin pages call.
    pub cors: Option<Cors>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            max_concurrent_streams: 4096,
            max_recv_message_size: DEFAULT_MAX_RECV_MESSAGE,
            max_header_list_size: 64 * 1024,
            initial_stream_window: 1 << 20,
            initial_connection_window: 4 << 20,
            tls: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            permit_keepalive_time: DEFAULT_PERMIT_KEEPALIVE_TIME,
            permit_keepalive_without_calls: false,
            keepalive_time: Some(DEFAULT_KEEPALIVE_TIME),
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            send_budget: Some(DEFAULT_SEND_BUDGET),
            connection_send_budget: Some(DEFAULT_CONNECTION_SEND_BUDGET),
            receive_budget: Some(DEFAULT_RECEIVE_BUDGET),
            connection_receive_budget: Some(DEFAULT_CONNECTION_RECEIVE_BUDGET),
            max_connections: None,
            max_connection_age: None,
            max_connection_age_grace: None,
            max_connection_idle: None,
            cors: None,
        }
    }
}
