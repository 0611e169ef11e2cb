"""Thrift services (Kitex's) from IDL loaded at run time: stubs and server registrations
with no code generation, as `rillrpc.Stub` and `Server.add_service` do for protobuf.

    import thriftpy2, rillrpc, rillrpc.thrift

    echo = thriftpy2.load("echo.thrift", module_name="echo_thrift")
    async with rillrpc.Channel("http://127.0.0.1:8888") as ch:   # or protocol="ttheader"
        stub = rillrpc.thrift.Stub(ch, echo.TestService)
        resp = await stub.PingPong(echo.Request(payload=b"hi"))
        async for r in stub.EchoServer(echo.Request(payload=b"hi", count=3)):
            print(r.payload)

    server = rillrpc.Server()
    rillrpc.thrift.add_service(server, echo.TestService, Handler())

The IDL is read by thriftpy2 (a pure-Python Thrift implementation with optional Cython
speed-ups): it builds the structs, the `<Method>_args`/`<Method>_result` wrappers and keeps
the namespaces and function annotations, so nothing has to be generated or compiled.

What travels is what Kitex sends (interop/kitex/WIRE.md):
- the method path is `/<package>.<Service>/<Method>`, the package being the last
  component of the IDL's `namespace go` (Kitex's `fullMethodName`);
- a function annotated `(streaming.mode="bidirectional"|"client"|"server")` is a stream of
  the bare request struct (its one argument's type) and the bare response struct;
- any other function (no annotation, or `streaming.mode="unary"`) is Kitex's PingPong: the
  request is the `<Method>_args` struct, the answer the `<Method>_result` struct, whose
  field 0 is the return value and fields 1..n the declared exceptions;
- messages are Thrift Binary; the core adds TMessage headers and framing where a
  transport has them. Over gRPC the content type is `application/grpc+thrift`; a channel
  with `protocol="ttheader"` runs streams over TTHeader Streaming and PingPong calls as
  TTHeader-framed requests. A rillrpc server answers all three on one port.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple, Type

try:
    import thriftpy2
    import thriftpy2.parser
    from thriftpy2.protocol import binary as _binary
    from thriftpy2.thrift import TType
except ImportError:  # pragma: no cover - exercised only without thriftpy2
    # Raised while handling the first one, which stays attached as its context.
    raise ImportError(
        "rillrpc.thrift loads Thrift IDL with thriftpy2, which is not installed: "
        "pip install thriftpy2 (tested with 0.7.1)"
    )

from ._client import Channel, UnaryUnary
from ._server import Server, ServerCall
from ._status import RpcError, Shape, StatusCode

__all__ = ["CODEC", "Method", "Stub", "add_service", "decode", "encode", "methods", "package_of"]

# The content subtype and the codec a server sees: `application/grpc+thrift`.
CODEC = "thrift"

_MODES = {
    "bidirectional": Shape.BIDI,
    "client": Shape.CLIENT_STREAMING,
    "server": Shape.SERVER_STREAMING,
    "unary": Shape.UNARY,
}

# ---------------------------------------------------------------- Thrift Binary


def _cy_writer() -> Optional[Callable[[Any], bytes]]:
    # thriftpy2's Cython writer is five times faster than its Python one. It only ever
    # writes our own objects, so its lack of checks on input does not matter here.
    import importlib

    try:
        # Untyped extension modules (thriftpy2's stubs name them only under TYPE_CHECKING).
        cybin: Any = importlib.import_module("thriftpy2.protocol.cybin")
        cymemory: Any = importlib.import_module("thriftpy2.transport.memory.cymemory")
        protocol, buffer = cybin.TCyBinaryProtocol, cymemory.TCyMemoryBuffer
    except (ImportError, AttributeError):  # PyPy, or a build without the extensions
        return None

    def write(obj: Any) -> bytes:
        buf = buffer()
        protocol(buf).write_struct(obj)
        return bytes(buf.getvalue())

    return write


def _py_write(obj: Any) -> bytes:
    import io

    out = io.BytesIO()
    _binary.write_val(out, TType.STRUCT, obj)
    return out.getvalue()


_write = _cy_writer() or _py_write


def encode(obj: Any) -> bytes:
    """`obj` (a thriftpy2 struct) in Thrift Binary, as one bare struct."""
    return _write(obj)


class _Reader:
    """The bytes of one message for thriftpy2's Python reader. A read past the end raises:
    thriftpy2's Cython memory buffer instead hands back what it has (a truncated message
    decodes into zeros, or a negative or huge length into a failed allocation), so a peer's
    bytes are never read with it."""

    __slots__ = ("_b", "pos")

    def __init__(self, b: bytes) -> None:
        self._b = b
        self.pos = 0

    def read(self, n: int) -> bytes:
        p = self.pos
        end = p + n
        if n < 0 or end > len(self._b):
            raise ValueError(f"truncated: {n} bytes wanted at offset {p} of {len(self._b)}")
        self.pos = end
        return self._b[p:end]


def decode(cls: Any, data: bytes) -> Any:
    """One bare struct of class `cls` from Thrift Binary; ValueError (or thriftpy2's
    errors) when `data` is not exactly one such struct. Unknown fields are skipped, and
    nesting deeper than 64 is refused (thriftpy2's reader)."""
    r = _Reader(bytes(data))
    obj = cls()
    _binary.read_struct(r, obj)
    if r.pos != len(data):
        raise ValueError(f"{len(data) - r.pos} bytes after the end of the struct")
    return obj


def _decoder(cls: Any, code: StatusCode, side: str) -> Callable[[bytes], Any]:
    name = getattr(cls, "__name__", str(cls))

    def de(data: bytes) -> Any:
        try:
            return decode(cls, data)
        except RpcError:
            raise
        except Exception as e:  # thriftpy2 raises struct.error, ValueError, its own...
            raise RpcError(code, f"bad {name} from the {side}: {type(e).__name__}: {e}") from e

    return de


# ---------------------------------------------------------------- the service's methods


def _namespace_package(namespaces: Mapping[str, str]) -> Optional[str]:
    ns = namespaces.get("go") or namespaces.get("*")
    if not ns:
        return None
    # `namespace go a.b.echo` is Go package `echo` (import path a/b/echo).
    return ns.replace("/", ".").rsplit(".", 1)[-1]


def package_of(service: Any) -> str:
    """The package in the service's method paths: the last component of its IDL's
    `namespace go` (then `namespace *`), as Kitex names it; with neither, the IDL file's
    base name, thriftgo's default Go package. thriftpy2 keeps the namespaces on the loaded
    module (`__thrift_namespaces__`); the service class names its module and its file, and
    a module that is not in `sys.modules` (loaded with no `module_name`) is parsed again
    from that file (thriftpy2 caches it)."""
    mod = sys.modules.get(getattr(service, "__module__", ""))
    path = getattr(service, "__thrift_file__", None)
    namespaces: Optional[Mapping[str, str]] = None
    if mod is not None and getattr(mod, "__thrift_file__", None) == path:
        namespaces = getattr(mod, "__thrift_namespaces__", None)
    if namespaces is None and path:
        try:
            namespaces = getattr(thriftpy2.parser.parse(path), "__thrift_namespaces__", None)
        except Exception as e:  # moved, or its includes are not beside it
            raise ValueError(f"cannot read the namespace of {service.__name__} from {path}: {e}; pass package=") from e
    pkg = _namespace_package(namespaces or {})
    if pkg:
        return pkg
    if path:
        return os.path.splitext(os.path.basename(path))[0]
    raise ValueError(
        f"cannot tell the package of {service.__name__}: its module keeps no namespaces and "
        "names no IDL file; pass package="
    )


def _annotations(service: Any) -> Dict[str, Dict[str, str]]:
    """Each function's annotations. thriftpy2 (0.7.1) keeps them per service class in
    `__thrift_function_annotations__`, those of its own functions only: a service that
    `extends` another takes its parent's from the parent class."""
    out: Dict[str, Dict[str, str]] = {}
    kept = False
    for cls in reversed(getattr(service, "__mro__", (service,))):
        notes = vars(cls).get("__thrift_function_annotations__")
        if notes is not None:
            kept = True
            out.update(notes)
    if not kept:
        # Without them every streaming method would pass for a PingPong one.
        raise RuntimeError(
            f"this thriftpy2 ({getattr(thriftpy2, '__version__', '?')}) keeps no function "
            "annotations, which say the streaming methods: use thriftpy2 0.7.1"
        )
    return out


def _fields(struct: Any) -> List[Tuple[int, str, Any]]:
    """(id, name, class or None) of a struct's fields, by id."""
    out = []
    for fid, spec in sorted(struct.thrift_spec.items()):
        cls = spec[2] if len(spec) == 4 else None
        out.append((fid, spec[1], cls))
    return out


class Method:
    """One function of a Thrift service as rillrpc calls and serves it: its `path`,
    `shape`, and how a message goes to and from bytes. `request` and `response` are the
    classes on the wire: the bare argument and return structs of a streaming method, the
    `<Method>_args` and `<Method>_result` wrappers of a PingPong one."""

    name: str
    path: str
    shape: Shape
    request: Any
    response: Any
    # PingPong only: the argument names in order, the result's exception fields, and
    # whether the function returns nothing.
    arg_names: List[str]
    exceptions: List[Tuple[str, Any]]
    void: bool
    oneway: bool
    # Whether the messages are bare structs (a streaming method), not PingPong's wrappers.
    streaming: bool

    def __init__(self, service: Any, name: str, package: str, annotations: Mapping[str, str]) -> None:
        self.name = name
        self.path = f"/{package}.{service.__name__}/{name}"
        mode = annotations.get("streaming.mode")
        if mode is None:
            self.shape = Shape.UNARY
        elif mode in _MODES:
            self.shape = _MODES[mode]
        else:
            raise ValueError(f"{service.__name__}.{name}: unknown streaming.mode {mode!r}")
        args = getattr(service, f"{name}_args")
        result = getattr(service, f"{name}_result")
        self.oneway = bool(getattr(result, "oneway", False))
        arg_fields = _fields(args)
        result_fields = _fields(result)
        self.arg_names = [n for _, n, _ in arg_fields]
        self.exceptions = [(n, c) for fid, n, c in result_fields if fid != 0]
        success = [c for fid, _, c in result_fields if fid == 0]
        self.void = not success
        self.streaming = self.shape != Shape.UNARY
        if not self.streaming:
            self.request, self.response = args, result
            return
        # Kitex's streaming methods: one struct argument, a struct result, no exceptions.
        if len(arg_fields) != 1 or arg_fields[0][2] is None or self.void or success[0] is None:
            raise ValueError(
                f"{service.__name__}.{name}: a streaming method takes one struct and returns one"
            )
        if self.exceptions:
            raise ValueError(f"{service.__name__}.{name}: a streaming method declares no exceptions")
        self.request, self.response = arg_fields[0][2], success[0]

    def __repr__(self) -> str:
        return f"<rillrpc.thrift.Method {self.path} {self.shape.name}>"


def methods(service: Any, *, package: Optional[str] = None) -> List[Method]:
    """Every function of a thriftpy2 service class (its parents' included), in the IDL's
    order. `package`: the one in the paths, in place of the IDL's (see `package_of`).
    Oneway functions are left out: Kitex answers them with nothing, which no rillrpc call
    shape expresses."""
    pkg = package if package is not None else package_of(service)
    notes = _annotations(service)
    out = []
    for name in service.thrift_services:
        m = Method(service, name, pkg, notes.get(name, {}))
        if not m.oneway:
            out.append(m)
    return out


# ---------------------------------------------------------------- client


class _PingPong(UnaryUnary):
    """A PingPong method's multi-callable: `await stub.M(request)` with the function's one
    argument (or its `M_args`, a mapping of argument names, a tuple in order, or nothing
    for a function of none); gives the return value, or raises the declared exception the
    server answered with."""

    __slots__ = ()

    def __call__(self, request: Any = None, **kw: Any) -> Any:
        return super().__call__(request, **kw)


def _args_maker(m: Method) -> Callable[[Any], bytes]:
    args_cls = m.request
    names = m.arg_names
    single = names[0] if len(names) == 1 else None

    def ser(request: Any) -> bytes:
        if isinstance(request, args_cls):
            args = request
        elif single is not None:
            args = args_cls(**{single: request})
        elif request is None:
            args = args_cls()
        elif isinstance(request, Mapping):
            args = args_cls(**request)
        elif isinstance(request, tuple):
            args = args_cls(*request)
        else:
            raise TypeError(
                f"{m.name} takes {len(names)} arguments: pass {args_cls.__name__}(...), a dict or a tuple"
            )
        return _write(args)

    return ser


def _result_reader(m: Method) -> Callable[[bytes], Any]:
    read = _decoder(m.response, StatusCode.INTERNAL, "server")
    exceptions = [n for n, _ in m.exceptions]
    void = m.void
    name = m.name

    def de(data: bytes) -> Any:
        result = read(data)
        for n in exceptions:
            e = getattr(result, n, None)
            if e is not None:
                raise e
        if void:
            return None
        value = result.success
        if value is None:
            # thriftpy2's own client says MISSING_RESULT here.
            raise RpcError(StatusCode.INTERNAL, f"{name}: the result holds no value and no exception")
        return value

    return de


class Stub:
    """One attribute per function of a thriftpy2 service class: `stub.EchoServer(req)` and
    so on, each a multi-callable of the function's shape with the IDL's structs in and out,
    as `rillrpc.Stub` for protobuf. Every call says `application/grpc+thrift` (on a
    `protocol="ttheader"` channel it is Thrift anyway). PingPong functions take their
    argument and give their return value; a declared exception the server answers with is
    raised as the IDL's exception class. Calls take the usual keywords (timeout, metadata,
    ...).

    `package`: the one in the method paths (`/<package>.<Service>/<Method>`), when it is
    not the last component of the IDL's `namespace go`."""

    def __init__(self, channel: Channel, service: Any, *, package: Optional[str] = None) -> None:
        self._service = service
        for m in methods(service, package=package):
            if m.shape == Shape.UNARY:
                mc: Any = _PingPong(channel, m.path, _args_maker(m), _result_reader(m), None, CODEC)
            else:
                ser = _write
                de = _decoder(m.response, StatusCode.INTERNAL, "server")
                if m.shape == Shape.SERVER_STREAMING:
                    mc = channel.unary_stream(m.path, ser, de, content_subtype=CODEC)
                elif m.shape == Shape.CLIENT_STREAMING:
                    mc = channel.stream_unary(m.path, ser, de, content_subtype=CODEC)
                else:
                    mc = channel.stream_stream(m.path, ser, de, content_subtype=CODEC)
            setattr(self, m.name, mc)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"service {self._service.__name__} has no (two-way) method {name}")


