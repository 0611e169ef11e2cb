//! One call's stream, whichever HTTP version carries it: the halves a protocol writes a
//! response into and reads a request from, over an h2 stream or an HTTP/1.1 exchange.
//! HTTP/1.1 has no stream reset and no flow control; these halves say what stands in for
//! them (closing the connection; the body's bound, see `http1`).

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, Response};
use std::fmt;
use std::task::{Context, Poll};

use super::http1;
use super::window::Receiving;

/// Why an operation on a stream failed.
#[derive(Debug)]
pub(crate) enum Error {
    H2(h2::Error),
    H1(hyper::Error),
    /// The HTTP/1.1 response was abandoned, or its client has gone.
    H1Gone,
    /// This side's call gave up on its HTTP/1.1 exchange (its deadline, a cancel).
    H1Aborted,
}

impl From<http1::ResponseError> for Error {
    fn from(e: http1::ResponseError) -> Error {
        match e {
            http1::ResponseError::Hyper(e) => Error::H1(e),
            http1::ResponseError::Aborted => Error::H1Aborted,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::H2(e) => e.fmt(f),
            Error::H1(e) => e.fmt(f),
            Error::H1Gone => f.write_str("the HTTP/1.1 client has gone"),
            Error::H1Aborted => f.write_str("the call was aborted"),
        }
    }
}

impl From<h2::Error> for Error {
    fn from(e: h2::Error) -> Error {
        Error::H2(e)
    }
}

impl From<http1::Aborted> for Error {
    fn from(_: http1::Aborted) -> Error {
        Error::H1Gone
    }
}

/// A client's response on its way.
pub(crate) enum ResponseHead {
    /// With the stream's place in its connection's receive window, which its body keeps.
    H2(h2::client::ResponseFuture, Receiving),
    H1(http1::ResponseFuture),
}

impl ResponseHead {
    /// The response's head, and its body to read.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(http::response::Parts, RecvBody), Error>> {
        use std::future::Future;
        match self {
            ResponseHead::H2(f, counted) => std::pin::Pin::new(f).poll(cx).map(|r| {
                let (parts, body) = r.map_err(Error::H2)?.into_parts();
                Ok((parts, RecvBody::H2(body, counted.take())))
            }),
            ResponseHead::H1(f) => f.poll(cx).map(|r| {
                let (parts, body) = r?;
                Ok((parts, RecvBody::H1(Box::new(body))))
            }),
        }
    }
}

/// A response not started yet.
pub(crate) enum Respond {
    H2(SendResponse<Bytes>),
    H1(http1::Responder),
    /// An HTTP/1.1 head already sent, or given up.
    Taken,
}

impl Respond {
    /// Sends the head, then `first` (a response written whole), ending the response if
    /// `end`.
    pub(crate) fn send_response(
        &mut self,
        head: Response<()>,
        first: Bytes,
        end: bool,
    ) -> Result<SendBody, Error> {
        match self {
            Respond::H2(r) => {
                let mut s = r.send_response(head, end && first.is_empty())?;
                if !first.is_empty() {
                    s.send_data(first, end)?;
                }
                Ok(SendBody::H2(s))
            }
            Respond::H1(_) => {
                let Respond::H1(r) = std::mem::replace(self, Respond::Taken) else {
                    unreachable!("matched above");
                };
                Ok(SendBody::H1(r.send_response(head, first, end)?))
            }
            Respond::Taken => Err(Error::H1Gone),
        }
    }

    pub(crate) fn send_reset(&mut self, reason: Reason) {
        match self {
            Respond::H2(r) => r.send_reset(reason),
            // Dropping the responder closes the connection (see `http1::serve`).
            Respond::H1(_) | Respond::Taken => *self = Respond::Taken,
        }
    }

    /// Ready once the peer reset the stream (HTTP/1.1: closed the connection, a CANCEL).
    pub(crate) fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reason, Error>> {
        match self {
            Respond::H2(r) => r.poll_reset(cx).map_err(Error::H2),
            Respond::H1(r) => r.poll_gone(cx).map(|()| Ok(Reason::CANCEL)),
            Respond::Taken => Poll::Pending,
        }
    }
}

