//! The one task that writes a call to its stream, for client and server calls alike:
//! it takes what the queue holds, writes it as the window allows, and watches the
//! deadline and the peer's end of the stream.
//!
//! A call begun on its caller's thread defers the task until something needs it (a burst,
//! a wait for the window, a deadline, a cancel): a call whose messages all go out directly
//! costs no task and no hand-off to a runtime thread.

use bytes::Bytes;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::flow::Linger;
use super::queue::{Batch, SendQueue, Stop};
use crate::protocol::{Abort, End, Framing, PeerEnd, Receiver, Sender};
use crate::status::{Code, Status};

/// Which side of the call the writer serves: it decides what a deadline and a broken
/// stream mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// How a client's stream gets opened: its two ends, once the channel has a connection.
pub(crate) type Open = Pin<Box<dyn Future<Output = Result<(Sender, Receiver), Status>> + Send>>;

/// A client's stream still to open (the channel may have to connect first), and where
/// the receive half goes once it is.
pub(crate) struct Opening {
    pub(crate) open: Open,
    pub(crate) to_call: oneshot::Sender<Result<Receiver, Status>>,
}

pub(crate) struct Writer {
    pub(crate) queue: Arc<SendQueue>,
    pub(crate) role: Role,
    pub(crate) deadline: Option<Instant>,
}

enum Idle {
    Deadline,
    PeerEnd(PeerEnd),
    Work(Option<Batch>),
}

enum Step {
    Continue,
    Deadline,
    Done,
}

/// A chunk the stream took part of when its write was cut short (by the deadline, or by
/// an abort that ends the call with a status): the chunk whole and how much of it went.
/// The rest of the message it cut goes before anything else on the stream: a status after
/// half a message is a truncated message to the peer (grpc-go's server, too, finishes a
/// message before its trailers).
type Torn = Option<(Bytes, usize)>;

impl Writer {
    /// Runs the writer for a stream already open, its sender lent to the queue.
    pub(crate) fn spawn(self, rt: &tokio::runtime::Handle) {
        rt.spawn(self.run(None));
    }

    /// Runs the writer, which opens the stream first.
    pub(crate) fn spawn_opening(self, rt: &tokio::runtime::Handle, opening: Opening) {
        rt.spawn(self.run(Some(opening)));
    }

    /// Leaves the writer unstarted, `sender` lent to the queue, until something needs it.
    /// `hold`: the call's one message waits for its end (a single-response server call,
    /// whose handler writes message and status at once when it finishes).
    pub(crate) fn defer(self, sender: Sender, rt: tokio::runtime::Handle, hold: bool) {
        let queue = self.queue.clone();
        queue.defer_writer(
            sender,
            Box::new(move || {
                rt.spawn(self.run(None));
            }),
            hold,
        );
    }

    async fn run(self, opening: Option<Opening>) {
        let sleep = sleep_until(self.deadline);
        tokio::pin!(sleep);
        self.queue.started();
        let sender = match opening {
            Some(o) => match self.open(o, sleep.as_mut()).await {
                Some(s) => s,
                None => return,
            },
            None => match self.queue.reclaim() {
                Some(s) => s,
                None => return,
            },
        };
        self.serve(sender, sleep).await
    }

    async fn open(&self, o: Opening, sleep: Pin<&mut tokio::time::Sleep>) -> Option<Sender> {
        self.queue.opening();
        let opened = tokio::select! {
            biased;
            _ = poll_fn(|cx| self.queue.poll_stopped(cx)) => Err(self
                .queue
                .local_status()
                .unwrap_or_else(|| Status::cancelled("cancelled"))),
            _ = sleep => {
                self.queue.abort(Status::deadline_exceeded(), Stop::Reset(Abort::Cancel));
                Err(Status::deadline_exceeded())
            }
            r = o.open => r,
        };
        match opened {
            Ok((sender, receiver)) => o.to_call.send(Ok(receiver)).ok().map(|()| sender),
            Err(s) => {
                self.queue.fail(s.clone());
                let _ = o.to_call.send(Err(s));
                None
            }
        }
    }