# ---------------------------------------------------------------- server


def _check_codec(ctx: ServerCall) -> None:
    if ctx.codec != CODEC:
        raise RpcError(
            StatusCode.INVALID_ARGUMENT,
            f"{ctx.method} speaks Thrift (application/grpc+thrift, TTHeader), not {ctx.codec!r}",
        )


def _serve_pingpong(m: Method, h: Callable[..., Any]) -> Callable[[Any, ServerCall], Awaitable[Any]]:
    names = m.arg_names
    result_cls = m.response
    caught: Tuple[Type[BaseException], ...] = tuple(c for _, c in m.exceptions if isinstance(c, type))
    exceptions = m.exceptions
    void = m.void
    what = m.path

    async def handle(args: Any, ctx: ServerCall) -> Any:
        _check_codec(ctx)
        try:
            r = h(*[getattr(args, n) for n in names], ctx)
            if inspect.isawaitable(r):
                r = await r
        except caught as e:
            # A declared exception is an answer, not a failure: it goes in its result field
            # with an OK status, and the client raises it.
            for n, c in exceptions:
                if isinstance(e, c):
                    return result_cls(**{n: e})
            raise  # pragma: no cover - caught names only these classes
        if void:
            return result_cls()
        if r is None:
            raise RpcError(StatusCode.INTERNAL, f"the handler of {what} returned no response")
        return result_cls(success=r)

    return handle


