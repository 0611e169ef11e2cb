"""The echo service as a Python server, on grpcio aio or on rillrpc, for the bench.

    python servers.py --impl grpcio|rill   → prints `listening on PORT`, serves until killed

Both do the same work per message: decode each `echo.Request`, encode each `echo.Response`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, AsyncIterator

sys.path.insert(0, os.environ.get("RILL_PY_GEN", "."))

import echo_pb2  # noqa: E402

SERVICE = echo_pb2.DESCRIPTOR.services_by_name["TestService"]


class Echo:
    """Handlers with grpcio's and rillrpc's common signature (request, context)."""

    async def PingPong(self, req: Any, ctx: Any) -> Any:
        return echo_pb2.Response(payload=req.payload)

    async def EchoServer(self, req: Any, ctx: Any) -> AsyncIterator[Any]:
        resp = echo_pb2.Response(payload=req.payload)
        for _ in range(req.count):
            yield resp

    async def EchoClient(self, reqs: AsyncIterator[Any], ctx: Any) -> Any:
        total = 0
        async for r in reqs:
            total += len(r.payload)
        return echo_pb2.Response(payload=str(total).encode())

    async def Echo(self, reqs: AsyncIterator[Any], ctx: Any) -> AsyncIterator[Any]:
        async for r in reqs:
            yield echo_pb2.Response(payload=r.payload)


async def serve_grpcio() -> None:
    import echo_pb2_grpc
    import grpc.aio

    server = grpc.aio.server()
    echo_pb2_grpc.add_TestServiceServicer_to_server(Echo(), server)  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"listening on {port}", flush=True)
    await server.wait_for_termination()


async def serve_rill() -> None:
    import rillrpc

    server = rillrpc.Server()
    server.add_service(SERVICE, Echo())
    port = server.bind("127.0.0.1:0")
    await server.start()
    print(f"listening on {port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["grpcio", "rill"], required=True)
    a = ap.parse_args()
    asyncio.run(serve_grpcio() if a.impl == "grpcio" else serve_rill())


if __name__ == "__main__":
    main()
