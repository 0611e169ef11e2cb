"""The server: bind, serve handlers for the four shapes, or pull calls with `async for`."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from ._client import Deserializer, MetadataLike, Serializer, _md
from ._loop import park, reactor
from ._native import NativeServer, NativeServerCall, Reactor
from ._status import Metadata, MetadataValue, Protocol, RpcError, Shape, StatusCode

log = logging.getLogger("rillrpc")


Handler = Callable[[Any, "ServerCall"], Any]


class ServerCall:
    """One incoming call, and the context handlers get: request metadata, deadline,
    `send_headers`, trailers, `abort`; `recv`/`async for` and `send` for messages."""

    __slots__ = ("_n", "_ser", "_de", "_trailers", "_code", "_message", "_buf", "_out", "_draining", "_deferred", "__weakref__")

    def __init__(self, native: NativeServerCall, ser: Serializer = None, de: Deserializer = None) -> None:
        self._n = native
        self._ser = ser
        self._de = de
        self._trailers: Optional[Sequence[Tuple[str, MetadataValue]]] = None
        self._code = StatusCode.OK
        self._message = ""
        self._buf: List[bytes] = []
        # Responses a streaming handler yielded, not yet handed to the core (see _send_all).
        self._out: List[bytes] = []
        self._draining = False
        self._deferred = False  # a finish waits for yielded responses to go first

    @property
    def method(self) -> str:
        """`/package.Service/Method`."""
        return self._n.method

    @property
    def shape(self) -> Shape:
        return Shape(self._n.shape)

    @property
    def protocol(self) -> Protocol:
        """The protocol the client called with: the handler is the same for every one."""
        return Protocol(self._n.protocol)

    @property
    def codec(self) -> str:
        """The codec of the messages, as the request's content type names it: "proto" (also
        when it names none), "json", or another. Messages reach the handler as the client
        encoded them; answer in the same codec."""
        return self._n.codec

    @property
    def metadata(self) -> Metadata:
        """The request metadata: `(key, value)` pairs, bytes values for `-bin` keys."""
        return self._n.metadata()

    def invocation_metadata(self) -> Metadata:
        return self._n.metadata()

    def peer(self) -> str:
        return self._n.peer()

    def time_remaining(self) -> Optional[float]:
        """Seconds left before the client's deadline; None when it set none."""
        return self._n.time_remaining()

    @property
    def deadline(self) -> Optional[float]:
        """The client's deadline as a `time.time()` value, or None."""
        t = self._n.time_remaining()
        return None if t is None else time.time() + t

    def send_headers(self, metadata: MetadataLike) -> None:
        """Sends the response headers now (otherwise they go with the first message)."""
        self._n.send_headers(_md(metadata) or ())

    async def send_initial_metadata(self, metadata: MetadataLike) -> None:
        self.send_headers(metadata)

    def set_trailers(self, metadata: MetadataLike) -> None:
        """Trailing metadata sent with the final status."""
        self._trailers = _md(metadata)

    set_trailing_metadata = set_trailers

    def set_code(self, code: Union[StatusCode, int]) -> None:
        self._code = StatusCode(code)

    def set_details(self, message: str) -> None:
        self._message = message

    def set_compression(self, name: str) -> bool:
        """Compresses responses ("gzip") when the client accepts it; True if it will."""
        return self._n.set_compression(name)

    def request_compressed(self) -> bool:
        """Whether the last request message received came compressed on the wire (it is
        handed to you decompressed either way)."""
        return self._n.last_recv_compressed()

    def abort(
        self,
        code: Union[StatusCode, int],
        message: str = "",
        details: bytes = b"",
        trailers: MetadataLike = None,
    ) -> "RpcError":
        """Ends the call with this status: raises, so the handler stops here."""
        t = _md(trailers)
        if t is None and self._trailers is not None:
            t = self._trailers
        raise RpcError(code, message, details, tuple(t or ()))

    def cancelled(self) -> bool:
        """True once the client cancelled, the deadline passed or the connection broke."""
        return self._n.is_cancelled()

    def cancel(self) -> None:
        self._n.cancel()

    async def recv(self) -> Any:
        """The next request message, or None once the client half-closed."""
        buf = self._buf
        if not buf:
            n = self._n
            while True:
                r = n.recv_batch()
                if isinstance(r, int):
                    await park(n, r)
                    continue
                if not r:
                    return None
                r.reverse()
                buf.extend(r)
                break
        m = buf.pop()
        return self._de(m) if self._de is not None else m

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._requests()

    async def _requests(self) -> AsyncIterator[Any]:
        de = self._de
        buf = self._buf
        while buf:
            m = buf.pop()
            yield de(m) if de is not None else m
        n = self._n
        while True:
            r = n.recv_batch()
            if isinstance(r, int):
                await park(n, r)
                continue
            if not r:
                return
            if de is None:
                for m in r:
                    yield m
            else:
                for m in r:
                    yield de(m)

    async def send(self, message: Any) -> None:
        """Queues one response; waits only while flow control says the client is full."""
        data = self._ser(message) if self._ser is not None else message
        n = self._n
        if self._out:
            await self._flush()
        while not n.try_send(data):
            e = n.send_ready()
            if e is not None:
                await park(n, e)

    write = send
    read = recv

    def finish(
        self,
        code: Union[StatusCode, int] = StatusCode.OK,
        message: str = "",
        details: bytes = b"",
        trailers: MetadataLike = None,
    ) -> None:
        """Ends the call with a status; queued messages go first."""
        args = (int(code), message, details, _md(trailers))
        if self._out:
            self._flush_soon()
            if self._out:
                # Yielded responses wait for flow control: they still go first.
                self._deferred = True
                asyncio.get_running_loop().create_task(self._finish_after_flush(args))
                return
        self._n.finish(*args)

    async def _finish_after_flush(self, args: Tuple[int, str, bytes, Any]) -> None:
        try:
            await self._flush()
            self._n.finish(*args)
        except RpcError:
            pass  # the call ended meanwhile (cancelled): nothing to finish

    def _finish_default(self) -> None:
        if not self._deferred:  # else the handler's own finish is on its way
            self._n.finish(int(self._code), self._message, None, self._trailers)

    # Yielded responses are handed to the core in batches: one native call and at most one
    # wake of the writer per batch instead of per message. A batch goes when it is full,
    # and, through a `call_soon` set up by its first message, as soon as the handler lets
    # the loop run: a handler that yields and then waits is never held back.

    def _flush_soon(self) -> None:
        out = self._out
        if not out:
            return
        try:
            k = self._n.try_send_batch(out)
        except RpcError:
            out.clear()  # the call has ended; the handler learns it at its next send
            return
        del out[:k]
        if out and not self._draining:
            # The client is not reading: finish the batch from a task, in order.
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await self._flush()
        except RpcError:
            self._out.clear()
        finally:
            self._draining = False

    async def _flush(self) -> None:
        out = self._out
        n = self._n
        while out:
            k = n.try_send_batch(out)
            del out[:k]
            if out:
                e = n.send_ready()
                if e is not None:
                    await park(n, e)


