"""TestService of shared/idl/echo.thrift on a rillrpc Python server, with kitex-server's
semantics (interop/kitex/kitex-server/main.go), through `rillrpc.thrift` and the IDL loaded
at run time: the peer kitex-client's checks run against (tests/test_thrift.py).

- PingPong echoes the payload;
- Echo answers every request with its payload;
- EchoClient answers the total payload bytes received, as decimal text;
- EchoServer sends `count` copies of the payload;
- `count < 0` ends the call with Kitex's biz status error: code -count, message the
  payload, extra {"echo-count": "<count>"} (`kerrors.NewBizStatusErrorWithExtra`); on Echo
  when that request arrives, the earlier ones answered;
- a payload `sleep:<ms>` makes the handler wait that long before it answers (the slow
  path of kitex-server's deadline checks; a cancelled call's handler stops waiting);
- Kitex's metainfo (`rpc-transit-*`, `rpc-persist-*`, as the core names TTHeader's
  `RPC_TRANSIT_*` too) comes back in the response headers, with the first message, and in
  the trailers; on a TTHeader PingPong the core turns them into backward values.

    python kitex_echo_server.py [--port N] [--host 127.0.0.1]   prints `listening on HOST:PORT`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any, AsyncIterator, List, Tuple

import thriftpy2

import rillrpc
import rillrpc.thrift

HERE = Path(__file__).resolve().parent
IDL = Path(os.environ.get("RILL_SHARED", HERE.parents[2] / "shared")) / "idl" / "echo.thrift"

echo = thriftpy2.load(str(IDL), module_name="echo_thrift")

METAINFO_PREFIXES = ("rpc-transit-", "rpc-persist-")


def metainfo(ctx: rillrpc.ServerCall) -> List[Tuple[str, Any]]:
    return [(k, v) for k, v in ctx.metadata if k.startswith(METAINFO_PREFIXES)]


def checked(req: Any) -> Any:
    """The request, or kitex-server's biz status error for a negative count."""
    count = req.count
    if count is not None and count < 0:
        # Go's `-*req.Count` on an int32: -(-2**31) wraps to itself.
        code = count if count == -(2**31) else -count
        message = (req.payload or b"").decode("utf-8", "replace")
        raise rillrpc.BizStatusError(code, message, {"echo-count": str(count)})
    return req


async def slow(req: Any) -> None:
    """kitex-server's slow path: waits as long as a `sleep:<ms>` payload asks."""
    p = req.payload or b""
    if p.startswith(b"sleep:"):
        try:
            ms = int(p[6:])
        except ValueError:
            return
        if ms > 0:
            await asyncio.sleep(ms / 1000)


class _Meta:
    """kitex-server's SetHeader/SetTrailer: the metainfo goes in the trailers, and in the
    headers once the first message leaves (a call that fails first sends them with its
    status, as kitex-server's Trailers-Only answer)."""

    def __init__(self, ctx: rillrpc.ServerCall) -> None:
        self.ctx = ctx
        self.md = metainfo(ctx)
        if self.md:
            ctx.set_trailers(self.md)

    def before_message(self) -> None:
        if self.md:
            self.ctx.send_headers(self.md)
            self.md = []


class KitexEcho:
    """The handler object for `rillrpc.thrift.add_service(server, echo.TestService, ...)`."""

    async def PingPong(self, req: Any, ctx: rillrpc.ServerCall) -> Any:
        meta = _Meta(ctx)
        req = checked(req or echo.Request())
        await slow(req)
        meta.before_message()
        return echo.Response(payload=req.payload)

    async def Echo(self, reqs: AsyncIterator[Any], ctx: rillrpc.ServerCall) -> AsyncIterator[Any]:
        meta = _Meta(ctx)
        async for r in reqs:
            checked(r)
            await slow(r)
            meta.before_message()
            yield echo.Response(payload=r.payload)

    async def EchoClient(self, reqs: AsyncIterator[Any], ctx: rillrpc.ServerCall) -> Any:
        meta = _Meta(ctx)
        total = 0
        async for r in reqs:
            total += len(checked(r).payload or b"")
        meta.before_message()
        return echo.Response(payload=str(total).encode())

    async def EchoServer(self, req: Any, ctx: rillrpc.ServerCall) -> AsyncIterator[Any]:
        meta = _Meta(ctx)
        checked(req)
        await slow(req)
        resp = echo.Response(payload=req.payload)
        for _ in range(req.count or 0):
            meta.before_message()
            yield resp


def server() -> rillrpc.Server:
    s = rillrpc.Server()
    rillrpc.thrift.add_service(s, echo.TestService, KitexEcho())
    return s


async def main(argv: List[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    s = server()
    port = s.bind(f"{a.host}:{a.port}")
    await s.start()
    print(f"listening on {a.host}:{port}", flush=True)
    await s.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
