"""A rillrpc client of the echo service (echo.proto's echo.TestService), every call shape:
    python client.py [URL]       (default http://127.0.0.1:50051)
Runs against any echo server of the examples (Rust, Python, Node, C); exits 1 on a wrong
answer."""

import asyncio
import sys

import rillrpc
from echo import SERVICE, Request


def check(what, got, want):
    if got != want:
        sys.exit(f"client: {what}: got {got!r}, want {want!r}")
    print(f"{what}: {got!r}")


async def main(url: str) -> None:
    async with rillrpc.Channel(url) as ch:
        stub = rillrpc.Stub(ch, SERVICE)

        # Unary, with metadata: x-greeting comes back as a header; the status carries a trailer.
        call = stub.PingPong(Request(payload=b"ping"), timeout=10, metadata={"x-greeting": "hello"})
        reply = await call
        check("unary", reply.payload, b"ping")
        check("header x-greeting", dict(await call.headers()).get("x-greeting"), "hello")
        print(f"trailer x-served-by: {dict(await call.trailers()).get('x-served-by')!r}")

        # Server streaming: `count` responses.
        got = [r.payload async for r in stub.EchoServer(Request(payload=b"tick", count=3), timeout=10)]
        check("server streaming", got, [b"tick"] * 3)

        # Client streaming: the answer is the number of payload bytes sent.
        total = await stub.EchoClient([Request(payload=p) for p in (b"ab", b"cde", b"f")], timeout=10)
        check("client streaming", total.payload, b"6")

        # Bidirectional: send and receive as they come.
        call = stub.Echo(timeout=10)
        got = []
        for p in (b"one", b"two", b"three"):
            await call.send(Request(payload=p))
            got.append((await call.recv()).payload)
        await call.close_send()
        check("bidi", got, [b"one", b"two", b"three"])
        check("bidi end", await call.recv(), None)

        # An error: the server ends the call with INVALID_ARGUMENT and a message.
        try:
            await stub.PingPong(Request(payload=b"error"), timeout=10)
            sys.exit("client: error: the call succeeded")
        except rillrpc.RpcError as e:
            check("error", e.code, rillrpc.StatusCode.INVALID_ARGUMENT)
            print(f"error message: {e.message!r}")
    print("all ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:50051"))
