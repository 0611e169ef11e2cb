//! Keepalive on the server's side, both halves as grpc-go has them: how often a client may
//! ping (`PingPolicy`, grpc-go's `keepalive.EnforcementPolicy`, grpc-java's
//! `permitKeepAliveTime`, so that clients configured for those servers behave the same
//! against ours), and the server's own pings, which find a client that froze or vanished
//! without closing its socket (`Pinger`, grpc-go's `keepalive.ServerParameters.Time` and
//! `.Timeout`).
//!
//! A PING that comes sooner than the policy permits after the previous one is a strike;
//! past two strikes the connection is closed with GOAWAY ENHANCE_YOUR_CALM (gRPC's
//! keepalive design, A8: "the server MUST send a GOAWAY with error code
//! ENHANCE_YOUR_CALM"; gRPC clients back off their keepalive on it). The server sending
//! HEADERS or DATA forgives the strikes: a client that pings while its calls are busy is
//! not abusing anyone.

use std::time::Duration;
use tokio::time::Instant;

use crate::transport::watch::Seen;

/// Strikes forgiven before the connection goes (grpc-go's `maxPingStrikes`).
const MAX_STRIKES: u32 = 2;

/// Without calls and without permission to ping then, pings closer than this strike (as
/// grpc-go: the interval of TCP keepalive, which nobody calls abuse).
const WITHOUT_CALLS: Duration = Duration::from_secs(2 * 60 * 60);

/// One connection's record of its client's pings.
pub(crate) struct PingPolicy {
    min_interval: Duration,
    without_calls: bool,
    strikes: u32,
    last: Option<Instant>,
}

impl PingPolicy {
    pub(crate) fn new(min_interval: Duration, without_calls: bool) -> PingPolicy {
        PingPolicy {
            min_interval,
            without_calls,
            strikes: 0,
            last: None,
        }
    }

    /// `n` PINGs arrived just now (`sent_since`: the server sent HEADERS or DATA since the
    /// ones before): whether they were too many.
    pub(crate) fn pinged(&mut self, n: u32, calls: bool, sent_since: bool) -> bool {
        let now = Instant::now();
        (0..n).any(|i| self.ping(now, calls, sent_since && i == 0))
    }

    /// A PING arrived at `now`; `calls`: the connection has calls open; `sent_since`:
    /// the server sent HEADERS or DATA since the previous PING. Whether this PING was one
    /// too many.
    pub(crate) fn ping(&mut self, now: Instant, calls: bool, sent_since: bool) -> bool {
        if sent_since {
            self.strikes = 0;
            self.last = Some(now);
            return false;
        }
        let permitted = if calls || self.without_calls {
            self.min_interval
        } else {
            WITHOUT_CALLS
        };
        if self.last.is_some_and(|last| now < last + permitted) {
            self.strikes += 1;
        }
        self.last = Some(now);
        self.strikes > MAX_STRIKES
    }
}

/// The server's keepalive pings on one HTTP/2 connection: after `time` with nothing from
/// the client, a PING; no answer within `timeout` and the client is taken for gone.
pub(crate) struct Pinger {
    pong: Option<h2::PingPong>,
    time: Duration,
    timeout: Duration,
    state: Pinging,
}

enum Pinging {
    /// Nothing asked of the client; it was last heard from at `since` (or the
    /// connection began then).
    Listening { since: Instant },
    /// A PING is out, unanswered; its answer is due by then.
    Asked { by: Instant },
}

impl Pinger {
    /// `pong`: the connection's `ping_pong()`; `None` (h2 hands it out once) or a `time`
    /// of `None` turns the pings off.
    pub(crate) fn new(
        pong: Option<h2::PingPong>,
        time: Option<Duration>,
        timeout: Duration,
    ) -> Pinger {
        let (pong, time) = match (pong, time) {
            (Some(p), Some(t)) => (Some(p), t),
            _ => (None, Duration::ZERO),
        };
        Pinger {
            pong,
            time,
            timeout,
            state: Pinging::Listening {
                since: Instant::now(),
            },
        }
    }

    /// Ends when the client has not answered a PING in time. Cancel-safe: every change of
    /// state happens between awaits, so `select!` may drop this and call it again.
    pub(crate) async fn client_gone(&mut self, seen: &Seen) {
        let Some(pong) = self.pong.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match self.state {
                Pinging::Listening { since } => {
                    tokio::time::sleep_until(since + self.time).await;
                    let now = Instant::now();
                    if seen.heard_since() {
                        self.state = Pinging::Listening { since: now };
                    } else if pong.send_ping(h2::Ping::opaque()).is_ok() {
                        self.state = Pinging::Asked {
                            by: now + self.timeout,
                        };
                    } else {
                        // A PING of ours (or the user's) is still out, or the connection
                        // is closing: the connection itself says which.
                        return std::future::pending().await;
                    }
                }
                Pinging::Asked { by } => {
                    tokio::select! {
                        r = std::future::poll_fn(|cx| pong.poll_pong(cx)) => {
                            if r.is_err() {
                                return std::future::pending().await;
                            }
                            // The answer itself was something heard: start afresh.
                            seen.heard_since();
                            self.state = Pinging::Listening { since: Instant::now() };
                        }
                        _ = tokio::time::sleep_until(by) => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(300);

    fn pings(p: &mut PingPolicy, at: &[u64], calls: bool, sent: bool) -> Vec<bool> {
        let t0 = Instant::now();
        at.iter()
            .map(|s| p.ping(t0 + Duration::from_secs(*s), calls, sent))
            .collect()
    }

    #[test]
    fn the_fourth_ping_too_soon_is_one_too_many() {
        let mut p = PingPolicy::new(MIN, false);
        // The first PING has nothing before it; three strikes follow.
        assert_eq!(
            pings(&mut p, &[0, 10, 20, 30], true, false),
            [false, false, false, true]
        );
    }

    #[test]
    fn pings_as_far_apart_as_permitted_never_strike() {
        let mut p = PingPolicy::new(MIN, false);
        let at: Vec<u64> = (0..10).map(|i| i * 300).collect();
        assert!(pings(&mut p, &at, true, false).iter().all(|x| !x));
    }

    #[test]
    fn without_calls_pings_strike_unless_permitted() {
        let mut p = PingPolicy::new(MIN, false);
        assert_eq!(
            pings(&mut p, &[0, 300, 600, 900], false, false),
            [false, false, false, true]
        );
        let mut p = PingPolicy::new(MIN, true);
        assert!(pings(&mut p, &[0, 300, 600, 900], false, false)
            .iter()
            .all(|x| !x));
    }

    #[test]
    fn the_server_sending_forgives_the_strikes() {
        let mut p = PingPolicy::new(MIN, false);
        assert_eq!(
            pings(&mut p, &[0, 1, 2], true, false),
            [false, false, false]
        );
        assert_eq!(pings(&mut p, &[3], true, true), [false]);
        assert_eq!(pings(&mut p, &[4, 5, 6], true, false), [false, false, true]);
    }
}
