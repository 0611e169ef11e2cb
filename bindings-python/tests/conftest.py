"""Shared fixtures: the echo service of shared/idl/echo.proto on grpcio (the real peer) and
on rillrpc, the generated protobuf modules, and a channel to each."""

from __future__ import annotations

import asyncio
import faulthandler
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from contextlib import contextmanager
from typing import Any, AsyncIterator, Dict, Iterator, List

import pytest

HERE = Path(__file__).resolve().parent
IDL = Path(os.environ.get("RILL_SHARED", HERE.parents[2] / "shared")) / "idl"
# The Kitex programs of interop/kitex, from `make kitex-build` (`make test-python` builds
# them); a missing one fails the tests that need it.
KITEX_OUT = Path(os.environ.get("RILL_KITEX_OUT") or HERE.parents[1] / "target" / "kitex")


# No test here takes a minute; one that hangs (a deadlock in native code holds the GIL, so
# no Python timeout can fire) prints every thread's stack and ends the run at once, rather
# than leaving `make test` to the CI's own limit with nothing to say where it stopped.
HANG_SECONDS = 300


@pytest.fixture(autouse=True)
def _hang_watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _gen_dir() -> Path:
    """echo_pb2 from grpc_tools.protoc: the mk fragment's output, or generated here."""
    d = os.environ.get("RILL_PY_GEN")
    if d and (Path(d) / "echo_pb2.py").exists():
        return Path(d)
    out = Path(tempfile.mkdtemp(prefix="rill-pb2-"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{IDL}", f"--python_out={out}",
         f"--grpc_python_out={out}", str(IDL / "echo.proto")],
        check=True,
    )
    return out


sys.path.insert(0, str(_gen_dir()))

import echo_pb2  # noqa: E402
import echo_pb2_grpc  # noqa: E402
import grpc  # noqa: E402
import grpc.aio  # noqa: E402

import rillrpc  # noqa: E402
from rillrpc import RpcError, ServerCall, Shape, StatusCode  # noqa: E402

SERVICE = echo_pb2.DESCRIPTOR.services_by_name["TestService"]
PING = "/echo.TestService/PingPong"
ECHO = "/echo.TestService/Echo"
ECHO_CLIENT = "/echo.TestService/EchoClient"
ECHO_SERVER = "/echo.TestService/EchoServer"
# Extra methods (bytes in, bytes out) both test servers serve, for deadlines and cancels.
SLEEP = "/test.Extra/Sleep"  # unary: sleeps float(payload) seconds, then echoes
FOREVER = "/test.Extra/Forever"  # server streaming: a message every 1 ms until cancelled


def echo_md(md: Any) -> List[Any]:
    return [(k, v) for k, v in (md or ()) if k.startswith("echo-")]


class Events:
    """What the servers saw, for the cancellation tests."""

    def __init__(self) -> None:
        self.cancelled: Dict[str, asyncio.Event] = {}

    def event(self, name: str) -> asyncio.Event:
        return self.cancelled.setdefault(name, asyncio.Event())


# ---------------------------------------------------------------- grpcio echo server


