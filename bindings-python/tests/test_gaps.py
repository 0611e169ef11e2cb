"""TLS, compression in both directions and wait_for_ready, each against grpcio."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, AsyncIterator, Sequence, Tuple

import grpc
import grpc.aio
import pytest
import trustme
from conftest import ECHO_SERVER, PING, SERVICE, SLEEP, GrpcEcho, RillEcho, echo_pb2, echo_pb2_grpc

import rillrpc
from rillrpc import RpcError, ServerCall, Shape, StatusCode

Req = echo_pb2.Request
Resp = echo_pb2.Response


@pytest.fixture(scope="module")
def certs() -> Tuple[bytes, bytes, bytes]:
    """(CA pem, server cert chain pem, server key pem) for `localhost`, made at test time."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    return ca.cert_pem.bytes(), leaf.private_key_and_cert_chain_pem.bytes(), leaf.private_key_pem.bytes()


# grpcio dials the address and checks the certificate for `localhost`.
NAME = (("grpc.ssl_target_name_override", "localhost"),)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def grpc_tls_server(certs: Tuple[bytes, bytes, bytes]) -> Tuple[grpc.aio.Server, int]:
    _, chain, key = certs
    server = grpc.aio.server()
    echo_pb2_grpc.add_TestServiceServicer_to_server(GrpcEcho(), server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, chain)]))
    await server.start()
    return server, port


# ------------------------------------------------------------------------------- TLS


async def test_tls_client_to_grpcio(certs: Tuple[bytes, bytes, bytes]) -> None:
    server, port = await grpc_tls_server(certs)
    try:
        # Verified by the certificate's IP address (no name resolution involved).
        async with rillrpc.Channel(f"https://127.0.0.1:{port}", root_certificates=certs[0]) as ch:
            stub = rillrpc.Stub(ch, SERVICE)
            assert (await stub.PingPong(Req(payload=b"tls"))).payload == b"tls"
            got = [r.payload async for r in stub.EchoServer(Req(payload=b"s", count=100))]
            assert got == [b"s"] * 100
            call = stub.PingPong(Req(payload=b"md"), metadata=[("echo-t", "v")])
            await call
            assert ("echo-t", "v") in await call.trailers()
    finally:
        await server.stop(0)


async def test_tls_server_name_override(certs: Tuple[bytes, bytes, bytes]) -> None:
    server, port = await grpc_tls_server(certs)
    try:
        # Dialled by address, verified as `localhost`.
        async with rillrpc.Channel(
            f"https://127.0.0.1:{port}", root_certificates=certs[0], server_name="localhost"
        ) as ch:
            assert Resp.FromString(await ch.unary(PING, Req(payload=b"n").SerializeToString())).payload == b"n"
    finally:
        await server.stop(0)


async def test_tls_untrusted_server_fails(certs: Tuple[bytes, bytes, bytes]) -> None:
    server, port = await grpc_tls_server(certs)
    try:
        other = trustme.CA().cert_pem.bytes()
        async with rillrpc.Channel(f"https://127.0.0.1:{port}", root_certificates=other) as ch:
            with pytest.raises(RpcError) as e:
                await ch.unary(PING, b"", timeout=10)
            assert e.value.code == StatusCode.UNAVAILABLE
        # Plaintext to a TLS port fails too, it does not hang.
        async with rillrpc.Channel(f"http://127.0.0.1:{port}") as ch:
            with pytest.raises(RpcError) as e:
                await ch.unary(PING, b"", timeout=10)
            assert e.value.code in (StatusCode.UNAVAILABLE, StatusCode.INTERNAL, StatusCode.UNKNOWN)
    finally:
        await server.stop(0)


async def test_tls_bad_pem() -> None:
    with pytest.raises(ValueError):
        rillrpc.Channel("https://localhost:1", root_certificates=b"not a pem")
    with pytest.raises(ValueError):
        rillrpc.Channel("https://localhost:1", certificate_chain=b"x")  # no key
    server = rillrpc.Server(certificate_chain=b"junk", private_key=b"junk")
    with pytest.raises(ValueError):
        server.bind("127.0.0.1:0")