class _Method:
    __slots__ = ("path", "shape", "handler", "ser", "de", "idempotency")

    def __init__(
        self,
        path: str,
        shape: Shape,
        handler: Optional[Handler],
        ser: Serializer,
        de: Deserializer,
        idempotency: Optional[str] = None,
    ):
        self.path = path
        self.shape = shape
        self.handler = handler
        self.ser = ser
        self.de = de
        self.idempotency = idempotency


class Server:
    """A server of gRPC, gRPC-Web and Connect on one port. Add methods (with handlers, or
    without to pull calls via `async for call in server`), `bind`, `start`, and
    `stop(grace)`.

    `cors`: the origins whose browser pages may call (`"https://app.example.com"`, or `"*"`
    for any), one or a list; `cors_max_age`: seconds a browser may cache a preflight's
    answer (whole seconds; two hours by default). Without `cors`, browsers let only pages
    of the server's own origin call.

    `certificate_chain` and `private_key` (PEM) serve TLS; `client_root_certificates` (PEM)
    makes it mutual: a client must present a certificate one of these CAs signed.

    Connection limits: `handshake_timeout` (seconds a new connection may take to finish TLS
    and its first bytes of HTTP; 10 by default), `max_connections` (at most this many at
    once; no limit by default), `max_connection_age` (seconds, ±10%, after which a
    connection is told to go: its calls run on, clients open a new connection for new ones,
    as grpc-go's MaxConnectionAge), `max_connection_age_grace` (seconds those calls may
    run on before the connection closes) and `max_connection_idle` (seconds without a call
    after which an HTTP/2 connection is told to go and closes, as grpc-go's
    MaxConnectionIdle; idle connections stay by default) and `header_read_timeout`
    (seconds a request's headers may take to arrive once begun; 30 by default).

    Keepalive enforcement, as grpc-go's EnforcementPolicy: a client that pings more often
    than every `permit_keepalive_time` seconds (five minutes by default) while the server
    sends it nothing gets GOAWAY ENHANCE_YOUR_CALM after two strikes; without calls it may
    ping that often only with `permit_keepalive_without_calls`.

    The server's own keepalive, as grpc-go's ServerParameters: a connection from which
    nothing has arrived for `keepalive_time` seconds (two hours by default; 0 turns it off)
    gets a PING, and closes, ending its calls, if the answer does not come within
    `keepalive_timeout` seconds (20 by default). It finds clients that froze or vanished
    without closing their socket.

    The send budget: at most `send_budget` bytes (512 MiB by default) held for clients to
    read over all connections, whatever the protocol, and `connection_send_budget` (64 MiB)
    on each; past
    it new streams are refused and the streams whose clients stopped reading are cut, those
    holding the most first (their calls end RESOURCE_EXHAUSTED). 0: no limit.

    The receive budget: what clients can make the server hold of requests its handlers have
    not read yet. An HTTP/2 connection's window grows with the request streams open on it, so
    that streams nobody reads yet do not stall its other calls, up to
    `connection_receive_budget` bytes (64 MiB by default) on each connection and
    `receive_budget` (512 MiB) of growth over all of them; past it, unread request streams
    stall their connection until they are read. 0: no limit."""

    def __init__(
        self,
        *,
        max_concurrent_streams: Optional[int] = None,
        max_recv_message_size: Optional[int] = None,
        certificate_chain: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        cors: Union[str, Iterable[str], None] = None,
        cors_max_age: Optional[float] = None,
        client_root_certificates: Optional[bytes] = None,
        handshake_timeout: Optional[float] = None,
        max_connections: Optional[int] = None,
        max_connection_age: Optional[float] = None,
        max_connection_age_grace: Optional[float] = None,
        max_connection_idle: Optional[float] = None,
        header_read_timeout: Optional[float] = None,
        permit_keepalive_time: Optional[float] = None,
        permit_keepalive_without_calls: Optional[bool] = None,
        keepalive_time: Optional[float] = None,
        keepalive_timeout: Optional[float] = None,
        send_budget: Optional[int] = None,
        connection_send_budget: Optional[int] = None,
        receive_budget: Optional[int] = None,
        connection_receive_budget: Optional[int] = None,
    ) -> None:
        origins = None if cors is None else [cors] if isinstance(cors, str) else list(cors)
        self._opts = (
            max_concurrent_streams,
            max_recv_message_size,
            certificate_chain,
            private_key,
            origins,
            cors_max_age,
            client_root_certificates,
            handshake_timeout,
            max_connections,
            max_connection_age,
            max_connection_age_grace,
            max_connection_idle,
            header_read_timeout,
            permit_keepalive_time,
            permit_keepalive_without_calls,
            keepalive_time,
            keepalive_timeout,
            send_budget,
            connection_send_budget,
            receive_budget,
            connection_receive_budget,
        )
        self._methods: Dict[str, _Method] = {}
        self._n: Optional[NativeServer] = None
        self._serving: Optional["asyncio.Task[None]"] = None
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._stopped: Optional["asyncio.Future[None]"] = None

    def add_method(
        self,
        path: str,
        shape: Union[Shape, int],
        handler: Optional[Handler] = None,
        *,
        request_deserializer: Deserializer = None,
        response_serializer: Serializer = None,
        idempotency: Optional[str] = None,
    ) -> None:
        """Serves `path` (`/package.Service/Method`). Handlers: unary `async def h(req, ctx)
        -> resp`; server streaming an async generator `h(req, ctx)` yielding responses;
        client streaming `async def h(requests, ctx) -> resp`; bidi an async generator
        `h(requests, ctx)`. Streaming handlers may also `await ctx.send(resp)`.

        `idempotency`: "unknown" (the default), "no-side-effects" or "idempotent". A unary
        method free of side effects also answers Connect's HTTP GET (the message in the
        URL); other methods answer a GET with 405. An unknown name fails `bind()`."""
        if self._n is not None:
            raise RuntimeError("add methods before bind()")
        self._methods[path] = _Method(
            path, Shape(shape), handler, response_serializer, request_deserializer, idempotency
        )

    def add_service(self, service: Any, servicer: Any) -> None:
        """Serves every method of a protobuf service descriptor with the servicer's
        same-named attributes (`echo_pb2.DESCRIPTOR.services_by_name["TestService"]`). A
        unary method whose descriptor says `option idempotency_level = NO_SIDE_EFFECTS;`
        answers Connect's GET too."""
        from ._stub import message_class, method_idempotency, method_shape

        for m in service.methods:
            h = getattr(servicer, m.name, None)
            if h is None:
                continue
            self.add_method(
                f"/{service.full_name}/{m.name}",
                method_shape(m),
                h,
                request_deserializer=message_class(m.input_type).FromString,
                # The unbound method, as grpcio's generated code passes it: one call less
                # per message than a lambda.
                response_serializer=message_class(m.output_type).SerializeToString,
                idempotency=method_idempotency(m),
            )

    def bind(self, address: str = "127.0.0.1:0") -> int:
        """Listens on `host:port` (port 0 picks one); returns the port."""
        if self._n is not None:
            raise RuntimeError("the server is already bound")
        methods = [(m.path, int(m.shape), m.idempotency or "unknown") for m in self._methods.values()]
        self._n = NativeServer(address, methods, *self._opts)
        return self._n.local_addr()[1]

    add_insecure_port = bind

    @property
    def port(self) -> int:
        return self._native().local_addr()[1]

    def _native(self) -> NativeServer:
        if self._n is None:
            raise RuntimeError("bind() the server first")
        return self._n

    async def start(self) -> None:
        """Starts dispatching calls to the handlers."""
        n = self._native()
        if self._serving is None:
            self._serving = asyncio.get_running_loop().create_task(self._serve(n))

    async def _accept(self, n: NativeServer) -> Optional[NativeServerCall]:
        while True:
            r = n.accept()
            if isinstance(r, int):
                await park(n, r)
                continue
            return r

    def __aiter__(self) -> AsyncIterator[ServerCall]:
        return self._pull()

    async def _pull(self) -> AsyncIterator[ServerCall]:
        n = self._native()
        while True:
            c = await self._accept(n)
            if c is None:
                return
            m = self._methods.get(c.method)
            if m is None:
                yield ServerCall(c)
            else:
                yield ServerCall(c, m.ser, m.de)

    async def _serve(self, n: NativeServer) -> None:
        loop, rr = reactor()
        methods = self._methods
        tasks = self._tasks
        while True:
            r = n.accept()
            if isinstance(r, int):
                await park(n, r)
                continue
            if r is None:
                return
            m = methods.get(r.method)
            if m is None or m.handler is None:
                r.finish(int(StatusCode.UNIMPLEMENTED), f"method {r.method} has no handler")
                continue
            t = loop.create_task(_handle(r, m, loop, rr))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    async def stop(self, grace: Optional[float] = None) -> None:
        """Graceful stop: no new calls; calls in flight get `grace` seconds (None: wait
        for them), then are cancelled."""
        n = self._native()
        loop, r = reactor()
        fut = loop.create_future()
        g = 3600.0 * 24 * 365 if grace is None else float(grace)
        n.shutdown(fut, r, g)
        await fut
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._serving is not None:
            await asyncio.gather(self._serving, return_exceptions=True)
        self._serving = None

    async def wait_for_termination(self) -> None:
        if self._serving is not None:
            await asyncio.gather(self._serving, return_exceptions=True)

    async def __aenter__(self) -> "Server":
        if self._n is None:
            self.bind()
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(0)


