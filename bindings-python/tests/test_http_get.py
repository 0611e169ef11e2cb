"""Connect's GET from Python: a `Stub` reads each method's `idempotency_level` from its
descriptor, so on a channel with `http_get=True` a method marked NO_SIDE_EFFECTS goes as an
HTTP GET, and a server registered from that descriptor (`add_service`) answers GET for it,
with no user code; raw calls and methods name the level (`idempotency="no-side-effects"`).
Over HTTP/2 and HTTP/1.1, checked against the Python server, a GET written with
`http.client`, and a bare HTTP/1.1 listener that reads the client's request line."""

from __future__ import annotations

import asyncio
import base64
import http.client
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Tuple

import pytest

import rillrpc
from rillrpc import RpcError, ServerCall, Shape, StatusCode

HERE = Path(__file__).resolve().parent


def _lookup_pb2() -> Any:
    """lookup_pb2 from tests/lookup.proto, made with grpc_tools.protoc as echo_pb2 is."""
    out = Path(tempfile.mkdtemp(prefix="rill-lookup-pb2-"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE}", f"--python_out={out}", str(HERE / "lookup.proto")],
        check=True,
    )
    spec = importlib.util.spec_from_file_location("lookup_pb2", out / "lookup_pb2.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


lookup_pb2 = _lookup_pb2()
LOOKUP = lookup_pb2.DESCRIPTOR.services_by_name["Lookup"]
Key = lookup_pb2.Key
Value = lookup_pb2.Value
GET = "/rill.test.Lookup/Get"  # option idempotency_level = NO_SIDE_EFFECTS
TOUCH = "/rill.test.Lookup/Touch"  # IDEMPOTENT
PUT = "/rill.test.Lookup/Put"  # nothing said

HTTP_VERSIONS = ["http2", "http1"]


class Lookup:
    """The servicer: each method says who answered, and notes how the call came."""

    def __init__(self) -> None:
        self.seen: List[Tuple[str, str, str]] = []

    def _note(self, ctx: ServerCall) -> None:
        self.seen.append((ctx.method, str(ctx.protocol), ctx.codec))

    async def Get(self, req: Any, ctx: ServerCall) -> Any:
        self._note(ctx)
        return Value(text=f"got {req.name}")

    async def Touch(self, req: Any, ctx: ServerCall) -> Any:
        self._note(ctx)
        return Value(text=f"touched {req.name}")

    async def Put(self, req: Any, ctx: ServerCall) -> Any:
        self._note(ctx)
        return Value(text=f"put {req.name}")


@pytest.fixture
async def lookup_server() -> AsyncIterator[rillrpc.Server]:
    """The service registered from its descriptor: Get answers GET."""
    server = rillrpc.Server()
    server.lookup = Lookup()  # type: ignore[attr-defined]
    server.add_service(LOOKUP, server.lookup)  # type: ignore[attr-defined]
    async with server:
        yield server


@pytest.fixture
async def plain_server() -> AsyncIterator[rillrpc.Server]:
    """The same handlers, registered without an idempotency: every method refuses GET."""
    server = rillrpc.Server()
    impl = Lookup()
    for m in LOOKUP.methods:
        server.add_method(
            f"/{LOOKUP.full_name}/{m.name}",
            Shape.UNARY,
            getattr(impl, m.name),
            request_deserializer=Key.FromString,
            response_serializer=Value.SerializeToString,
        )
    async with server:
        yield server


def target(server: rillrpc.Server) -> str:
    return f"http://127.0.0.1:{server.port}"


# ---------------------------------------------------------------- the stub and the server


@pytest.mark.parametrize("http_version", HTTP_VERSIONS)
async def test_the_stub_gets_what_its_descriptor_marks(
    http_version: str, lookup_server: rillrpc.Server, plain_server: rillrpc.Server
) -> None:
    # Against the server registered from the descriptor: every method answers.
    async with rillrpc.Channel(
        target(lookup_server), protocol="connect", http_version=http_version, http_get=True
    ) as ch:
        assert ch.http_get is True
        stub = rillrpc.Stub(ch, LOOKUP)
        assert (await stub.Get(Key(name="a"))).text == "got a"
        assert (await stub.Touch(Key(name="b"))).text == "touched b"
        assert (await stub.Put(Key(name="c"))).text == "put c"
        seen = lookup_server.lookup.seen  # type: ignore[attr-defined]
        assert seen == [(GET, "connect", "proto"), (TOUCH, "connect", "proto"), (PUT, "connect", "proto")]

    # Against the server that allows no GET: Get fails (405 before any handler), so it was
    # a GET; the others POST, and are served. A call may name its own level.
    async with rillrpc.Channel(
        target(plain_server), protocol="connect", http_version=http_version, http_get=True
    ) as ch:
        stub = rillrpc.Stub(ch, LOOKUP)
        with pytest.raises(RpcError) as e:
            await stub.Get(Key(name="a"))
        # A status other than 200 with no Connect error in it: UNKNOWN, as connect-go says.
        assert e.value.code == StatusCode.UNKNOWN and "405" in e.value.message, e.value
        assert (await stub.Touch(Key(name="b"))).text == "touched b"
        assert (await stub.Put(Key(name="c"))).text == "put c"
        assert (await stub.Get(Key(name="d"), idempotency="unknown")).text == "got d"

    # Without http_get every call POSTs, whatever the descriptor says.
    async with rillrpc.Channel(target(plain_server), protocol="connect", http_version=http_version) as ch:
        assert ch.http_get is False
        assert (await rillrpc.Stub(ch, LOOKUP).Get(Key(name="e"))).text == "got e"

    # gRPC and gRPC-Web have no GET: the marking changes nothing.
    for protocol in ("grpc", "grpc-web"):
        if protocol == "grpc" and http_version == "http1":
            continue
        async with rillrpc.Channel(
            target(plain_server), protocol=protocol, http_version=http_version, http_get=True
        ) as ch:
            assert (await rillrpc.Stub(ch, LOOKUP).Get(Key(name="f"))).text == "got f"


def _get(port: int, path: str, message: bytes) -> Tuple[int, Dict[str, str], bytes]:
    """A GET written with http.client, as curl or an HTTP cache would send it."""
    b64 = base64.urlsafe_b64encode(message).rstrip(b"=").decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", f"{path}?connect=v1&base64=1&encoding=proto&message={b64}")
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


async def test_a_raw_get_is_answered_for_the_marked_method_only(lookup_server: rillrpc.Server) -> None:
    port = lookup_server.port
    # http.client blocks: it runs in a thread while the loop serves.
    status, headers, body = await asyncio.to_thread(_get, port, GET, Key(name="raw").SerializeToString())
    assert status == 200
    assert headers["content-type"] == "application/proto"
    assert Value.FromString(body).text == "got raw"
    assert lookup_server.lookup.seen == [(GET, "connect", "proto")]  # type: ignore[attr-defined]
    for path in (TOUCH, PUT):
        status, headers, _ = await asyncio.to_thread(_get, port, path, Key(name="raw").SerializeToString())
        assert status == 405, path
        assert headers["allow"] == "POST"
    assert len(lookup_server.lookup.seen) == 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------- raw calls and methods


@pytest.mark.parametrize("http_version", HTTP_VERSIONS)
async def test_raw_calls_and_methods_name_their_level(http_version: str, plain_server: rillrpc.Server) -> None:
    async def get(req: bytes, ctx: ServerCall) -> bytes:
        return b"raw " + req

    server = rillrpc.Server()
    server.add_method(GET, Shape.UNARY, get, idempotency="no-side-effects")
    server.add_method(PUT, Shape.UNARY, get, idempotency="idempotent")
    async with server:
        status, _, body = await asyncio.to_thread(_get, server.port, GET, b"by hand")
        assert (status, body) == (200, b"raw by hand")
        status, _, _ = await asyncio.to_thread(_get, server.port, PUT, b"by hand")
        assert status == 405
        async with rillrpc.Channel(target(server), protocol="connect", http_version=http_version, http_get=True) as ch:
            assert await ch.unary(GET, b"x", idempotency="no-side-effects") == b"raw x"
            assert await ch.unary(PUT, b"y", idempotency="idempotent") == b"raw y"

    async with rillrpc.Channel(target(plain_server), protocol="connect", http_version=http_version, http_get=True) as ch:
        msg = Key(name="g").SerializeToString()
        with pytest.raises(RpcError):
            await ch.unary(GET, msg, idempotency="no-side-effects")
        assert Value.FromString(await ch.unary(GET, msg)).text == "got g"
        assert Value.FromString(await ch.unary(GET, msg, idempotency="idempotent")).text == "got g"
        # The multi-callables take it when made, and per call.
        mc = ch.unary_unary(GET, idempotency="no-side-effects")
        with pytest.raises(RpcError):
            await mc(msg)
        assert Value.FromString(await mc(msg, idempotency="unknown")).text == "got g"


async def test_unknown_idempotency_names_are_refused() -> None:
    names = r"use one of 'unknown', 'no-side-effects', 'idempotent'"
    async with rillrpc.Channel("http://127.0.0.1:1", protocol="connect", http_get=True) as ch:
        for bad in ("NO_SIDE_EFFECTS", "no_side_effects", "", "get"):
            with pytest.raises(ValueError, match=rf"unknown idempotency .*: {names}"):
                ch.unary(GET, b"", idempotency=bad)
            with pytest.raises(ValueError, match=rf"unknown idempotency .*: {names}"):
                ch.server_streaming(GET, b"", idempotency=bad)
        with pytest.raises(TypeError):
            ch.unary(GET, b"", idempotency=1)  # type: ignore[arg-type]
    server = rillrpc.Server()
    server.add_method(GET, Shape.UNARY, idempotency="read-only")
    with pytest.raises(ValueError, match=rf"unknown idempotency \"read-only\": {names}"):
        server.bind()


# ---------------------------------------------------------------- the request line itself


async def test_the_request_line_over_http1() -> None:
    """A bare HTTP/1.1 listener answering as a Connect server would: it records the
    request line of each call the stub makes."""
    lines: List[str] = []
    answer = Value(text="seen").SerializeToString()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = (await r.readuntil(b"\r\n\r\n")).decode()
        lines.append(head.split("\r\n")[0])
        h = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in head.split("\r\n")[1:] if x)}
        # Read the body of a POST before answering: closing on unread bytes resets.
        if "content-length" in h:
            await r.readexactly(int(h["content-length"]))
        elif h.get("transfer-encoding") == "chunked":
            await r.readuntil(b"0\r\n\r\n")
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(answer) + answer
        )
        await w.drain()
        w.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        for http_get in (True, False):
            async with rillrpc.Channel(
                f"http://127.0.0.1:{port}", protocol="connect", http_version="http1", http_get=http_get
            ) as ch:
                stub = rillrpc.Stub(ch, LOOKUP)
                for rpc in (stub.Get, stub.Touch, stub.Put):
                    assert (await rpc(Key(name="hi"))).text == "seen"
    finally:
        listener.close()
        await listener.wait_closed()
    b64 = base64.urlsafe_b64encode(Key(name="hi").SerializeToString()).rstrip(b"=").decode()
    assert lines == [
        f"GET {GET}?connect=v1&base64=1&encoding=proto&message={b64} HTTP/1.1",
        f"POST {TOUCH} HTTP/1.1",
        f"POST {PUT} HTTP/1.1",
        f"POST {GET} HTTP/1.1",
        f"POST {TOUCH} HTTP/1.1",
        f"POST {PUT} HTTP/1.1",
    ]
