"""rillrpc.thrift: Thrift services from IDL loaded at run time (thriftpy2), called and served
over gRPC (`application/grpc+thrift`) and Kitex's TTHeader transports (TTHeader Streaming,
Thrift PingPong), against our own server and against real Kitex (interop/kitex):

- the rillrpc client against the rillrpc server (tests/kitex_echo_server.py: kitex-server's
  semantics) and against kitex-server, over both channel protocols: the four shapes,
  PingPong, metadata (Kitex's metainfo), biz status errors, cancel;
- kitex-client (`--transport grpc`, `ttheader`, `pingpong --pingpong ttheader|framed|buffered`)
  against the rillrpc server: every check it has must pass;
- thriftpy2's own RPC client (Apache Thrift's default Buffered framing) against it;
- on our own server: declared exceptions, several arguments, void, unknown methods, a
  message in the wrong codec or not Thrift at all.

The Kitex programs come from `make kitex-build` (`make test-python` builds them), found in
$RILL_KITEX_OUT (default <repo>/target/kitex); a missing one fails the tests.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, List, Tuple

import pytest
import thriftpy2
from conftest import kitex_bin, kitex_server_at
from kitex_echo_server import IDL, echo
from kitex_echo_server import server as echo_server

import rillrpc
import rillrpc.thrift as rt
from rillrpc import RpcError, Shape, StatusCode

PROTOCOLS = ["grpc", "ttheader"]
UNARY_PAYLOADS = [b"matrix\x00\xffping", b""]
STREAM_SIZES = [1, 10, 100, 70_000]
ERROR_MESSAGE = "matrix error: 100% ünïcødé ✓"
# kitex-client's metainfo, `metainfo.WithValue(ctx, "ECHO_KEY", "value")` and
# `WithPersistentValue(ctx, "ECHO_PERSIST_KEY", "persist value")`, in their gRPC form.
METAINFO = [("rpc-transit-echo-key", "value"), ("rpc-persist-echo-persist-key", "persist value")]
TIMEOUT = 20.0

# A second IDL: what echo.thrift lacks (several arguments, void, no argument, declared
# exceptions), methods the echo server does not have, and the declaration forms a text
# parser would trip on (comments everywhere, a declaration over several lines), which
# thriftpy2 reads for us.
EXTRA_IDL = """
# a shell comment
namespace py ignored.here
namespace go rill.test.extra   // the package is its last component

struct Request {
    1: optional binary payload,
    2: optional i32 count,
}

struct Response { 1: optional binary payload }

exception Oops {
    1: string why,
    2: i32 code,
}

exception Other { 1: string what }

service Extra {
    string Hello(1: string name, 2: i32 times) throws (1: Oops oops, 2: Other other),
    void Nothing(1: i32 n),
    i32 Zero(),
    oneway void Fire(1: i32 n),
    /* a stream declared over several lines,
       annotations after a comment */
    Response Count (
        1: Request req  // the one argument
    ) (
        streaming.mode = "server"  /* no other annotation */
    ),
    Response Plain(1: Request req) (streaming.mode="unary"),
}

