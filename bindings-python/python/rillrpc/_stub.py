"""Stubs built at run time from a protobuf service descriptor: no code generation."""

from __future__ import annotations

from typing import Any

from ._client import Channel
from ._status import Shape


def message_class(descriptor: Any) -> Any:
    import importlib

    message_factory: Any = importlib.import_module("google.protobuf.message_factory")

    get = getattr(message_factory, "GetMessageClass", None)
    if get is not None:
        return get(descriptor)
    return message_factory.MessageFactory().GetPrototype(descriptor)  # protobuf < 4.21


def method_shape(m: Any) -> Shape:
    cs = bool(getattr(m, "client_streaming", False))
    ss = bool(getattr(m, "server_streaming", False))
    if cs and ss:
        return Shape.BIDI
    if cs:
        return Shape.CLIENT_STREAMING
    if ss:
        return Shape.SERVER_STREAMING
    return Shape.UNARY


class Stub:
    """One attribute per method of the service: `stub.EchoServer(req)` and so on, each a
    multi-callable of the method's shape with protobuf messages in and out."""

    def __init__(self, channel: Channel, service: Any) -> None:
        self._service = service
        for m in service.methods:
            path = f"/{service.full_name}/{m.name}"
            de = message_class(m.output_type).FromString
            ser = message_class(m.input_type).SerializeToString
            shape = method_shape(m)
            if shape == Shape.UNARY:
                mc: Any = channel.unary_unary(path, ser, de)
            elif shape == Shape.SERVER_STREAMING:
                mc = channel.unary_stream(path, ser, de)
            elif shape == Shape.CLIENT_STREAMING:
                mc = channel.stream_unary(path, ser, de)
            else:
                mc = channel.stream_stream(path, ser, de)
            setattr(self, m.name, mc)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"service {self._service.full_name} has no method {name}")
