"""The client: `Channel`, the call objects of the four shapes, and multi-callables."""

from __future__ import annotations

import asyncio
import collections
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Deque,
    Generator,
    Iterable,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _native
from ._loop import park, reactor
from ._native import NativeCall, NativeChannel, NativeUnary
from ._status import Metadata, MetadataValue, Protocol, RpcError, Shape, StatusCode

Serializer = Optional[Callable[[Any], bytes]]
Deserializer = Optional[Callable[[bytes], Any]]
MetadataLike = Union[Mapping[str, MetadataValue], Sequence[Tuple[str, MetadataValue]], None]
Requests = Union[AsyncIterable[Any], Iterable[Any]]


def _md(metadata: MetadataLike) -> Optional[Sequence[Tuple[str, MetadataValue]]]:
    if metadata is None:
        return None
    if isinstance(metadata, Mapping):
        return list(metadata.items())
    return metadata


# What `NativeCall.try_send_batched` says of a message it queued.
_OPENED = 1
_JOINED = 2


class Call:
    """One RPC. Send with `await send(m)` and `await close_send()`, receive with
    `async for m in call` or `await recv()`. Sending and receiving may run in two tasks."""

    __slots__ = ("_n", "_ser", "_de", "_buf", "_sender", "__weakref__")

    def __init__(self, native: NativeCall, ser: Serializer, de: Deserializer) -> None:
        self._n = native
        self._ser = ser
        self._de = de
        self._buf: Deque[bytes] = collections.deque()
        self._sender: Optional["asyncio.Task[None]"] = None

    async def send(self, message: Any) -> None:
        """Queues one message; waits only while flow control says the server is full."""
        data = self._ser(message) if self._ser is not None else message
        n = self._n
        # The messages sent in one turn of the loop leave together, in shared DATA frames,
        # when the turn ends: the first of them arranges the flush.
        r = n.try_send_batched(data)
        if r == _JOINED:
            return
        if r == _OPENED:
            asyncio.get_running_loop().call_soon(n.flush)
            return
        try:
            while True:
                e = n.send_ready()
                if e is not None:
                    await park(n, e)
                r = n.try_send_batched(data)
                if r == _OPENED:
                    asyncio.get_running_loop().call_soon(n.flush)
                if r:
                    return
        except asyncio.CancelledError:
            n.cancel()
            raise

    async def close_send(self) -> None:
        """Nothing more to send (half-close)."""
        self._n.close_send()

    def cancel(self) -> bool:
        """Aborts the call; the server sees CANCELLED, this side raises CANCELLED."""
        self._n.cancel()
        if self._sender is not None:
            self._sender.cancel()
        return True

    async def _batch(self) -> list:
        n = self._n
        try:
            while True:
                r = n.recv_batch()
                if isinstance(r, int):
                    await park(n, r)
                    continue
                return r
        except asyncio.CancelledError:
            n.cancel()
            raise

    async def recv(self) -> Any:
        """The next message, or None once the server ended the call successfully."""
        buf = self._buf
        if not buf:
            buf.extend(await self._batch())
            if not buf:
                return None
        m = buf.popleft()
        return self._de(m) if self._de is not None else m

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Any]:
        de = self._de
        buf = self._buf
        while buf:
            m = buf.popleft()
            yield de(m) if de is not None else m
        n = self._n
        try:
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
        except asyncio.CancelledError:
            n.cancel()
            raise

    async def headers(self) -> Metadata:
        """The response headers (initial metadata), once the server sent them."""
        n = self._n
        while True:
            r = n.headers()
            if isinstance(r, int):
                await park(n, r)
                continue
            return r

    async def _wait_end(self) -> Tuple[int, str, bytes, Metadata]:
        n = self._n
        st = n.status()
        while st is None:
            # Reaching the status means reading what is left; keep it for recv.
            try:
                batch = await self._batch()
            except RpcError:
                break
            if not batch:
                break
            self._buf.extend(batch)
            st = n.status()
        st = n.status()
        assert st is not None
        return st  # type: ignore[no-any-return]

    async def trailers(self) -> Metadata:
        """The trailing metadata, once the call ended."""
        return (await self._wait_end())[3]

    async def code(self) -> StatusCode:
        """The final status code, once the call ended."""
        return StatusCode((await self._wait_end())[0])

    async def details(self) -> str:
        """The final status message, once the call ended."""
        return (await self._wait_end())[1]

    def done(self) -> bool:
        return self._n.status() is not None

    def response_compressed(self) -> bool:
        """Whether the last response message received came compressed on the wire (it is
        handed to you decompressed either way); False before the first one."""
        return self._n.last_recv_compressed()

    def _send_all(self, requests: Requests) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._feed(requests))

    async def _feed(self, requests: Requests) -> None:
        try:
            if hasattr(requests, "__aiter__"):
                async for m in requests:  # type: ignore[union-attr]
                    await self.send(m)
            else:
                for m in requests:  # type: ignore[union-attr]
                    await self.send(m)
        except RpcError:
            return  # the call ended; receiving reports its status
        self._n.close_send()