async def test_tls_server_to_grpcio_client(certs: Tuple[bytes, bytes, bytes]) -> None:
    ca, chain, key = certs
    server = rillrpc.Server(certificate_chain=chain, private_key=key)
    server.add_service(SERVICE, RillEcho())
    async with server:
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
        async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", creds, options=NAME) as ch:
            stub = echo_pb2_grpc.TestServiceStub(ch)
            assert (await stub.PingPong(Req(payload=b"secure"))).payload == b"secure"
            got = [r.payload async for r in stub.EchoServer(Req(payload=b"z", count=50))]
            assert got == [b"z"] * 50
        # A client that does not trust the CA cannot call.
        bad = grpc.ssl_channel_credentials(root_certificates=trustme.CA().cert_pem.bytes())
        async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", bad, options=NAME) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await echo_pb2_grpc.TestServiceStub(ch).PingPong(Req(payload=b"x"), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_tls_rill_to_rill(certs: Tuple[bytes, bytes, bytes]) -> None:
    ca, chain, key = certs
    server = rillrpc.Server(certificate_chain=chain, private_key=key)
    server.add_service(SERVICE, RillEcho())
    async with server:
        async with rillrpc.Channel(
            f"https://127.0.0.1:{server.port}", root_certificates=ca, server_name="localhost"
        ) as ch:
            stub = rillrpc.Stub(ch, SERVICE)
            assert (await stub.PingPong(Req(payload=b"r"))).payload == b"r"


async def test_mutual_tls_server_takes_signed_clients_only(certs: Tuple[bytes, bytes, bytes]) -> None:
    ca, chain, key = certs
    clients = trustme.CA()
    client = clients.issue_cert("client.example")
    ident = client.private_key_and_cert_chain_pem.bytes(), client.private_key_pem.bytes()
    server = rillrpc.Server(
        certificate_chain=chain, private_key=key, client_root_certificates=clients.cert_pem.bytes()
    )
    server.add_service(SERVICE, RillEcho())
    async with server:
        # grpcio's client presents its certificate: served.
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=ident[1], certificate_chain=ident[0]
        )
        async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", creds, options=NAME) as gch:
            stub = echo_pb2_grpc.TestServiceStub(gch)
            assert (await stub.PingPong(Req(payload=b"mtls"))).payload == b"mtls"
        # Ours too.
        async with rillrpc.Channel(
            f"https://127.0.0.1:{server.port}", root_certificates=ca, server_name="localhost",
            certificate_chain=ident[0], private_key=ident[1],
        ) as ch:
            assert (await rillrpc.Stub(ch, SERVICE).PingPong(Req(payload=b"r"))).payload == b"r"
        # No certificate, or one another CA signed: the handshake fails.
        stranger = trustme.CA().issue_cert("client.example")
        for cert_chain, private_key in [
            (None, None),
            (stranger.private_key_and_cert_chain_pem.bytes(), stranger.private_key_pem.bytes()),
        ]:
            creds = grpc.ssl_channel_credentials(
                root_certificates=ca, private_key=private_key, certificate_chain=cert_chain
            )
            async with grpc.aio.secure_channel(f"127.0.0.1:{server.port}", creds, options=NAME) as gch:
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await echo_pb2_grpc.TestServiceStub(gch).PingPong(Req(payload=b"x"), timeout=10)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ValueError, match="client_root_certificates needs TLS"):
        rillrpc.Server(client_root_certificates=ca).bind("127.0.0.1:0")
    # The error names the parameters the caller passed, not the native layer's.
    for half in [{"certificate_chain": chain}, {"private_key": key}]:
        with pytest.raises(ValueError, match="^server TLS needs both certificate_chain and private_key$"):
            rillrpc.Server(**half).bind("127.0.0.1:0")
        with pytest.raises(ValueError, match="^a client identity needs both certificate_chain and private_key$"):
            rillrpc.Channel("https://127.0.0.1:1", root_certificates=ca, **half)