// Methods a server of echo.TestService does not have (called with package="echo").
service TestService {
    Response Missing(1: Request req),
    Response MissingStream(1: Request req) (streaming.mode="bidirectional"),
}
"""


@pytest.fixture(scope="module")
def extra(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("idl") / "extra.thrift"
    path.write_text(EXTRA_IDL)
    # No module_name: the module is not in sys.modules, so rillrpc.thrift reads the
    # namespace from the file the service names.
    return thriftpy2.load(str(path))


class ExtraHandler:
    def __init__(self, extra: Any) -> None:
        self.extra = extra
        self.nothing: List[int] = []

    # A plain (not async) handler works too.
    def Hello(self, name: str, times: int, ctx: rillrpc.ServerCall) -> str:
        if name == "boom":
            raise ValueError("boom: not declared")
        if times < 0:
            raise self.extra.Oops(why=name, code=times)
        if times == 0:
            raise self.extra.Other(what="zero times")
        return name * times

    async def Nothing(self, n: int, ctx: rillrpc.ServerCall) -> None:
        self.nothing.append(n)

    async def Zero(self, ctx: rillrpc.ServerCall) -> int:
        return 0

    async def Count(self, req: Any, ctx: rillrpc.ServerCall) -> AsyncIterator[Any]:
        for i in range(req.count or 0):
            yield self.extra.Response(payload=str(i).encode())

    async def Plain(self, req: Any, ctx: rillrpc.ServerCall) -> Any:
        return self.extra.Response(payload=req.payload)


@pytest.fixture
async def py_server(extra: Any) -> AsyncIterator[rillrpc.Server]:
    s = echo_server()
    handler = ExtraHandler(extra)
    rt.add_service(s, extra.Extra, handler)
    s.bind("127.0.0.1:0")
    await s.start()
    s.extra_handler = handler  # type: ignore[attr-defined]
    yield s
    await s.stop(0)


@pytest.fixture(scope="module")
def kitex_server() -> Iterator[str]:
    """kitex-server on a free port: its address."""
    with kitex_server_at() as addr:
        yield addr


@pytest.fixture(params=["rillrpc", "kitex"])
async def peer(request: pytest.FixtureRequest, extra: Any) -> AsyncIterator[str]:
    """The address of a server with kitex-server's semantics: ours or Kitex's."""
    if request.param == "kitex":
        yield request.getfixturevalue("kitex_server")
        return
    s = echo_server()
    s.bind("127.0.0.1:0")
    await s.start()
    yield f"127.0.0.1:{s.port}"
    await s.stop(0)


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def channel(addr: str, protocol: str) -> rillrpc.Channel:
    # As Kitex's client names its destination service: `:authority` on gRPC, ToService on
    # TTHeader.
    return rillrpc.Channel(f"http://{addr}", protocol=protocol, authority="echo")


# ---------------------------------------------------------------- the IDL


def test_methods_come_from_the_idl_namespace_and_annotations(extra: Any) -> None:
    got = {m.name: (m.path, m.shape, m.streaming) for m in rt.methods(echo.TestService)}
    assert got == {
        "PingPong": ("/echo.TestService/PingPong", Shape.UNARY, False),
        "Echo": ("/echo.TestService/Echo", Shape.BIDI, True),
        "EchoClient": ("/echo.TestService/EchoClient", Shape.CLIENT_STREAMING, True),
        "EchoServer": ("/echo.TestService/EchoServer", Shape.SERVER_STREAMING, True),
    }
    by = {m.name: m for m in rt.methods(echo.TestService)}
    assert by["Echo"].request is echo.Request and by["Echo"].response is echo.Response
    assert by["PingPong"].request is echo.TestService.PingPong_args
    assert by["PingPong"].response is echo.TestService.PingPong_result

    # Comments, a declaration over several lines, `namespace go a.b.c`, no module_name;
    # oneway functions are left out; streaming.mode="unary" is a PingPong.
    ex = {m.name: m for m in rt.methods(extra.Extra)}
    assert sorted(ex) == ["Count", "Hello", "Nothing", "Plain", "Zero"]
    assert ex["Count"].path == "/extra.Extra/Count" and ex["Count"].shape == Shape.SERVER_STREAMING
    assert ex["Plain"].shape == Shape.UNARY and not ex["Plain"].streaming
    assert ex["Hello"].arg_names == ["name", "times"]
    assert [n for n, _ in ex["Hello"].exceptions] == ["oops", "other"]
    assert ex["Nothing"].void and not ex["Hello"].void
    assert rt.package_of(extra.Extra) == "extra"
    assert rt.methods(extra.TestService, package="echo")[0].path == "/echo.TestService/Missing"


def test_package_without_a_file_must_be_given() -> None:
    m = thriftpy2.load_fp(io.StringIO("service S { void F() }"), "nofile_thrift")
    # load_fp keeps no file and no namespace: only `package=` can say it.
    with pytest.raises(ValueError, match="package="):
        rt.methods(m.S)
    assert rt.methods(m.S, package="p")[0].path == "/p.S/F"


def test_bad_streaming_mode_is_refused() -> None:
    m = thriftpy2.load_fp(
        io.StringIO('struct R {} service S { R F(1: R r) (streaming.mode="sideways") }'), "badmode_thrift"
    )
    with pytest.raises(ValueError, match="sideways"):
        rt.methods(m.S, package="p")


def test_thrift_binary_matches_kitex_bytes() -> None:
    # interop/kitex/WIRE.md §3: PingPong's args as Kitex's client sends them, and an
    # EchoServer request (Kitex writes field 2 before field 1; any order reads).
    args = bytes.fromhex("0c0001 0b0001 0000000c") + b"matrix\x00\xffping" + b"\x00\x00"
    req = echo.Request(payload=b"matrix\x00\xffping")
    assert rt.encode(echo.TestService.PingPong_args(req=req)) == args
    assert rt.decode(echo.TestService.PingPong_args, args).req == req
    kitex_req = bytes.fromhex("08000200000005 0b000100000006") + b"stream\x00"
    assert rt.decode(echo.Request, kitex_req) == echo.Request(payload=b"stream", count=5)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no STOP
        bytes.fromhex("0b0001"),  # a field with no length
        bytes.fromhex("0b0001 7fffffff 00"),  # a length past the end
        bytes.fromhex("0b0001 ffffff00 00"),  # a negative length
        bytes.fromhex("0b0001 00000002") + b"ab\x00junk",  # bytes after the STOP
        bytes.fromhex("0c0009") * 100 + b"\x00" * 100,  # nested deeper than 64
    ],
)
def test_decode_refuses_what_is_not_one_struct(data: bytes) -> None:
    with pytest.raises(Exception):
        rt.decode(echo.Request, data)


def test_thriftpy2_is_needed_only_by_rillrpc_thrift() -> None:
    import sys

    code = (
        "import sys; sys.modules['thriftpy2'] = None\n"  # as if not installed
        "import rillrpc\n"
        "try:\n"
        "    import rillrpc.thrift\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install thriftpy2" in out.stdout, out.stdout


def test_stub_has_no_other_methods(extra: Any) -> None:
    ch = rillrpc.Channel("http://127.0.0.1:1")
    stub = rt.Stub(ch, extra.Extra)
    with pytest.raises(AttributeError, match="Fire"):
        stub.Fire
    ch.close()


# ---------------------------------------------------------------- kitex-client's checks


async def check_unary(stub: Any) -> None:
    for p in UNARY_PAYLOADS:
        resp = await stub.PingPong(echo.Request(payload=p), timeout=TIMEOUT)
        assert isinstance(resp, echo.Response)
        # Kitex leaves an empty optional binary out, or sends it empty.
        assert (resp.payload or b"") == p


async def check_server_streaming(stub: Any) -> None:
    got = [r async for r in stub.EchoServer(echo.Request(payload=b"stream", count=5), timeout=TIMEOUT)]
    assert [r.payload for r in got] == [b"stream"] * 5


async def check_client_streaming(stub: Any) -> None:
    reqs = [echo.Request(payload=b"c" * n) for n in STREAM_SIZES]
    resp = await stub.EchoClient(reqs, timeout=TIMEOUT)
    assert resp.payload == b"70111"


async def check_bidi(stub: Any) -> None:
    call = stub.Echo(timeout=TIMEOUT)
    for i in range(5):
        want = f"bidi-{i}".encode()
        await call.send(echo.Request(payload=want))
        got = await call.recv()
        assert got.payload == want
    await call.close_send()
    assert await call.recv() is None
    assert await call.code() == StatusCode.OK


def assert_biz(e: BaseException) -> None:
    assert isinstance(e, rillrpc.BizStatusError), repr(e)
    assert e.code == StatusCode.INTERNAL
    assert e.biz_code == 5
    assert e.biz_message == ERROR_MESSAGE
    assert dict(e.biz_extra) == {"echo-count": "-5"}


ERROR_REQUEST = echo.Request(payload=ERROR_MESSAGE.encode(), count=-5)


async def check_error_status(stub: Any) -> None:
    # The error alone, on PingPong.
    with pytest.raises(rillrpc.BizStatusError) as e:
        await stub.PingPong(ERROR_REQUEST, timeout=TIMEOUT)
    assert_biz(e.value)
    # After an answered message, on Echo.
    call = stub.Echo(timeout=TIMEOUT)
    await call.send(echo.Request(payload=b"bidi-0"))
    assert (await call.recv()).payload == b"bidi-0"
    await call.send(ERROR_REQUEST)
    with pytest.raises(rillrpc.BizStatusError) as e:
        await call.recv()
    assert_biz(e.value)
    # Ending a server stream with no message before it, on EchoServer.
    got = []
    with pytest.raises(rillrpc.BizStatusError) as e:
        async for r in stub.EchoServer(ERROR_REQUEST, timeout=TIMEOUT):
            got.append(r)
    assert got == []
    assert_biz(e.value)
    # And on a client stream.
    with pytest.raises(rillrpc.BizStatusError) as e:
        await stub.EchoClient([echo.Request(payload=b"x"), ERROR_REQUEST], timeout=TIMEOUT)
    assert_biz(e.value)


def has_metainfo(what: str, md: Any) -> None:
    got = dict(md)
    for k, v in METAINFO:
        assert got.get(k) == v, f"{what}: {k} = {got.get(k)!r}, want {v!r} (got {md})"


async def check_metadata(stub: Any) -> None:
    call = stub.PingPong(echo.Request(payload=b"meta"), metadata=METAINFO, timeout=TIMEOUT)
    assert (await call).payload == b"meta"
    has_metainfo("PingPong headers", await call.headers())
    has_metainfo("PingPong trailers", await call.trailers())
    call = stub.EchoServer(echo.Request(payload=b"meta", count=1), metadata=METAINFO, timeout=TIMEOUT)
    has_metainfo("EchoServer headers", await call.headers())
    assert [r.payload async for r in call] == [b"meta"]
    has_metainfo("EchoServer trailers", await call.trailers())


async def check_cancel(stub: Any) -> None:
    call = stub.Echo(timeout=TIMEOUT)
    await call.send(echo.Request(payload=b"cancel-0"))
    assert (await call.recv()).payload == b"cancel-0"
    call.cancel()
    with pytest.raises(RpcError) as e:
        await call.recv()
    assert e.value.code == StatusCode.CANCELLED
    await asyncio.sleep(0.1)
    got = [r async for r in stub.EchoServer(echo.Request(payload=b"after-cancel", count=1), timeout=TIMEOUT)]
    assert [r.payload for r in got] == [b"after-cancel"]


CHECKS = {
    "unary": check_unary,
    "server_streaming": check_server_streaming,
    "client_streaming": check_client_streaming,
    "bidi": check_bidi,
    "error_status": check_error_status,
    "metadata": check_metadata,
    "cancel": check_cancel,
}


@pytest.mark.parametrize("check", list(CHECKS))
async def test_client_against_echo_servers(peer: str, protocol: str, check: str) -> None:
    """kitex-client's checks on rillrpc.thrift's client, against kitex-server and our
    server, over gRPC and TTHeader."""
    async with channel(peer, protocol) as ch:
        await asyncio.wait_for(CHECKS[check](rt.Stub(ch, echo.TestService)), 60)


async def run_kitex_client(addr: str, *args: str) -> Tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        kitex_bin("kitex-client"),
        "--target",
        addr,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


# `deadline`: a 300 ms deadline on calls our server answers after `sleep:<ms>`.
ALL_KITEX_CHECKS = {"unary", "server_streaming", "client_streaming", "bidi", "error_status", "metadata", "cancel", "deadline"}


@pytest.mark.parametrize(
    "args,want",
    [
        (["--transport", "grpc"], ALL_KITEX_CHECKS),
        (["--transport", "grpc", "--api", "classic"], ALL_KITEX_CHECKS),
        (["--transport", "ttheader"], ALL_KITEX_CHECKS),
        (["--transport", "pingpong", "--pingpong", "ttheader"], {"unary", "error_status", "metadata", "deadline"}),
        (["--transport", "pingpong", "--pingpong", "ttheader-framed"], {"unary", "error_status", "metadata", "deadline"}),
        (["--transport", "pingpong", "--pingpong", "framed"], {"unary", "deadline"}),
        (["--transport", "pingpong", "--pingpong", "buffered"], {"unary", "deadline"}),
    ],
    ids=["grpc", "grpc-classic", "ttheader", "pingpong-ttheader", "pingpong-ttheader-framed", "pingpong-framed", "pingpong-buffered"],
)
async def test_kitex_client_against_our_server(py_server: rillrpc.Server, args: List[str], want: set) -> None:
    """Real Kitex's client, every check it has, against the rillrpc server of the IDL."""
    rc, out = await run_kitex_client(f"127.0.0.1:{py_server.port}", *args)
    print(out)
    passed = {line.split()[1] for line in out.splitlines() if line.startswith("PASS ")}
    assert rc == 0 and "FAIL" not in out, out
    assert passed == want, out