class UnaryCall(Call):
    """A call with one response: `await call` gives it (unary and client streaming)."""

    __slots__ = ("_requests", "_armed")

    def __init__(
        self, native: NativeCall, ser: Serializer, de: Deserializer, requests: Optional[Requests]
    ) -> None:
        super().__init__(native, ser, de)
        self._requests = requests
        self._armed: Optional["asyncio.Future[None]"] = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._response().__await__()

    async def _settled(self) -> None:
        # While the runtime waits for the response, polling here would steal its waker.
        armed = self._armed
        if armed is not None and not armed.done():
            await asyncio.shield(armed)

    async def headers(self) -> Metadata:
        await self._settled()
        return await super().headers()

    async def _wait_end(self) -> Tuple[int, str, bytes, Metadata]:
        await self._settled()
        return await super()._wait_end()

    async def _response(self) -> Any:
        n = self._n
        try:
            if self._requests is not None:
                reqs, self._requests = self._requests, None
                await self._feed(reqs)
            armed = self._armed
            if armed is None:
                if self._buf or n.status() is not None:
                    return self._drained()
                loop, r = reactor()
                self._armed = armed = loop.create_future()
                n.drive(armed, r)
                await armed
            elif not armed.done():
                await asyncio.shield(armed)
        except asyncio.CancelledError:
            n.cancel()
            raise
        m = n.unary_result()
        assert m is not None  # the future resolves once the result is in
        return self._de(m) if self._de is not None else m

    def _drained(self) -> Any:
        # The call was read to its end through the streaming API (trailers() first).
        st = self._n.status()
        if st is not None and st[0] != 0:
            raise _native.status_error(*st)
        if len(self._buf) != 1:
            raise RpcError(
                StatusCode.INTERNAL if self._buf else StatusCode.UNIMPLEMENTED,
                f"expected one response message, got {len(self._buf)}",
            )
        m = self._buf[0]
        return self._de(m) if self._de is not None else m


class _Unary(UnaryCall):
    """A unary-unary call, run on the core's runtime from open to status: awaiting it is
    one wake-up of the loop. Headers, trailers and status are there once it is over."""

    __slots__ = ("_u", "_fut")

    def __init__(self, native: NativeUnary, de: Deserializer, fut: "asyncio.Future[None]") -> None:
        self._u = native
        self._de = de
        self._fut = fut
        self._buf = collections.deque()
        self._sender = None
        self._requests = None
        self._armed = None

    async def _response(self) -> Any:
        fut = self._fut
        if not fut.done():
            try:
                await fut
            except asyncio.CancelledError:
                self._u.cancel()
                raise
        elif fut.cancelled():
            await self._settled()
        m = self._u.result()
        assert m is not None  # the future resolves once the result is in
        return self._de(m) if self._de is not None else m

    async def _settled(self) -> None:
        fut = self._fut
        if not fut.done():
            await asyncio.shield(fut)
        u = self._u
        while not u.done():  # only after an awaiting task was cancelled
            await asyncio.sleep(0.001)

    async def send(self, message: Any) -> None:
        raise RpcError(StatusCode.FAILED_PRECONDITION, "a unary call sends its request when it is made")

    async def close_send(self) -> None:
        pass

    def cancel(self) -> bool:
        self._u.cancel()
        return True

    async def recv(self) -> Any:
        """The response, then None."""
        if self._armed is not None:
            return None
        self._armed = self._fut
        return await self._response()

    async def _messages(self) -> AsyncIterator[Any]:
        yield await self._response()

    async def headers(self) -> Metadata:
        await self._settled()
        h = self._u.headers()
        assert h is not None
        return h

    async def _wait_end(self) -> Tuple[int, str, bytes, Metadata]:
        await self._settled()
        st = self._u.status()
        assert st is not None
        return st

    def done(self) -> bool:
        return self._u.done()

    def response_compressed(self) -> bool:
        return self._u.last_recv_compressed()


