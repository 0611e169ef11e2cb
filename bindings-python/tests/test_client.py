"""The rillrpc client against a grpcio server."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from conftest import ECHO, ECHO_CLIENT, ECHO_SERVER, FOREVER, PING, SERVICE, SLEEP, echo_pb2

import rillrpc
from rillrpc import RpcError, StatusCode

Req = echo_pb2.Request
Resp = echo_pb2.Response


async def test_unary_bytes_and_protobuf(rill_to_grpc: rillrpc.Channel) -> None:
    raw = await rill_to_grpc.unary(PING, Req(payload=b"hi").SerializeToString())
    assert Resp.FromString(raw).payload == b"hi"
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    resp = await stub.PingPong(Req(payload=b"proto"))
    assert isinstance(resp, Resp) and resp.payload == b"proto"


async def test_unary_metadata_headers_trailers(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    md = [("echo-a", "1"), ("echo-b-bin", b"\x00\xff"), ("other", "x")]
    call = stub.PingPong(Req(payload=b"m"), metadata=md)
    assert (await call).payload == b"m"
    headers = dict(await call.headers())
    assert headers["echo-a"] == "1" and headers["echo-b-bin"] == b"\x00\xff"
    assert "other" not in headers
    trailers = dict(await call.trailers())
    assert trailers["echo-a"] == "1" and trailers["echo-b-bin"] == b"\x00\xff"
    assert await call.code() == StatusCode.OK


async def test_metadata_as_mapping(rill_to_grpc: rillrpc.Channel) -> None:
    call = rill_to_grpc.unary(PING, b"", metadata={"echo-k": "v"})
    await call
    assert ("echo-k", "v") in await call.headers()


async def test_server_streaming(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    got = [r.payload async for r in stub.EchoServer(Req(payload=b"s", count=1000))]
    assert got == [b"s"] * 1000
    empty = [r async for r in stub.EchoServer(Req(payload=b"s", count=0))]
    assert empty == []


async def test_server_streaming_recv(rill_to_grpc: rillrpc.Channel) -> None:
    call = rill_to_grpc.server_streaming(ECHO_SERVER, Req(payload=b"r", count=3).SerializeToString())
    got = []
    while (m := await call.recv()) is not None:
        got.append(Resp.FromString(m).payload)
    assert got == [b"r"] * 3
    assert await call.code() == StatusCode.OK


async def test_client_streaming_iterables(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    resp = await stub.EchoClient([Req(payload=b"ab")] * 10)
    assert resp.payload == b"20"

    async def agen() -> Any:
        for i in range(5):
            yield Req(payload=b"x" * i)

    assert (await stub.EchoClient(agen())).payload == b"10"


async def test_client_streaming_call_object(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    call = stub.EchoClient()
    for _ in range(100):
        await call.send(Req(payload=b"abc"))
    await call.close_send()
    assert (await call).payload == b"300"


async def test_bidi_ping_pong(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    call = stub.Echo(metadata=[("echo-x", "y")])
    for i in range(50):
        await call.send(Req(payload=b"%d" % i))
        assert (await call.recv()).payload == b"%d" % i
    await call.close_send()
    assert await call.recv() is None
    assert ("echo-x", "y") in await call.trailers()


async def test_bidi_send_and_receive_from_two_tasks(rill_to_grpc: rillrpc.Channel) -> None:
    call = rill_to_grpc.bidi(ECHO)
    n = 5000

    async def writer() -> None:
        for i in range(n):
            await call.send(Req(payload=b"%d" % i).SerializeToString())
        await call.close_send()

    async def reader() -> list:
        return [Resp.FromString(m).payload async for m in call]

    _, got = await asyncio.gather(writer(), reader())
    assert got == [b"%d" % i for i in range(n)]


async def test_bidi_with_request_iterator(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    got = [r.payload async for r in stub.Echo(Req(payload=b"%d" % i) for i in range(20))]
    assert got == [b"%d" % i for i in range(20)]


@pytest.mark.parametrize("code", list(range(1, 17)))
async def test_status_codes(rill_to_grpc: rillrpc.Channel, code: int) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    with pytest.raises(RpcError) as e:
        await stub.PingPong(Req(payload=b"failed %d" % code, count=-code))
    assert e.value.code == StatusCode(code)
    assert e.value.message == "failed %d" % code
    assert isinstance(e.value.trailers, tuple)


async def test_status_in_streams(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    with pytest.raises(RpcError) as e:
        async for _ in stub.EchoServer(Req(payload=b"nope", count=-7)):
            pass
    assert e.value.code == StatusCode.PERMISSION_DENIED
    call = stub.Echo()
    await call.send(Req(payload=b"ok"))
    assert (await call.recv()).payload == b"ok"
    await call.send(Req(payload=b"stop", count=-9))
    with pytest.raises(RpcError) as e:
        await call.recv()
    assert e.value.code == StatusCode.FAILED_PRECONDITION and e.value.message == "stop"


async def test_deadline_exceeded(rill_to_grpc: rillrpc.Channel) -> None:
    with pytest.raises(RpcError) as e:
        await rill_to_grpc.unary(SLEEP, b"5", timeout=0.2)
    assert e.value.code == StatusCode.DEADLINE_EXCEEDED
    assert await rill_to_grpc.unary(SLEEP, b"0", timeout=5) == b"0"


async def test_deadline_on_stream(rill_to_grpc: rillrpc.Channel) -> None:
    with pytest.raises(RpcError) as e:
        async for _ in rill_to_grpc.server_streaming(FOREVER, b"f", timeout=0.3):
            pass
    assert e.value.code == StatusCode.DEADLINE_EXCEEDED


async def test_task_cancel_cancels_the_rpc(rill_to_grpc: rillrpc.Channel, grpc_server: Any) -> None:
    task = asyncio.ensure_future(rill_to_grpc.unary(SLEEP, b"30"))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(grpc_server.events.event("sleep").wait(), 10)


async def test_cancel_method(rill_to_grpc: rillrpc.Channel, grpc_server: Any) -> None:
    call = rill_to_grpc.server_streaming(FOREVER, b"f")
    assert await call.recv() == b"f"
    call.cancel()
    with pytest.raises(RpcError) as e:
        async for _ in call:
            pass
    assert e.value.code == StatusCode.CANCELLED
    await asyncio.wait_for(grpc_server.events.event("forever").wait(), 10)


async def test_garbage_collected_call_cancels(rill_to_grpc: rillrpc.Channel, grpc_server: Any) -> None:
    call = rill_to_grpc.server_streaming(FOREVER, b"g")
    assert await call.recv() == b"g"
    del call
    gc.collect()
    await asyncio.wait_for(grpc_server.events.event("forever").wait(), 10)


async def test_large_messages(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    big = os.urandom(3 * 1024 * 1024)
    assert (await stub.PingPong(Req(payload=big))).payload == big
    call = stub.Echo()
    for _ in range(3):
        await call.send(Req(payload=big))
        assert (await call.recv()).payload == big
    await call.close_send()
    # Beyond the 4 MiB default limit, on either side.
    with pytest.raises(RpcError) as e:
        await stub.PingPong(Req(payload=os.urandom(5 * 1024 * 1024)))
    assert e.value.code == StatusCode.RESOURCE_EXHAUSTED


async def test_max_recv_message_size(rill_to_grpc: rillrpc.Channel) -> None:
    with pytest.raises(RpcError) as e:
        await rill_to_grpc.unary(SLEEP, b"0" * 2000, timeout=5, max_recv_message_size=1000)
    assert e.value.code == StatusCode.RESOURCE_EXHAUSTED


async def test_hundred_concurrent_calls(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    resps = await asyncio.gather(*(stub.PingPong(Req(payload=b"%d" % i)) for i in range(100)))
    assert [r.payload for r in resps] == [b"%d" % i for i in range(100)]

    # 100 streams x 50 small messages: far more and h2's DATA-frame flood guard (its
    # default budget) trips on grpcio's one-frame-per-message stream (see the report).
    async def stream(i: int) -> int:
        return len([r async for r in stub.EchoServer(Req(payload=b"%d" % i, count=50))])

    assert await asyncio.gather(*(stream(i) for i in range(100))) == [50] * 100


async def test_unknown_method(rill_to_grpc: rillrpc.Channel) -> None:
    with pytest.raises(RpcError) as e:
        await rill_to_grpc.unary("/echo.TestService/Nope", b"")
    assert e.value.code == StatusCode.UNIMPLEMENTED


async def test_unavailable() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    async with rillrpc.Channel(f"http://127.0.0.1:{port}") as ch:
        with pytest.raises(RpcError) as e:
            await ch.unary(PING, b"")
        assert e.value.code == StatusCode.UNAVAILABLE


async def test_bad_input() -> None:
    with pytest.raises(ValueError):
        rillrpc.Channel("ftp://nowhere")
    ch = rillrpc.Channel("http://127.0.0.1:1")
    with pytest.raises(RpcError) as e:
        ch.unary("no-slash", b"")
    assert e.value.code == StatusCode.INVALID_ARGUMENT
    with pytest.raises(ValueError):
        ch.unary(PING, b"", metadata=[("Bad Key", "v")])
    with pytest.raises(ValueError):
        ch.unary(PING, b"", metadata=[("k", "new\nline")])
    with pytest.raises(TypeError):
        ch.unary(PING, b"", metadata=[("k", 5)])
    with pytest.raises(ValueError):
        ch.unary(PING, b"", timeout=-1)
    with pytest.raises(ValueError):
        ch.unary(PING, b"", compression="brotli")
    with pytest.raises(TypeError):
        ch.unary(PING, "not bytes")  # type: ignore[arg-type]


async def test_gzip_request(rill_to_grpc: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(rill_to_grpc, SERVICE)
    r = await stub.PingPong(Req(payload=b"z" * 10000), compression="gzip")
    assert r.payload == b"z" * 10000


PEER = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, sys.argv[1])
    import grpc, echo_pb2, echo_pb2_grpc

    class S(echo_pb2_grpc.TestServiceServicer):
        async def EchoServer(self, req, ctx):
            while True:
                yield echo_pb2.Response(payload=req.payload)
                await asyncio.sleep(0.001)

    async def main():
        s = grpc.aio.server()
        echo_pb2_grpc.add_TestServiceServicer_to_server(S(), s)
        port = s.add_insecure_port("127.0.0.1:0")
        await s.start()
        print(port, flush=True)
        await s.wait_for_termination()

    asyncio.run(main())
    """
)


