"""Event loops and processes: uvloop, and a child process after os.fork()."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from conftest import PING, RillEcho, SERVICE, echo_pb2

import rillrpc

Req = echo_pb2.Request


async def roundtrip() -> None:
    server = rillrpc.Server()
    server.add_service(SERVICE, RillEcho())
    async with server:
        async with rillrpc.Channel(f"http://127.0.0.1:{server.port}") as ch:
            stub = rillrpc.Stub(ch, SERVICE)
            assert (await stub.PingPong(Req(payload=b"x"))).payload == b"x"
            n = len([r async for r in stub.EchoServer(Req(payload=b"y", count=3000))])
            assert n == 3000
            call = stub.Echo()
            for i in range(10):
                await call.send(Req(payload=b"%d" % i))
                assert (await call.recv()).payload == b"%d" % i
            await call.close_send()
            with pytest.raises(rillrpc.RpcError) as e:
                await asyncio.wait_for(stub.PingPong(Req(payload=b"no", count=-5)), 10)
            assert e.value.code == rillrpc.StatusCode.NOT_FOUND


def test_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(roundtrip())
        assert "uvloop" in type(r.get_loop()).__module__


def test_two_loops_in_sequence() -> None:
    asyncio.run(roundtrip())
    asyncio.run(roundtrip())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_after_fork() -> None:
    # The parent uses rillrpc first, so the child inherits a started runtime.
    asyncio.run(roundtrip())
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            asyncio.run(asyncio.wait_for(roundtrip(), 30))
            code = 0
        except BaseException as e:  # report, never return into pytest in the child
            print("child failed:", repr(e), file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # And the parent still works.
    asyncio.run(roundtrip())


def test_sync_loop_not_blocked() -> None:
    async def main() -> None:
        server = rillrpc.Server()
        server.add_service(SERVICE, RillEcho())
        server.add_method("/test.Extra/Sleep", rillrpc.Shape.UNARY, _sleep)
        async with server:
            async with rillrpc.Channel(f"http://127.0.0.1:{server.port}") as ch:
                ticks = 0

                async def ticker() -> None:
                    nonlocal ticks
                    while True:
                        await asyncio.sleep(0.01)
                        ticks += 1

                t = asyncio.ensure_future(ticker())
                assert await ch.unary("/test.Extra/Sleep", b"0.3") == b"0.3"
                t.cancel()
                # The loop kept running while the call waited.
                assert ticks > 3
                assert await ch.unary(PING, Req(payload=b"k").SerializeToString())

    asyncio.run(main())


async def _sleep(req: bytes, ctx: rillrpc.ServerCall) -> bytes:
    await asyncio.sleep(float(req))
    return req


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_import_starts_no_threads() -> None:
    # A process that imports rillrpc and then forks (pre-fork servers, multiprocessing)
    # must not have started the runtime's threads yet.
    import subprocess

    code = "import os, rillrpc, asyncio; print(len(os.listdir('/proc/self/task')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1", out.stdout + out.stderr
