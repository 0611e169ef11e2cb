//! Hosted connections (`ServerBuilder::host_connections`, `ChannelOptions::host_connections`):
//! connections driven by an event loop of the caller's, here a poll(2) loop on its own
//! thread, as the Node binding's libuv loop does. tonic's client talks to a hosted server,
//! and a hosted channel to tonic's server: every shape, messages large enough to fill the
//! socket both ways, many calls at once, TLS, graceful shutdown, reconnection.

mod common;

use common::*;
use rill_testkit::echo::Request;
use rillrpc::{HostedConnection, Server, ServerOptions, ServerTls};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

fn r(payload: &[u8], count: i32) -> Request {
    Request {
        payload: payload.to_vec(),
        count,
    }
}

/// Wakes the host's poll(2) through a pipe.
struct PipeWaker(RawFd);

impl Wake for PipeWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // SAFETY: writes one byte from a live buffer to the pipe's open write end.
        unsafe { libc::write(self.0, [1u8].as_ptr().cast(), 1) };
    }
}

struct Host {
    stop: Arc<AtomicBool>,
    waker: Waker,
    /// Connections the host has seen end.
    ended: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake_by_ref();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Drives `server`'s connections on a thread of its own until dropped.
fn host(server: Arc<Server>) -> Host {
    host_from(move |cx| server.poll_connection(cx))
}

/// Drives the connections `next` hands out on a thread of its own until dropped.
fn host_from(
    mut next: impl FnMut(&mut Context<'_>) -> Poll<Option<HostedConnection>> + Send + 'static,
) -> Host {
    let stop = Arc::new(AtomicBool::new(false));
    let ended = Arc::new(AtomicUsize::new(0));
    let (s, e) = (stop.clone(), ended.clone());
    let mut fds = [0; 2];
    // SAFETY: a two-int array for the pipe's ends. They stay open for the test's life.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the pipe's read end, made non-blocking so draining it cannot hang.
    unsafe { libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK) };
    let waker = Waker::from(Arc::new(PipeWaker(fds[1])));
    let w = waker.clone();
    let thread = std::thread::spawn(move || {
        let waker = w;
        let mut cx = Context::from_waker(&waker);
        let mut conns: Vec<(HostedConnection, RawFd)> = Vec::new();
        let mut readable: Vec<RawFd> = Vec::new();
        while !s.load(Ordering::SeqCst) {
            while let Poll::Ready(Some(c)) = next(&mut cx) {
                // SAFETY: duplicates a descriptor the connection keeps open.
                let dup = unsafe { libc::dup(c.fd()) };
                conns.push((c, dup));
            }
            // Polls every connection on any event: simple, and what the contract allows.
            conns.retain(|(c, dup)| {
                if readable.contains(dup) {
                    c.readable();
                }
                if c.poll(&mut cx).is_ready() {
                    // SAFETY: our duplicate, closed once.
                    unsafe { libc::close(*dup) };
                    e.fetch_add(1, Ordering::SeqCst);
                    false
                } else {
                    true
                }
            });
            let mut pfds = vec![libc::pollfd {
                fd: fds[0],
                events: libc::POLLIN,
                revents: 0,
            }];
            for (c, dup) in &conns {
                let i = c.interest();
                let mut events = 0;
                if i.readable {
                    events |= libc::POLLIN;
                }
                if i.writable {
                    events |= libc::POLLOUT;
                }
                pfds.push(libc::pollfd {
                    fd: *dup,
                    events,
                    revents: 0,
                });
            }
            // No timeout: a wake-up the connection fails to ask for hangs the test.
            // SAFETY: a live array of pollfds with its length.
            unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as _, -1) };
            readable = pfds[1..]
                .iter()
                .filter(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
                .map(|p| p.fd)
                .collect();
            let mut buf = [0u8; 64];
            // SAFETY: drains the non-blocking pipe into a live buffer.
            while unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        }
        for (_, dup) in conns {
            // SAFETY: our duplicate, closed once.
            unsafe { libc::close(dup) };
        }
    });
    Host {
        stop,
        waker,
        ended,
        thread: Some(thread),
    }
}

