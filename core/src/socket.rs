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

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

pub(crate) struct Socket(TcpStream);

impl Socket {
    pub(crate) fn new(tcp: TcpStream) -> Socket {
        // Small messages are already coalesced by the call's queue; Nagle would only add
        // delay.
        let _ = tcp.set_nodelay(true);
        #[cfg(any(target_os = "macos", target_os = "ios"))]
        {
            // Apple systems have no MSG_NOSIGNAL; the socket option does the same.
            let one: libc::c_int = 1;
            // SAFETY: a valid socket descriptor, and a pointer to an int that outlives the
            // call, with its size.
            unsafe {
                libc::setsockopt(
                    tcp.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_NOSIGPIPE,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        Socket(tcp)
    }

    /// One non-blocking write attempt, retried by the caller on readiness.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        mut send: impl FnMut(libc::c_int) -> isize,
    ) -> Poll<io::Result<usize>> {
        let fd = self.0.as_raw_fd();
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            let r = self.0.try_io(Interest::WRITABLE, || {
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
            match self.0.try_read(&mut buf) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
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
        Pin::new(&mut self.0).poll_shutdown(cx)
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
