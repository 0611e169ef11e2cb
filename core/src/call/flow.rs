//! When the writer holds a small batch back.
//!
//! With the sender on another thread than the writer (a binding's, or a task the runtime
//! runs on the other core), a writer that takes whatever is queued the moment it can makes
//! each batch the few messages queued during its last write, each its own small DATA
//! frame. h2 (tonic's and hyper's) counts the small DATA frames it holds unread and closes
//! the connection with GOAWAY ENHANCE_YOUR_CALM past a budget; any peer spends a wake-up
//! per frame. So once a stream flows (messages came while the writer was writing, its last
//! batch was a burst taken moments ago, or the call answers a burst it is receiving), a
//! batch smaller than a frame waits for a
//! frame's worth, for as long as messages keep coming (up to `LINGER_MAX`), or for the end
//! of the call. A stream that does not flow — the first message after a lull, every
//! request-response rhythm — is written at once, and a lull ends a wait within a tick.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;
use tokio::time::Instant;

/// A full DATA frame at the default SETTINGS_MAX_FRAME_SIZE: what a lingering writer waits
/// to have queued.
pub(crate) const FRAME: usize = 16 * 1024;

/// How often a lingering writer looks whether its stream still flows (tokio's timer rounds
/// it up to its next millisecond tick), and how long it may linger at most.
pub(crate) const LINGER_TICK: Duration = Duration::from_millis(1);
pub(crate) const LINGER_MAX: Duration = Duration::from_millis(5);

/// How long after a burst a stream still counts as flowing.
pub(crate) const FLOWING: Duration = Duration::from_millis(2);

/// Messages taken alone closer together than this are a trickle, not a rhythm: a sender
/// slower than the writer (a handler answering each message of a stream in a turn of its
/// own). Answers to a peer that waits for them go out directly, not through the writer.
pub(crate) const TRICKLE: Duration = Duration::from_millis(1);

/// What the queue knows of its stream's rhythm.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow {
    /// The writer found nothing queued when it last looked.
    fresh: bool,
    /// Messages queued since the writer last took a batch.
    msgs: usize,
    /// Until when the stream counts as flowing though the writer found it empty: a batch of
    /// several messages was taken just before (a burst arriving in pieces, such as the
    /// answers to a peer's DATA frames of a few messages each), or single messages trickle.
    flowing_until: Option<Instant>,
    /// When the writer last took a batch.
    last_take: Option<Instant>,
}

impl Default for Flow {
    fn default() -> Flow {
        Flow {
            fresh: true,
            msgs: 0,
            flowing_until: None,
            last_take: None,
        }
    }
}

impl Flow {
    pub(crate) fn queued_one(&mut self) {
        self.msgs += 1;
    }

    pub(crate) fn cleared(&mut self) {
        self.msgs = 0;
    }

    /// The writer found the queue empty.
    pub(crate) fn idle(&mut self) {
        self.fresh = true;
    }

    /// The writer took a batch.
    pub(crate) fn taken(&mut self) {
        let now = Instant::now();
        let trickling = self.last_take.is_some_and(|t| now < t + TRICKLE);
        if self.msgs > 1 || !self.fresh || trickling {
            self.flowing_until = Some(now + FLOWING);
        }
        self.last_take = Some(now);
        self.msgs = 0;
        self.fresh = false;
    }

    /// The call received messages in a burst: its answers flow too, even one at a time
    /// (a handler answering each message in a turn of its own).
    pub(crate) fn answering_a_burst(&mut self) {
        self.flowing_until = Some(Instant::now() + FLOWING);
    }

    /// Whether the stream flows: messages came while the writer wrote its last batch, that
    /// batch was a burst taken moments ago, or the call is answering a burst it received.
    pub(crate) fn flowing(&self) -> bool {
        !self.fresh || self.flowing_until.is_some_and(|t| Instant::now() < t)
    }
}

/// The writer's timer for holding back a small batch of a flowing stream.
#[derive(Default)]
pub(crate) struct Linger {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Since when the held batch waits, and how much was queued at the last tick.
    since: Option<(Instant, usize)>,
}

impl Linger {
    /// True once the held batch (`queued` bytes now) should go: the stream stopped
    /// growing over a tick, or waited `LINGER_MAX`. Arms the timer on the first ask.
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>, queued: usize) -> bool {
        let now = Instant::now();
        let tick = now + LINGER_TICK;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(tick)));
        match self.since {
            None => {
                self.since = Some((now, queued));
                sleep.as_mut().reset(tick);
            }
            Some((start, last)) => {
                if sleep.as_mut().poll(cx).is_pending() {
                    return false;
                }
                if queued <= last || now >= start + LINGER_MAX {
                    return true;
                }
                self.since = Some((start, queued));
                sleep.as_mut().reset(tick);
            }
        }
        // Registers the timer's wake-up.
        sleep.as_mut().poll(cx).is_ready()
    }

    pub(crate) fn reset(&mut self) {
        self.since = None;
    }
}
