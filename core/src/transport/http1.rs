//! HTTP/1.1 beside HTTP/2 on the server's port, with hyper's `http1` doing the parsing
//! and framing (chunked encoding, `Content-Length`, keep-alive, pipelining rules).
//!
//! hyper asks a service for each request's whole response, head and body; our calls
//! produce a response piece by piece, whenever the handler sends. So the service answers
//! with a future that waits for the head ([`Responder`]) and a body that a call fills
//! ([`BodyTx`]) and hyper drains ([`Body`]). The body holds at most [`BODY_BUFFER`]
//! bytes: HTTP/1.1 has no flow control of its own, so that bound is what makes a slow
//! reader slow the sender, as the window does over HTTP/2.

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use super::budget::Meter;

/// What a response body may hold that hyper has not written yet.
pub(crate) const BODY_BUFFER: usize = 64 * 1024;

/// The largest request head taken (hyper's read buffer bounds it).
const MAX_HEAD: usize = 64 * 1024;

/// A response this side gave up on: hyper closes the connection, the only way HTTP/1.1
/// has to say a response is incomplete.
#[derive(Debug)]
pub(crate) struct Aborted;

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the call was aborted before its response was complete")
    }
}

impl std::error::Error for Aborted {}

/// Serves HTTP/1.1 requests on `io` until the connection closes or `shutdown` resolves
/// (then the request in progress, if any, finishes first). `on_request` starts each call;
/// a request's head that takes longer than `head_timeout` closes the connection.
pub(crate) async fn serve<T, F>(
    io: T,
    head_timeout: Duration,
    on_request: F,
    shutdown: impl Future<Output = ()>,
) -> Result<(), hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>, Responder) + Send + Sync + 'static,
{
    let on_request = Arc::new(on_request);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (tx, rx) = oneshot::channel();
        on_request(req, Responder { tx, meter: None });
        async move { rx.await.map_err(|_| Aborted) }
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_HEAD);
    let conn = b.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::pin!(shutdown);
    let mut shutting = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = &mut shutdown, if !shutting => {
                conn.as_mut().graceful_shutdown();
                shutting = true;
            }
        }
    }
}

/// Where a call's response head goes: hyper is waiting for it.
pub(crate) struct Responder {
    tx: oneshot::Sender<Response<Body>>,
    /// The response's count in the connection's send budget: what hyper takes of the body
    /// is written.
    meter: Option<Arc<Meter>>,
}

impl Responder {
    /// Sends the head; the body follows through the returned end, which starts with
    /// `first` (a response written whole) and is ended if `end`.
    pub(crate) fn send_response(
        self,
        head: Response<()>,
        first: Bytes,
        end: bool,
    ) -> Result<BodyTx, Aborted> {
        let (tx, body) = body(first, end);
        tx.chan.lock().meter = self.meter;
        let (parts, ()) = head.into_parts();
        self.tx
            .send(Response::from_parts(parts, body))
            .map_err(|_| Aborted)?;
        Ok(tx)
    }

    /// Counts the response in its connection's send budget.
    pub(crate) fn metered(&mut self, m: Arc<Meter>) {
        self.meter = Some(m);
    }

    /// Ready once the client has gone (its connection closed).
    pub(crate) fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.tx.poll_closed(cx)
    }
}

/// A body a call fills and hyper drains (a server's response, a client's request), starting
/// with `first` and ended if `end`.
pub(crate) fn body(first: Bytes, end: bool) -> (BodyTx, Body) {
    let chan = Arc::new(Chan::default());
    {
        let mut st = chan.lock();
        if !first.is_empty() {
            st.queued += first.len();
            st.frames.push_back(Frame::data(first));
        }
        st.ended = end;
    }
    (BodyTx { chan: chan.clone() }, Body { chan })
}

/// A client connection's request sender.
pub(crate) type SendRequest = hyper::client::conn::http1::SendRequest<Body>;

/// A client's response on its way. A call that gives up (its deadline, a cancel) aborts
/// its request body; HTTP/1.1 has no reset, so the response learns of it here.
pub(crate) struct ResponseFuture {
    response: Pin<Box<dyn Future<Output = Result<Response<Incoming>, ResponseError>> + Send>>,
    watch: AbortWatch,
}

/// Why a client's response did not come.
#[derive(Debug)]
pub(crate) enum ResponseError {
    Hyper(hyper::Error),
    /// The call aborted it.
    Aborted,
}