async def test_an_apache_thrift_client_calls_our_server(py_server: rillrpc.Server, extra: Any) -> None:
    """thriftpy2's own RPC client, with Apache Thrift's default framing (TBufferedTransport and
    TBinaryProtocol: bare TMessages, no length, no TTHeader), on the server's one port."""
    from thriftpy2.rpc import make_client
    from thriftpy2.thrift import TApplicationException

    def calls() -> None:
        c = make_client(echo.TestService, "127.0.0.1", py_server.port, timeout=int(TIMEOUT * 1000))
        x = make_client(extra.Extra, "127.0.0.1", py_server.port, timeout=int(TIMEOUT * 1000))
        try:
            for payload in UNARY_PAYLOADS + [b"x" * 70_000]:
                assert c.PingPong(echo.Request(payload=payload)).payload == payload
            assert x.Hello("ab", 2) == "abab"
            with pytest.raises(extra.Oops) as e:
                x.Hello("oops", -2)
            assert (e.value.why, e.value.code) == ("oops", -2)
            assert x.Nothing(7) is None
            assert x.Zero() == 0
            # A streaming method is refused as Kitex's server refuses it: an exception.
            with pytest.raises(TApplicationException) as e2:
                c.Echo(echo.Request(payload=b"?"))
            assert "streaming" in str(e2.value)
        finally:
            c.close()
            x.close()

    await asyncio.to_thread(calls)
    assert py_server.extra_handler.nothing == [7]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- our server's edges


