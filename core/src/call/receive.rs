//! What the two receive sides share: the single-message rules of a call's shape, handing
//! every ready message over in one batch, and the cursor bindings hand them out from.

use bytes::Bytes;
use std::task::{Context, Poll};

use crate::status::{Code, Status};

/// Which side's messages are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum From {
    /// A server counting requests.
    Client,
    /// A client counting responses.
    Server,
}

/// Counts the messages a call receives against its shape: a single-message side must send
/// exactly one. A violation is UNIMPLEMENTED on both sides, as connect-go reports it and as
/// the Connect conformance suite expects of every implementation (it lists grpc-go's
/// INTERNAL for these cases as a known failure).
pub(crate) struct Expect {
    single: bool,
    from: From,
    seen: usize,
}

impl Expect {
    pub(crate) fn new(single: bool, from: From) -> Expect {
        Expect {
            single,
            from,
            seen: 0,
        }
    }

    /// Whether the side counted may send any number of messages: none can break the rule.
    #[inline]
    pub(crate) fn streaming(&self) -> bool {
        !self.single
    }

    /// A message arrived: an error when it is one too many.
    pub(crate) fn message(&mut self) -> Result<(), Status> {
        self.seen += 1;
        if self.single && self.seen > 1 {
            return Err(Status::new(
                Code::Unimplemented,
                match self.from {
                    From::Client => {
                        "the client sent more than one request message for a single-request method"
                    }
                    From::Server => {
                        "the server sent more than one response message for a single-response call"
                    }
                },
            ));
        }
        Ok(())
    }

    /// The messages ended (successfully): an error when the one expected never came.
    pub(crate) fn end(&self) -> Result<(), Status> {
        if self.single && self.seen == 0 {
            return Err(Status::new(
                Code::Unimplemented,
                match self.from {
                    From::Client => "the client half-closed without sending the request message",
                    From::Server => {
                        "the server ended a single-response call with OK but no response message"
                    }
                },
            ));
        }
        Ok(())
    }
}

/// A call's receiving side, client's or server's.
pub trait Receive {
    /// The next message; `Ok(None)` at the end of the peer's messages (and, for a client,
    /// of a successful call); `Err` with the call's status when it failed.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>>;

    /// Appends every message that is ready (up to `max`) to `out`, waiting only if none is:
    /// one wake-up hands over a batch. `Ok(n)`: how many were appended; zero means the
    /// end. An error comes after the messages that preceded it.
    fn poll_recv_batch(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Bytes>,
        max: usize,
    ) -> Poll<Result<usize, Status>> {
        let mut n = 0;
        while n < max.max(1) {
            match self.poll_recv(cx) {
                Poll::Ready(Ok(Some(m))) => {
                    out.push(m);
                    n += 1;
                }
                Poll::Ready(Ok(None)) => return Poll::Ready(Ok(n)),
                Poll::Ready(Err(e)) => return Poll::Ready(if n > 0 { Ok(n) } else { Err(e) }),
                Poll::Pending => {
                    return if n > 0 {
                        Poll::Ready(Ok(n))
                    } else {
                        Poll::Pending
                    }
                }
            }
        }
        Poll::Ready(Ok(n))
    }
}

/// Messages this small that `recv_ref` cannot lend in place are copied into the call's own
/// buffer rather than held as they came.
const KEPT_COPY_MAX: usize = 256;

/// What `recv_ref` hands out when the receive side cannot lend a message in place (a
/// chunk's last message, one gathered across chunks, a decompressed one): kept by the call
/// until its next receive. A small message is copied into a buffer the call reuses, so that
/// the buffer it was read into is the connection's again for its next read: held, it would
/// make the connection allocate a new one (a TTHeader connection reads many streams' frames
/// into one). A large one is held as it came.
#[derive(Default)]
pub(crate) struct Kept {
    small: Vec<u8>,
    large: Option<Bytes>,
}

impl Kept {
    /// Keeps `m`, handing out its bytes.
    pub(crate) fn keep(&mut self, m: Option<Bytes>) -> Option<&[u8]> {
        self.large = None;
        match m {
            None => None,
            Some(m) if m.len() <= KEPT_COPY_MAX => {
                self.small.clear();
                self.small.extend_from_slice(&m);
                Some(&self.small)
            }
            Some(m) => Some(&self.large.insert(m)[..]),
        }
    }

    /// Lets go of a large message kept: a message lent in place replaces it.
    pub(crate) fn release(&mut self) {
        self.large = None;
    }
}

/// Received messages a binding hands out one by one or a batch at a time: it refills with
/// every ready message in one poll (one wake-up per batch), and holds what it handed out
/// until the next refill, so that a C caller can borrow their bytes meanwhile.
#[derive(Default)]
pub struct Inbox {
    batch: Vec<Bytes>,
    next: usize,
    /// The message last taken alone.
    current: Bytes,
}

impl Inbox {
    pub fn new() -> Inbox {
        Inbox::default()
    }

    /// Ready(Ok(true)) when messages wait (`ready`), Ready(Ok(false)) at the end of the
    /// stream, or the call's failure. Polls `call` only when every message it held was
    /// handed out: a refill drops them.
    pub fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        call: &mut impl Receive,
        want: usize,
    ) -> Poll<Result<bool, Status>> {
        if self.next < self.batch.len() {
            return Poll::Ready(Ok(true));
        }
        self.batch.clear();
        self.next = 0;
        match call.poll_recv_batch(cx, &mut self.batch, want.max(1)) {
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(true)),
            Poll::Ready(Err(s)) => Poll::Ready(Err(s)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next waiting message, held (its bytes valid) until the next take or refill.
    pub fn take(&mut self) -> Option<&Bytes> {
        let m = self.batch.get_mut(self.next)?;
        self.current = std::mem::take(m);
        self.next += 1;
        Some(&self.current)
    }

    /// The message last taken alone (empty before the first, and after `advance`).
    pub fn current(&self) -> &Bytes {
        &self.current
    }

    /// The messages waiting, not yet handed out.
    pub fn ready(&self) -> &[Bytes] {
        &self.batch[self.next..]
    }

    /// Marks the first `n` waiting messages handed out: they stay held until the refill.
    pub fn advance(&mut self, n: usize) {
        self.next = (self.next + n).min(self.batch.len());
        self.current = Bytes::new();
    }

    /// Drops everything held.
    pub fn clear(&mut self) {
        self.batch.clear();
        self.next = 0;
        self.current = Bytes::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small message kept for `recv_ref` holds nothing of the buffer it was read into; a
    /// large one holds it until the next receive, or until a message lent in place.
    #[test]
    fn a_kept_small_message_frees_its_read_buffer_a_large_one_until_the_next() {
        let read = Bytes::from(vec![7u8; 4096]);
        let mut kept = Kept::default();
        let small = read.slice(..KEPT_COPY_MAX);
        assert_eq!(kept.keep(Some(small)), Some(&[7u8; KEPT_COPY_MAX][..]));
        assert!(read.is_unique(), "the small message was copied");

        let large = read.slice(..KEPT_COPY_MAX + 1);
        assert_eq!(
            kept.keep(Some(large)).map(<[u8]>::len),
            Some(KEPT_COPY_MAX + 1)
        );
        assert!(!read.is_unique(), "the large message is held as it came");
        kept.release();
        assert!(read.is_unique());

        assert_eq!(
            kept.keep(Some(read.slice(1000..))).map(<[u8]>::len),
            Some(3096)
        );
        assert_eq!(kept.keep(None), None);
        assert!(read.is_unique(), "the end lets go of what was kept");
    }
}
