"""The gRPC interop client written on the rillrpc Python binding.

    python interop_client.py --server_host 127.0.0.1 --server_port 10000 --test_case large_unary
        [--use_tls --use_test_ca --ca_file ca.pem --server_host_override foo.test.google.fr]

Flags are grpc-go's (booleans as `--use_tls`, `--use_tls=true` or `--use_tls true`). The cases
and their assertions follow gRPC's doc/interop-test-descriptions.md. The protobuf classes of
grpc.testing (its descriptors taken from grpc-go's module by interop/grpc-testing) are generated
at test time (grpc_tools.protoc) into a directory given by
`--gen_dir` or $RILL_INTEROP_GEN, which must come first on sys.path (its `grpc.testing` package
shadows grpcio's `grpc`, which this client does not use).

Exit status: 0 passed, 1 failed, 3 not applicable (the case cannot run here: the reason is
printed on the last line, "n/a: ...").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

EXIT_NA = 3

# Set by main() once the generated modules are importable.
pb: Any = None  # grpc.testing.messages_pb2
empty_pb: Any = None  # grpc.testing.empty_pb2
test_pb: Any = None  # grpc.testing.test_pb2
rillrpc: Any = None

INITIAL_KEY = "x-grpc-test-echo-initial"
INITIAL_VALUE = "test_initial_metadata_value"
TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
TRAILING_VALUE = b"\xab\xab\xab"

# Every case gets a deadline so that a hung peer fails the case instead of the whole run.
CASE_DEADLINE = 30.0


class CaseFailed(Exception):
    pass


class NotApplicable(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise CaseFailed(what)


def zeros(n: int) -> Any:
    return pb.Payload(type=pb.COMPRESSABLE, body=bytes(n))


def check_body(payload: Any, size: int, what: str) -> None:
    body = payload.body
    check(len(body) == size, f"{what}: payload body is {len(body)} bytes, want {size}")
    check(body == bytes(size), f"{what}: payload body is not all zeros")


def find(md: Sequence[Tuple[str, Any]], key: str) -> List[Any]:
    return [v for k, v in md if k == key]


async def expect_error(aw: Awaitable[Any], code: Any, what: str, message: Optional[str] = None) -> Any:
    try:
        r = await aw
    except rillrpc.RpcError as e:
        check(e.code == code, f"{what}: status {e.code.name} ({e.message!r}), want {code.name}")
        if message is not None:
            check(e.message == message, f"{what}: status message {e.message!r}, want {message!r}")
        return e
    raise CaseFailed(f"{what}: succeeded ({type(r).__name__}), want status {code.name}")


class Cases:
    def __init__(self, channel: Any) -> None:
        self.ch = channel
        self.stub = rillrpc.Stub(channel, test_pb.DESCRIPTOR.services_by_name["TestService"])
        self.unimpl = rillrpc.Stub(
            channel, test_pb.DESCRIPTOR.services_by_name["UnimplementedService"]
        )

    async def empty_unary(self) -> None:
        r = await self.stub.EmptyCall(empty_pb.Empty())
        check(isinstance(r, empty_pb.Empty), f"response is {type(r).__name__}, want Empty")

    def _large_request(self, **kw: Any) -> Any:
        return pb.SimpleRequest(
            response_type=pb.COMPRESSABLE, response_size=314159, payload=zeros(271828), **kw
        )

    async def large_unary(self) -> None:
        r = await self.stub.UnaryCall(self._large_request())
        check_body(r.payload, 314159, "response")

    async def client_streaming(self) -> None:
        sizes = [27182, 8, 1828, 45904]
        reqs = [pb.StreamingInputCallRequest(payload=zeros(n)) for n in sizes]
        r = await self.stub.StreamingInputCall(reqs)
        check(
            r.aggregated_payload_size == 74922,
            f"aggregated_payload_size {r.aggregated_payload_size}, want 74922",
        )

    async def server_streaming(self) -> None:
        sizes = [31415, 9, 2653, 58979]
        req = pb.StreamingOutputCallRequest(
            response_type=pb.COMPRESSABLE,
            response_parameters=[pb.ResponseParameters(size=n) for n in sizes],
        )
        got = [r async for r in self.stub.StreamingOutputCall(req)]
        check(len(got) == 4, f"{len(got)} responses, want 4")
        for i, (r, n) in enumerate(zip(got, sizes)):
            check_body(r.payload, n, f"response {i}")

    async def ping_pong(self) -> None:
        call = self.stub.FullDuplexCall()
        pairs = [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]
        for i, (resp_size, req_size) in enumerate(pairs):
            await call.send(
                pb.StreamingOutputCallRequest(
                    response_type=pb.COMPRESSABLE,
                    response_parameters=[pb.ResponseParameters(size=resp_size)],
                    payload=zeros(req_size),
                )
            )
            r = await call.recv()
            check(r is not None, f"stream ended before response {i}")
            check_body(r.payload, resp_size, f"response {i}")
        await call.close_send()
        check(await call.recv() is None, "a fifth response came after half-close")
        code = await call.code()
        check(code == rillrpc.StatusCode.OK, f"status {code.name}, want OK")

    async def empty_stream(self) -> None:
        call = self.stub.FullDuplexCall()
        await call.close_send()
        r = await call.recv()
        check(r is None, "a response came on an empty stream")
        code = await call.code()
        check(code == rillrpc.StatusCode.OK, f"status {code.name}, want OK")

    async def timeout_on_sleeping_server(self) -> None:
        call = self.stub.FullDuplexCall(timeout=0.001)
        req = pb.StreamingOutputCallRequest(response_type=pb.COMPRESSABLE, payload=zeros(27182))
        try:
            await call.send(req)
        except rillrpc.RpcError as e:
            # The deadline may pass before the message is queued; that is the outcome too.
            check(
                e.code == rillrpc.StatusCode.DEADLINE_EXCEEDED,
                f"send: status {e.code.name}, want DEADLINE_EXCEEDED",
            )
        await expect_error(call.recv(), rillrpc.StatusCode.DEADLINE_EXCEEDED, "recv")

    async def cancel_after_begin(self) -> None:
        call = self.stub.StreamingInputCall()
        call.cancel()
        await expect_error(call, rillrpc.StatusCode.CANCELLED, "StreamingInputCall")

    async def cancel_after_first_response(self) -> None:
        call = self.stub.FullDuplexCall()
        await call.send(
            pb.StreamingOutputCallRequest(
                response_type=pb.COMPRESSABLE,
                response_parameters=[pb.ResponseParameters(size=31415)],
                payload=zeros(27182),
            )
        )
        r = await call.recv()
        check(r is not None, "stream ended before the first response")
        check_body(r.payload, 31415, "first response")
        call.cancel()
        await expect_error(call.recv(), rillrpc.StatusCode.CANCELLED, "recv after cancel")

    async def _echo_status(self, code: int, message: str) -> None:
        status = pb.EchoStatus(code=code, message=message)
        want = rillrpc.StatusCode(code)
        await expect_error(
            self.stub.UnaryCall(pb.SimpleRequest(response_status=status)),
            want,
            "UnaryCall",
            message,
        )
        call = self.stub.FullDuplexCall()
        await call.send(pb.StreamingOutputCallRequest(response_status=status))
        await call.close_send()
        await expect_error(call.recv(), want, "FullDuplexCall", message)

    async def status_code_and_message(self) -> None:
        await self._echo_status(2, "test status message")

    async def special_status_message(self) -> None:
        # Unary only, as the case's description and grpc-go's client have it.
        msg = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
        status = pb.EchoStatus(code=2, message=msg)
        await expect_error(
            self.stub.UnaryCall(pb.SimpleRequest(response_status=status)),
            rillrpc.StatusCode.UNKNOWN,
            "UnaryCall",
            msg,
        )

    def _check_echoed(self, headers: Any, trailers: Any, what: str) -> None:
        init = find(headers, INITIAL_KEY)
        check(init == [INITIAL_VALUE], f"{what}: initial metadata {INITIAL_KEY} = {init!r}")
        trail = find(trailers, TRAILING_KEY)
        check(trail == [TRAILING_VALUE], f"{what}: trailing metadata {TRAILING_KEY} = {trail!r}")

    async def custom_metadata(self) -> None:
        md = [(INITIAL_KEY, INITIAL_VALUE), (TRAILING_KEY, TRAILING_VALUE)]
        call = self.stub.UnaryCall(self._large_request(), metadata=md)
        r = await call
        check_body(r.payload, 314159, "UnaryCall response")
        self._check_echoed(await call.headers(), await call.trailers(), "UnaryCall")

        call = self.stub.FullDuplexCall(metadata=md)
        await call.send(
            pb.StreamingOutputCallRequest(
                response_type=pb.COMPRESSABLE,
                response_parameters=[pb.ResponseParameters(size=314159)],
                payload=zeros(271828),
            )
        )
        await call.close_send()
        got = [m async for m in call]
        check(len(got) == 1, f"FullDuplexCall: {len(got)} responses, want 1")
        check_body(got[0].payload, 314159, "FullDuplexCall response")
        code = await call.code()
        check(code == rillrpc.StatusCode.OK, f"FullDuplexCall: status {code.name}, want OK")
        self._check_echoed(await call.headers(), await call.trailers(), "FullDuplexCall")

    async def unimplemented_method(self) -> None:
        await expect_error(
            self.stub.UnimplementedCall(empty_pb.Empty()),
            rillrpc.StatusCode.UNIMPLEMENTED,
            "TestService/UnimplementedCall",
        )

    async def unimplemented_service(self) -> None:
        await expect_error(
            self.unimpl.UnimplementedCall(empty_pb.Empty()),
            rillrpc.StatusCode.UNIMPLEMENTED,
            "UnimplementedService/UnimplementedCall",
        )

    async def client_compressed_unary(self) -> None:
        # The probe: an uncompressed request that says it is compressed must be refused by a
        # server that has the CompressedRequest feature.
        probe = self._large_request(expect_compressed=pb.BoolValue(value=True))
        try:
            await self.stub.UnaryCall(probe)
        except rillrpc.RpcError as e:
            check(
                e.code == rillrpc.StatusCode.INVALID_ARGUMENT,
                f"probe: status {e.code.name} ({e.message!r}), want INVALID_ARGUMENT",
            )
        else:
            raise NotApplicable(
                "the server lacks the CompressedRequest feature (the probe call succeeded)"
            )
        req = self._large_request(expect_compressed=pb.BoolValue(value=True))
        r = await self.stub.UnaryCall(req, compression="gzip")
        check_body(r.payload, 314159, "compressed call's response")
        req = self._large_request(expect_compressed=pb.BoolValue(value=False))
        r = await self.stub.UnaryCall(req)
        check_body(r.payload, 314159, "uncompressed call's response")

    async def client_compressed_streaming(self) -> None:
        raise NotApplicable(
            "the binding compresses per call, not per message (Call.send has no compress flag)"
        )

    def _compressed_flag(self, call: Any) -> bool:
        # Call.response_compressed() is recent in the binding; without it the case is n/a.
        flag = getattr(call, "response_compressed", None)
        if flag is None:
            raise NotApplicable("the binding does not expose a response's compressed flag")
        return bool(flag())

    async def server_compressed_unary(self) -> None:
        for compressed in (True, False):
            req = self._large_request(response_compressed=pb.BoolValue(value=compressed))
            call = self.stub.UnaryCall(req)
            r = await call
            check_body(r.payload, 314159, f"response (response_compressed={compressed})")
            got = self._compressed_flag(call)
            check(
                got == compressed,
                f"response_compressed={compressed}: the response's compressed flag is {got}",
            )

    async def server_compressed_streaming(self) -> None:
        params = [(True, 31415), (False, 92653)]
        req = pb.StreamingOutputCallRequest(
            response_type=pb.COMPRESSABLE,
            response_parameters=[
                pb.ResponseParameters(size=n, compressed=pb.BoolValue(value=c)) for c, n in params
            ],
        )
        call = self.stub.StreamingOutputCall(req)
        for i, (compressed, size) in enumerate(params):
            r = await call.recv()
            check(r is not None, f"stream ended before response {i}")
            check_body(r.payload, size, f"response {i}")
            got = self._compressed_flag(call)
            check(
                got == compressed,
                f"response {i} (compressed={compressed}): its compressed flag is {got}",
            )
        check(await call.recv() is None, "more than two responses")
        code = await call.code()
        check(code == rillrpc.StatusCode.OK, f"status {code.name}, want OK")

CASES: Dict[str, Callable[[Cases], Awaitable[None]]] = {
    name: getattr(Cases, name)
    for name in [
        "empty_unary",
        "large_unary",
        "client_streaming",
        "server_streaming",
        "ping_pong",
        "empty_stream",
        "timeout_on_sleeping_server",
        "cancel_after_begin",
        "cancel_after_first_response",
        "status_code_and_message",
        "special_status_message",
        "custom_metadata",
        "unimplemented_method",
        "unimplemented_service",
        "client_compressed_unary",
        "server_compressed_unary",
        "client_compressed_streaming",
        "server_compressed_streaming",
    ]
}


def flag_bool(v: str) -> bool:
    low = v.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {v!r}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="gRPC interop client on the rillrpc binding")
    p.add_argument("--server_host", default="localhost")
    p.add_argument("--server_port", type=int, required=True)
    p.add_argument("--server_host_override", default="")
    p.add_argument("--test_case", default="large_unary", help="one of: " + ", ".join(CASES))
    for b in ("--use_tls", "--use_test_ca"):
        p.add_argument(b, type=flag_bool, nargs="?", const=True, default=False)
    p.add_argument("--ca_file", default="", help="root CA (PEM) for --use_test_ca")
    p.add_argument("--gen_dir", default=os.environ.get("RILL_INTEROP_GEN", ""))
    a = p.parse_args(argv)
    if a.test_case not in CASES:
        p.error(f"unknown --test_case {a.test_case!r}; known: {', '.join(CASES)}")
    if not 0 < a.server_port < 65536:
        p.error(f"--server_port {a.server_port} is out of range")
    if a.use_tls and not a.use_test_ca:
        # The binding verifies against the CA it is given; no system roots are wired in.
        p.error("--use_tls needs --use_test_ca and --ca_file")
    if a.use_test_ca and not a.ca_file:
        p.error("--use_test_ca needs --ca_file (the test CA, e.g. grpc-go's testdata/ca.pem)")
    if not a.gen_dir:
        p.error("the generated protobuf modules: pass --gen_dir or set RILL_INTEROP_GEN")
    return a


def load_modules(gen_dir: str) -> None:
    global pb, empty_pb, test_pb, rillrpc
    sys.path.insert(0, gen_dir)
    import rillrpc as r  # noqa: E402
    from grpc.testing import empty_pb2, messages_pb2, test_pb2  # noqa: E402

    pb, empty_pb, test_pb, rillrpc = messages_pb2, empty_pb2, test_pb2, r


def channel(a: argparse.Namespace) -> Any:
    host = a.server_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    if not a.use_tls:
        return rillrpc.Channel(f"http://{host}:{a.server_port}")
    with open(a.ca_file, "rb") as f:
        ca = f.read()
    return rillrpc.Channel(
        f"https://{host}:{a.server_port}",
        root_certificates=ca,
        server_name=a.server_host_override or a.server_host,
    )


async def run(a: argparse.Namespace) -> None:
    ch = channel(a)
    try:
        await asyncio.wait_for(CASES[a.test_case](Cases(ch)), CASE_DEADLINE)
    finally:
        ch.close()


def main(argv: Sequence[str]) -> int:
    a = parse_args(argv)
    load_modules(a.gen_dir)
    try:
        asyncio.run(run(a))
    except NotApplicable as e:
        print(f"{a.test_case}: n/a: {e}")
        return EXIT_NA
    except CaseFailed as e:
        print(f"{a.test_case}: FAILED: {e}")
        return 1
    except asyncio.TimeoutError:
        print(f"{a.test_case}: FAILED: did not finish within {CASE_DEADLINE:.0f} s")
        return 1
    except rillrpc.RpcError as e:
        print(f"{a.test_case}: FAILED: unexpected status {e}")
        return 1
    print(f"{a.test_case}: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