/// Watches a call's request body for the call's abort.
#[derive(Clone)]
pub(crate) struct AbortWatch {
    chan: Arc<Chan>,
}

impl AbortWatch {
    fn poll_aborted(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.chan.lock();
        if st.aborted {
            return Poll::Ready(());
        }
        st.watcher = Some(cx.waker().clone());
        Poll::Pending
    }
}

// SAFETY: nothing reaches the future but `poll`, which takes `&mut self`: a shared
// reference gives access to nothing, so sharing one between threads cannot race. (A call
// that holds this stays `Sync`, as its h2 counterpart is.)
unsafe impl Sync for ResponseFuture {}

impl ResponseFuture {
    /// Sends `req` on `sender` now; its body is filled through `tx`.
    pub(crate) fn send(
        sender: &mut SendRequest,
        req: Request<Body>,
        tx: &BodyTx,
    ) -> ResponseFuture {
        let response = sender.send_request(req);
        ResponseFuture {
            response: Box::pin(async move { response.await.map_err(ResponseError::Hyper) }),
            watch: tx.watch(),
        }
    }

    /// Sends `req` on `sender` once its body, filled through `tx`, is whole, with the
    /// body's length in `Content-Length`; `sent` then gets the sender back. A head sent
    /// before its body is known says nothing of its length: hyper chunks the body, unless
    /// the body happened to be whole first, and an empty one then goes with no length at
    /// all. connect-go's client and browsers give a unary request's length, and some
    /// servers and proxies refuse a request body that has none (411 Length Required).
    /// A body whose sender must wait for room cannot be whole first: its head then goes
    /// at once, and its body chunked.
    pub(crate) fn send_whole(
        mut sender: SendRequest,
        mut req: Request<Body>,
        tx: &BodyTx,
        sent: impl FnOnce(SendRequest) + Send + 'static,
    ) -> ResponseFuture {
        let (to_call, response) = oneshot::channel();
        let send: OnWhole = Box::new(move |len| {
            if let Some(len) = len {
                req.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
            }
            let response = sender.send_request(req);
            sent(sender);
            let _ = to_call.send(response);
        });
        tx.chan.lock().on_whole = Some(send);
        ResponseFuture {
            response: Box::pin(async move {
                match response.await {
                    Ok(r) => r.await.map_err(ResponseError::Hyper),
                    // The body went before it was whole: the call was dropped.
                    Err(_) => Err(ResponseError::Aborted),
                }
            }),
            watch: tx.watch(),
        }
    }

    /// The response's head, and its body (which stops too when the call aborts).
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(http::response::Parts, RecvBody), ResponseError>> {
        if self.watch.poll_aborted(cx).is_ready() {
            return Poll::Ready(Err(ResponseError::Aborted));
        }
        self.response.as_mut().poll(cx).map(|r| {
            let (parts, body) = r?.into_parts();
            let mut body = RecvBody::new(body);
            body.watch = Some(self.watch.clone());
            Ok((parts, body))
        })
    }
}

/// Opens an HTTP/1.1 client connection on `io`; its task runs on `rt` until it closes.
pub(crate) async fn connect<T>(
    io: T,
    rt: &tokio::runtime::Handle,
) -> Result<SendRequest, hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    rt.spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("HTTP/1.1 client connection: {e}");
        }
    });
    Ok(sender)
}

#[derive(Default)]
struct Chan {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame<Bytes>>,
    /// Bytes of data in `frames`.
    queued: usize,
    /// The last frame is queued.
    ended: bool,
    /// A server's response counted in its connection's send budget.
    meter: Option<Arc<Meter>>,
    /// This side abandoned the response.
    aborted: bool,
    /// hyper dropped the body: the connection is gone, unless it had read it whole.
    gone: bool,
    /// hyper had read the whole body when it dropped it.
    complete: bool,
    /// hyper, waiting for a frame.
    reader: Option<Waker>,
    /// The call, waiting for room.
    writer: Option<Waker>,
    /// The room it waits for (see `BodyTx::reserve`).
    want: usize,
    /// The call, watching for the peer to go: a slot of its own, so that a look with
    /// another waker (a direct write's) never takes the room's wake-up away.
    gone_watch: Option<Waker>,
    /// A client call's response, watching for the call's abort.
    watcher: Option<Waker>,
    /// Sends a client's request head, held back until its body is whole
    /// (`ResponseFuture::send_whole`).
    on_whole: Option<OnWhole>,
}

