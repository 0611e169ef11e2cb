"""Stubs built at run time from a protobuf service descriptor: no code generation."""

from __future__ import annotations

from typing import Any, Optional

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


# protobuf's `MethodOptions.IdempotencyLevel` numbers, under the core's names; 0,
# IDEMPOTENCY_UNKNOWN, is the core's default too.
_IDEMPOTENCY_LEVELS = {1: "no-side-effects", 2: "idempotent"}


def method_idempotency(m: Any) -> Optional[str]:
    """The method's `option idempotency_level` from its descriptor, by the core's name
    ("no-side-effects" for NO_SIDE_EFFECTS); None when it names none (or a level this
    version does not know): the core's default, unknown."""
    get_options = getattr(m, "GetOptions", None)
    if get_options is None:
        return None
    level = int(getattr(get_options(), "idempotency_level", 0))
    return _IDEMPOTENCY_LEVELS.get(level)


class Stub:
    """One attribute per method of the service: `stub.EchoServer(req)` and so on, each a
    multi-callable of the method's shape with protobuf messages in and out. A method whose
    descriptor says `option idempotency_level = NO_SIDE_EFFECTS;` goes as Connect's GET on
    a channel with `http_get`. Its calls say their messages are protobuf
    (`content_subtype="proto"`), so each protocol labels them so: `application/grpc+proto`
    on gRPC, Kitex's Protobuf on a `ttheader` channel (which carries Thrift unless told)."""

    def __init__(self, channel: Channel, service: Any) -> None:
        self._service = service
        for m in service.methods:
            path = f"/{service.full_name}/{m.name}"
            de = message_class(m.output_type).FromString
            ser = message_class(m.input_type).SerializeToString
            shape = method_shape(m)
            opts: Any = {"idempotency": method_idempotency(m), "content_subtype": "proto"}
            if shape == Shape.UNARY:
                mc: Any = channel.unary_unary(path, ser, de, **opts)
            elif shape == Shape.SERVER_STREAMING:
                mc = channel.unary_stream(path, ser, de, **opts)
            elif shape == Shape.CLIENT_STREAMING:
                mc = channel.stream_unary(path, ser, de, **opts)
            else:
                mc = channel.stream_stream(path, ser, de, **opts)
            setattr(self, m.name, mc)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"service {self._service.full_name} has no method {name}")
