//! Sending a refused request again. A server that closes a connection gracefully sends
//! GOAWAY naming the last stream it processed; RFC 9113 §6.8: streams with higher
//! identifiers "were not processed" and the client "can treat [them] as though they had
//! never been created at all, thereby allowing requests to be retried later on a new
//! connection". A stream can be refused so: h2 writes a PING's answer ahead of HEADERS it
//! has queued, and the server's final GOAWAY follows that answer. A call whose whole
//! request went out with its opening (unary, server streaming) keeps that request and
//! goes again, once, on a new connection: as grpc-go's transparent retry.

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::status::Status;
use crate::transport::goaway::GoAway;
use crate::transport::http::{self as wire_http, ResponseHead};

/// Opens the call's stream anew (on a connection the channel picks) and sends `request`,
/// the call's whole framed request, on it.
pub(crate) type Reopen = Box<dyn FnOnce(Bytes) -> Reopening + Send>;

/// The new stream's response and its connection's GOAWAY, on their way.
pub(crate) type Reopening =
    Pin<Box<dyn Future<Output = Result<(ResponseHead, Option<Arc<GoAway>>), Status>> + Send>>;

/// What a client call keeps to go again.
pub(crate) struct Replay {
    pub(crate) reopen: Exclusive<Reopen>,
    /// The request as it went out; `None` until it has (a request sent through the
    /// writer, as a large one is, is not kept).
    pub(crate) request: Option<Bytes>,
}

/// Whether the server refused the stream `head` waits on without processing it: the
/// stream failed for the server's GOAWAY, and its id is above the last one that GOAWAY
/// says was processed.
pub(crate) fn unprocessed(
    head: &ResponseHead,
    e: &wire_http::Error,
    goaway: Option<&GoAway>,
) -> bool {
    let (ResponseHead::H2(f, _), wire_http::Error::H2(e)) = (head, e) else {
        return false;
    };
    if !(e.is_go_away() && e.is_remote()) {
        return false;
    }
    let said = goaway.and_then(GoAway::said);
    said.is_some_and(|g| u32::from(f.stream_id()) > g.last_stream_id)
}

/// A value reached only through `&mut` or by value. A shared `&Exclusive<T>` gives no access
/// to `T`, so it is `Sync` whatever `T` is (std's unstable `Exclusive` does the same): a
/// call's receiver holds a reopening future, and futures that borrow the receiver must
/// stay `Send`.
pub(crate) struct Exclusive<T>(T);

// SAFETY: no method takes `&self`: a `&Exclusive<T>` on another thread can reach nothing.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    pub(crate) fn new(t: T) -> Exclusive<T> {
        Exclusive(t)
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }

    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}
