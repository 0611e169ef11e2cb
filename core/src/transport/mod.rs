//! Connections and streams: TCP sockets (driven by tokio's reactor or by a binding's event
//! loop), TLS, HTTP/2 (h2), HTTP/1.1 (hyper) and TTHeader Streaming (ours), and a
//! connection's future that any thread may poll.

pub(crate) mod budget;
pub(crate) mod driver;
pub(crate) mod goaway;
pub(crate) mod hosted;
pub(crate) mod http;
pub(crate) mod http1;
pub(crate) mod late_ack;
pub(crate) mod merge;
pub(crate) mod sniff;
pub(crate) mod socket;
pub(crate) mod tls;
pub(crate) mod ttheader;
pub(crate) mod watch;
pub(crate) mod window;

pub use hosted::{HostedConnection, Interest};
pub use tls::{ClientTls, ServerTls};

/// The memory h2 may spend on buffered small DATA frames per connection (see its
/// `data_frame_budget`): room for tens of thousands of one-message frames. Peers such as
/// grpcio and grpc-go send one DATA frame per message; h2's default budget for buffered
/// small frames (half the connection window) is spent by a few thousand of them waiting
/// for a slow reader, and the connection is closed with ENHANCE_YOUR_CALM. Flow control
/// already bounds the payload, and the frames of each read are merged before h2 sees
/// them (`merge`), so only a peer that sends tiny frames a read at a time spends it.
pub(crate) const DATA_FRAME_BUDGET: usize = 16 << 20;

/// How many streams we reset ourselves h2 remembers (for its `reset_stream_duration`, 30 s),
/// so that frames the peer sent before it saw our RST_STREAM are dropped quietly. h2
/// remembers 10 by default and forgets the streams reset past that; a frame on a forgotten
/// one is answered with another RST_STREAM. A remembered stream costs a few hundred bytes.
pub(crate) const RESET_STREAMS_REMEMBERED: usize = 1024;

/// The HTTP/2 settings our client connections ask for.
pub(crate) fn h2_client(
    stream_window: u32,
    connection_window: u32,
    max_header_list: u32,
) -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(stream_window)
        .initial_connection_window_size(connection_window)
        .max_header_list_size(max_header_list)
        .max_frame_size(1 << 20)
        .max_send_buffer_size(256 * 1024)
        .data_frame_budget(DATA_FRAME_BUDGET)
        .max_concurrent_reset_streams(RESET_STREAMS_REMEMBERED)
        // h2 counts the RST_STREAMs it answers frames on forgotten streams with, never
        // uncounts them, and past 1,024 per connection closes it with ENHANCE_YOUR_CALM
        // "too_many_internal_resets". A client that cancels server streams one after another
        // (take the first answer, cancel the rest) gets such frames for every cancel past
        // the remembered ones, so its connection died after a few thousand cancels with
        // every call on it. The guard protects a server from clients that make it reset
        // streams; a server that sends us frames gets one small RST_STREAM for each, which
        // costs it as much as us.
        .max_local_error_reset_streams(None)
        .enable_push(false);
    b
}

/// The HTTP/2 settings our server connections ask for.
pub(crate) fn h2_server(
    max_streams: u32,
    max_header_list: u32,
    stream_window: u32,
    connection_window: u32,
) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(max_streams)
        .max_header_list_size(max_header_list)
        .initial_window_size(stream_window)
        .initial_connection_window_size(connection_window)
        .max_frame_size(1 << 20)
        .max_send_buffer_size(256 * 1024)
        .data_frame_budget(DATA_FRAME_BUDGET)
        .max_concurrent_reset_streams(RESET_STREAMS_REMEMBERED);
    b
}