async def peers_of_pings(
    server: rillrpc.Server, pauses: list[float], options: Sequence[Tuple[str, Any]] = ()
) -> list[str]:
    """grpcio's client (with channel `options`) pings `server`, waiting `pauses[i]` seconds
    after ping i: the peer address each ping came from."""
    peers: list[str] = []

    async def ping(req: Any, ctx: ServerCall) -> Any:
        peers.append(ctx.peer())
        return Resp(payload=req.payload)

    server.add_method(PING, Shape.UNARY, ping, request_deserializer=Req.FromString,
                      response_serializer=Resp.SerializeToString)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=options) as ch:
            stub = echo_pb2_grpc.TestServiceStub(ch)
            for i, pause in enumerate(pauses):
                assert (await stub.PingPong(Req(payload=b"%d" % i))).payload == b"%d" % i
                if pause:
                    await asyncio.sleep(pause)
    return peers


async def test_connection_age_moves_grpcio_to_a_new_connection() -> None:
    server = rillrpc.Server(max_connection_age=0.3, max_connection_age_grace=5.0)
    peers = await peers_of_pings(server, [0.7, 0, 0])
    # Told to go after its age, the first connection gave way to a second one.
    assert len(set(peers)) == 2, peers


async def test_connection_idle_closes_grpcios_idle_connection() -> None:
    peers = await peers_of_pings(rillrpc.Server(max_connection_idle=0.2), [0.7, 0.7])
    # Idle past the limit, the first connection was closed; grpcio made a second one.
    assert len(set(peers)) == 2, peers


# grpcio pinging as often as it will (it asks for every 100 ms and sends one about every
# 1.3 s), with or without calls.
EAGER_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 100),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


async def test_keepalive_enforcement_closes_grpcios_eager_pings() -> None:
    default = rillrpc.Server()
    lenient = rillrpc.Server(permit_keepalive_time=0.05, permit_keepalive_without_calls=True)
    strict_peers, lenient_peers = await asyncio.gather(
        peers_of_pings(default, [8.0, 0], EAGER_KEEPALIVE),
        peers_of_pings(lenient, [8.0, 0], EAGER_KEEPALIVE),
    )
    # Eight seconds hold some six PINGs. By default the fourth, too soon after the others,
    # got GOAWAY ENHANCE_YOUR_CALM and grpcio made a second connection; the server that
    # permits such pings kept the first.
    assert len(set(strict_peers)) == 2, strict_peers
    assert len(set(lenient_peers)) == 1, lenient_peers


