"""The Python echo servers of the matrix, on rillrpc or on grpcio (grpc.aio):
    server.py --impl rill|grpcio [--port N]     prints "listening on 127.0.0.1:PORT"
Conventions: a request with count < 0 ends the call with status code -count and the
payload as message; request metadata whose key starts with "echo-" comes back in the
response headers and trailers, and with it the rillrpc server's headers name the protocol the
call came in on (echo-protocol; grpcio's speaks gRPC only)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, AsyncIterator, List, Tuple

from _echo import PROTOCOL_HEADER, SERVICE, echo_pb2, echo_pb2_grpc


def echo_md(md: Any) -> List[Tuple[str, Any]]:
    return [(k, v) for k, v in (md or ()) if k.startswith("echo-")]


async def serve_rill(port: int) -> None:
    import rillrpc
    from rillrpc import RpcError, ServerCall

    def start(ctx: ServerCall) -> None:
        md = echo_md(ctx.metadata)
        if md:
            # The headers also name the protocol the call came in on, for the clients to
            # hold to theirs.
            ctx.send_headers(md + [(PROTOCOL_HEADER, ctx.protocol.value)])
            ctx.set_trailers(md)

    def check(req: Any, ctx: ServerCall) -> None:
        if req.count < 0:
            raise RpcError(-req.count, req.payload.decode(errors="replace"),
                           trailers=echo_md(ctx.metadata))

    class Echo:
        async def PingPong(self, req: Any, ctx: ServerCall) -> Any:
            start(ctx)
            check(req, ctx)
            return echo_pb2.Response(payload=req.payload)

        async def EchoServer(self, req: Any, ctx: ServerCall) -> AsyncIterator[Any]:
            start(ctx)
            check(req, ctx)
            for _ in range(req.count):
                yield echo_pb2.Response(payload=req.payload)

        async def EchoClient(self, reqs: AsyncIterator[Any], ctx: ServerCall) -> Any:
            start(ctx)
            total = 0
            async for r in reqs:
                check(r, ctx)
                total += len(r.payload)
            return echo_pb2.Response(payload=str(total).encode())

        async def Echo(self, reqs: AsyncIterator[Any], ctx: ServerCall) -> AsyncIterator[Any]:
            start(ctx)
            async for r in reqs:
                check(r, ctx)
                yield echo_pb2.Response(payload=r.payload)

    server = rillrpc.Server()
    server.add_service(SERVICE, Echo())
    bound = server.bind(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


async def serve_grpcio(port: int) -> None:
    import grpc
    import grpc.aio

    codes = {c.value[0]: c for c in grpc.StatusCode}

    async def start(ctx: grpc.aio.ServicerContext) -> None:
        md = echo_md(ctx.invocation_metadata())
        if md:
            await ctx.send_initial_metadata(md)
            ctx.set_trailing_metadata(md)

    async def check(req: Any, ctx: grpc.aio.ServicerContext) -> None:
        if req.count < 0:
            code = codes.get(-req.count, grpc.StatusCode.UNKNOWN)
            await ctx.abort(code, req.payload.decode(errors="replace"),
                            tuple(echo_md(ctx.invocation_metadata())))

    class Echo(echo_pb2_grpc.TestServiceServicer):
        async def PingPong(self, req: Any, ctx: grpc.aio.ServicerContext) -> Any:
            await start(ctx)
            await check(req, ctx)
            return echo_pb2.Response(payload=req.payload)

        async def EchoServer(self, req: Any, ctx: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await start(ctx)
            await check(req, ctx)
            for _ in range(req.count):
                yield echo_pb2.Response(payload=req.payload)

        async def EchoClient(self, reqs: Any, ctx: grpc.aio.ServicerContext) -> Any:
            await start(ctx)
            total = 0
            async for r in reqs:
                await check(r, ctx)
                total += len(r.payload)
            return echo_pb2.Response(payload=str(total).encode())

        async def Echo(self, reqs: Any, ctx: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await start(ctx)
            async for r in reqs:
                await check(r, ctx)
                yield echo_pb2.Response(payload=r.payload)

    server = grpc.aio.server()
    echo_pb2_grpc.add_TestServiceServicer_to_server(Echo(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--impl", choices=("rill", "grpcio"), default="rill")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    try:
        asyncio.run(serve_rill(a.port) if a.impl == "rill" else serve_grpcio(a.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
