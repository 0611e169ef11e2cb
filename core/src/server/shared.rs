//! What a server's tasks share: its options and methods, where accepted calls and
//! connections go, and the phase of its shutdown.

use std::collections::HashMap;
use tokio::sync::{mpsc, watch};

use super::options::ServerOptions;
use crate::call::{ServerCall, Shape};
use crate::transport::hosted::HostedConnection;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Serving,
    /// GOAWAY sent; calls in flight may finish.
    Draining,
    /// Grace period over: connections are dropped.
    Stopped,
}

pub(super) struct Shared {
    pub(super) opts: ServerOptions,
    pub(super) methods: HashMap<String, Shape>,
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(super) calls: mpsc::UnboundedSender<ServerCall>,
    /// Where accepted connections go when the caller hosts them.
    pub(super) hosted: Option<mpsc::UnboundedSender<HostedConnection>>,
    pub(super) phase: watch::Receiver<Phase>,
}
