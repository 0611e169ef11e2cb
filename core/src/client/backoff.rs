//! Connection backoff: after a failed connection attempt, the next waits out a backoff
//! that grows by 1.6 up to the channel's `max_backoff` (gRPC's connection-backoff spec).
//! Meanwhile a call fails at once with the attempt's error, or, with `wait_for_ready`,
//! waits for the next attempt, as grpc-go's calls do in TRANSIENT_FAILURE. The HTTP/2
//! endpoint and the TTHeader transports keep this one rule.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use crate::status::Status;

/// What a call may do about connecting now.
pub(crate) enum Turn {
    /// Try to connect.
    Now,
    /// Wait for the backoff to end (`wait_for_ready`), then ask again.
    Wait(Instant),
    /// Fail with the last attempt's error.
    Fail(Status),
}

pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    st: Mutex<State>,
}

struct State {
    /// The backoff after the next failure.
    next: Duration,
    /// The last attempt failed: until when, and why.
    failed: Option<(Instant, Status)>,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            st: Mutex::new(State {
                next: initial,
                failed: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call that needs a connection may try for one now.
    pub(crate) fn turn(&self, wait_for_ready: bool) -> Turn {
        match &self.lock().failed {
            Some((until, error)) if Instant::now() < *until => match wait_for_ready {
                true => Turn::Wait(*until),
                false => Turn::Fail(error.clone()),
            },
            _ => Turn::Now,
        }
    }

    /// An attempt failed with `error`: the next waits out the backoff, which grows.
    pub(crate) fn failed(&self, error: Status) -> Duration {
        let mut st = self.lock();
        let wait = jitter(st.next);
        st.next = st.next.mul_f64(1.6).min(self.max);
        st.failed = Some((Instant::now() + wait, error));
        wait
    }

    /// An attempt succeeded: the backoff starts over.
    pub(crate) fn succeeded(&self) {
        let mut st = self.lock();
        st.next = self.initial;
        st.failed = None;
    }
}

/// ±20% jitter, as the gRPC connection-backoff spec asks, so that clients do not reconnect
/// in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let f = 0.8 + 0.4 * (nanos % 1000) as f64 / 1000.0;
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Code;

    #[tokio::test(start_paused = true)]
    async fn a_failure_fails_calls_fast_or_makes_them_wait_until_the_backoff_ends() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(2));
        assert!(matches!(b.turn(false), Turn::Now));
        let wait = b.failed(Status::unavailable("refused"));
        assert!(wait >= Duration::from_millis(800) && wait <= Duration::from_millis(1200));
        match b.turn(false) {
            Turn::Fail(s) => assert_eq!((s.code(), s.message()), (Code::Unavailable, "refused")),
            _ => panic!("a call without wait_for_ready fails at once"),
        }
        let Turn::Wait(until) = b.turn(true) else {
            panic!("a call with wait_for_ready waits");
        };
        tokio::time::sleep_until(until).await;
        assert!(matches!(b.turn(false), Turn::Now), "the backoff is over");
        // It grows by 1.6 up to the maximum, and starts over after a success.
        let second = b.failed(Status::unavailable("refused"));
        assert!(second >= Duration::from_millis(1280) && second <= Duration::from_millis(1920));
        let third = b.failed(Status::unavailable("refused"));
        assert!(
            third <= Duration::from_millis(2400),
            "capped at max: {third:?}"
        );
        b.succeeded();
        assert!(matches!(b.turn(false), Turn::Now));
        let again = b.failed(Status::unavailable("refused"));
        assert!(
            again <= Duration::from_millis(1200),
            "started over: {again:?}"
        );
    }
}
