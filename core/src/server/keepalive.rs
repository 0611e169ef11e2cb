//! How often a client may ping: the server's keepalive enforcement, as grpc-go's
//! `keepalive.EnforcementPolicy` and grpc-java's `permitKeepAliveTime` define it, so that
//! clients configured for those servers behave the same against ours.
//!
//! A PING that comes sooner than the policy permits after the previous one is a strike;
//! past two strikes the connection is closed with GOAWAY ENHANCE_YOUR_CALM (gRPC's
//! keepalive design, A8: "the server MUST send a GOAWAY with error code
//! ENHANCE_YOUR_CALM"; gRPC clients back off their keepalive on it). The server sending
//! HEADERS or DATA forgives the strikes: a client that pings while its calls are busy is
//! not abusing anyone.

use std::time::Duration;
use tokio::time::Instant;

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
