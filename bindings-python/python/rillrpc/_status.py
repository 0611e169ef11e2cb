"""gRPC status codes and the one exception every failed call raises."""

from __future__ import annotations

import enum
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

from . import _native

MetadataValue = Union[str, bytes]
Metadata = Tuple[Tuple[str, MetadataValue], ...]


class StatusCode(enum.IntEnum):
    """The gRPC status codes; the values are the wire values."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RpcError(Exception):
    """A call ended with a non-OK status. Handlers may raise it to end their call with it."""

    code: StatusCode
    message: str
    details: bytes
    trailers: Metadata

    def __init__(
        self,
        code: Union[StatusCode, int],
        message: str = "",
        details: bytes = b"",
        trailers: Sequence[Tuple[str, MetadataValue]] = (),
    ) -> None:
        c = int(code)
        self.code = StatusCode(c) if 0 <= c <= 16 else StatusCode.UNKNOWN
        self.message = message
        self.details = bytes(details)
        self.trailers = tuple((k, v) for k, v in trailers)
        super().__init__(self.code, message)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" if self.message else self.code.name

    def __repr__(self) -> str:
        return f"RpcError({self.code.name}, {self.message!r})"


class BizStatusError(RpcError):
    """A Kitex business status: an error that is part of a service's API (Kitex's
    `kerrors.BizStatusError`), with a code, a message and an extra map of its own. A client
    raises it when a call ends with one, on every protocol; a handler raises it to end its
    call with one. Its `code` is INTERNAL (a peer's: never OK, and another code where a
    Kitex error carries one of its own) and its `trailers` hold the biz status, as Kitex
    sends it over gRPC."""

    biz_code: int
    biz_message: str
    biz_extra: Dict[str, str]

    def __init__(
        self, biz_code: int, biz_message: str = "", biz_extra: Optional[Mapping[str, str]] = None
    ) -> None:
        extra = {str(k): str(v) for k, v in (biz_extra or {}).items()}
        # The core writes the status (its code and trailers), so that every binding sends
        # the same bytes.
        code, message, details, trailers = _native.biz_status(int(biz_code), biz_message, tuple(extra.items()))
        super().__init__(code, message, details, trailers)
        self.biz_code = int(biz_code)
        self.biz_message = biz_message
        self.biz_extra = extra

    @classmethod
    def _received(
        cls,
        status: Tuple[int, str, bytes, Metadata],
        biz_code: int,
        biz_message: str,
        biz_extra: Sequence[Tuple[str, str]],
    ) -> "BizStatusError":
        # A peer's status, read by the core: kept as it came, trailers and all.
        e = cls.__new__(cls)
        RpcError.__init__(e, *status)
        e.biz_code = biz_code
        e.biz_message = biz_message
        e.biz_extra = dict(biz_extra)
        return e

    def __str__(self) -> str:
        return f"biz status {self.biz_code}: {self.biz_message}" if self.biz_message else f"biz status {self.biz_code}"

    def __repr__(self) -> str:
        return f"BizStatusError({self.biz_code}, {self.biz_message!r}, {self.biz_extra!r})"


class Shape(enum.IntEnum):
    """How many messages each side of a method sends."""

    UNARY = 0
    CLIENT_STREAMING = 1
    SERVER_STREAMING = 2
    BIDI = 3


class Protocol(str, enum.Enum):
    """The wire protocol of a call: what a `Channel` speaks, and what the client of a
    `ServerCall` spoke. A rillrpc server answers all four on one port. Members are their
    names, so `call.protocol == "connect"` holds too."""

    GRPC = "grpc"
    GRPC_WEB = "grpc-web"
    CONNECT = "connect"
    # Kitex's TTHeader transports, Thrift payloads: TTHeader Streaming for streaming calls,
    # Thrift PingPong for unary ones.
    TTHEADER = "ttheader"

    # Spelled out so the type checkers see the enum's constructor, `Protocol("connect")`,
    # rather than str's.
    def __new__(cls, value: str) -> "Protocol":
        member = str.__new__(cls, value)
        member._value_ = value
        return member

    def __str__(self) -> str:
        return str(self.value)