def _on_cancel(n: NativeServerCall, task: "asyncio.Task[Any]") -> Callable[["asyncio.Future[None]"], None]:
    def cb(_: "asyncio.Future[None]") -> None:
        if n.is_cancelled() and not task.done():
            task.cancel()

    return cb


async def _send_all(ctx: ServerCall, ser: Serializer, gen: Any) -> None:
    out = ctx._out
    append = out.append
    call_soon = asyncio.get_running_loop().call_soon
    flush_soon = ctx._flush_soon
    if ser is None:
        async for resp in gen:
            append(resp)
            k = len(out)
            if k == 1:
                call_soon(flush_soon)
            elif k >= _BATCH:
                await ctx._flush()
    else:
        async for resp in gen:
            append(ser(resp))
            k = len(out)
            if k == 1:
                call_soon(flush_soon)
            elif k >= _BATCH:
                await ctx._flush()
    await ctx._flush()


async def _flush_quietly(ctx: ServerCall) -> None:
    try:
        await ctx._flush()
    except RpcError:
        ctx._out.clear()


# Messages per batch: enough to make the per-batch costs vanish, few enough that the
# list stays small.
_BATCH = 256


def _arm_watch(n: NativeServerCall, task: "asyncio.Task[Any]", loop: asyncio.AbstractEventLoop, r: Reactor) -> None:
    # Runs once the handler first lets the loop run. Watching for a cancel starts the
    # core's writer task; a handler that is done by then (most unary ones) never needs it,
    # and its response is written inline by `finish`: no task, no hand-off.
    if task.done():
        return
    watch = loop.create_future()
    if n.watch_cancel(watch, r):
        task.cancel()
        return
    watch.add_done_callback(_on_cancel(n, task))


