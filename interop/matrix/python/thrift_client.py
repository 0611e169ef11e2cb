"""The Python client of the matrix's thrift table, on rillrpc.thrift (thriftpy2, the IDL
loaded at run time from $RILL_SHARED/idl/echo.thrift):
    thrift_client.py --target HOST:PORT [--transport grpc|ttheader] [--check NAME[,NAME]]
runs kitex-client's eight checks (interop/kitex/README.md: unary, server_streaming,
client_streaming, bidi, error_status, metadata, cancel, deadline) against a server of echo.thrift with
kitex-server's semantics, prints "PASS <check>" / "FAIL <check>: <why>" lines and exits 1 if
any failed. --transport is the channel's protocol: `grpc` (Thrift over HTTP/2,
application/grpc+thrift) or `ttheader` (TTHeader Streaming for the streams, TTHeader-framed
PingPong for PingPong). The destination service is named `echo`, as Kitex's client names it
(`authority`: `:authority` over gRPC, ToService over TTHeader)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Sequence, Tuple

import thriftpy2

import rillrpc
import rillrpc.thrift as rt
from rillrpc import RpcError, StatusCode

HERE = Path(__file__).resolve().parent
IDL = Path(os.environ.get("RILL_SHARED") or HERE.parents[2] / "shared") / "idl" / "echo.thrift"
echo = thriftpy2.load(str(IDL), module_name="echo_thrift")

TIMEOUT = 20.0  # every call's deadline, as kitex-client's
UNARY_PAYLOADS = (b"matrix\x00\xffping", b"")
STREAM_SIZES = (1, 10, 100, 70_000)
ERROR_MESSAGE = "matrix error: 100% ünïcødé ✓"
ERROR_REQUEST = echo.Request(payload=ERROR_MESSAGE.encode(), count=-5)
# kitex-client's metainfo, `metainfo.WithValue(ctx, "ECHO_KEY", "value")` and
# `WithPersistentValue(ctx, "ECHO_PERSIST_KEY", "persist value")`, in their gRPC form (the
# core writes them as RPC_TRANSIT_ECHO_KEY / RPC_PERSIST_ECHO_PERSIST_KEY over TTHeader).
METAINFO = (("rpc-transit-echo-key", "value"), ("rpc-persist-echo-persist-key", "persist value"))


class Failed(Exception):
    pass


def expect(cond: bool, why: str) -> None:
    if not cond:
        raise Failed(why)


def payload(r: Any) -> bytes:
    # Kitex leaves an empty optional binary out, or sends it empty: both read as b"".
    return (r.payload if r is not None else None) or b""


async def check_unary(stub: Any) -> None:
    for p in UNARY_PAYLOADS:
        r = await stub.PingPong(echo.Request(payload=p), timeout=TIMEOUT)
        expect(isinstance(r, echo.Response), f"PingPong({p!r}) = {r!r}, not a Response")
        expect(payload(r) == p, f"PingPong({p!r}) = {payload(r)!r}")


async def check_server_streaming(stub: Any) -> None:
    got = [payload(r) async for r in stub.EchoServer(echo.Request(payload=b"stream", count=5), timeout=TIMEOUT)]
    expect(got == [b"stream"] * 5, f"EchoServer: {got!r}, want 5 times b'stream'")


async def check_client_streaming(stub: Any) -> None:
    r = await stub.EchoClient([echo.Request(payload=b"c" * n) for n in STREAM_SIZES], timeout=TIMEOUT)
    expect(payload(r) == b"70111", f"EchoClient = {payload(r)!r}, want b'70111'")


async def check_bidi(stub: Any) -> None:
    call = stub.Echo(timeout=TIMEOUT)
    for i in range(5):
        want = f"bidi-{i}".encode()
        await call.send(echo.Request(payload=want))
        got = await call.recv()
        expect(got is not None, f"Echo ended before the answer to {want!r}")
        expect(payload(got) == want, f"Echo recv {i} = {payload(got)!r}, want {want!r}")
    await call.close_send()
    last = await call.recv()
    expect(last is None, f"Echo after close_send: {last!r}, want the end")
    code = await call.code()
    expect(code == StatusCode.OK, f"Echo ended with {code!r}, want OK")


def want_biz(what: str, e: BaseException) -> None:
    """`e` must be kitex-server's biz status error for count -5."""
    if not isinstance(e, rillrpc.BizStatusError):
        raise Failed(f"{what}: {e!r}, not a biz status error")
    got = (e.biz_code, e.biz_message, dict(e.biz_extra or {}))
    want = (5, ERROR_MESSAGE, {"echo-count": "-5"})
    expect(got == want, f"{what}: biz status {got!r}, want {want!r}")
    expect(e.code == StatusCode.INTERNAL, f"{what}: code {e.code!r}, want INTERNAL")


