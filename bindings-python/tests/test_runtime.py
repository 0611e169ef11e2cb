"""Event loops and processes: uvloop, and a child process after os.fork()."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
import time

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


def _die_in(seconds: int) -> None:
    """Ends this (child) process after `seconds`, even stuck in native code, where no
    Python timeout can fire. (Not faulthandler's timer: the parent's, inherited by a fork,
    would deadlock the child that re-arms it.)"""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(seconds)


def _wait_child(pid: int, seconds: float) -> int:
    """The child's wait status; a child still there after `seconds` is killed."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not end within {seconds} s")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_after_fork() -> None:
    # The parent uses rillrpc first, so the child inherits a started runtime.
    asyncio.run(roundtrip())
    pid = os.fork()
    if pid == 0:
        _die_in(60)
        code = 1
        try:
            asyncio.run(asyncio.wait_for(roundtrip(), 30))
            code = 0
        except BaseException as e:  # report, never return into pytest in the child
            print("child failed:", repr(e), file=sys.stderr)
        finally:
            os._exit(code)
    status = _wait_child(pid, 90)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status:#x}"
    # And the parent still works.
    asyncio.run(roundtrip())


def test_a_child_leaves_its_parents_calls_alone() -> None:
    """Regression: a child forked while its parent had a call open hung for good. The
    child's garbage collector freed the inherited call, and the cancel that goes with it
    woke the call's writer on the parent's runtime: its threads are not in the child, and
    the scheduler lock one of them held at the fork stays held there. Now whatever the
    parent made is the parent's: using it in the child raises FAILED_PRECONDITION, and
    freeing it, cancelling it or closing it touches nothing."""

    async def child_checks(ch: rillrpc.Channel, call: object) -> None:
        with pytest.raises(rillrpc.RpcError) as e:
            await asyncio.wait_for(call.recv(), 5)  # type: ignore[attr-defined]
        assert e.value.code == rillrpc.StatusCode.FAILED_PRECONDITION
        assert "forked" in e.value.message
        with pytest.raises(rillrpc.RpcError) as e:
            await asyncio.wait_for(ch.unary(PING, Req(payload=b"c").SerializeToString()), 5)
        assert e.value.code == rillrpc.StatusCode.FAILED_PRECONDITION
        call.cancel()  # type: ignore[attr-defined]

    def in_child(ch: rillrpc.Channel, call: object) -> int:
        errors: list = []

        def run() -> None:
            try:
                asyncio.run(child_checks(ch, call))
                asyncio.run(asyncio.wait_for(roundtrip(), 30))
            except BaseException as e:
                errors.append(e)

        # The parent's loop is running in this thread: the child's calls run on a new one.
        t = threading.Thread(target=run)
        t.start()
        t.join()
        if errors:
            print("child failed:", repr(errors[0]), file=sys.stderr)
            return 1
        return 0

    async def parent() -> None:
        server = rillrpc.Server()
        server.add_service(SERVICE, RillEcho())
        async with server:
            async with rillrpc.Channel(f"http://127.0.0.1:{server.port}") as ch:
                call = rillrpc.Stub(ch, SERVICE).Echo()
                await call.send(Req(payload=b"open"))
                assert (await call.recv()).payload == b"open"
                pid = os.fork()
                if pid == 0:
                    _die_in(60)
                    code = 1
                    try:
                        code = in_child(ch, call)
                        # Frees the parent's call, channel and server in the child.
                        del call, ch, server
                        gc.collect()
                    except BaseException as e:  # report, never return into pytest
                        print("child failed:", repr(e), file=sys.stderr)
                    finally:
                        os._exit(code)
                status = _wait_child(pid, 90)
                assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, hex(status)
                # The parent's call goes on.
                await call.send(Req(payload=b"still"))
                assert (await call.recv()).payload == b"still"
                await call.close_send()

    asyncio.run(parent())


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