async def test_peer_dies_mid_stream() -> None:
    gen = os.path.dirname(echo_pb2.__file__)
    p = subprocess.Popen([sys.executable, "-c", PEER, gen], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        port = int(await asyncio.get_running_loop().run_in_executor(None, p.stdout.readline))
        async with rillrpc.Channel(f"http://127.0.0.1:{port}") as ch:
            stub = rillrpc.Stub(ch, SERVICE)
            n = 0
            with pytest.raises(RpcError) as e:
                async for _ in stub.EchoServer(Req(payload=b"d")):
                    n += 1
                    if n == 10:
                        os.kill(p.pid, signal.SIGKILL)
            assert e.value.code in (StatusCode.UNAVAILABLE, StatusCode.INTERNAL, StatusCode.UNKNOWN)
    finally:
        p.kill()
        p.wait()


async def _unary_past_unread_server_streams(port: int, **channel: Any) -> bool:
    """Eight grpcio server streams of 2 MiB each that the application reads nothing of yet,
    then a unary call on the same channel: whether it got through within 2 s. Then every
    stream is read whole."""
    async with rillrpc.Channel(f"http://127.0.0.1:{port}", **channel) as ch:
        await ch.unary(PING, b"")
        req = Req(payload=bytes(range(256)) * 128, count=64).SerializeToString()
        calls = [ch.server_streaming(ECHO_SERVER, req) for _ in range(8)]
        for c in calls:
            await c.headers()
        await asyncio.sleep(0.5)
        try:
            await ch.unary(PING, b"", timeout=2)
            through = True
        except RpcError as e:
            assert e.code == StatusCode.DEADLINE_EXCEEDED, e
            through = False
        # All at once: read one at a time, the others could take the window it frees and
        # hold it unread (the connection's first 4 MiB when it cannot grow).
        async def count(c: Any) -> int:
            n = 0
            while await c.recv() is not None:
                n += 1
            return n

        assert await asyncio.gather(*map(count, calls)) == [64] * 8
        return through


async def test_unread_server_streams_do_not_stall_the_channels_other_calls(grpc_server: Any) -> None:
    assert await _unary_past_unread_server_streams(grpc_server.port)


async def test_connection_receive_budget_bounds_what_unread_server_streams_hold(grpc_server: Any) -> None:
    # Under the connection's first 4 MiB: the window stays there, and 8 unread streams of 1 MiB
    # windows spend it.
    assert not await _unary_past_unread_server_streams(grpc_server.port, connection_receive_budget=1)
    with pytest.raises(OverflowError):
        rillrpc.Channel("http://127.0.0.1:1", connection_receive_budget=-1)


async def test_authority_names_the_server_in_host() -> None:
    """`authority=` replaces the target's host:port in `Host` (and `:authority`), as
    grpcio's `grpc.default_authority`: a bare HTTP/1.1 listener records what it got."""
    hosts: list = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = (await r.readuntil(b"\r\n\r\n")).decode()
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in head.split("\r\n")[1:] if x)}
        hosts.append(fields.get("host"))
        await r.readexactly(int(fields.get("content-length", "0")))
        body = b'{"code":"not_found","message":"seen"}'
        w.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await w.drain()
        w.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        for authority in ("echo", None):
            async with rillrpc.Channel(
                f"http://127.0.0.1:{port}", protocol="connect", http_version="http1", authority=authority
            ) as ch:
                with pytest.raises(RpcError) as e:
                    await ch.unary(PING, b"")
                assert e.value.code == StatusCode.NOT_FOUND
    finally:
        listener.close()
        await listener.wait_closed()
    assert hosts == ["echo", f"127.0.0.1:{port}"]
    with pytest.raises(ValueError, match="authority"):
        rillrpc.Channel("http://127.0.0.1:1", authority="a b")
