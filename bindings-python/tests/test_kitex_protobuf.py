"""A protobuf `Stub` on a `ttheader` channel: its unary methods go as Kitex's Protobuf
PingPong (KitexProtobuf in TTHeaderFramed, what a Kitex client of a protobuf service sends
by default), against kitex-server --idl protobuf (real Kitex) and our own server. Its
streaming methods are refused: TTHeader Streaming carries Thrift only.

Regression: the Stub used to leave the payload unnamed, so a `ttheader` channel sent its
protobuf bytes as Thrift, which Kitex's protobuf server cannot read."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterator

import pytest
from conftest import SERVICE, RillEcho, echo_pb2, kitex_server_at

import rillrpc
from rillrpc import StatusCode

TIMEOUT = 20.0


@pytest.fixture(scope="module")
def kitex_pb_server() -> Iterator[str]:
    with kitex_server_at("--idl", "protobuf") as addr:
        yield addr


@pytest.fixture(params=["rillrpc", "kitex"])
async def stub(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A Stub of echo.proto's TestService on a `ttheader` channel to ours or Kitex's server."""
    server = None
    if request.param == "kitex":
        addr = request.getfixturevalue("kitex_pb_server")
    else:
        server = rillrpc.Server()
        server.add_service(SERVICE, RillEcho())
        server.bind("127.0.0.1:0")
        await server.start()
        addr = f"127.0.0.1:{server.port}"
    ch = rillrpc.Channel(f"http://{addr}", protocol="ttheader", authority="echo")
    try:
        yield rillrpc.Stub(ch, SERVICE)
    finally:
        ch.close()
        if server is not None:
            await server.stop(0)


@pytest.mark.parametrize("payload", [b"kitex\x00\xffprotobuf", b""])
async def test_unary_is_kitex_protobuf_pingpong(stub: Any, payload: bytes) -> None:
    got = await stub.PingPong(echo_pb2.Request(payload=payload), timeout=TIMEOUT)
    assert got == echo_pb2.Response(payload=payload)


async def test_many_calls_share_the_connection(stub: Any) -> None:
    reqs = [echo_pb2.Request(payload=b"%d" % i) for i in range(50)]
    got = await asyncio.gather(*(stub.PingPong(r, timeout=TIMEOUT) for r in reqs))
    assert [g.payload for g in got] == [r.payload for r in reqs]


async def test_a_biz_status_from_kitex(kitex_pb_server: str) -> None:
    """kitex-server answers count < 0 with a biz status error: code -count, the payload as
    its message."""
    ch = rillrpc.Channel(f"http://{kitex_pb_server}", protocol="ttheader", authority="echo")
    stub = rillrpc.Stub(ch, SERVICE)
    with pytest.raises(rillrpc.BizStatusError) as e:
        await stub.PingPong(echo_pb2.Request(payload=b"no good", count=-7), timeout=TIMEOUT)
    assert (e.value.biz_code, e.value.biz_message) == (7, "no good")
    assert dict(e.value.biz_extra) == {"echo-count": "-7"}
    ch.close()


async def test_streaming_methods_are_refused(stub: Any) -> None:
    want = "TTHeader Streaming carries Thrift only"
    with pytest.raises(rillrpc.RpcError) as e:
        async for _ in stub.EchoServer(echo_pb2.Request(payload=b"x", count=2), timeout=TIMEOUT):
            pass
    assert e.value.code == StatusCode.UNIMPLEMENTED and want in e.value.message
    call = stub.Echo(timeout=TIMEOUT)
    with pytest.raises(rillrpc.RpcError) as e:
        await call.send(echo_pb2.Request(payload=b"x"))
        await call.recv()
    assert e.value.code == StatusCode.UNIMPLEMENTED and want in e.value.message