    async fn serve(&self, mut sender: Sender, mut sleep: Pin<&mut tokio::time::Sleep>) {
        let mut linger = Linger::default();
        let mut torn: Torn = None;
        loop {
            // While waiting, the stream is lent to the call: an answer to a received
            // message is written by its sender directly (see `queue`).
            self.queue.lend(sender);
            let idle = tokio::select! {
                biased;
                _ = &mut sleep => Idle::Deadline,
                e = poll_fn(|cx| self.queue.poll_lent_peer_end(cx)) => Idle::PeerEnd(e),
                b = poll_fn(|cx| self.queue.poll_take(cx, &mut linger)) => Idle::Work(b),
            };
            sender = self
                .queue
                .reclaim()
                .expect("only the writer takes its stream back");
            let step = match idle {
                Idle::Deadline => Step::Deadline,
                Idle::PeerEnd(e) => {
                    self.peer_ended(e);
                    Step::Done
                }
                Idle::Work(None) => Step::Done,
                Idle::Work(Some(batch)) => {
                    self.write(&mut sender, batch, sleep.as_mut(), &mut torn)
                        .await
                }
            };
            match step {
                Step::Continue => {}
                Step::Deadline => {
                    deadline_passed(&self.queue, self.role);
                    disarm(sleep.as_mut());
                }
                Step::Done => return,
            }
        }
    }

    async fn write(
        &self,
        sender: &mut Sender,
        mut batch: Batch,
        sleep: Pin<&mut tokio::time::Sleep>,
        torn: &mut Torn,
    ) -> Step {
        if let Some(a) = batch.abort {
            sender.abort(a);
            return Step::Done;
        }
        if let Some((whole, sent)) = torn.take() {
            batch
                .chunks
                .push_front(rest_of_message(&whole, sent, &sender.framing()));
        }
        let enc = self.queue.encoding();
        if batch.head.is_some() || !batch.chunks.is_empty() {
            if let Err(s) = sender.send_head(batch.head, enc) {
                self.broken(sender, s);
                return Step::Done;
            }
        }
        let r = tokio::select! {
            biased;
            _ = sleep => return Step::Deadline,
            // An abort or the end of the call: the next take has it.
            _ = poll_fn(|cx| self.queue.poll_interrupt(cx)) => return Step::Continue,
            r = self.write_chunks(sender, batch.chunks, torn) => r,
        };
        if let Err(s) = r {
            self.broken(sender, s);
            return Step::Done;
        }
        let Some(end) = batch.end else {
            return Step::Continue;
        };
        let last = matches!(end, End::Status(_));
        if let Err(s) = sender.send_end(end, enc) {
            self.broken(sender, s);
            return Step::Done;
        }
        if last {
            self.queue.mark_done();
            return Step::Done;
        }
        Step::Continue
    }

    fn peer_ended(&self, end: PeerEnd) {
        match (self.role, end) {
            (Role::Client, PeerEnd::Failed(s)) => self.queue.fail(past_deadline(s, self.deadline)),
            (Role::Client, end) => self.queue.peer_ended(end, false),
            (Role::Server, end) => self.queue.peer_ended(end, true),
        }
    }

    /// A write failed: the stream is gone. A server that finished its response before
    /// the client's request ended resets with NO_ERROR; anything else fails the call.
    fn broken(&self, sender: &mut Sender, s: Status) {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match (self.role, sender.poll_peer_end(&mut cx)) {
            (Role::Client, std::task::Poll::Ready(PeerEnd::Finished)) => self.queue.peer_finished(),
            (Role::Client, _) => self.queue.fail(past_deadline(s, self.deadline)),
            (Role::Server, _) => self.queue.peer_ended(PeerEnd::Failed(s), true),
        }
    }

