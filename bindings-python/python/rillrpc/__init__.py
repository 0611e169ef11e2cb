"""rillrpc: gRPC for asyncio on a Rust core.

    async with rillrpc.Channel("http://127.0.0.1:50051") as ch:
        stub = rillrpc.Stub(ch, echo_pb2.DESCRIPTOR.services_by_name["TestService"])
        async for resp in stub.EchoServer(echo_pb2.Request(payload=b"hi", count=3)):
            print(resp.payload)
"""

from . import _native
from ._client import Call, Channel, StreamStream, StreamUnary, UnaryCall, UnaryStream, UnaryUnary
from ._server import Server, ServerCall, Shape
from ._status import BizStatusError, Protocol, RpcError, StatusCode
from ._stub import Stub

_native.init(RpcError, BizStatusError)

__version__ = _native.VERSION

__all__ = [
    "BizStatusError",
    "Call",
    "Channel",
    "Protocol",
    "RpcError",
    "Server",
    "ServerCall",
    "Shape",
    "StatusCode",
    "StreamStream",
    "StreamUnary",
    "Stub",
    "UnaryCall",
    "UnaryStream",
    "UnaryUnary",
]
