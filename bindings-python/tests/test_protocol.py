"""gRPC-Web and Connect beside gRPC: the Python client speaking each (`Channel(protocol=)`)
to the Python server, over HTTP/2 and HTTP/1.1 (`Channel(http_version=)`), the server
telling a handler which protocol the client spoke and in which codec (`ServerCall.protocol`,
`ServerCall.codec`), and CORS for browser pages (`Server(cors=)`) over HTTP/1.1."""

from __future__ import annotations

import asyncio
import struct
from typing import Any, AsyncIterator, Dict, List, Tuple

import pytest
from conftest import ECHO, SERVICE, echo_pb2

import rillrpc
from rillrpc import Protocol, RpcError, ServerCall, Shape, StatusCode

Req = echo_pb2.Request
Resp = echo_pb2.Response
WHICH = "/test.Protocol/Which"

PROTOCOLS = ["grpc-web", "connect", "grpc", "ttheader"]


@pytest.fixture(params=PROTOCOLS)
async def channel(request: Any, rill_server: rillrpc.Server) -> AsyncIterator[rillrpc.Channel]:
    async with rillrpc.Channel(f"http://127.0.0.1:{rill_server.port}", protocol=request.param) as ch:
        yield ch


async def test_every_shape(channel: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(channel, SERVICE)
    assert (await stub.PingPong(Req(payload=b"hello"))).payload == b"hello"
    so: Dict[str, Any] = {}
    if channel.protocol is Protocol.TTHEADER:
        # The stub's messages are protobuf: PingPong went as Kitex's Protobuf, and Kitex's
        # TTHeader Streaming carries Thrift only (test_kitex_protobuf.py). The streams below
        # carry the same bytes with no codec named (`content_subtype=""`), as a C caller's do.
        for rpc in (stub.EchoServer, stub.Echo):
            with pytest.raises(RpcError) as e:
                call = rpc(Req(payload=b"s", count=1)) if rpc is stub.EchoServer else rpc()
                await call.recv()
            assert e.value.code == StatusCode.UNIMPLEMENTED, e.value
            assert "over gRPC" in e.value.message
        so = {"content_subtype": ""}
    got = [r.payload async for r in stub.EchoServer(Req(payload=b"s", count=1000), **so)]
    assert got == [b"s"] * 1000
    resp = await stub.EchoClient(iter([Req(payload=b"abcd")] * 25), **so)
    assert resp.payload == b"100"
    call = stub.Echo(**so)
    for i in range(30):
        await call.send(Req(payload=b"%d" % i))
        assert (await call.recv()).payload == b"%d" % i
    await call.close_send()
    assert await call.recv() is None
    assert await call.code() == StatusCode.OK


async def test_metadata_and_status(channel: rillrpc.Channel) -> None:
    stub = rillrpc.Stub(channel, SERVICE)
    md = (("echo-a", "1"), ("echo-b-bin", b"\x00\xff"), ("other", "x"))
    call = stub.PingPong(Req(payload=b"m"), metadata=md)
    assert (await call).payload == b"m"
    headers = dict(await call.headers())
    assert headers["echo-a"] == "1" and headers["echo-b-bin"] == b"\x00\xff"
    assert "other" not in headers
    assert dict(await call.trailers())["echo-a"] == "1"

    so: Dict[str, Any] = {"content_subtype": ""} if channel.protocol is Protocol.TTHEADER else {}  # test_every_shape
    for rpc in (stub.PingPong, stub.EchoServer):
        with pytest.raises(RpcError) as e:
            opts = so if rpc is stub.EchoServer else {}
            r = rpc(Req(payload="nothing here: é".encode(), count=-5), metadata=[("echo-why", "because")], **opts)
            if rpc is stub.EchoServer:
                async for _ in r:
                    pass
            else:
                await r
        # Kitex's TTHeader says an error by its message alone (a TApplicationException):
        # the code arrives as INTERNAL.
        want = StatusCode.INTERNAL if channel.protocol is Protocol.TTHEADER else StatusCode.NOT_FOUND
        assert e.value.code == want
        assert e.value.message == "nothing here: é"
        assert dict(e.value.trailers)["echo-why"] == "because"


async def test_async_for_server_streaming_over_connect(rill_server: rillrpc.Server) -> None:
    target = f"http://127.0.0.1:{rill_server.port}"
    async with rillrpc.Channel(target, protocol=Protocol.CONNECT) as ch:
        assert ch.protocol is Protocol.CONNECT
        n = 0
        async for m in ch.server_streaming("/echo.TestService/EchoServer", Req(payload=b"x" * 300, count=5000).SerializeToString()):
            assert Resp.FromString(m).payload == b"x" * 300
            n += 1
        assert n == 5000


async def test_the_server_call_knows_the_protocol() -> None:
    seen: List[Tuple[str, Any]] = []

    async def which(req: bytes, ctx: ServerCall) -> bytes:
        seen.append((ctx.method, ctx.protocol))
        return str(ctx.protocol).encode()

    server = rillrpc.Server()
    server.add_method(WHICH, Shape.UNARY, which)
    async with server:
        for name in PROTOCOLS:
            async with rillrpc.Channel(f"http://127.0.0.1:{server.port}", protocol=name) as ch:
                assert await ch.unary(WHICH, b"?") == name.encode()
    assert seen == [(WHICH, Protocol(n)) for n in PROTOCOLS]
    assert all(isinstance(p, Protocol) for _, p in seen)

    # The pull form: calls out of `async for call in server`.
    puller = rillrpc.Server()
    puller.add_method(ECHO, Shape.BIDI)
    puller.bind()
    calls = puller.__aiter__()
    try:
        for name in PROTOCOLS:
            async with rillrpc.Channel(f"http://127.0.0.1:{puller.port}", protocol=name) as ch:
                call = ch.bidi(ECHO)
                await call.send(b"hi")
                pulled = await calls.__anext__()
                assert pulled.protocol == name and isinstance(pulled.protocol, Protocol)
                await pulled.send(await pulled.recv())
                pulled.finish()
                assert await call.recv() == b"hi"
                await call.close_send()
                assert await call.code() == StatusCode.OK
    finally:
        await puller.stop(0)


async def test_a_biz_status_ends_a_call_on_every_protocol() -> None:
    """A handler raising `BizStatusError` ends its call with Kitex's business status; the
    client raises it back, code, message and extra map whole, whatever the protocol
    (gRPC's trailers, TTHeader's string pairs, a Connect or gRPC-Web end message)."""
    extra = {"sku": "a-1", "note": "ñ ✓"}

    async def unary(req: bytes, ctx: ServerCall) -> bytes:
        raise rillrpc.BizStatusError(7, "out of stock: " + req.decode(), extra)

    async def stream(req: bytes, ctx: ServerCall) -> AsyncIterator[bytes]:
        yield b"first"
        raise rillrpc.BizStatusError(-3, "", None)

    server = rillrpc.Server()
    server.add_method("/test.Biz/Unary", Shape.UNARY, unary)
    server.add_method("/test.Biz/Stream", Shape.SERVER_STREAMING, stream)
    async with server:
        for name in PROTOCOLS:
            async with rillrpc.Channel(f"http://127.0.0.1:{server.port}", protocol=name) as ch:
                with pytest.raises(rillrpc.BizStatusError) as e:
                    await ch.unary("/test.Biz/Unary", b"pen")
                assert (e.value.biz_code, e.value.biz_message, e.value.biz_extra) == (7, "out of stock: pen", extra), name
                assert e.value.code == StatusCode.INTERNAL and isinstance(e.value, RpcError)
                assert dict(e.value.trailers)["biz-status"] == "7"

                got = []
                with pytest.raises(rillrpc.BizStatusError) as e:
                    async for m in ch.server_streaming("/test.Biz/Stream", b""):
                        got.append(m)
                assert got == [b"first"]
                assert (e.value.biz_code, e.value.biz_message, e.value.biz_extra) == (-3, "", {}), name


def test_a_biz_status_error_is_built_by_the_core() -> None:
    e = rillrpc.BizStatusError(5, "no", {"echo-count": "-5"})
    assert (e.code, e.message) == (StatusCode.INTERNAL, "no")
    # WIRE.md §3.2, Kitex over gRPC: `biz-status: 5`, `biz-extra: {"echo-count":"-5"}`.
    assert e.trailers == (("biz-status", "5"), ("biz-extra", '{"echo-count":"-5"}'))
    assert str(e) == "biz status 5: no"
    # An RpcError whose trailers say nothing of a biz status stays one.
    plain = rillrpc._native.status_error(13, "x", None, (("biz-status", "five"),))
    assert type(plain) is RpcError


def test_protocol_names_and_bad_values() -> None:
    assert [str(p) for p in Protocol] == ["grpc", "grpc-web", "connect", "ttheader"]
    assert Protocol.GRPC_WEB == "grpc-web"
    assert rillrpc.Channel("http://127.0.0.1:1").protocol is Protocol.GRPC
    for bad in ("http3", "GRPC", "", "grpc_web"):
        with pytest.raises(ValueError, match=r"unknown protocol .*'grpc', 'grpc-web', 'connect'"):
            rillrpc.Channel("http://127.0.0.1:1", protocol=bad)
    with pytest.raises(TypeError):
        rillrpc.Channel("http://127.0.0.1:1", protocol=2)  # type: ignore[arg-type]


# ---------------------------------------------------------------- HTTP/1.1 clients


@pytest.mark.parametrize("protocol", ["connect", "grpc-web"])
async def test_http1_client(protocol: str, rill_server: rillrpc.Server) -> None:
    target = f"http://127.0.0.1:{rill_server.port}"
    async with rillrpc.Channel(target, protocol=protocol, http_version="http1") as ch:
        assert ch.http_version == "http1" and ch.protocol == protocol
        stub = rillrpc.Stub(ch, SERVICE)
        call = stub.PingPong(Req(payload=b"over http/1.1"), metadata=[("echo-a", "1")])
        assert (await call).payload == b"over http/1.1"
        assert dict(await call.headers())["echo-a"] == "1"
        assert dict(await call.trailers())["echo-a"] == "1"
        got = [r.payload async for r in stub.EchoServer(Req(payload=b"s" * 100, count=2000))]
        assert got == [b"s" * 100] * 2000
        assert (await stub.EchoClient(iter([Req(payload=b"abcd")] * 25))).payload == b"100"
        with pytest.raises(RpcError) as e:
            await stub.PingPong(Req(payload=b"nothing here", count=-5), metadata=[("echo-why", "because")])
        assert (e.value.code, e.value.message) == (StatusCode.NOT_FOUND, "nothing here")
        assert dict(e.value.trailers)["echo-why"] == "because"
        # Bidi needs HTTP/2: the core refuses to open the call.
        with pytest.raises(RpcError) as e:
            stub.Echo()
        assert e.value.code == StatusCode.UNIMPLEMENTED
        # Calls at once: each has a connection of its own.
        replies = await asyncio.gather(*(stub.PingPong(Req(payload=b"%d" % i)) for i in range(20)))
        assert [r.payload for r in replies] == [b"%d" % i for i in range(20)]


def test_http_version_names_and_bad_values() -> None:
    assert rillrpc.Channel("http://127.0.0.1:1").http_version == "http2"
    for name in ("http1", "http2", "auto"):
        ch = rillrpc.Channel("http://127.0.0.1:1", protocol="connect", http_version=name)
        assert ch.http_version == name
    # The core's rule: gRPC's trailers need HTTP/2.
    with pytest.raises(ValueError, match="gRPC needs HTTP/2"):
        rillrpc.Channel("http://127.0.0.1:1", http_version="http1")
    for bad in ("HTTP1", "http/1.1", "h2", "", "http3"):
        with pytest.raises(ValueError, match=r"unknown http_version .*: use one of 'http2', 'http1', 'auto'"):
            rillrpc.Channel("http://127.0.0.1:1", protocol="connect", http_version=bad)
    with pytest.raises(TypeError):
        rillrpc.Channel("http://127.0.0.1:1", http_version=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- codecs


async def test_the_server_call_knows_the_codec() -> None:
    seen: List[Tuple[str, str]] = []

    async def which(req: bytes, ctx: ServerCall) -> bytes:
        seen.append((str(ctx.protocol), ctx.codec))
        return b'{"codec":"%s"}' % ctx.codec.encode() if ctx.codec == "json" else req

    server = rillrpc.Server()
    server.add_method(WHICH, Shape.UNARY, which)
    async with server:
        for name in PROTOCOLS:
            async with rillrpc.Channel(f"http://127.0.0.1:{server.port}", protocol=name) as ch:
                assert await ch.unary(WHICH, b"?") == b"?"
        # TTHeader carries Thrift: its calls say so, whatever bytes they carry.
        assert seen == [(n, "thrift" if n == "ttheader" else "proto") for n in PROTOCOLS]
        seen.clear()

        # JSON, as a browser page's Connect client sends it: unary over HTTP/1.1.
        head = f"POST {WHICH} HTTP/1.1\nHost: 127.0.0.1:{server.port}\nConnect-Protocol-Version: 1\n"
        line, h, body = await http1(
            server.port, head + "Content-Type: application/json\nContent-Length: 2\n", b"{}"
        )
        assert line.startswith("HTTP/1.1 200"), line
        assert h["content-type"] == "application/json"
        assert body == b'{"codec":"json"}'
        # gRPC-Web with a JSON subtype: one enveloped message.
        msg = b"{}"
        line, h, body = await http1(
            server.port,
            f"POST {WHICH} HTTP/1.1\nHost: 127.0.0.1:{server.port}\n"
            f"Content-Type: application/grpc-web+json\nContent-Length: {5 + len(msg)}\n",
            b"\x00" + struct.pack(">I", len(msg)) + msg,
        )
        assert line.startswith("HTTP/1.1 200"), line
        assert h["content-type"] == "application/grpc-web+json"
        assert body.startswith(b"\x00" + struct.pack(">I", 16) + b'{"codec":"json"}')
    assert seen == [("connect", "json"), ("grpc-web", "json")]


# ---------------------------------------------------------------- CORS, over HTTP/1.1


async def http1(port: int, head: str, body: bytes = b"") -> Tuple[str, Dict[str, str], bytes]:
    """One HTTP/1.1 exchange, as a browser's fetch makes it: the status line, the headers
    (names lowercased) and the body."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(head.replace("\n", "\r\n").encode() + b"Connection: close\r\n\r\n" + body)
    await w.drain()
    data = await asyncio.wait_for(r.read(), 10)
    w.close()
    top, _, rest = data.partition(b"\r\n\r\n")
    lines = top.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            body, rest = body + rest[:n], rest[n + 2 :]
        rest = body
    return lines[0], headers, rest


def preflight(port: int, origin: str) -> Any:
    return http1(
        port,
        f"OPTIONS /echo.TestService/PingPong HTTP/1.1\nHost: 127.0.0.1:{port}\nOrigin: {origin}\n"
        "Access-Control-Request-Method: POST\nAccess-Control-Request-Headers: content-type,echo-a\n",
    )


async def test_cors_lets_the_named_origins_call() -> None:
    server = rillrpc.Server(cors=["http://allowed.test", "http://also.test"], cors_max_age=600)
    server.add_service(SERVICE, _Echo())
    async with server:
        line, h, _ = await preflight(server.port, "http://also.test")
        assert line.startswith("HTTP/1.1 204"), line
        assert h["access-control-allow-origin"] == "http://also.test"
        assert h["access-control-allow-headers"] == "content-type,echo-a"
        assert h["access-control-max-age"] == "600"
        line, h, _ = await preflight(server.port, "http://other.test")
        assert "access-control-allow-origin" not in h

        # The call itself, as a page's fetch makes it: Connect unary over HTTP/1.1.
        body = Req(payload=b"from a page").SerializeToString()
        line, h, got = await http1(
            server.port,
            f"POST /echo.TestService/PingPong HTTP/1.1\nHost: 127.0.0.1:{server.port}\n"
            f"Origin: http://allowed.test\nContent-Type: application/proto\n"
            f"Connect-Protocol-Version: 1\nEcho-A: seen\nContent-Length: {len(body)}\n",
            body,
        )
        assert line.startswith("HTTP/1.1 200"), line
        assert h["access-control-allow-origin"] == "http://allowed.test"
        assert "echo-a" in h["access-control-expose-headers"]
        assert Resp.FromString(got).payload == b"from a page"


async def test_cors_any_origin_and_none() -> None:
    for cors, origin_back in (("*", "http://any.test"), (None, None), ([], None)):
        server = rillrpc.Server(cors=cors)
        server.add_service(SERVICE, _Echo())
        async with server:
            _, h, _ = await preflight(server.port, "http://any.test")
            assert h.get("access-control-allow-origin") == origin_back, cors
            if origin_back:
                assert h["access-control-max-age"] == "7200"
    with pytest.raises(ValueError, match="cors_max_age needs cors"):
        rillrpc.Server(cors_max_age=5).bind()
    with pytest.raises(ValueError, match="cors_max_age must be a non-negative number"):
        rillrpc.Server(cors="*", cors_max_age=-1).bind()


class _Echo:
    async def PingPong(self, req: Any, ctx: ServerCall) -> Any:
        md = [(k, v) for k, v in ctx.metadata if k.startswith("echo-")]
        if md:
            ctx.send_headers(md)
        return Resp(payload=req.payload)