/// Sends a request whose head waited for its body, with the body's length if it is known.
type OnWhole = Box<dyn FnOnce(Option<u64>) + Send>;

impl State {
    /// The body's length once it is whole: ended, and data alone (no trailers).
    fn whole_len(&self) -> Option<u64> {
        (self.ended && self.frames.iter().all(Frame::is_data)).then_some(self.queued as u64)
    }
}

impl Chan {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

/// The call's end of a response body.
pub(crate) struct BodyTx {
    chan: Arc<Chan>,
}

impl BodyTx {
    /// Room for more data now.
    pub(crate) fn capacity(&self) -> usize {
        let st = self.chan.lock();
        if st.gone {
            return 0;
        }
        BODY_BUFFER.saturating_sub(st.queued)
    }

    /// Asks for room for `n` bytes: `poll_capacity` waits for that much (or a quarter of
    /// the bound, for more), as h2's `reserve_capacity` makes its `poll_capacity` wait.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.chan.lock().want = n;
    }

    /// Ready with the room there is once the room asked for is there, or with `Aborted`
    /// once the peer is gone.
    pub(crate) fn poll_capacity(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Aborted>> {
        let mut st = self.chan.lock();
        if st.gone {
            return Poll::Ready(Err(Aborted));
        }
        let room = BODY_BUFFER.saturating_sub(st.queued);
        if room >= st.want.clamp(1, BODY_BUFFER / 4) {
            return Poll::Ready(Ok(room));
        }
        st.writer = Some(cx.waker().clone());
        // Only hyper makes room, and it has nothing of the body before it has the head.
        let send = st.on_whole.take();
        drop(st);
        if let Some(send) = send {
            send(None);
        }
        Poll::Pending
    }

    pub(crate) fn send_data(&mut self, data: Bytes, end: bool) -> Result<(), Aborted> {
        self.push(Frame::data(data), end)
    }

    /// Trailers end the body (chunked encoding carries them when the client asked for
    /// them with `TE: trailers`; hyper drops them otherwise).
    pub(crate) fn send_trailers(&mut self, trailers: HeaderMap) -> Result<(), Aborted> {
        self.push(Frame::trailers(trailers), true)
    }

    fn push(&mut self, frame: Frame<Bytes>, end: bool) -> Result<(), Aborted> {
        let mut st = self.chan.lock();
        if st.ended && frame.data_ref().is_some_and(Bytes::is_empty) {
            // Nothing to add to a body that has ended (a bodiless request's half-close),
            // even once hyper has let it go.
            return Ok(());
        }
        if st.gone || st.aborted {
            return Err(Aborted);
        }
        match frame.data_ref() {
            // An empty frame carries nothing but the end, if that.
            Some(d) if d.is_empty() => {}
            Some(d) => {
                st.queued += d.len();
                st.frames.push_back(frame);
            }
            None => st.frames.push_back(frame),
        }
        st.ended |= end;
        let r = st.reader.take();
        let send = st.ended.then(|| st.on_whole.take()).flatten();
        let len = send.as_ref().and_then(|_| st.whole_len());
        drop(st);
        wake(r);
        if let Some(send) = send {
            send(len);
        }
        Ok(())
    }

    /// Abandons the body (a server's response, a client's request): hyper closes the
    /// connection, and a client's response stops.
    pub(crate) fn abort(&mut self) {
        let mut st = self.chan.lock();
        st.aborted = true;
        let (r, w) = (st.reader.take(), st.watcher.take());
        // Dropped unsent: hyper closes the connection it was to go on.
        let unsent = st.on_whole.take();
        drop(st);
        drop(unsent);
        wake(r);
        wake(w);
    }

    /// A watch on this body for its abort (a client's response keeps it).
    pub(crate) fn watch(&self) -> AbortWatch {
        AbortWatch {
            chan: self.chan.clone(),
        }
    }

    /// Ready once the peer is gone: hyper dropped the body before its end (a body read
    /// whole is dropped too, and says nothing of the peer).
    pub(crate) fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.chan.lock();
        if st.gone && !st.complete {
            return Poll::Ready(());
        }
        st.gone_watch = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for BodyTx {
    fn drop(&mut self) {
        // A request held for its body holds that body, whose channel holds the request: a
        // call dropped before its body was whole would keep both for ever.
        let unsent = self.chan.lock().on_whole.take();
        drop(unsent);
    }
}

/// hyper's end of a response body.
pub(crate) struct Body {
    chan: Arc<Chan>,
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let mut st = self.chan.lock();
        if st.aborted {
            return Poll::Ready(Some(Err(Aborted)));
        }
        if let Some(f) = st.frames.pop_front() {
            if let Some(d) = f.data_ref() {
                st.queued -= d.len();
                if let Some(m) = &st.meter {
                    m.wrote(d.len());
                }
            }
            let w = st.writer.take();
            drop(st);
            wake(w);
            return Poll::Ready(Some(Ok(f)));
        }
        if st.ended {
            return Poll::Ready(None);
        }
        st.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let st = self.chan.lock();
        st.ended && st.frames.is_empty() && !st.aborted
    }

    /// A response written whole has its exact length: hyper then sends `Content-Length`
    /// instead of chunked encoding.
    fn size_hint(&self) -> http_body::SizeHint {
        match self.chan.lock().whole_len() {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        let mut st = self.chan.lock();
        st.gone = true;
        st.complete = st.ended && st.queued == 0;
        if let Some(m) = &st.meter {
            m.wrote(st.queued);
        }
        st.frames.clear();
        let (w, g) = (st.writer.take(), st.gone_watch.take());
        drop(st);
        wake(w);
        wake(g);
    }
}

/// What is read of a request body its call no longer wants, and for how long.
const DRAIN_BYTES: usize = 8 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// A request body as a call reads it: data, then the trailers if any.
pub(crate) struct RecvBody {
    /// Taken by `drop` to drain what is left.
    body: Option<Incoming>,
    trailers: Option<HeaderMap>,
    done: bool,
    /// This is the rest of a dropped body, being drained: dropped again, it is let go.
    draining: bool,
    /// A client's response body: the call's abort ends it.
    watch: Option<AbortWatch>,
}

impl RecvBody {
    pub(crate) fn new(body: Incoming) -> RecvBody {
        RecvBody {
            body: Some(body),
            trailers: None,
            done: false,
            draining: false,
            watch: None,
        }
    }

    pub(crate) fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, ResponseError>>> {
        use http_body::Body as _;
        if self
            .watch
            .as_ref()
            .is_some_and(|w| w.poll_aborted(cx).is_ready())
        {
            return Poll::Ready(Some(Err(ResponseError::Aborted)));
        }
        loop {
            let (false, Some(body)) = (self.done, self.body.as_mut()) else {
                return Poll::Ready(None);
            };
            let f = match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => f,
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(ResponseError::Hyper(e))))
                }
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            };
            match f.into_data() {
                Ok(d) if d.is_empty() => {}
                Ok(d) => return Poll::Ready(Some(Ok(d))),
                Err(f) => {
                    if let Ok(t) = f.into_trailers() {
                        self.trailers = Some(t);
                    }
                }
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        use http_body::Body as _;
        self.done || self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    /// Reads the rest of the body, at most `DRAIN_BYTES` within `DRAIN_TIME`, and drops it.
    async fn drain(mut self) {
        let mut left = DRAIN_BYTES;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(d)) = std::future::poll_fn(|cx| self.poll_data(cx)).await {
                left = left.saturating_sub(d.len());
                if left == 0 {
                    return;
                }
            }
        })
        .await;
        self.done = true;
    }

    pub(crate) fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<HeaderMap>, ResponseError>> {
        while !self.done {
            match self.poll_data(cx) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(self.trailers.take()))
    }
}

/// A call that ends before its request body has (a message over the size limit, an error
/// answered early) leaves the client still sending. Dropped unread, the body makes hyper
/// close the connection with the client's bytes unread, and the kernel answers those with
/// a TCP reset that can destroy the response before the client reads it. So the rest is
/// read and dropped, within bounds, as Go's net/http server does.
impl Drop for RecvBody {
    fn drop(&mut self) {
        if self.done || self.draining || self.body.is_none() {
            return;
        }
        let rest = RecvBody {
            body: self.body.take(),
            trailers: None,
            done: false,
            draining: true,
            watch: None,
        };
        crate::runtime::handle().spawn(rest.drain());
    }
}