async def test_declared_exceptions_several_arguments_void(py_server: rillrpc.Server, protocol: str, extra: Any) -> None:
    async with channel(f"127.0.0.1:{py_server.port}", protocol) as ch:
        stub = rt.Stub(ch, extra.Extra)
        # Arguments as a tuple, a mapping or the args struct.
        assert await stub.Hello(("ab", 2)) == "abab"
        assert await stub.Hello({"name": "x", "times": 3}) == "xxx"
        assert await stub.Hello(extra.Extra.Hello_args(name="y", times=1)) == "y"
        with pytest.raises(extra.Oops) as e:
            await stub.Hello(("oops", -2))
        assert (e.value.why, e.value.code) == ("oops", -2)
        with pytest.raises(extra.Other) as e2:
            await stub.Hello(("none", 0))
        assert e2.value.what == "zero times"
        # An exception the IDL does not declare is a failed call.
        with pytest.raises(RpcError) as e3:
            await stub.Hello(("boom", 1))
        assert e3.value.code in (StatusCode.UNKNOWN, StatusCode.INTERNAL)
        assert "boom" in e3.value.message
        assert await stub.Nothing(7) is None
        assert py_server.extra_handler.nothing == [7]  # type: ignore[attr-defined]
        assert await stub.Zero() == 0
        assert [r.payload async for r in stub.Count(extra.Request(count=3))] == [b"0", b"1", b"2"]
        assert (await stub.Plain(extra.Request(payload=b"p"))).payload == b"p"
        with pytest.raises(TypeError):
            await stub.Hello("only one")


