//! An attacker's HTTP/2 connection: raw frames out, and a reader task that answers the
//! server's SETTINGS (as a real client must, or the server times the connection out) and
//! notes what the server did: its GOAWAY, the streams it reset, whether it closed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::frames::{self, frame, ACK, GOAWAY, RST_STREAM, SETTINGS};

/// What the server did to one connection.
#[derive(Default)]
pub struct Seen {
    /// The error code of the server's GOAWAY, plus one (0: none came).
    goaway: AtomicU32,
    pub resets: AtomicU64,
    pub bytes: AtomicU64,
    pub closed: AtomicBool,
}

impl Seen {
    pub fn goaway(&self) -> Option<u32> {
        match self.goaway.load(Ordering::Relaxed) {
            0 => None,
            c => Some(c - 1),
        }
    }
}

pub struct Conn {
    w: Arc<Mutex<OwnedWriteHalf>>,
    pub seen: Arc<Seen>,
}

impl Conn {
    /// Connects and sends the preface and `settings`; the reader acknowledges the server's.
    pub async fn open(addr: &str, settings: &[(u16, u32)]) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (mut r, w) = tcp.into_split();
        let w = Arc::new(Mutex::new(w));
        let seen = Arc::new(Seen::default());
        let mut first = frames::PREFACE.to_vec();
        first.extend(frames::settings(settings));
        w.lock().await.write_all(&first).await?;
        let (w2, seen2) = (w.clone(), seen.clone());
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match r.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                seen2.bytes.fetch_add(n as u64, Ordering::Relaxed);
                buf.extend_from_slice(&chunk[..n]);
                let mut at = 0;
                while buf.len() - at >= 9 {
                    let h = &buf[at..at + 9];
                    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                    if buf.len() - at < 9 + len {
                        break;
                    }
                    let (ty, flags) = (h[3], h[4]);
                    let p = &buf[at + 9..at + 9 + len];
                    match ty {
                        SETTINGS if flags & ACK == 0 => {
                            let ack = frame(SETTINGS, ACK, 0, &[]);
                            let _ = w2.lock().await.write_all(&ack).await;
                        }
                        GOAWAY if p.len() >= 8 => {
                            let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                            let _ = seen2.goaway.compare_exchange(
                                0,
                                code + 1,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                        }
                        RST_STREAM => {
                            seen2.resets.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                    at += 9 + len;
                }
                buf.drain(..at);
            }
            seen2.closed.store(true, Ordering::Relaxed);
        });
        Ok(Conn { w, seen })
    }

    /// Writes `bytes`; false once the server has closed the connection.
    pub async fn send(&self, bytes: &[u8]) -> bool {
        self.w.lock().await.write_all(bytes).await.is_ok()
    }

    /// Waits up to `d` for the server to close the connection.
    pub async fn closed_within(&self, d: Duration) -> bool {
        let end = tokio::time::Instant::now() + d;
        while !self.seen.closed.load(Ordering::Relaxed) {
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// What the server did, in a few words.
    pub fn outcome(&self) -> String {
        let s = &self.seen;
        let mut parts = Vec::new();
        if let Some(c) = s.goaway() {
            parts.push(format!("GOAWAY {}", frames::error_name(c)));
        }
        let resets = s.resets.load(Ordering::Relaxed);
        if resets > 0 {
            parts.push(format!("{resets} RST_STREAM"));
        }
        if s.closed.load(Ordering::Relaxed) {
            parts.push("closed".into());
        }
        if parts.is_empty() {
            parts.push("nothing".into());
        }
        parts.join(", ")
    }
}