class _Method:
    __slots__ = ("_chan", "_path", "_ser", "_de", "_idempotency", "_content_subtype")
    _shape = Shape.BIDI

    def __init__(
        self,
        chan: "Channel",
        path: str,
        ser: Serializer,
        de: Deserializer,
        idempotency: Optional[str] = None,
        content_subtype: Optional[str] = None,
    ) -> None:
        self._chan = chan
        self._path = path
        self._ser = ser
        self._de = de
        # The method's level (a `Stub` reads it from the descriptor), for calls that name none.
        self._idempotency = idempotency
        # The codec the messages are in ("thrift" for `rillrpc.thrift` stubs), for calls
        # that name none: the content type `application/grpc+<subtype>` says it.
        self._content_subtype = content_subtype

    def _open(
        self,
        timeout: Optional[float],
        metadata: MetadataLike,
        wait_for_ready: bool,
        compression: Optional[str],
        max_recv: Optional[int],
        max_send: Optional[int],
        idempotency: Optional[str],
        content_subtype: Optional[str],
    ) -> NativeCall:
        return self._chan._native.open(
            self._path,
            int(self._shape),
            timeout=timeout,
            metadata=_md(metadata),
            wait_for_ready=wait_for_ready,
            compression=compression,
            max_recv_message_size=max_recv,
            max_send_message_size=max_send,
            idempotency=self._idempotency if idempotency is None else idempotency,
            content_subtype=self._content_subtype if content_subtype is None else content_subtype,
        )

    def _first(self, n: NativeCall, request: Any) -> None:
        data = self._ser(request) if self._ser is not None else request
        if not n.try_send(data):
            # Only a message larger than the whole send queue gets here: send it as a
            # stream would, from a task.
            c = Call(n, None, None)
            asyncio.get_running_loop().create_task(c._feed([data]))
            return
        n.close_send()


class UnaryUnary(_Method):
    __slots__ = ()
    _shape = Shape.UNARY

    def __call__(
        self,
        request: Any,
        *,
        timeout: Optional[float] = None,
        metadata: MetadataLike = None,
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
        max_recv_message_size: Optional[int] = None,
        max_send_message_size: Optional[int] = None,
        idempotency: Optional[str] = None,
        content_subtype: Optional[str] = None,
    ) -> UnaryCall:
        data = self._ser(request) if self._ser is not None else request
        loop, r = reactor()
        fut = loop.create_future()
        n = self._chan._native.unary(
            self._path,
            data,
            fut,
            r,
            timeout,
            _md(metadata),
            wait_for_ready,
            compression,
            max_recv_message_size,
            max_send_message_size,
            self._idempotency if idempotency is None else idempotency,
            self._content_subtype if content_subtype is None else content_subtype,
        )
        return _Unary(n, self._de, fut)


class UnaryStream(_Method):
    __slots__ = ()
    _shape = Shape.SERVER_STREAMING

    def __call__(
        self,
        request: Any,
        *,
        timeout: Optional[float] = None,
        metadata: MetadataLike = None,
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
        max_recv_message_size: Optional[int] = None,
        max_send_message_size: Optional[int] = None,
        idempotency: Optional[str] = None,
        content_subtype: Optional[str] = None,
    ) -> Call:
        n = self._open(
            timeout,
            metadata,
            wait_for_ready,
            compression,
            max_recv_message_size,
            max_send_message_size,
            idempotency,
            content_subtype,
        )
        self._first(n, request)
        return Call(n, self._ser, self._de)


class StreamUnary(_Method):
    __slots__ = ()
    _shape = Shape.CLIENT_STREAMING

    def __call__(
        self,
        requests: Optional[Requests] = None,
        *,
        timeout: Optional[float] = None,
        metadata: MetadataLike = None,
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
        max_recv_message_size: Optional[int] = None,
        max_send_message_size: Optional[int] = None,
        idempotency: Optional[str] = None,
        content_subtype: Optional[str] = None,
    ) -> UnaryCall:
        n = self._open(
            timeout,
            metadata,
            wait_for_ready,
            compression,
            max_recv_message_size,
            max_send_message_size,
            idempotency,
            content_subtype,
        )
        return UnaryCall(n, self._ser, self._de, requests)


class StreamStream(_Method):
    __slots__ = ()
    _shape = Shape.BIDI

    def __call__(
        self,
        requests: Optional[Requests] = None,
        *,
        timeout: Optional[float] = None,
        metadata: MetadataLike = None,
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
        max_recv_message_size: Optional[int] = None,
        max_send_message_size: Optional[int] = None,
        idempotency: Optional[str] = None,
        content_subtype: Optional[str] = None,
    ) -> Call:
        n = self._open(
            timeout,
            metadata,
            wait_for_ready,
            compression,
            max_recv_message_size,
            max_send_message_size,
            idempotency,
            content_subtype,
        )
        c = Call(n, self._ser, self._de)
        if requests is not None:
            c._send_all(requests)
        return c