async def test_unknown_method(py_server: rillrpc.Server, protocol: str, extra: Any) -> None:
    async with channel(f"127.0.0.1:{py_server.port}", protocol) as ch:
        stub = rt.Stub(ch, extra.TestService, package="echo")
        with pytest.raises(RpcError) as e:
            await stub.Missing(extra.Request(payload=b"?"), timeout=TIMEOUT)
        assert e.value.code == StatusCode.UNIMPLEMENTED, repr(e.value)
        assert "Missing" in e.value.message
        call = stub.MissingStream([extra.Request(payload=b"?")], timeout=TIMEOUT)
        with pytest.raises(RpcError) as e:
            await call.recv()
        assert e.value.code == StatusCode.UNIMPLEMENTED, repr(e.value)


async def test_biz_status_from_a_handler_with_no_extra(py_server: rillrpc.Server, protocol: str) -> None:
    # kitex_echo_server's handlers raise BizStatusError with an extra map; here one without.
    s = rillrpc.Server()

    class H:
        async def PingPong(self, req: Any, ctx: rillrpc.ServerCall) -> Any:
            raise rillrpc.BizStatusError(1001, "no such user")

    rt.add_service(s, echo.TestService, H())
    s.bind("127.0.0.1:0")
    await s.start()
    try:
        async with channel(f"127.0.0.1:{s.port}", protocol) as ch:
            with pytest.raises(rillrpc.BizStatusError) as e:
                await rt.Stub(ch, echo.TestService).PingPong(echo.Request(), timeout=TIMEOUT)
            assert (e.value.biz_code, e.value.biz_message) == (1001, "no such user")
            assert not e.value.biz_extra
    finally:
        await s.stop(0)