async def quiet_client(port: int) -> bytes:
    """A client that says hello over HTTP/2 (the preface, an empty SETTINGS frame) and
    then neither sends nor answers anything: what the server sent until it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    got = await asyncio.wait_for(reader.read(-1), 20)
    writer.close()
    return got


def pings_in(frames: bytes) -> int:
    """How many PINGs without the ACK flag (type 6, flags 0) `frames` hold."""
    n = 0
    while len(frames) >= 9:
        length = int.from_bytes(frames[:3], "big")
        n += frames[3] == 6 and frames[4] == 0
        frames = frames[9 + length:]
    return n


async def test_server_keepalive_pings_and_closes_a_client_that_does_not_answer() -> None:
    async with rillrpc.Server(keepalive_time=0.1, keepalive_timeout=0.2) as server:
        # The server's PING came, went unanswered, and the connection closed (read ends).
        assert pings_in(await quiet_client(server.port)) == 1


async def test_server_keepalive_pings_are_answered_by_grpcio() -> None:
    # grpcio answers the server's PINGs: one connection for every ping, across pauses
    # that each hold several of the server's PINGs.
    peers = await peers_of_pings(rillrpc.Server(keepalive_time=0.05, keepalive_timeout=0.5), [0.5, 0.5, 0])
    assert len(set(peers)) == 1, peers


async def test_send_budget_cuts_a_grpcio_stream_whose_reader_stopped_reading() -> None:
    async def stream(req: Any, ctx: ServerCall) -> AsyncIterator[Any]:
        for _ in range(req.count):
            yield Resp(payload=req.payload)

    # A budget of one byte: any stalled stream holding more is cut at the next sweep.
    server = rillrpc.Server(connection_send_budget=1)
    server.add_method(ECHO_SERVER, Shape.SERVER_STREAMING, stream, request_deserializer=Req.FromString,
                      response_serializer=Resp.SerializeToString)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            call = echo_pb2_grpc.TestServiceStub(ch).EchoServer(Req(payload=b"b" * 1024, count=10**6))
            got = 0
            with pytest.raises(grpc.aio.AioRpcError) as e:
                async for _ in call:
                    got += 1
                    if got == 2:
                        # Nothing read for a while: grpcio's windows close once its buffers
                        # are full, and the server's queue fills.
                        await asyncio.sleep(3)
            # RST_STREAM ENHANCE_YOUR_CALM, which grpcio reports as RESOURCE_EXHAUSTED, after
            # what grpcio had buffered.
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
            assert got < 10**6


async def _unary_past_unread_request_streams(server: rillrpc.Server) -> bool:
    """Eight grpcio client streams of 2 MiB whose handlers read nothing yet, then a unary call
    on the same connection: whether it got through within 2 s. Then every stream is read."""
    go = asyncio.Event()

    class Waiting(RillEcho):
        async def EchoClient(self, reqs: AsyncIterator[Any], ctx: ServerCall) -> Any:
            await go.wait()
            return await super().EchoClient(reqs, ctx)

    server.add_service(SERVICE, Waiting())
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = echo_pb2_grpc.TestServiceStub(ch)
            chunk = Req(payload=b"r" * 32 * 1024)
            streams = [asyncio.ensure_future(stub.EchoClient(iter([chunk] * 64))) for _ in range(8)]
            await asyncio.sleep(0.5)
            try:
                await stub.PingPong(Req(payload=b"through"), timeout=2)
                through = True
            except grpc.aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
                through = False
            go.set()
            for s in streams:
                assert (await s).payload == str(64 * 32 * 1024).encode()
            return through


async def test_unread_request_streams_do_not_stall_a_grpcio_clients_other_calls() -> None:
    assert await _unary_past_unread_request_streams(rillrpc.Server())


async def test_receive_budgets_bound_what_unread_request_streams_hold() -> None:
    # Under the connection's first 4 MiB: the window stays there, and 8 unread streams of 1 MiB
    # windows spend it.
    assert not await _unary_past_unread_request_streams(rillrpc.Server(connection_receive_budget=1))
    assert not await _unary_past_unread_request_streams(rillrpc.Server(receive_budget=1))


def test_connection_limits_are_checked() -> None:
    for kw in ("handshake_timeout", "max_connection_age", "max_connection_age_grace", "max_connection_idle",
               "header_read_timeout", "permit_keepalive_time", "keepalive_time", "keepalive_timeout"):
        with pytest.raises(ValueError, match=f"{kw} must be a non-negative number of seconds"):
            rillrpc.Server(**{kw: -1.0}).bind("127.0.0.1:0")
    for kw in ("send_budget", "connection_send_budget", "receive_budget", "connection_receive_budget"):
        with pytest.raises(OverflowError):
            rillrpc.Server(**{kw: -1}).bind("127.0.0.1:0")


# ----------------------------------------------------------------------- compression

BIG = b"c" * 20000


async def test_server_compresses_responses_grpcio_decodes() -> None:
    seen = {}

    async def ping(req: Any, ctx: ServerCall) -> Any:
        seen["accepted"] = ctx.set_compression("gzip")
        return Resp(payload=req.payload)

    async def stream(req: Any, ctx: ServerCall) -> AsyncIterator[Any]:
        ctx.set_compression("gzip")
        for _ in range(req.count):
            yield Resp(payload=req.payload)

    server = rillrpc.Server()
    server.add_method(PING, Shape.UNARY, ping, request_deserializer=Req.FromString,
                      response_serializer=Resp.SerializeToString)
    server.add_method(ECHO_SERVER, Shape.SERVER_STREAMING, stream, request_deserializer=Req.FromString,
                      response_serializer=Resp.SerializeToString)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = echo_pb2_grpc.TestServiceStub(ch)
            assert (await stub.PingPong(Req(payload=BIG))).payload == BIG
            assert seen["accepted"] is True  # grpcio accepts gzip
            got = [r.payload async for r in stub.EchoServer(Req(payload=BIG, count=5))]
            assert got == [BIG] * 5
        # Our own client sees that the responses came compressed.
        async with rillrpc.Channel(f"http://127.0.0.1:{server.port}") as rch:
            call = rch.unary(PING, Req(payload=BIG).SerializeToString())
            assert Resp.FromString(await call).payload == BIG
            assert call.response_compressed() is True
            s = rch.server_streaming(ECHO_SERVER, Req(payload=BIG, count=2).SerializeToString())
            assert len([m async for m in s]) == 2
            assert s.response_compressed() is True


async def test_uncompressed_response_is_reported(rill_to_grpc: rillrpc.Channel) -> None:
    call = rill_to_grpc.unary(PING, Req(payload=b"p").SerializeToString())
    await call
    assert call.response_compressed() is False


async def test_client_compression_to_grpcio_server() -> None:
    seen = {}

    class Echo(GrpcEcho):
        async def PingPong(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
            seen["md"] = dict(context.invocation_metadata() or ())
            return Resp(payload=request.payload)

    server = grpc.aio.server()
    echo_pb2_grpc.add_TestServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with rillrpc.Channel(f"http://127.0.0.1:{port}") as ch:
            stub = rillrpc.Stub(ch, SERVICE)
            assert (await stub.PingPong(Req(payload=BIG), compression="gzip")).payload == BIG
            call = stub.EchoClient([Req(payload=BIG)] * 3, compression="gzip")
            assert (await call).payload == str(3 * len(BIG)).encode()
    finally:
        await server.stop(0)


async def test_grpcio_client_compression_to_rill_server() -> None:
    seen = {}

    async def ping(req: Any, ctx: ServerCall) -> Any:
        seen["compressed"] = ctx.request_compressed()
        return Resp(payload=req.payload)

    server = rillrpc.Server()
    server.add_method(PING, Shape.UNARY, ping, request_deserializer=Req.FromString,
                      response_serializer=Resp.SerializeToString)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = echo_pb2_grpc.TestServiceStub(ch)
            r = await stub.PingPong(Req(payload=BIG), compression=grpc.Compression.Gzip)
            assert r.payload == BIG and seen["compressed"] is True
            r = await stub.PingPong(Req(payload=BIG))
            assert r.payload == BIG and seen["compressed"] is False


# -------------------------------------------------------------------- wait_for_ready


async def test_wait_for_ready_waits_for_a_server_that_starts_later() -> None:
    port = free_port()
    async with rillrpc.Channel(f"http://127.0.0.1:{port}") as ch:
        stub = rillrpc.Stub(ch, SERVICE)
        # Without it the call fails fast.
        with pytest.raises(RpcError) as e:
            await stub.PingPong(Req(payload=b"x"))
        assert e.value.code == StatusCode.UNAVAILABLE
        early = asyncio.ensure_future(stub.PingPong(Req(payload=b"w"), wait_for_ready=True, timeout=30))
        stream = stub.EchoServer(Req(payload=b"e", count=3), wait_for_ready=True, timeout=30)
        streamed = asyncio.ensure_future(_collect(stream))
        await asyncio.sleep(0.5)
        assert not early.done()
        server = grpc.aio.server()
        echo_pb2_grpc.add_TestServiceServicer_to_server(GrpcEcho(), server)
        assert server.add_insecure_port(f"127.0.0.1:{port}") == port
        await server.start()
        try:
            assert (await early).payload == b"w"
            assert await streamed == [b"e"] * 3
        finally:
            await server.stop(0)


async def _collect(call: Any) -> list:
    return [r.payload async for r in call]


async def test_wait_for_ready_respects_the_deadline() -> None:
    async with rillrpc.Channel(f"http://127.0.0.1:{free_port()}") as ch:
        with pytest.raises(RpcError) as e:
            await ch.unary(PING, b"", wait_for_ready=True, timeout=0.3)
        assert e.value.code == StatusCode.DEADLINE_EXCEEDED


# --------------------------------------------- batching and the one-task unary path


async def test_yielded_response_is_not_held_back_while_the_handler_waits() -> None:
    # Yielded responses are batched; a handler that yields and then waits must still have
    # its response delivered (the client's reply is what it waits for).
    got_first = asyncio.Event()

    async def handler(req: bytes, ctx: ServerCall) -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.wait_for(got_first.wait(), 10)
        yield b"second"

    server = rillrpc.Server()
    server.add_method("/t.S/Wait", Shape.SERVER_STREAMING, handler)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            call = ch.unary_stream("/t.S/Wait")(b"", timeout=20)
            assert await call.read() == b"first"
            got_first.set()
            assert await call.read() == b"second"
            assert await call.code() == grpc.StatusCode.OK


# Guards the core's ordering of direct and queued sends too (a race there reordered
# this stream about 1 run in 6 before core: a direct send never overtakes a taken batch).
async def test_batched_yields_keep_their_order_with_sends_and_errors() -> None:
    async def mixed(req: bytes, ctx: ServerCall) -> AsyncIterator[bytes]:
        for i in range(1000):
            yield b"%d" % i
        await ctx.send(b"sent")  # after every yielded one
        yield b"last"

    async def failing(req: bytes, ctx: ServerCall) -> AsyncIterator[bytes]:
        for i in range(300):
            yield b"%d" % i
        raise RpcError(StatusCode.ABORTED, "after 300")

    server = rillrpc.Server()
    server.add_method("/t.S/Mixed", Shape.SERVER_STREAMING, mixed)
    server.add_method("/t.S/Failing", Shape.SERVER_STREAMING, failing)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            got = [m async for m in ch.unary_stream("/t.S/Mixed")(b"")]
            assert got == [b"%d" % i for i in range(1000)] + [b"sent", b"last"]
            call = ch.unary_stream("/t.S/Failing")(b"")
            got = []
            with pytest.raises(grpc.aio.AioRpcError) as e:
                async for m in call:
                    got.append(m)
            assert e.value.code() == grpc.StatusCode.ABORTED
            assert got == [b"%d" % i for i in range(300)]


async def test_batched_yields_wait_for_a_slow_reader() -> None:
    # More than the send queue holds: the handler waits for flow control, nothing is lost.
    big = b"b" * 60000
    n = 200

    async def handler(req: bytes, ctx: ServerCall) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield big

    server = rillrpc.Server()
    server.add_method("/t.S/Big", Shape.SERVER_STREAMING, handler)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            count = 0
            async for m in ch.unary_stream("/t.S/Big")(b""):
                assert m == big
                count += 1
                if count % 50 == 0:
                    await asyncio.sleep(0.05)
            assert count == n


async def test_unary_call_object(rill_to_grpc: rillrpc.Channel) -> None:
    md = [("echo-x", "1")]
    # Trailers asked before the response is awaited.
    call = rill_to_grpc.unary(PING, Req(payload=b"a").SerializeToString(), metadata=md)
    assert ("echo-x", "1") in await call.trailers()
    assert Resp.FromString(await call).payload == b"a"
    assert Resp.FromString(await call).payload == b"a"  # awaited twice: the same response
    assert call.done() and await call.code() == StatusCode.OK and await call.details() == ""
    assert ("echo-x", "1") in await call.headers()
    # A failed call: the error's trailers, and code()/details() agree with it.
    call = rill_to_grpc.unary(PING, Req(payload=b"bad", count=-5).SerializeToString(), metadata=md)
    with pytest.raises(RpcError) as e:
        await call
    assert e.value.code == StatusCode.NOT_FOUND and e.value.message == "bad"
    assert ("echo-x", "1") in e.value.trailers
    assert await call.code() == StatusCode.NOT_FOUND and await call.details() == "bad"
    # recv / async for on a unary call give the one response.
    call = rill_to_grpc.unary(PING, Req(payload=b"r").SerializeToString())
    assert [Resp.FromString(m).payload async for m in call] == [b"r"]
    # Concurrent calls on one channel.
    calls = [rill_to_grpc.unary(PING, Req(payload=b"%d" % i).SerializeToString()) for i in range(50)]
    got = await asyncio.gather(*calls)
    assert [Resp.FromString(m).payload for m in got] == [b"%d" % i for i in range(50)]


async def test_unary_cancel_method(rill_to_grpc: rillrpc.Channel, grpc_server: Any) -> None:
    call = rill_to_grpc.unary(SLEEP, b"30")
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(RpcError) as e:
        await call
    assert e.value.code == StatusCode.CANCELLED
    await asyncio.wait_for(grpc_server.events.event("sleep").wait(), 10)


async def test_garbage_collected_unary_call_cancels(rill_to_grpc: rillrpc.Channel, grpc_server: Any) -> None:
    import gc

    call = rill_to_grpc.unary(SLEEP, b"30")
    await asyncio.sleep(0.3)
    del call
    gc.collect()
    await asyncio.wait_for(grpc_server.events.event("sleep").wait(), 10)


async def test_finish_inside_a_generator_waits_for_yielded_responses() -> None:
    big = b"f" * 60000

    async def handler(req: bytes, ctx: ServerCall) -> AsyncIterator[bytes]:
        for i in range(20):  # more than the send queue holds: some wait for the client
            yield b"%d" % i + big
        ctx.finish(StatusCode.OK, trailers=[("fin", "1")])

    server = rillrpc.Server()
    server.add_method("/t.S/Fin", Shape.SERVER_STREAMING, handler)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            call = ch.unary_stream("/t.S/Fin")(b"", timeout=20)
            await asyncio.sleep(0.2)
            got = [m[:2].rstrip(b"f") async for m in call]
            assert got == [b"%d" % i for i in range(20)]
            assert await call.code() == grpc.StatusCode.OK
            assert ("fin", "1") in tuple(await call.trailing_metadata())


class _Countdown:
    """An async iterator that is not a generator: `__anext__` returns a done Future, and
    raises StopAsyncIteration itself at the end."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __aiter__(self) -> "_Countdown":
        return self

    def __anext__(self) -> "asyncio.Future[bytes]":
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        f: "asyncio.Future[bytes]" = asyncio.get_running_loop().create_future()
        f.set_result(b"%d" % self.n)
        return f


