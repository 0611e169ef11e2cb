//! The TCP socket under every connection, client and server.
//!
//! Writes go through send(2)/sendmsg(2) with MSG_NOSIGNAL. A connection may be polled from a
//! binding's own thread (see `driver`), and a write to a socket whose peer has gone must fail
//! there with EPIPE — ending the calls as UNAVAILABLE — rather than raise SIGPIPE, whose
//! default action kills a C program (Rust, Python and Node ignore it; C does not).
//!
//! On drop, input that arrived unread is read away first: closing a socket with unread input
//! makes the kernel answer with RST instead of FIN, and the peer may then lose what we wrote
//! last (h2 drops a connection so after a bad preface, having read only 24 bytes of it).
//!
//! A socket learns of its readiness from tokio's reactor, or, for a connection hosted by a
//! binding's event loop (see `hosted`), from that loop: such a socket is not registered
//! with the reactor at all, so its input wakes no runtime thread.

use std::io::{self, IoSlice, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

pub(crate) struct Socket(Io);

enum Io {
    Reactor(TcpStream),
    Hosted(std::net::TcpStream, Arc<Readiness>),
}

/// Readiness bits of a hosted socket.
pub(crate) const READ: u8 = 1;
pub(crate) const WRITE: u8 = 2;

/// What a hosted socket is waiting for, and what its host watches. The host polls the
/// connection whenever a watched readiness arrives (or the connection is woken), then
/// watches what the socket wants now (`sync`).
pub(crate) struct Readiness {
    /// Input may be waiting: set by the host when it sees the socket readable, cleared by a
    /// read that drained the socket. Reads without it skip the syscall, which would fail
    /// with EAGAIN: the host's level-triggered watch reports any input that came since.
    readable: AtomicBool,
    /// The directions whose last attempt would have blocked.
    want: AtomicU8,
    /// The directions the host watches.
    armed: AtomicU8,
    /// The host is polling the connection and syncs when it returns.
    hosting: AtomicBool,
}

impl Default for Readiness {
    fn default() -> Readiness {
        Readiness {
            readable: AtomicBool::new(true),
            want: AtomicU8::new(0),
            armed: AtomicU8::new(0),
            hosting: AtomicBool::new(false),
        }
    }
}

impl Readiness {
    pub(crate) fn set_readable(&self) {
        self.readable.store(true, Ordering::SeqCst);
    }

    fn blocked(&self, dir: u8, cx: &mut Context<'_>) {
        self.want.fetch_or(dir, Ordering::SeqCst);
        // Outside the host's own poll (a kick from a sender's thread), an unwatched
        // direction would never be polled again: ask the host to look.
        if self.armed.load(Ordering::SeqCst) & dir == 0 && !self.hosting.load(Ordering::SeqCst) {
            cx.waker().wake_by_ref();
        }
    }

    fn progressed(&self, dir: u8) {
        self.want.fetch_and(!dir, Ordering::SeqCst);
    }

    pub(crate) fn set_hosting(&self, on: bool) {
        self.hosting.store(on, Ordering::SeqCst);
    }

    /// What to watch from now on: the directions that would block.
    pub(crate) fn sync(&self) -> u8 {
        let w = self.want.load(Ordering::SeqCst);
        self.armed.store(w, Ordering::SeqCst);
        w
    }
}

/// Small messages are already coalesced by the call's queue; Nagle would only add delay.
/// And a write to a peer that has gone must fail with EPIPE, not raise SIGPIPE.
fn prepare(fd: RawFd) {
    set_flag(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY);
    // Apple systems have no MSG_NOSIGNAL; the socket option does the same.
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    set_flag(fd, libc::SOL_SOCKET, libc::SO_NOSIGPIPE);
}

/// Turns an int socket option on; a failure leaves the default, which still works.
fn set_flag(fd: RawFd, level: libc::c_int, name: libc::c_int) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to an int that outlives the call,
    // with its size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

impl Socket {
    pub(crate) fn new(tcp: TcpStream) -> Socket {
        prepare(tcp.as_raw_fd());
        Socket(Io::Reactor(tcp))
    }

    /// A socket whose readiness a binding's event loop watches (see `hosted`). `tcp` must be
    /// non-blocking and registered with no reactor.
    pub(crate) fn hosted(tcp: std::net::TcpStream) -> (Socket, Arc<Readiness>) {
        prepare(tcp.as_raw_fd());
        let r = Arc::new(Readiness::default());
        (Socket(Io::Hosted(tcp, r.clone())), r)
    }

    pub(crate) fn fd(&self) -> RawFd {
        match &self.0 {
            Io::Reactor(t) => t.as_raw_fd(),
            Io::Hosted(t, _) => t.as_raw_fd(),
        }
    }

    /// One non-blocking write attempt, retried by the caller on readiness.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        mut send: impl FnMut(libc::c_int) -> isize,
    ) -> Poll<io::Result<usize>> {
        let tcp = match &self.0 {
            Io::Reactor(t) => t,
            Io::Hosted(t, ready) => {
                let n = send(t.as_raw_fd());
                if n >= 0 {
                    ready.progressed(WRITE);
                    return Poll::Ready(Ok(n as usize));
                }
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    ready.blocked(WRITE, cx);
                    return Poll::Pending;
                }
                return Poll::Ready(Err(e));
            }
        };
        let fd = tcp.as_raw_fd();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            let r = tcp.try_io(Interest::WRITABLE, || {
                let n = send(fd);
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                // try_io cleared the readiness: wait for the next edge.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            let r = match &mut self.0 {
                Io::Reactor(t) => t.try_read(&mut buf),
                Io::Hosted(t, _) => t.read(&mut buf),
            };
            match r {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        if let Io::Hosted(t, _) = &self.0 {
            // The host watches a duplicate of the descriptor, which keeps the socket open
            // until it lets go: say goodbye now.
            let _ = t.shutdown(std::net::Shutdown::Write);
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Io::Reactor(t) => Pin::new(t).poll_read(cx, buf),
            Io::Hosted(t, ready) => loop {
                if !ready.readable.load(Ordering::SeqCst) {
                    ready.blocked(READ, cx);
                    return Poll::Pending;
                }
                let room = buf.remaining();
                match t.read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        if n > 0 && n < room {
                            // A short read emptied the socket (as libuv assumes too).
                            ready.readable.store(false, Ordering::SeqCst);
                        }
                        ready.progressed(READ);
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready.readable.store(false, Ordering::SeqCst);
                        ready.blocked(READ, cx);
                        return Poll::Pending;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            },
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, |fd| {
            // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call;
            // `fd` is this socket's open descriptor.
            unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), SEND_FLAGS) }
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // More than IOV_MAX slices fail with EINVAL; the caller writes the rest next time.
        let bufs = &bufs[..bufs.len().min(1024)];
        self.poll_send(cx, |fd| {
            // SAFETY: `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix; the slices
            // and the header live for the duration of the call; sendmsg does not write
            // through `msg_iov`.
            unsafe {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = bufs.len() as _;
                libc::sendmsg(fd, &msg, SEND_FLAGS)
            }
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Io::Reactor(t) => Pin::new(t).poll_shutdown(cx),
            Io::Hosted(t, _) => Poll::Ready(t.shutdown(std::net::Shutdown::Write)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Regression: with connections polled from binding threads, a write to a socket whose
    /// peer had gone raised SIGPIPE in the caller's thread, and a C program (SIGPIPE's
    /// default action) died of it. The write must fail with an error instead.
    #[tokio::test]
    async fn writing_to_a_closed_peer_is_an_error_not_sigpipe() {
        // SAFETY: changes the process's disposition of SIGPIPE to what a C program has;
        // restored below. No other test in this binary writes to a closed socket.
        let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        drop(peer);
        let mut sock = Socket::new(tcp);
        let mut failed = None;
        // The first writes may be accepted (the peer answers them with RST); a later one
        // fails with EPIPE or ECONNRESET — without a signal, or this process would be gone.
        for _ in 0..200 {
            if let Err(e) = sock.write_all(&[0u8; 1024]).await {
                failed = Some(e);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let vectored = sock
            .write_vectored(&[IoSlice::new(b"a"), IoSlice::new(b"b")])
            .await;
        // SAFETY: restores the disposition saved above.
        unsafe { libc::signal(libc::SIGPIPE, old) };
        let e = failed.expect("a write to a closed peer fails");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
        assert!(vectored.is_err(), "sendmsg fails the same way");
    }
}