async def test_content_subtype_on_the_byte_level_api(py_server: rillrpc.Server) -> None:
    """`content_subtype` is what makes a call `application/grpc+thrift`: without it the
    server's Thrift method refuses the call, and a message that is not Thrift is refused."""
    args = rt.encode(echo.TestService.PingPong_args(req=echo.Request(payload=b"raw")))
    async with rillrpc.Channel(f"http://127.0.0.1:{py_server.port}") as ch:
        raw = await ch.unary("/echo.TestService/PingPong", args, content_subtype="thrift", timeout=TIMEOUT)
        assert rt.decode(echo.TestService.PingPong_result, raw).success.payload == b"raw"
        mc = ch.unary_unary("/echo.TestService/PingPong", content_subtype="thrift")
        assert await mc(args, timeout=TIMEOUT) == raw
        with pytest.raises(RpcError) as e:
            await ch.unary("/echo.TestService/PingPong", args, timeout=TIMEOUT)
        assert e.value.code == StatusCode.INVALID_ARGUMENT and "'proto'" in e.value.message
        with pytest.raises(RpcError) as e:
            await ch.unary("/echo.TestService/PingPong", b"\x0b\x00\x01", content_subtype="thrift", timeout=TIMEOUT)
        assert e.value.code == StatusCode.INVALID_ARGUMENT and "PingPong_args" in e.value.message
        # A stream's bare structs too.
        call = ch.bidi("/echo.TestService/Echo", [b"\x0c\x00"], content_subtype="thrift", timeout=TIMEOUT)
        with pytest.raises(RpcError) as e:
            await call.recv()
        assert e.value.code == StatusCode.INVALID_ARGUMENT and "Request" in e.value.message


def test_kitex_echo_server_runs_as_a_program() -> None:
    """tests/kitex_echo_server.py is also a program, for running Kitex's client by hand."""
    import sys

    p = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("kitex_echo_server.py")), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RILL_SHARED": str(IDL.parents[1])},
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        addr = line.split()[-1]
        out = subprocess.run(
            [kitex_bin("kitex-client"), "--target", addr, "--transport", "ttheader", "--check", "unary,bidi"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.split() == ["PASS", "unary", "PASS", "bidi"], out.stdout
    finally:
        p.kill()
        p.wait()