async def _handle(n: NativeServerCall, m: _Method, loop: asyncio.AbstractEventLoop, r: Reactor) -> None:
    ctx = ServerCall(n, m.ser, m.de)
    task = asyncio.current_task(loop)
    assert task is not None
    loop.call_soon(_arm_watch, n, task, loop, r)
    h = m.handler
    assert h is not None
    shape = m.shape
    try:
        if shape == Shape.UNARY or shape == Shape.SERVER_STREAMING:
            # The core fails the call (UNIMPLEMENTED) when the client sends no request, or
            # several: recv raises then.
            req = await ctx.recv()
            res = h(req, ctx)
        else:
            res = h(ctx.__aiter__(), ctx)
        if shape == Shape.UNARY or shape == Shape.CLIENT_STREAMING:
            resp = await res
            if resp is None:
                if ctx._code == StatusCode.OK:
                    raise RpcError(StatusCode.INTERNAL, "the handler returned no response")
            else:
                await ctx.send(resp)
        elif inspect.isasyncgen(res):
            await _send_all(ctx, m.ser, res)
        elif inspect.isawaitable(res):
            out = await res
            if out is not None and hasattr(out, "__aiter__"):
                await _send_all(ctx, m.ser, out)
        elif res is not None and hasattr(res, "__aiter__"):
            await _send_all(ctx, m.ser, res)
        ctx._finish_default()
    except RpcError as e:
        if not n.is_cancelled():
            await _flush_quietly(ctx)  # what was yielded before the error goes first
            trailers = e.trailers or ctx._trailers
            try:
                n.finish(int(e.code), e.message, e.details, trailers)
            except RpcError:
                pass
    except asyncio.CancelledError:
        if not n.is_cancelled():
            n.cancel()
        return
    except Exception as e:
        log.exception("rillrpc: handler for %s raised", m.path)
        await _flush_quietly(ctx)
        try:
            n.finish(int(StatusCode.UNKNOWN), f"Unexpected error in handler: {type(e).__name__}: {e}")
        except RpcError:
            pass
