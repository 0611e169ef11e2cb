//! The server: listens, speaks HTTP/2, checks each request, and hands each call to a
//! handler (`serve`) or out through `accept()` (a pull model, for bindings with event loops
//! of their own). Routing calls by method is a layer above.

mod arriving;
mod dispatch;
mod handshakes;
mod keepalive;
mod listen;
mod options;
mod shared;

pub use options::ServerOptions;
use shared::{Handler, Method, Phase, Shared};

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Mutex};

use crate::call::{Idempotency, ServerCall, Shape};
use crate::error::Error;
use crate::runtime;
use crate::transport::budget::SendBudget;
use crate::transport::hosted::{self, Handout, HostedConnection};
use crate::transport::tls;
use crate::transport::window::Pool;

/// Builds a server: options, then the methods it serves, then `bind`.
pub struct ServerBuilder {
    opts: ServerOptions,
    methods: HashMap<String, Method>,
    hosted: bool,
}

impl ServerBuilder {
    pub fn new(opts: ServerOptions) -> ServerBuilder {
        ServerBuilder {
            opts,
            methods: HashMap::new(),
            hosted: false,
        }
    }

    /// Hands each accepted connection out through `Server::poll_connection` for the
    /// caller's event loop to drive, instead of serving it on the runtime (see
    /// `HostedConnection`). The caller must then take and drive every connection.
    pub fn host_connections(mut self) -> ServerBuilder {
        self.hosted = true;
        self
    }

    /// Serves `path` (`/package.Service/Method`) with the given shape. Requests for any
    /// other path end as UNIMPLEMENTED without reaching `accept`.
    pub fn register(self, path: &str, shape: Shape) -> ServerBuilder {
        self.register_with(path, shape, Idempotency::Unknown)
    }

    /// As `register`, with the method's idempotency: a unary method without side
    /// effects (`Idempotency::NoSideEffects`) answers Connect's GET requests too.
    pub fn register_with(
        mut self,
        path: &str,
        shape: Shape,
        idempotency: Idempotency,
    ) -> ServerBuilder {
        let method = Method { shape, idempotency };
        self.methods.insert(path.to_owned(), method);
        self
    }

    pub fn add_method(&mut self, path: &str, shape: Shape) -> Result<(), Error> {
        self.add_method_with(path, shape, Idempotency::Unknown)
    }

    /// As `add_method`, with the method's idempotency (see `register_with`).
    pub fn add_method_with(
        &mut self,
        path: &str,
        shape: Shape,
        idempotency: Idempotency,
    ) -> Result<(), Error> {
        if !path.starts_with('/') || path[1..].split('/').count() != 2 {
            return Err(Error::invalid(format!(
                "method path must look like /package.Service/Method, got {path:?}"
            )));
        }
        let method = Method { shape, idempotency };
        self.methods.insert(path.to_owned(), method);
        Ok(())
    }

