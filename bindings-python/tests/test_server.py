"""grpcio clients against the rillrpc server."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, AsyncIterator

import grpc
import grpc.aio
import pytest
from conftest import FOREVER, SLEEP, echo_pb2, echo_pb2_grpc

import rillrpc
from rillrpc import RpcError, ServerCall, Shape, StatusCode

Req = echo_pb2.Request
Resp = echo_pb2.Response


def stub(ch: grpc.aio.Channel) -> Any:
    return echo_pb2_grpc.TestServiceStub(ch)


def raw(ch: grpc.aio.Channel, path: str, shape: str = "unary_unary") -> Any:
    return getattr(ch, shape)(path)


async def test_unary(grpc_to_rill: grpc.aio.Channel) -> None:
    resp = await stub(grpc_to_rill).PingPong(Req(payload=b"hello"))
    assert resp.payload == b"hello"


async def test_metadata_headers_trailers(grpc_to_rill: grpc.aio.Channel) -> None:
    md = (("echo-a", "1"), ("echo-b-bin", b"\x01\x02"), ("other", "x"))
    call = stub(grpc_to_rill).PingPong(Req(payload=b"m"), metadata=md)
    assert (await call).payload == b"m"
    headers = dict(await call.initial_metadata())
    assert headers["echo-a"] == "1" and headers["echo-b-bin"] == b"\x01\x02"
    assert "other" not in headers
    trailers = dict(await call.trailing_metadata())
    assert trailers["echo-a"] == "1"


async def test_server_streaming(grpc_to_rill: grpc.aio.Channel) -> None:
    got = [r.payload async for r in stub(grpc_to_rill).EchoServer(Req(payload=b"s", count=2000))]
    assert got == [b"s"] * 2000


async def test_client_streaming(grpc_to_rill: grpc.aio.Channel) -> None:
    resp = await stub(grpc_to_rill).EchoClient(iter([Req(payload=b"abcd")] * 25))
    assert resp.payload == b"100"


async def test_bidi(grpc_to_rill: grpc.aio.Channel) -> None:
    call = stub(grpc_to_rill).Echo()
    for i in range(30):
        await call.write(Req(payload=b"%d" % i))
        assert (await call.read()).payload == b"%d" % i
    await call.done_writing()
    assert await call.read() is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("code", list(range(1, 17)))
async def test_status_codes(grpc_to_rill: grpc.aio.Channel, code: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub(grpc_to_rill).PingPong(Req(payload=b"failed %d" % code, count=-code))
    assert e.value.code().value[0] == code
    assert e.value.details() == "failed %d" % code


async def test_status_mid_stream(grpc_to_rill: grpc.aio.Channel) -> None:
    call = stub(grpc_to_rill).Echo()
    await call.write(Req(payload=b"a"))
    assert (await call.read()).payload == b"a"
    await call.write(Req(payload=b"out", count=-11))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call.read()
    assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE


async def test_handler_that_raises(grpc_to_rill: grpc.aio.Channel, caplog: Any) -> None:
    with caplog.at_level(logging.ERROR, logger="rillrpc"):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await raw(grpc_to_rill, "/test.Extra/Boom")(b"")
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert "the handler broke" in e.value.details()
    assert "handler for /test.Extra/Boom raised" in caplog.text
    # The server keeps serving.
    assert (await stub(grpc_to_rill).PingPong(Req(payload=b"after"))).payload == b"after"


async def test_deadline(grpc_to_rill: grpc.aio.Channel, rill_server: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await raw(grpc_to_rill, SLEEP)(b"30", timeout=0.3)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The handler is cancelled once the deadline passes.
    await asyncio.wait_for(rill_server.events.event("sleep").wait(), 10)


async def test_client_cancel_reaches_handler(grpc_to_rill: grpc.aio.Channel, rill_server: Any) -> None:
    call = raw(grpc_to_rill, FOREVER, "unary_stream")(b"f")
    assert await call.read() == b"f"
    call.cancel()
    await asyncio.wait_for(rill_server.events.event("forever").wait(), 10)


async def test_large_messages(grpc_to_rill: grpc.aio.Channel) -> None:
    big = os.urandom(3 * 1024 * 1024)
    assert (await stub(grpc_to_rill).PingPong(Req(payload=big))).payload == big
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub(grpc_to_rill).PingPong(Req(payload=os.urandom(5 * 1024 * 1024)))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_hundred_concurrent_calls(grpc_to_rill: grpc.aio.Channel) -> None:
    s = stub(grpc_to_rill)
    resps = await asyncio.gather(*(s.PingPong(Req(payload=b"%d" % i)) for i in range(100)))
    assert [r.payload for r in resps] == [b"%d" % i for i in range(100)]

    async def stream(i: int) -> int:
        return len([r async for r in s.EchoServer(Req(payload=b"x", count=100))])

    assert await asyncio.gather(*(stream(i) for i in range(100))) == [100] * 100


async def test_unknown_method(grpc_to_rill: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await raw(grpc_to_rill, "/echo.TestService/Nope")(b"")
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_context_features() -> None:
    seen: dict = {}

    async def handler(req: bytes, ctx: ServerCall) -> bytes:
        seen["remaining"] = ctx.time_remaining()
        seen["deadline"] = ctx.deadline
        seen["method"] = ctx.method
        seen["peer"] = ctx.peer()
        seen["cancelled"] = ctx.cancelled()
        ctx.send_headers([("h", "1")])
        ctx.abort(StatusCode.ALREADY_EXISTS, "exists", b"\x08\x06", [("t-bin", b"\x00")])
        return b"unreachable"

    async def streaming(req: bytes, ctx: ServerCall) -> None:
        for i in range(3):
            await ctx.send(b"%d" % i)
        ctx.set_trailers([("done", "yes")])

    server = rillrpc.Server()
    server.add_method("/t.S/U", Shape.UNARY, handler)
    server.add_method("/t.S/S", Shape.SERVER_STREAMING, streaming)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            call = ch.unary_unary("/t.S/U")(b"", timeout=20)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call
            assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
            assert e.value.details() == "exists"
            assert ("h", "1") in tuple(await call.initial_metadata())
            assert ("t-bin", b"\x00") in tuple(e.value.trailing_metadata())
            assert 0 < seen["remaining"] <= 21 and seen["deadline"] > 0
            assert seen["method"] == "/t.S/U" and "127.0.0.1" in seen["peer"]
            assert seen["cancelled"] is False
            call2 = ch.unary_stream("/t.S/S")(b"")
            assert [m async for m in call2] == [b"0", b"1", b"2"]
            assert ("done", "yes") in tuple(await call2.trailing_metadata())


async def test_pull_model() -> None:
    server = rillrpc.Server()
    server.add_method("/t.S/Echo", Shape.BIDI)
    server.add_method("/t.S/U", Shape.UNARY)
    port = server.bind("127.0.0.1:0")

    async def serve() -> None:
        async for call in server:
            if call.method == "/t.S/U":
                req = await call.recv()
                await call.send(req + b"!")
                call.finish()
            else:
                async for m in call:
                    await call.send(m.upper())
                call.finish(StatusCode.OK, trailers=[("n", "x")])

    task = asyncio.ensure_future(serve())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert await ch.unary_unary("/t.S/U")(b"hi") == b"hi!"
        call = ch.stream_stream("/t.S/Echo")(iter([b"a", b"b"]))
        assert [m async for m in call] == [b"A", b"B"]
    await server.stop(0)
    await asyncio.wait_for(task, 10)


async def test_graceful_stop_lets_calls_finish() -> None:
    async def slow(req: bytes, ctx: ServerCall) -> bytes:
        await asyncio.sleep(0.5)
        return req

    server = rillrpc.Server()
    server.add_method("/t.S/Slow", Shape.UNARY, slow)
    port = server.bind()
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary("/t.S/Slow")(b"kept")
        await asyncio.sleep(0.2)
        await server.stop(grace=5)
        assert await call == b"kept"


async def test_stop_with_zero_grace_cancels_calls() -> None:
    cancelled = asyncio.Event()

    async def slow(req: bytes, ctx: ServerCall) -> bytes:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return req

    server = rillrpc.Server()
    server.add_method("/t.S/Slow", Shape.UNARY, slow)
    port = server.bind()
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary("/t.S/Slow")(b"x")
        await asyncio.sleep(0.2)
        await server.stop(grace=0)
        with pytest.raises(grpc.aio.AioRpcError):
            await call
    assert cancelled.is_set()


async def test_coroutine_streaming_handlers() -> None:
    async def bidi(reqs: AsyncIterator[bytes], ctx: ServerCall) -> None:
        async for r in reqs:
            await ctx.send(r + r)

    async def client(reqs: AsyncIterator[bytes], ctx: ServerCall) -> bytes:
        return b",".join([r async for r in reqs])

    server = rillrpc.Server()
    server.add_method("/t.S/B", Shape.BIDI, bidi)
    server.add_method("/t.S/C", Shape.CLIENT_STREAMING, client)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            assert [m async for m in ch.stream_stream("/t.S/B")(iter([b"a", b"b"]))] == [b"aa", b"bb"]
            assert await ch.stream_unary("/t.S/C")(iter([b"x", b"y", b"z"])) == b"x,y,z"


async def test_rpc_error_from_handler_becomes_status() -> None:
    async def h(req: bytes, ctx: ServerCall) -> bytes:
        raise RpcError(StatusCode.NOT_FOUND, "no such thing")

    server = rillrpc.Server()
    server.add_method("/t.S/U", Shape.UNARY, h)
    async with server:
        async with rillrpc.Channel(f"http://127.0.0.1:{server.port}") as ch:
            with pytest.raises(RpcError) as e:
                await ch.unary("/t.S/U", b"")
            assert e.value.code == StatusCode.NOT_FOUND and e.value.message == "no such thing"


async def test_bind_errors() -> None:
    s = rillrpc.Server()
    s.add_method("/t.S/U", Shape.UNARY)
    port = s.bind("127.0.0.1:0")
    other = rillrpc.Server()
    with pytest.raises(OSError):
        other.bind(f"127.0.0.1:{port}")
    bad = rillrpc.Server()
    bad.add_method("no-slash", Shape.UNARY)
    with pytest.raises(ValueError):
        bad.bind("127.0.0.1:0")
    with pytest.raises(OSError, match="not an address"):
        rillrpc.Server().bind("not an address")
    await s.stop(0)


async def test_rillrpc_client_to_rillrpc_server(rill_server: Any) -> None:
    async with rillrpc.Channel(f"http://127.0.0.1:{rill_server.port}") as ch:
        st = rillrpc.Stub(ch, echo_pb2.DESCRIPTOR.services_by_name["TestService"])
        assert (await st.PingPong(Req(payload=b"p"))).payload == b"p"
        assert len([r async for r in st.EchoServer(Req(payload=b"p", count=5000))]) == 5000
        assert (await st.EchoClient([Req(payload=b"ab")] * 7)).payload == b"14"
        got = [r.payload async for r in st.Echo(Req(payload=b"%d" % i) for i in range(100))]
        assert got == [b"%d" % i for i in range(100)]
