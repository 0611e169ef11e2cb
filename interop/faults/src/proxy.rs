//! A TCP proxy between a client and a server that can delay what it forwards, stop
//! forwarding both ways (the link down: nothing is read or written, so both peers' sends
//! back up as over a dead link) and resume, or cut every connection. The kernel here lacks
//! `sch_netem`, so this is where loss of the link is played.

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward each chunk this long after it was read.
    Pass(Duration),
    Down,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Pass(Duration::ZERO));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (rx, held) = (mode.subscribe(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let link = tokio::spawn(link(sock, upstream, rx.clone()));
                let mut held = held.lock().unwrap();
                held.retain(|l: &JoinHandle<()>| !l.is_finished());
                held.push(link);
            }
        });
        Ok(Proxy {
            addr,
            mode,
            links,
            accept,
        })
    }

    pub fn set(&self, m: Mode) {
        self.mode.send_replace(m);
    }

    /// Closes every connection now open through the proxy, both ends.
    pub fn cut(&self) -> usize {
        let links: Vec<_> = self.links.lock().unwrap().drain(..).collect();
        let n = links.iter().filter(|l| !l.is_finished()).count();
        for l in links {
            l.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn up(mode: &mut watch::Receiver<Mode>) -> Option<Duration> {
    match *mode.wait_for(|m| *m != Mode::Down).await.ok()? {
        Mode::Pass(d) => Some(d),
        Mode::Down => None,
    }
}

async fn link(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    // A link that is down does not carry the connection's SYN either.
    if up(&mut mode).await.is_none() {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::join!(pump(cr, sw, mode.clone()), pump(sr, cw, mode.clone()));
}

/// One direction: chunks read are stamped, and written once their delay has passed.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mode: watch::Receiver<Mode>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Bytes)>();
    let mut rmode = mode.clone();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if up(&mut rmode).await.is_none() {
                return;
            }
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now(), Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let mut wmode = mode;
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            let Some(delay) = up(&mut wmode).await else {
                return;
            };
            tokio::time::sleep_until(at + delay).await;
            // Down while this chunk waited: it waits for the link too.
            if up(&mut wmode).await.is_none() || to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