class Channel:
    """A connection to one server, `http://host:port` or `https://host:port`. Connects
    lazily; calls share one HTTP/2 connection. Usable as `async with`.

    `protocol`: what every call of the channel speaks, "grpc" (the default), "grpc-web" or
    "connect" (a `Protocol` or its name); the calls look the same in each.

    `http_version`: what the calls travel over, "http2" (the default) or "http1", for
    gRPC-Web and Connect to servers that speak only HTTP/1.1: each call then has a
    connection to itself, and bidi calls fail with UNIMPLEMENTED. "auto" lets a TLS
    server choose by ALPN on the channel's first connection (HTTP/2 over plain TCP and
    for gRPC).

    `http_get`: Connect's GET. With it, a Connect channel sends the unary calls of methods
    free of side effects as HTTP GET requests (the message in the URL, which HTTP caches
    can keep; a POST when the URL would pass 8 KiB): those of a `Stub` whose descriptor
    says `option idempotency_level = NO_SIDE_EFFECTS;`, and calls made with
    `idempotency="no-side-effects"`. Off by default.

    `authority`: the `:authority` (HTTP/2) and `Host` (HTTP/1.1) of every call in place of
    the target's host:port, as grpcio's `grpc.default_authority` option: Kitex's gRPC
    clients send the destination service's name there. The TLS server name stays the
    target's host (or `server_name`).

    `connection_receive_budget`: what a server can make the channel hold of answers not
    read yet. A connection's window grows with the streams open on it, so that streams
    nobody reads yet do not stall its other calls, up to this many bytes (64 MiB by
    default); past it, unread streams stall their connection until they are read. 0: as
    far as HTTP/2 allows."""

    def __init__(
        self,
        target: str,
        *,
        root_certificates: Optional[bytes] = None,
        server_name: Optional[str] = None,
        certificate_chain: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        protocol: Union[Protocol, str, None] = None,
        http_version: Optional[str] = None,
        http_get: bool = False,
        authority: Optional[str] = None,
        connection_receive_budget: Optional[int] = None,
    ) -> None:
        self._native = NativeChannel(
            target,
            root_certificates,
            server_name,
            certificate_chain,
            private_key,
            protocol,
            http_version,
            bool(http_get),
            authority,
            connection_receive_budget,
        )
        self.target = target

    @property
    def protocol(self) -> Protocol:
        """The protocol every call of the channel speaks."""
        return Protocol(self._native.protocol)

    @property
    def http_version(self) -> str:
        """The HTTP version the channel was given: "http2", "http1" or "auto"."""
        return self._native.http_version

    @property
    def http_get(self) -> bool:
        """Whether Connect's GET is on (see the class)."""
        return self._native.http_get

    def unary_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        *,
        idempotency: Optional[str] = None,
        content_subtype: Optional[str] = None,
    ) -> UnaryUnary:
        return UnaryUnary(self, method, request_serializer, response_deserializer, idempotency, content_subtype)

    def unary_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        *,
        idempotency: Optional[str] = None,
        content_subtype: Optional[str] = None,
    ) -> UnaryStream:
        return UnaryStream(self, method, request_serializer, response_deserializer, idempotency, content_subtype)

    def stream_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        *,
        idempotency: Optional[str] = None,
        content_subtype: Optional[str] = None,
    ) -> StreamUnary:
        return StreamUnary(self, method, request_serializer, response_deserializer, idempotency, content_subtype)

    def stream_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        *,
        idempotency: Optional[str] = None,
        content_subtype: Optional[str] = None,
    ) -> StreamStream:
        return StreamStream(self, method, request_serializer, response_deserializer, idempotency, content_subtype)

    # Byte-level conveniences, one per shape. Each takes the keyword arguments of the
    # multi-callables: timeout, metadata, ..., idempotency ("unknown",
    # "no-side-effects", "idempotent": a unary call marked "no-side-effects" goes as
    # Connect's GET on a channel with http_get), and content_subtype ("thrift": the
    # content type becomes application/grpc+thrift; "proto" when none is named).
    def unary(self, method: str, request: bytes, **kw: Any) -> UnaryCall:
        return UnaryUnary(self, method, None, None)(request, **kw)

    def server_streaming(self, method: str, request: bytes, **kw: Any) -> Call:
        return UnaryStream(self, method, None, None)(request, **kw)

    def client_streaming(self, method: str, requests: Optional[Requests] = None, **kw: Any) -> UnaryCall:
        return StreamUnary(self, method, None, None)(requests, **kw)

    def bidi(self, method: str, requests: Optional[Requests] = None, **kw: Any) -> Call:
        return StreamStream(self, method, None, None)(requests, **kw)

    def close(self) -> None:
        """Later calls fail with UNAVAILABLE; calls in flight run to their end."""
        self._native.close()

    async def __aenter__(self) -> "Channel":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
