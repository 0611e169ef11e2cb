//! What a server's tasks share: its options and methods, where accepted calls and
//! connections go, and the phase of its shutdown.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, watch};

use super::arriving::Arriving;
use super::options::ServerOptions;
use crate::call::{Idempotency, ServerCall, Shape};
use crate::transport::budget::SendBudget;
use crate::transport::hosted::HostedConnection;
use crate::transport::window::Pool;

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
    pub(super) methods: HashMap<String, Method>,
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(super) calls: mpsc::UnboundedSender<ServerCall>,
    /// Set by `Server::serve`: then each call starts its handler's task from the
    /// connection that received it, instead of going through `calls`.
    pub(super) handler: Arc<OnceLock<Handler>>,
    /// Where accepted connections go when the caller hosts them.
    pub(super) hosted: Option<mpsc::UnboundedSender<HostedConnection>>,
    pub(super) phase: watch::Receiver<Phase>,
    /// What HTTP/2 streams hold for clients to read (`None`: no budget).
    pub(super) budget: Option<Arc<SendBudget>>,
    /// What HTTP/2 connections may grow their receive windows by, together.
    pub(super) window_pool: Arc<Pool>,
}

/// A method the server serves.
#[derive(Clone, Copy, Debug)]
pub(super) struct Method {
    pub(super) shape: Shape,
    pub(super) idempotency: Idempotency,
}

impl Method {
    /// Whether Connect's GET may call it: a unary method without side effects, as
    /// connect-go allows.
    pub(super) fn takes_get(self) -> bool {
        self.shape == Shape::Unary && self.idempotency == Idempotency::NoSideEffects
    }
}

/// Starts the task that serves one call.
pub(super) type Handler = Box<dyn Fn(Arriving) + Send + Sync>;
