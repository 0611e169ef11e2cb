//! What a server may be told about its connections and calls.

use crate::protocol::envelope::DEFAULT_MAX_RECV_MESSAGE;
use crate::transport::tls::ServerTls;

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
            max_recv_message_size: DEFAULT_MAX_RECV_MESSAGE,
            max_header_list_size: 64 * 1024,
            initial_stream_window: 1 << 20,
            initial_connection_window: 4 << 20,
            tls: None,
        }
    }
}