def _serve_stream(h: Callable[..., Any]) -> Callable[[Any, ServerCall], Any]:
    # Returns what the handler returns (an async generator or a coroutine), untouched: the
    # server drives it as it drives a protobuf handler.
    def handle(req: Any, ctx: ServerCall) -> Any:
        _check_codec(ctx)
        return h(req, ctx)

    return handle


def add_service(server: Server, service: Any, handler: Any, *, package: Optional[str] = None) -> List[Method]:
    """Serves every function of a thriftpy2 service class that `handler` has a same-named
    attribute for, as `Server.add_service` does for a protobuf servicer; returns the
    methods served. The server answers them over gRPC (`application/grpc+thrift`), TTHeader
    Streaming and Thrift PingPong, on its one port; a call in another codec gets
    INVALID_ARGUMENT.

    Handlers: a PingPong function `M(arg1, ..., ctx)` with its arguments in IDL order,
    plain or `async`, returns the value (nothing for `void`) or raises one of its declared
    exceptions, which goes back in the result; streaming ones as for protobuf: server
    streaming an async generator `M(req, ctx)`, client streaming `async def M(requests,
    ctx)`, bidi an async generator `M(requests, ctx)`. Raise `rillrpc.BizStatusError` to end
    a call with a Kitex biz status, or `RpcError` for any other status.

    `package`: the one in the method paths, when it is not the IDL's (see `Stub`)."""
    served = []
    for m in methods(service, package=package):
        h = getattr(handler, m.name, None)
        if h is None:
            continue
        if m.shape == Shape.UNARY:
            server.add_method(
                m.path,
                m.shape,
                _serve_pingpong(m, h),
                request_deserializer=_decoder(m.request, StatusCode.INVALID_ARGUMENT, "client"),
                response_serializer=_write,
            )
        else:
            server.add_method(
                m.path,
                m.shape,
                _serve_stream(h),
                request_deserializer=_decoder(m.request, StatusCode.INVALID_ARGUMENT, "client"),
                response_serializer=_write,
            )
        served.append(m)
    return served