    /// Listens on `addr` (port 0 picks a free port; `local_addr` tells which) and starts
    /// serving on the core's runtime. Callable from any thread, inside a runtime or not.
    pub fn bind(self, addr: &str) -> Result<Server, Error> {
        let tls = match &self.opts.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(t)?)),
            None => None,
        };
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|e| Error::io(&format!("cannot bind {addr}"), e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("set_nonblocking", e))?;
        let local_addr = std_listener
            .local_addr()
            .map_err(|e| Error::io("local_addr", e))?;
        let (call_tx, call_rx) = mpsc::unbounded_channel();
        let handler = Arc::new(OnceLock::new());
        let (shutdown_tx, shutdown_rx) = watch::channel(Phase::Serving);
        let (hosted_tx, hosted_rx) = match self.hosted {
            true => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(std::sync::Mutex::new(rx)))
            }
            false => (None, None),
        };
        let budget = SendBudget::new(self.opts.send_budget, self.opts.connection_send_budget);
        let window_pool = Pool::new(self.opts.receive_budget);
        let shared = Arc::new(Shared {
            opts: self.opts,
            methods: self.methods,
            tls,
            calls: call_tx,
            handler: handler.clone(),
            hosted: hosted_tx,
            phase: shutdown_rx,
            budget,
            window_pool,
        });
        let rt = runtime::handle();
        let (done_tx, done_rx) = watch::channel(false);
        rt.spawn(listen::serve(shared, std_listener, done_tx));
        Ok(Server {
            local_addr,
            incoming: Mutex::new(call_rx),
            handler,
            hosted: hosted_rx,
            phase: shutdown_tx,
            done: done_rx,
        })
    }
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    incoming: Mutex<mpsc::UnboundedReceiver<ServerCall>>,
    handler: Arc<OnceLock<Handler>>,
    hosted: Option<Handout>,
    phase: watch::Sender<Phase>,
    done: watch::Receiver<bool>,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new(ServerOptions::default())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves every call with `handler`, in a task of its own started by the connection
    /// that received the call: no hand-off through `accept`, so no trip to another thread
    /// per call. Calls that arrived before are served too. Returns once the server has shut
    /// down and every call was handed to `handler`; after it, `accept` finds nothing.
    /// A server has one handler: a second `serve` fails at once.
    pub async fn serve<F, Fut>(&self, handler: F) -> Result<(), Error>
    where
        F: Fn(ServerCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let start = {
            let handler = handler.clone();
            move |call: arriving::Arriving| {
                let handler = handler.clone();
                // A call that has arrived is the handler's future alone: one waiting for its
                // request also holds the call beside it, as long as the task lives (an idle
                // stream's server cost 10% more memory when every call was spawned so).
                match call.now() {
                    arriving::Now::Arrived(call) => runtime::handle().spawn(handler(call)),
                    arriving::Now::Waiting(call) => {
                        runtime::handle().spawn(async move { handler(call.arrive().await).await })
                    }
                };
            }
        };
        if self.handler.set(Box::new(start)).is_err() {
            return Err(Error::invalid("this server already has its handler"));
        }
        // Calls dispatched before the handler was set, and the end of the server.
        while let Some(call) = self.accept().await {
            runtime::handle().spawn(handler(call));
        }
        Ok(())
    }

    /// The next incoming call; `None` once the server has shut down and every accepted
    /// call was handed out.
    pub async fn accept(&self) -> Option<ServerCall> {
        self.incoming.lock().await.recv().await
    }

    /// An incoming call if one is waiting: `Ok(None)` when none is, `Err` once the server
    /// has shut down.
    pub fn try_accept(&self) -> Result<Option<ServerCall>, Error> {
        let Ok(mut rx) = self.incoming.try_lock() else {
            return Ok(None);
        };
        let closed = || Error::new(crate::error::ErrorKind::Closed, "server is shut down");
        match rx.try_recv() {
            Ok(c) => Ok(Some(c)),
            // Once the server is done, the queue's sender may outlive it for a moment in
            // a connection's task that is still ending: no call can come any more, and a
            // caller that saw `shutdown` return must hear so (found by the c_abi fuzzer).
            Err(mpsc::error::TryRecvError::Empty) if *self.done.borrow() => Err(closed()),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(closed()),
        }
    }

    /// Polls for the next incoming call (for bindings that drive their own event loop).
    pub fn poll_accept(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ServerCall>> {
        match self.incoming.try_lock() {
            Ok(mut rx) => match rx.poll_recv(cx) {
                // As in `try_accept`: a server that is done takes no call any more.
                std::task::Poll::Pending if *self.done.borrow() => std::task::Poll::Ready(None),
                p => p,
            },
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }

    /// The next accepted connection, for a server built with `host_connections` (always
    /// `Ready(None)` otherwise, and once the server has stopped listening).
    pub fn poll_connection(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<HostedConnection>> {
        hosted::poll_handout(self.hosted.as_ref(), cx)
    }

    /// Graceful shutdown: stop accepting connections, send GOAWAY, let calls in flight
    /// finish for up to `grace`, then cancel the rest.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.phase.send(Phase::Draining);
        let mut done = self.done.clone();
        let finished = tokio::time::timeout(grace, done.wait_for(|d| *d))
            .await
            .is_ok();
        if !finished {
            let _ = self.phase.send(Phase::Stopped);
            let _ = done.wait_for(|d| *d).await;
        }
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        let _ = self.phase.send_if_modified(|p| {
            if *p == Phase::Serving {
                *p = Phase::Draining;
                true
            } else {
                false
            }
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.phase.send(Phase::Stopped);
    }
}