    /// Writes chunks as the window takes them: h2 is handed no more than the window, so
    /// what waits for a slow reader is bounded by the call's queue. What went to the
    /// stream is reported to the queue before each wait for the window and at the end.
    /// `torn` holds the chunk being written while the stream has taken only part of it.
    async fn write_chunks(
        &self,
        sender: &mut Sender,
        chunks: VecDeque<Bytes>,
        torn: &mut Torn,
    ) -> Result<(), Status> {
        let mut handed = 0;
        for mut chunk in chunks {
            let whole = chunk.clone();
            while !chunk.is_empty() {
                let room = poll_fn(|cx| {
                    let r = sender.poll_capacity(cx, chunk.len());
                    if r.is_pending() {
                        self.queue
                            .handed(std::mem::take(&mut handed), false, |_| false);
                        if sender.throttled() {
                            self.queue.throttle();
                            sender.release();
                        }
                    }
                    r
                })
                .await?;
                let piece = chunk.split_to(room.min(chunk.len()));
                handed += piece.len();
                sender.send_data(piece)?;
                *torn = (!chunk.is_empty()).then(|| (whole.clone(), whole.len() - chunk.len()));
            }
        }
        self.queue.handed(handed, true, |by| sender.reserve(by));
        Ok(())
    }
}

/// What is left of the message that `sent` bytes of `whole` (a chunk of whole messages)
/// cut: up to the end of that message's frame, or the rest of a bare message.
fn rest_of_message(whole: &Bytes, sent: usize, framing: &Framing) -> Bytes {
    let sent = sent.min(whole.len());
    whole.slice(sent..framing.end_of_message(whole, sent))
}

/// Ends a call whose deadline passed, on the side `role` says. The spec: "If the deadline
/// expires, the client ... sends a RST_STREAM(CANCEL)" and the call fails with
/// DEADLINE_EXCEEDED; a server ends the call with that status in its trailers, as grpc-go
/// and grpcio servers do.
pub(crate) fn deadline_passed(queue: &SendQueue, role: Role) {
    let stop = match role {
        Role::Client => Stop::Reset(Abort::Cancel),
        Role::Server => Stop::Status,
    };
    queue.abort(Status::deadline_exceeded(), stop);
}

/// A server that resets with CANCEL once the deadline has passed does so because of it
/// (grpc-go's server does, at the deadline): the call failed with DEADLINE_EXCEEDED, as
/// grpc-go's client reports it too (http2_client.go, handleRSTStream). The reset can beat
/// this side's own timer, which fires on the runtime's next millisecond tick.
pub(crate) fn past_deadline(s: Status, deadline: Option<Instant>) -> Status {
    if s.code() == Code::Cancelled && deadline.is_some_and(|d| Instant::now() >= d) {
        return Status::deadline_exceeded();
    }
    s
}

/// A sleep for an optional deadline (one that never fires when there is none).
fn sleep_until(deadline: Option<Instant>) -> tokio::time::Sleep {
    tokio::time::sleep_until(deadline.unwrap_or_else(far_future))
}

/// Pushes a fired deadline out of the way: a completed `Sleep` stays ready, and a select
/// loop polling it again would spin.
fn disarm(sleep: Pin<&mut tokio::time::Sleep>) {
    sleep.reset(far_future());
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_a_cut_message_ends_with_its_envelope() {
        // Two envelopes: flag 0, length 2, "ab"; flag 0, length 3, "cde".
        let whole =
            Bytes::from_static(&[0, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0, 3, b'c', b'd', b'e']);
        let rest = |sent| rest_of_message(&whole, sent, &Framing::Envelope);
        assert_eq!(rest(3), whole.slice(3..7));
        assert_eq!(rest(6), whole.slice(6..7));
        // Cut inside the second envelope's prefix, and inside its message.
        assert_eq!(rest(9), whole.slice(9..15));
        assert_eq!(rest(13), whole.slice(13..15));
        // A bare message is one: all of its rest.
        assert_eq!(rest_of_message(&whole, 4, &Framing::Bare), whole.slice(4..));
        // Two TTHeader DATA frames, whose LENGTH counts what follows it: head aa bb, "ab";
        // head aa bb, "c".
        let framed = Bytes::from_static(&[
            0, 0, 0, 4, 0xaa, 0xbb, b'a', b'b', 0, 0, 0, 3, 0xaa, 0xbb, b'c',
        ]);
        let ttheader = Framing::Ttheader(Bytes::from_static(&[0, 0, 0, 0, 0xaa, 0xbb]));
        let rest = |sent| rest_of_message(&framed, sent, &ttheader);
        assert_eq!(rest(2), framed.slice(2..8));
        assert_eq!(rest(7), framed.slice(7..8));
        assert_eq!(rest(10), framed.slice(10..15));
    }
}