fn hosted_server(opts: ServerOptions) -> Arc<Server> {
    let server = Arc::new(
        rill_testkit::rill_echo::builder(opts)
            .host_connections()
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    tokio::spawn(rill_testkit::rill_echo::serve(server.clone()));
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shape_through_a_hosted_connection() {
    let server = hosted_server(ServerOptions::default());
    let _host = host(server.clone());
    let mut c = tonic_client(server.local_addr()).await;
    every_shape(&mut c, 5000).await;
}

/// 5 MiB each way: more than the socket buffers hold, so the host must watch for
/// writability (and stop watching for input while h2 cannot take it) to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_the_socket_buffers() {
    let server = hosted_server(ServerOptions {
        max_recv_message_size: 16 << 20,
        ..Default::default()
    });
    let _host = host(server.clone());
    let c = tonic_client(server.local_addr()).await;
    let mut c = c
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    let big: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    for _ in 0..3 {
        let resp = c.ping_pong(r(&big, 0)).await.unwrap();
        assert_eq!(resp.into_inner().payload, big);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_calls_on_several_connections() {
    let server = hosted_server(ServerOptions::default());
    let _host = host(server.clone());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let addr = server.local_addr();
        tasks.push(tokio::spawn(async move {
            // Ten connections, ten calls each.
            let mut c = tonic_client(addr).await;
            for j in 0..10 {
                echo_once(&mut c, &format!("{i}.{j}"), j % 2 == 1).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_through_a_hosted_connection() {
    let cert = rill_testkit::tls::localhost();
    let server = hosted_server(ServerOptions {
        tls: Some(ServerTls {
            cert_pem: cert.cert_pem.clone().into_bytes(),
            key_pem: cert.key_pem.into_bytes(),
            client_ca_pem: None,
        }),
        ..Default::default()
    });
    let _host = host(server.clone());
    let mut c = tonic_tls_client(server.local_addr().port(), &cert.cert_pem).await;
    let resp = c.ping_pong(r(b"over tls", 0)).await.unwrap();
    assert_eq!(resp.into_inner().payload, b"over tls");
    let big = vec![7u8; 1 << 20];
    let resp = c.ping_pong(r(&big, 0)).await.unwrap();
    assert_eq!(resp.into_inner().payload, big);
}

/// Shutdown reaches hosted connections through their waker: the client sees the
/// connection close, the host sees it end, and `shutdown` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_hosted_connections() {
    let server = hosted_server(ServerOptions::default());
    let host = host(server.clone());
    let mut c = tonic_client(server.local_addr()).await;
    c.ping_pong(r(b"before", 0)).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        server.shutdown(Duration::from_secs(5)),
    )
    .await
    .expect("shutdown returns once the hosted connection has ended");
    // The connection's end released `shutdown` from inside the host's poll, which then
    // returns to the host.
    for _ in 0..500 {
        if host.ended.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(host.ended.load(Ordering::SeqCst), 1);
    assert!(c.ping_pong(r(b"after", 0)).await.is_err());
}

/// A server built without `host_connections` hands none out.
#[tokio::test]
async fn an_ordinary_server_hosts_nothing() {
    let server = rill_server(ServerOptions::default());
    let w = Waker::noop();
    let mut cx = Context::from_waker(w);
    assert!(matches!(server.poll_connection(&mut cx), Poll::Ready(None)));
    let mut c = tonic_client(server.local_addr()).await;
    c.ping_pong(r(b"x", 0)).await.unwrap();
}

fn hosted_channel(addr: std::net::SocketAddr) -> (rillrpc::Channel, Host) {
    let ch = rillrpc::Channel::with_options(
        &format!("http://{addr}"),
        rillrpc::ChannelOptions {
            host_connections: true,
            initial_backoff: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .unwrap();
    let c = ch.clone();
    let host = host_from(move |cx| c.poll_connection(cx));
    (ch, host)
}

const PING_PONG: &str = "/echo.TestService/PingPong";
const ECHO: &str = "/echo.TestService/Echo";
const ECHO_SERVER: &str = "/echo.TestService/EchoServer";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_channel_against_tonic() {
    let addr = tonic_server().await;
    let (ch, host) = hosted_channel(addr);
    let opts = rillrpc::CallOptions::default;
    let resp = ch.unary(PING_PONG, req(b"hi", 0), opts()).await.unwrap();
    assert_eq!(resp_payload(&resp), b"hi");

    let mut call = ch
        .server_streaming(ECHO_SERVER, req(b"s", 3000), opts())
        .await
        .unwrap();
    let mut n = 0;
    while let Some(m) = call.recv().await.unwrap() {
        assert_eq!(resp_payload(&m), b"s");
        n += 1;
    }
    assert_eq!(n, 3000);

    let mut call = ch.bidi(ECHO, opts()).unwrap();
    for i in 0..200 {
        let p = format!("{i}");
        call.send(req(p.as_bytes(), 0)).await.unwrap();
        let m = call.recv().await.unwrap().expect("an answer");
        assert_eq!(resp_payload(&m), p.as_bytes());
    }
    call.close_send();
    assert!(call.recv().await.unwrap().is_none());

    // More than the socket buffers hold, both ways.
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let resp = ch.unary(PING_PONG, req(&big, 0), opts()).await.unwrap();
    assert_eq!(resp_payload(&resp), big);
    assert_eq!(
        host.ended.load(Ordering::SeqCst),
        0,
        "one connection, still up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_channel_reconnects_after_its_server_goes() {
    let server = rill_server(ServerOptions::default());
    let addr = server.local_addr();
    let (ch, host) = hosted_channel(addr);
    let opts = rillrpc::CallOptions::default;
    ch.unary(PING_PONG, req(b"one", 0), opts()).await.unwrap();
    server.shutdown(Duration::ZERO).await;
    drop(server);
    for _ in 0..500 {
        if host.ended.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        host.ended.load(Ordering::SeqCst),
        1,
        "the host saw the connection end"
    );
    // A new server on the same port: the channel connects again, through a new hosted
    // connection.
    let again = Arc::new(
        rill_testkit::rill_echo::builder(ServerOptions::default())
            .bind(&addr.to_string())
            .unwrap(),
    );
    tokio::spawn(rill_testkit::rill_echo::serve(again.clone()));
    let mut last = None;
    for _ in 0..100 {
        match ch.unary(PING_PONG, req(b"two", 0), opts()).await {
            Ok(r) => {
                last = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(resp_payload(&last.expect("reconnected")), b"two");
}