async def check_error_status(stub: Any) -> None:
    # The error alone, on PingPong.
    try:
        r = await stub.PingPong(ERROR_REQUEST, timeout=TIMEOUT)
        raise Failed(f"PingPong: no error, response {r!r}")
    except RpcError as e:
        want_biz("PingPong", e)
    # After an answered message, on Echo.
    call = stub.Echo(timeout=TIMEOUT)
    await call.send(echo.Request(payload=b"bidi-0"))
    got = await call.recv()
    expect(got is not None and payload(got) == b"bidi-0", f"Echo recv: {got!r}")
    await call.send(ERROR_REQUEST)
    try:
        r = await call.recv()
        raise Failed(f"Echo: {r!r}, want the biz status error")
    except RpcError as e:
        want_biz("Echo", e)
    # Ending a server stream with no message before it, on EchoServer.
    seen: List[Any] = []
    try:
        async for r in stub.EchoServer(ERROR_REQUEST, timeout=TIMEOUT):
            seen.append(r)
        raise Failed(f"EchoServer: ended OK after {len(seen)} responses, want the biz status error")
    except RpcError as e:
        want_biz(f"EchoServer ({len(seen)} responses)", e)


def has_metainfo(what: str, md: Sequence[Tuple[str, Any]]) -> None:
    got: Dict[str, Any] = {}
    for k, v in md or ():
        got.setdefault(k, v)
    for k, v in METAINFO:
        expect(got.get(k) == v, f"{what}: {k} = {got.get(k)!r}, want {v!r} (got {list(md or ())!r})")


async def check_metadata(stub: Any) -> None:
    call = stub.PingPong(echo.Request(payload=b"meta"), metadata=METAINFO, timeout=TIMEOUT)
    r = await call
    expect(payload(r) == b"meta", f"PingPong = {payload(r)!r}")
    has_metainfo("PingPong headers", await call.headers())
    has_metainfo("PingPong trailers", await call.trailers())
    call = stub.EchoServer(echo.Request(payload=b"meta", count=1), metadata=METAINFO, timeout=TIMEOUT)
    has_metainfo("EchoServer headers", await call.headers())
    got = [payload(r) async for r in call]
    expect(got == [b"meta"], f"EchoServer: {got!r}, want [b'meta']")
    has_metainfo("EchoServer trailers", await call.trailers())


async def check_cancel(stub: Any) -> None:
    call = stub.Echo(timeout=TIMEOUT)
    await call.send(echo.Request(payload=b"cancel-0"))
    got = await call.recv()
    expect(got is not None and payload(got) == b"cancel-0", f"Echo recv: {got!r}")
    call.cancel()
    try:
        r = await call.recv()
        raise Failed(f"Echo after cancel: {r!r}, want CANCELLED")
    except RpcError as e:
        expect(e.code == StatusCode.CANCELLED, f"Echo after cancel: {e!r}, want CANCELLED")
    # As kitex-client: let the cancel reach the server, then the same channel must work.
    await asyncio.sleep(0.1)
    got2 = [payload(r) async for r in stub.EchoServer(echo.Request(payload=b"after-cancel", count=1),
                                                     timeout=TIMEOUT)]
    expect(got2 == [b"after-cancel"], f"EchoServer after cancel: {got2!r}")


# The `deadline` check: a 300 ms deadline on calls the server is asked (payload
# `sleep:3000`, every server's slow path) to answer only after 3 s.
SHORT_DEADLINE = 0.3
SLOW_REQUEST = echo.Request(payload=b"sleep:3000", count=1)
DEADLINE_LIMIT = 2.0  # a deadline error later than this is a failure: well before the 3 s
HANG = 5.0  # how long each call of the check may run at all