/// A response's body, its head sent (or a client's request body).
pub(crate) enum SendBody {
    H2(SendStream<Bytes>),
    H1(http1::BodyTx),
}

impl SendBody {
    /// Asks for room to send `n` bytes: h2's flow-control window, or room in an HTTP/1.1
    /// body's bound.
    pub(crate) fn reserve_capacity(&mut self, n: usize) {
        match self {
            SendBody::H2(s) => s.reserve_capacity(n),
            SendBody::H1(b) => b.reserve(n),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        match self {
            SendBody::H2(s) => s.capacity(),
            SendBody::H1(b) => b.capacity(),
        }
    }

    /// Ready when the room may have changed: `None` once the stream can take no more.
    pub(crate) fn poll_capacity(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<usize, Error>>> {
        match self {
            SendBody::H2(s) => s.poll_capacity(cx).map(|o| o.map(|r| r.map_err(Error::H2))),
            SendBody::H1(b) => b.poll_capacity(cx).map(|r| Some(r.map_err(Error::from))),
        }
    }

    pub(crate) fn send_data(&mut self, data: Bytes, end: bool) -> Result<(), Error> {
        match self {
            SendBody::H2(s) => s.send_data(data, end).map_err(Error::H2),
            SendBody::H1(b) => b.send_data(data, end).map_err(Error::from),
        }
    }

    pub(crate) fn send_trailers(&mut self, trailers: HeaderMap) -> Result<(), Error> {
        match self {
            SendBody::H2(s) => s.send_trailers(trailers).map_err(Error::H2),
            SendBody::H1(b) => b.send_trailers(trailers).map_err(Error::from),
        }
    }

    pub(crate) fn send_reset(&mut self, reason: Reason) {
        match self {
            SendBody::H2(s) => s.send_reset(reason),
            SendBody::H1(b) => b.abort(),
        }
    }

    /// Ready once the peer reset the stream (HTTP/1.1: closed the connection, a CANCEL).
    pub(crate) fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reason, Error>> {
        match self {
            SendBody::H2(s) => s.poll_reset(cx).map_err(Error::H2),
            SendBody::H1(b) => b.poll_gone(cx).map(|()| Ok(Reason::CANCEL)),
        }
    }
}

/// A request's body as the server reads it (or a response's, on a client).
pub(crate) enum RecvBody {
    /// With the stream's place in its connection's receive window (see `window`), held
    /// for its drop, which gives the place back.
    H2(RecvStream, #[allow(dead_code)] Receiving),
    /// Boxed: it holds what an h2 stream keeps in h2's own state.
    H1(Box<http1::RecvBody>),
}

impl RecvBody {
    pub(crate) fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        match self {
            RecvBody::H2(b, _) => b.poll_data(cx).map(|o| o.map(|r| r.map_err(Error::H2))),
            RecvBody::H1(b) => b.poll_data(cx).map(|o| o.map(|r| r.map_err(Error::from))),
        }
    }

    /// Whether the body has ended already (an HTTP/2 HEADERS frame that ended the stream).
    pub(crate) fn is_end_stream(&self) -> bool {
        match self {
            RecvBody::H2(b, _) => b.is_end_stream(),
            RecvBody::H1(b) => b.is_end_stream(),
        }
    }

    /// Gives `n` bytes of window back to the peer (HTTP/2; HTTP/1.1 reads as we read).
    pub(crate) fn release(&mut self, n: usize) {
        if let RecvBody::H2(b, _) = self {
            let _ = b.flow_control().release_capacity(n);
        }
    }

    pub(crate) fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<HeaderMap>, Error>> {
        match self {
            RecvBody::H2(b, _) => b.poll_trailers(cx).map_err(Error::H2),
            RecvBody::H1(b) => b.poll_trailers(cx).map_err(Error::from),
        }
    }
}
