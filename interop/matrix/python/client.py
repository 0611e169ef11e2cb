"""The Python clients of the matrix, on rillrpc or on grpcio (grpc.aio):
    client.py --impl rill|grpcio --target HOST:PORT [--protocol grpc|grpc-web|connect]
              [--shape-rules zero,two,two-requests]
runs the six checks of interop/matrix/README.md (or, with --shape-rules, those sub-checks of
the shape_rules check instead), prints "PASS <check>" / "FAIL <check>: <why>" lines and
exits 1 if any failed. --protocol (rillrpc only; default grpc) is what every call speaks,
over HTTP/2 (h2c): the Channel's `protocol`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, Awaitable, Callable, Dict, List, Sequence, Tuple

from _echo import (BIN_VALUE, BURST_MESSAGES, BURST_SIZE, CALL_TIMEOUT, ERROR_MESSAGE, PROTOCOL_HEADER, SERVICE,
                   STREAM_SIZES, UNARY_PAYLOAD, echo_pb2, echo_pb2_grpc)

Req = echo_pb2.Request
SEND_MD = (("echo-key", "value"), ("echo-bin-bin", BIN_VALUE))


class Failed(Exception):
    pass


def expect(cond: bool, why: str) -> None:
    if not cond:
        raise Failed(why)


def echoed(where: str, md: Sequence[Tuple[str, Any]]) -> List[str]:
    """What is wrong with the echoed entries in `md` (pairs, as both libraries give them)."""
    got = {}
    for k, v in md:
        got.setdefault(k, []).append(v)
    problems = []
    if got.get("echo-key") != ["value"]:
        problems.append(f"{where} echo-key = {got.get('echo-key')!r}")
    if got.get("echo-bin-bin") != [BIN_VALUE]:
        problems.append(f"{where} echo-bin-bin = {got.get('echo-bin-bin')!r}")
    return problems


def spoke(protocol: str, headers: Sequence[Tuple[str, Any]]) -> List[str]:
    """Whether the server saw the protocol this client was told to speak. Present, the header
    must name it; absent, this client must speak gRPC: only the gRPC-only peers' servers omit
    it, and they answer nothing else. So a row that speaks another protocol than its own
    fails against every server that answers it."""
    got = [v for k, v in headers if k == PROTOCOL_HEADER]
    if got == [protocol] or (not got and protocol == "grpc"):
        return []
    if not got:
        return [f"the server sent no {PROTOCOL_HEADER} header, but this client was told to speak {protocol} "
                "(only the gRPC-only peers' servers send none, and they answer gRPC alone)"]
    return [f"the server saw {PROTOCOL_HEADER} {json.dumps(got)}, but this client was told to speak {protocol}"]


def rill_checks(target: str, protocol: str) -> List[Tuple[str, Callable[[], Awaitable[None]]]]:
    import rillrpc
    from rillrpc import RpcError, StatusCode

    chan = rillrpc.Channel(f"http://{target}", protocol=protocol)
    stub: Any = rillrpc.Stub(chan, SERVICE)
    t = CALL_TIMEOUT

    async def unary() -> None:
        # The empty request is a zero-length message, and so is its response.
        for p in (UNARY_PAYLOAD, b""):
            r = await stub.PingPong(Req(payload=p), timeout=t)
            expect(r.payload == p, f"payload {r.payload!r}, want {p!r}")

    async def server_streaming() -> None:
        call = stub.EchoServer(Req(payload=b"stream", count=5), timeout=t)
        got = [r.payload async for r in call]
        expect(got == [b"stream"] * 5, f"responses {got!r}")
        code = await call.code()
        expect(code == StatusCode.OK, f"status {code.name}")

    async def client_streaming() -> None:
        r = await stub.EchoClient([Req(payload=b"x" * n) for n in STREAM_SIZES], timeout=t)
        expect(r.payload == str(sum(STREAM_SIZES)).encode(), f"total {r.payload!r}")
        # The burst from an async generator, as issue 17's reporter streamed.
        m = Req(payload=b"x" * BURST_SIZE)

        async def burst() -> Any:
            for _ in range(BURST_MESSAGES):
                yield m

        try:
            r = await stub.EchoClient(burst(), timeout=t)
        except RpcError as e:
            raise Failed(f"burst of {BURST_MESSAGES}: status {e.code.name} {e.message!r}") from None
        expect(r.payload == str(BURST_MESSAGES * BURST_SIZE).encode(), f"burst: total {r.payload!r}")

    async def bidi() -> None:
        call = stub.Echo(timeout=t)
        for i in range(5):
            p = f"bidi-{i}".encode()
            await call.send(Req(payload=p))
            r = await call.recv()
            expect(r is not None, f"round {i}: the call ended")
            expect(r.payload == p, f"round {i}: payload {r.payload!r}")
        await call.close_send()
        r = await call.recv()
        expect(r is None, f"an extra message {r!r}")
        code = await call.code()
        expect(code == StatusCode.OK, f"status {code.name}")

    def wanted(what: str, e: RpcError) -> None:
        expect(e.code == StatusCode.NOT_FOUND and e.message == ERROR_MESSAGE,
               f"{what}: status {e.code.name} {e.message!r}")

    async def error_status() -> None:
        # Unary: the status comes alone (trailers-only); bidi: after an answered message.
        try:
            await stub.PingPong(Req(payload=ERROR_MESSAGE.encode(), count=-5), timeout=t)
            raise Failed("unary: the call succeeded, want NOT_FOUND")
        except RpcError as e:
            wanted("unary", e)
        call = stub.Echo(timeout=t)
        await call.send(Req(payload=b"before"))
        r = await call.recv()
        expect(r is not None and r.payload == b"before", f"bidi: first answer {r!r}")
        await call.send(Req(payload=ERROR_MESSAGE.encode(), count=-5))
        try:
            r = await call.recv()
            raise Failed(f"bidi: {r!r}, want NOT_FOUND")
        except RpcError as e:
            wanted("bidi", e)

    async def metadata() -> None:
        call = stub.PingPong(Req(payload=b"md"), timeout=t, metadata=SEND_MD)
        r = await call
        expect(r.payload == b"md", f"payload {r.payload!r}")
        headers = list(await call.headers())
        problems = echoed("headers", headers) + echoed("trailers", await call.trailers()) + spoke(protocol, headers)
        expect(not problems, "; ".join(problems))

    return [("unary", unary), ("server_streaming", server_streaming),
            ("client_streaming", client_streaming), ("bidi", bidi),
            ("error_status", error_status), ("metadata", metadata)]


def grpcio_checks(target: str) -> List[Tuple[str, Callable[[], Awaitable[None]]]]:
    import grpc
    import grpc.aio

    chan = grpc.aio.insecure_channel(target)
    stub = echo_pb2_grpc.TestServiceStub(chan)
    t = CALL_TIMEOUT

    async def unary() -> None:
        for p in (UNARY_PAYLOAD, b""):
            r = await stub.PingPong(Req(payload=p), timeout=t)
            expect(r.payload == p, f"payload {r.payload!r}, want {p!r}")

    async def server_streaming() -> None:
        call = stub.EchoServer(Req(payload=b"stream", count=5), timeout=t)
        got = [r.payload async for r in call]
        expect(got == [b"stream"] * 5, f"responses {got!r}")
        code = await call.code()
        expect(code == grpc.StatusCode.OK, f"status {code}")

    async def client_streaming() -> None:
        r = await stub.EchoClient(iter([Req(payload=b"x" * n) for n in STREAM_SIZES]), timeout=t)
        expect(r.payload == str(sum(STREAM_SIZES)).encode(), f"total {r.payload!r}")
        m = Req(payload=b"x" * BURST_SIZE)
        try:
            r = await stub.EchoClient(iter([m] * BURST_MESSAGES), timeout=t)
        except grpc.aio.AioRpcError as e:
            raise Failed(f"burst of {BURST_MESSAGES}: status {e.code()} {e.details()!r}") from None
        expect(r.payload == str(BURST_MESSAGES * BURST_SIZE).encode(), f"burst: total {r.payload!r}")

    async def bidi() -> None:
        call = stub.Echo(timeout=t)
        for i in range(5):
            p = f"bidi-{i}".encode()
            await call.write(Req(payload=p))
            r = await call.read()
            expect(r is not grpc.aio.EOF, f"round {i}: the call ended")
            expect(r.payload == p, f"round {i}: payload {r.payload!r}")
        await call.done_writing()
        r = await call.read()
        expect(r is grpc.aio.EOF, f"an extra message {r!r}")
        code = await call.code()
        expect(code == grpc.StatusCode.OK, f"status {code}")

    def wanted(what: str, e: grpc.aio.AioRpcError) -> None:
        expect(e.code() == grpc.StatusCode.NOT_FOUND and e.details() == ERROR_MESSAGE,
               f"{what}: status {e.code()} {e.details()!r}")

    async def error_status() -> None:
        try:
            await stub.PingPong(Req(payload=ERROR_MESSAGE.encode(), count=-5), timeout=t)
            raise Failed("unary: the call succeeded, want NOT_FOUND")
        except grpc.aio.AioRpcError as e:
            wanted("unary", e)
        call = stub.Echo(timeout=t)
        await call.write(Req(payload=b"before"))
        r = await call.read()
        expect(r is not grpc.aio.EOF and r.payload == b"before", f"bidi: first answer {r!r}")
        await call.write(Req(payload=ERROR_MESSAGE.encode(), count=-5))
        try:
            r = await call.read()
            raise Failed(f"bidi: {r!r}, want NOT_FOUND")
        except grpc.aio.AioRpcError as e:
            wanted("bidi", e)

    async def metadata() -> None:
        call = stub.PingPong(Req(payload=b"md"), timeout=t, metadata=SEND_MD)
        r = await call
        expect(r.payload == b"md", f"payload {r.payload!r}")
        headers = list(await call.initial_metadata())
        problems = (echoed("headers", headers) + echoed("trailers", list(await call.trailing_metadata()))
                    + spoke("grpc", headers))
        expect(not problems, "; ".join(problems))

    return [("unary", unary), ("server_streaming", server_streaming),
            ("client_streaming", client_streaming), ("bidi", bidi),
            ("error_status", error_status), ("metadata", metadata)]


# The grpc-go server's matrix.Rules (go/echo/rules.go): unary for the client, answered with
# zero, one and two response messages.
RULES_ZERO, RULES_ONE, RULES_TWO = "/matrix.Rules/Zero", "/matrix.Rules/One", "/matrix.Rules/Two"
PING_PONG = "/echo.TestService/PingPong"
RULES = ("zero", "two", "two-requests")
# A shorter deadline than the six checks': grpcio's and grpc-js's clients (information cells)
# wait for it on a unary call answered twice, and every one of them adds to the matrix's
# time. A rillrpc call here ends in milliseconds.
RULES_TIMEOUT = 3.0
# The second request of two-requests comes this long after the first: a server that takes the
# first without waiting for the half-close (where a second one would show) has ended the call
# by then, so it fails every run, not only when both requests arrive together.
REQUEST_GAP = 0.05
# A call's outcome as the table shows it: (code, message), or (0, "responses: N").
Outcome = Tuple[int, str]


def rill_rules(target: str, protocol: str) -> Tuple[Callable[[str], Awaitable[Outcome]], Callable[[], Awaitable[Outcome]]]:
    """The two calls of shape_rules on rillrpc: a unary call, and two requests through a
    bidi call on PingPong (a unary one would refuse the second)."""
    import rillrpc
    from rillrpc import RpcError, StatusCode

    chan = rillrpc.Channel(f"http://{target}", protocol=protocol)
    req = Req(payload=b"rules").SerializeToString()

    async def unary(path: str) -> Outcome:
        try:
            reply = await chan.unary(path, req, timeout=RULES_TIMEOUT)
            return 0, "returned None" if reply is None else "responses: 1"
        except RpcError as e:
            return int(e.code), e.message

    async def two_requests() -> Outcome:
        call = chan.bidi(PING_PONG, timeout=RULES_TIMEOUT)
        n = 0
        try:
            await call.send(req)
            await asyncio.sleep(REQUEST_GAP)
            await call.send(req)
            await call.close_send()
            async for _ in call:
                n += 1
        except RpcError as e:
            return int(e.code), e.message
        code = await call.code()
        return (0, f"responses: {n}") if code == StatusCode.OK else (int(code), await call.details())

    return unary, two_requests


def grpcio_rules(target: str) -> Tuple[Callable[[str], Awaitable[Outcome]], Callable[[], Awaitable[Outcome]]]:
    import grpc
    import grpc.aio

    chan = grpc.aio.insecure_channel(target)
    req = Req(payload=b"rules").SerializeToString()

    async def unary(path: str) -> Outcome:
        try:
            reply = await chan.unary_unary(path)(req, timeout=RULES_TIMEOUT)
            return 0, "returned None" if reply is None else "responses: 1"
        except grpc.aio.AioRpcError as e:
            return e.code().value[0], e.details() or ""

    async def two_requests() -> Outcome:
        call = chan.stream_stream(PING_PONG)(timeout=RULES_TIMEOUT)
        n = 0
        try:
            await call.write(req)
            await asyncio.sleep(REQUEST_GAP)
            await call.write(req)
            await call.done_writing()
            while await call.read() is not grpc.aio.EOF:
                n += 1
        except grpc.aio.AioRpcError as e:
            return e.code().value[0], e.details() or ""
        code = await call.code()
        return (0, f"responses: {n}") if code == grpc.StatusCode.OK else (code.value[0], await call.details())

    return unary, two_requests


async def shape_rules(impl: str, target: str, protocol: str, subs: List[str]) -> int:
    """Runs the named shape_rules sub-checks; each prints the code it got (want 12)."""
    unary, two_requests = rill_rules(target, protocol) if impl == "rill" else grpcio_rules(target)

    async def misbehaving(path: str) -> Outcome:
        # One, answered by the rule, must succeed first: a server without the Rules service
        # answers UNIMPLEMENTED too, and must not pass for one that breaks the rule.
        code, msg = await unary(RULES_ONE)
        if code != 0:
            raise Failed(f"the control call {RULES_ONE}: code {code} {json.dumps(msg, ensure_ascii=False)}")
        return await unary(path)

    runs: Dict[str, Callable[[], Awaitable[Outcome]]] = {
        "zero": lambda: misbehaving(RULES_ZERO),
        "two": lambda: misbehaving(RULES_TWO),
        "two-requests": two_requests,
    }
    bad = [s for s in subs if s not in runs]
    if bad:
        print(f"client.py: unknown shape_rules sub-check(s) {', '.join(bad)}", file=sys.stderr)
        return 2
    failed = 0
    for sub in subs:
        try:
            code, msg = await asyncio.wait_for(runs[sub](), 2 * RULES_TIMEOUT + 5)
            got = f"code 0 ({msg})" if code == 0 else f"code {code} {json.dumps(msg, ensure_ascii=False)}"
            ok, why = code == 12, got + ("" if code == 12 else ", want code 12")
        except Exception as e:  # every failure is reported as a line, whatever raised it
            ok, why = False, str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}"
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} shape_rules/{sub}: {why}", flush=True)
    return 1 if failed else 0


async def run(impl: str, target: str, protocol: str) -> int:
    checks = rill_checks(target, protocol) if impl == "rill" else grpcio_checks(target)
    failed = 0
    for name, check in checks:
        try:
            # A hung peer fails its check instead of the whole run.
            await asyncio.wait_for(check(), CALL_TIMEOUT + 5)
            print(f"PASS {name}", flush=True)
        except Exception as e:  # every failure is reported as a line, whatever raised it
            failed += 1
            why = str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}"
            print(f"FAIL {name}: {why}", flush=True)
    return 1 if failed else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--impl", choices=("rill", "grpcio"), default="rill")
    ap.add_argument("--target", required=True)
    ap.add_argument("--protocol", choices=("grpc", "grpc-web", "connect"), default="grpc",
                    help="what every call speaks (rillrpc only: grpcio speaks gRPC)")
    ap.add_argument("--shape-rules", metavar="SUBS",
                    help="run these shape_rules sub-checks (comma-separated: " + ",".join(RULES)
                         + ") instead of the six checks")
    a = ap.parse_args()
    if a.impl != "rill" and a.protocol != "grpc":
        ap.error(f"--protocol {a.protocol} needs --impl rill")
    if a.shape_rules is not None:
        subs = [x for x in a.shape_rules.split(",") if x]
        sys.exit(asyncio.run(shape_rules(a.impl, a.target, a.protocol, subs)))
    sys.exit(asyncio.run(run(a.impl, a.target, a.protocol)))


if __name__ == "__main__":
    main()