async def test_streaming_handler_shapes() -> None:
    async def iterator(req: bytes, ctx: ServerCall) -> Any:
        return _Countdown(3)

    async def broken(req: bytes, ctx: ServerCall) -> AsyncIterator[bytes]:
        yield b"a"
        await asyncio.sleep(0)
        yield b"b"
        raise ValueError("broken after two")

    async def echo(reqs: AsyncIterator[bytes], ctx: ServerCall) -> AsyncIterator[bytes]:
        async for r in reqs:
            yield r
            yield r

    server = rillrpc.Server()
    server.add_method("/t.S/Iter", Shape.SERVER_STREAMING, iterator)
    server.add_method("/t.S/Broken", Shape.SERVER_STREAMING, broken)
    server.add_method("/t.S/Twice", Shape.BIDI, echo)
    async with server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            assert [m async for m in ch.unary_stream("/t.S/Iter")(b"")] == [b"2", b"1", b"0"]
            call = ch.unary_stream("/t.S/Broken")(b"")
            got = []
            with pytest.raises(grpc.aio.AioRpcError) as e:
                async for m in call:
                    got.append(m)
            assert got == [b"a", b"b"] and e.value.code() == grpc.StatusCode.UNKNOWN
            bidi = ch.stream_stream("/t.S/Twice")()
            for i in range(50):
                await bidi.write(b"%d" % i)
                assert await bidi.read() == b"%d" % i
                assert await bidi.read() == b"%d" % i
            await bidi.done_writing()
            assert await bidi.code() == grpc.StatusCode.OK
