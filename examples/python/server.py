"""The echo service (echo.proto's echo.TestService) on a rillrpc server, every call shape:
    python server.py [PORT]      (default 50051; then: python client.py)
PingPong also shows metadata (the client's x-greeting comes back as a header, and a trailer
names the server) and an error (a request whose payload is "error")."""

import asyncio
import sys

import rillrpc
from echo import SERVICE, Response


class Echo:
    async def PingPong(self, req, ctx):
        if req.payload == b"error":
            ctx.abort(rillrpc.StatusCode.INVALID_ARGUMENT, "the request asked for an error")
        greeting = dict(ctx.metadata).get("x-greeting")
        if greeting is not None:
            ctx.send_headers({"x-greeting": greeting})
        ctx.set_trailers({"x-served-by": "rillrpc-python"})
        return Response(payload=req.payload)

    async def Echo(self, requests, ctx):
        async for req in requests:
            yield Response(payload=req.payload)

    async def EchoClient(self, requests, ctx):
        total = 0
        async for req in requests:
            total += len(req.payload)
        return Response(payload=str(total).encode())

    async def EchoServer(self, req, ctx):
        for _ in range(req.count):
            yield Response(payload=req.payload)


async def main(port: str) -> None:
    server = rillrpc.Server()
    server.add_service(SERVICE, Echo())
    server.bind(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on 127.0.0.1:{server.port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "50051"))