async def slow_ping_pong(stub: Any) -> int:
    await stub.PingPong(SLOW_REQUEST, timeout=SHORT_DEADLINE)
    return 1


async def slow_echo_server(stub: Any) -> int:
    return len([r async for r in stub.EchoServer(SLOW_REQUEST, timeout=SHORT_DEADLINE)])


async def slow_echo(stub: Any) -> int:
    call = stub.Echo(timeout=SHORT_DEADLINE)
    await call.send(SLOW_REQUEST)
    return int(await call.recv() is not None)


async def check_deadline(stub: Any) -> None:
    """As kitex-client's: PingPong (gRPC's grpc-timeout, TTHeader's RPCTimeout), EchoServer
    before its first response and Echo before its answer, each with SHORT_DEADLINE, must end
    DEADLINE_EXCEEDED well before the server answers; all three are tried, each bounded by
    HANG, and their failures reported together. Then the same channel still works."""
    failures: List[str] = []
    for what, call in (("PingPong", slow_ping_pong), ("EchoServer", slow_echo_server), ("Echo", slow_echo)):
        t = time.monotonic()
        try:
            n = await asyncio.wait_for(call(stub), HANG)
            failures.append(f"{what}: OK with {n} responses after {time.monotonic() - t:.3f} s, "
                            "want DEADLINE_EXCEEDED")
        except asyncio.TimeoutError:
            failures.append(f"{what}: no end {HANG:.0f} s after its {SHORT_DEADLINE} s deadline (a hang)")
        except RpcError as e:
            took = time.monotonic() - t
            if e.code != StatusCode.DEADLINE_EXCEEDED or took > DEADLINE_LIMIT:
                failures.append(f"{what}: {e!r} after {took:.3f} s, want DEADLINE_EXCEEDED "
                                f"after about {SHORT_DEADLINE} s")
            else:
                print(f"NOTE deadline: {what}: {e.code!r} after {took:.3f} s", flush=True)
    try:
        r = await asyncio.wait_for(stub.PingPong(echo.Request(payload=b"after-deadline"), timeout=TIMEOUT), HANG)
        if payload(r) != b"after-deadline":
            failures.append(f"PingPong after the deadlines: {payload(r)!r}")
    except asyncio.TimeoutError:
        failures.append(f"PingPong after the deadlines: no answer in {HANG:.0f} s")
    except Exception as e:
        failures.append(f"PingPong after the deadlines: {type(e).__name__}: {e}")
    expect(not failures, "; ".join(failures))


CHECKS: Dict[str, Callable[[Any], Awaitable[None]]] = {
    "unary": check_unary,
    "server_streaming": check_server_streaming,
    "client_streaming": check_client_streaming,
    "bidi": check_bidi,
    "error_status": check_error_status,
    "metadata": check_metadata,
    "cancel": check_cancel,
    "deadline": check_deadline,
}


async def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--transport", choices=("grpc", "ttheader"), default="grpc")
    ap.add_argument("--check", help="comma-separated checks (default: all): " + ",".join(CHECKS))
    a = ap.parse_args(argv)
    names = a.check.split(",") if a.check else list(CHECKS)
    failed = False
    async with rillrpc.Channel(f"http://{a.target}", protocol=a.transport, authority="echo") as ch:
        stub = rt.Stub(ch, echo.TestService)
        for name in names:
            check = CHECKS.get(name)
            try:
                if check is None:
                    raise Failed("no such check")
                # The calls have their own deadlines; this only catches a hang.
                await asyncio.wait_for(check(stub), 3 * TIMEOUT)
                print(f"PASS {name}", flush=True)
            except Failed as e:
                failed = True
                print(f"FAIL {name}: {e}", flush=True)
            except asyncio.TimeoutError:
                failed = True
                print(f"FAIL {name}: no end within {3 * TIMEOUT:.0f} s", flush=True)
            except Exception as e:  # an RpcError where none was wanted, a decode error, ...
                failed = True
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