class GrpcEcho(echo_pb2_grpc.TestServiceServicer):
    async def _start(self, context: grpc.aio.ServicerContext) -> None:
        md = echo_md(context.invocation_metadata())
        if md:
            await context.send_initial_metadata(md)
            context.set_trailing_metadata(md)

    async def PingPong(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._start(context)
        if request.count < 0:
            await context.abort(grpc.StatusCode(_grpc_code(-request.count)), request.payload.decode())
        return echo_pb2.Response(payload=request.payload)

    async def EchoServer(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await self._start(context)
        if request.count < 0:
            await context.abort(grpc.StatusCode(_grpc_code(-request.count)), request.payload.decode())
        for _ in range(request.count):
            yield echo_pb2.Response(payload=request.payload)

    async def EchoClient(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._start(context)
        total = 0
        async for r in request_iterator:
            if r.count < 0:
                await context.abort(grpc.StatusCode(_grpc_code(-r.count)), r.payload.decode())
            total += len(r.payload)
        return echo_pb2.Response(payload=str(total).encode())

    async def Echo(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await self._start(context)
        async for r in request_iterator:
            if r.count < 0:
                await context.abort(grpc.StatusCode(_grpc_code(-r.count)), r.payload.decode())
            yield echo_pb2.Response(payload=r.payload)


def _grpc_code(n: int) -> Any:
    for c in grpc.StatusCode:
        if c.value[0] == n:
            return c.value
    raise ValueError(n)


def grpc_extra(events: Events) -> grpc.GenericRpcHandler:
    async def sleep(req: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            await asyncio.sleep(float(req.decode()))
        except asyncio.CancelledError:
            events.event("sleep").set()
            raise
        return req

    async def forever(req: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        try:
            while True:
                yield req
                await asyncio.sleep(0.001)
        finally:  # cancelled, or closed at a yield: it never ends on its own
            events.event("forever").set()

    return grpc.method_handlers_generic_handler(
        "test.Extra",
        {
            "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
            "Forever": grpc.unary_stream_rpc_method_handler(forever),
        },
    )


@pytest.fixture
async def grpc_server() -> AsyncIterator[Any]:
    events = Events()
    server = grpc.aio.server()
    echo_pb2_grpc.add_TestServiceServicer_to_server(GrpcEcho(), server)
    server.add_generic_rpc_handlers((grpc_extra(events),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    server.events = events  # type: ignore[attr-defined]
    server.port = port  # type: ignore[attr-defined]
    yield server
    await server.stop(0)


@pytest.fixture
async def rill_to_grpc(grpc_server: Any) -> AsyncIterator[rillrpc.Channel]:
    async with rillrpc.Channel(f"http://127.0.0.1:{grpc_server.port}") as ch:
        yield ch


# ---------------------------------------------------------------- rillrpc echo server


def _fail(req: Any, ctx: ServerCall) -> None:
    if req.count < 0:
        ctx.abort(-req.count, req.payload.decode())


class RillEcho:
    """The echo service as rillrpc handlers (servicer for `Server.add_service`)."""

    async def PingPong(self, req: Any, ctx: ServerCall) -> Any:
        _start(ctx)
        _fail(req, ctx)
        return echo_pb2.Response(payload=req.payload)

    async def EchoServer(self, req: Any, ctx: ServerCall) -> AsyncIterator[Any]:
        _start(ctx)
        _fail(req, ctx)
        resp = echo_pb2.Response(payload=req.payload)
        for _ in range(req.count):
            yield resp

    async def EchoClient(self, reqs: AsyncIterator[Any], ctx: ServerCall) -> Any:
        _start(ctx)
        total = 0
        async for r in reqs:
            _fail(r, ctx)
            total += len(r.payload)
        return echo_pb2.Response(payload=str(total).encode())

    async def Echo(self, reqs: AsyncIterator[Any], ctx: ServerCall) -> AsyncIterator[Any]:
        _start(ctx)
        async for r in reqs:
            _fail(r, ctx)
            yield echo_pb2.Response(payload=r.payload)


def _start(ctx: ServerCall) -> None:
    md = echo_md(ctx.metadata)
    if md:
        ctx.send_headers(md)
        ctx.set_trailers(md)


def rill_extra(server: rillrpc.Server, events: Events) -> None:
    async def sleep(req: bytes, ctx: ServerCall) -> bytes:
        try:
            await asyncio.sleep(float(req.decode()))
        except asyncio.CancelledError:
            events.event("sleep").set()
            raise
        return req

    async def forever(req: bytes, ctx: ServerCall) -> AsyncIterator[bytes]:
        try:
            while True:
                yield req
                await asyncio.sleep(0.001)
        finally:  # cancelled, or closed at a yield: it never ends on its own
            events.event("forever").set()

    async def boom(req: bytes, ctx: ServerCall) -> bytes:
        raise ValueError("the handler broke")

    server.add_method(SLEEP, Shape.UNARY, sleep)
    server.add_method(FOREVER, Shape.SERVER_STREAMING, forever)
    server.add_method("/test.Extra/Boom", Shape.UNARY, boom)


@pytest.fixture
async def rill_server() -> AsyncIterator[rillrpc.Server]:
    events = Events()
    server = rillrpc.Server()
    server.add_service(SERVICE, RillEcho())
    rill_extra(server, events)
    server.bind("127.0.0.1:0")
    await server.start()
    server.events = events  # type: ignore[attr-defined]
    yield server
    await server.stop(0)


@pytest.fixture
async def grpc_to_rill(rill_server: rillrpc.Server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rill_server.port}") as ch:
        yield ch


def kitex_bin(name: str) -> str:
    p = KITEX_OUT / name
    if not p.exists():
        pytest.fail(f"{p} is missing: make kitex-build (make test-python builds it), or set RILL_KITEX_OUT")
    return str(p)


@contextmanager
def kitex_server_at(*args: str) -> Iterator[str]:
    """kitex-server (with `args`) on a free port: its address."""
    p = subprocess.Popen(
        [kitex_bin("kitex-server"), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line.startswith("listening on "):
            p.kill()
            _, err = p.communicate(timeout=5)
            pytest.fail(f"kitex-server did not start: {line!r} {err}")
        yield line.split()[-1]
    finally:
        p.kill()
        p.wait()
