"""The Python part of `make soak` (issue 16): a million calls through the binding, and
what the process holds before and after.

    python soak/python/soak.py --server target/release/echo-server [--calls 1000000]
        [--tasks 32] [--warmup 50000] [--summary FILE]

Runs rill-bench's echo-server in a process of its own and calls it from --tasks asyncio
tasks over two channels (gRPC and Connect): mostly unary calls, and every few hundred a
stream of each shape, an error asked for (the echo service's `count < 0`), a stream
cancelled midway and one left to miss its deadline; each ends with the status it asked
for, or the run fails. RSS, asyncio tasks, open fds and threads are taken before the
first call, after --warmup calls and at the end, each time with no call in flight and
after a gc; the run fails if tasks or fds grew after the warm-up, or RSS by more than
20% + 16 MiB (an allocator keeps what it freed, and the first calls fill caches).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import time
from typing import Awaitable, Callable, Dict, List, Optional, Tuple

import rillrpc
from rillrpc import RpcError, StatusCode

PING = "/echo.TestService/PingPong"
ECHO = "/echo.TestService/Echo"
ECHO_CLIENT = "/echo.TestService/EchoClient"
ECHO_SERVER = "/echo.TestService/EchoServer"
ENDLESS = 2**31 - 1
MIB = 1024 * 1024
RSS_SLACK = 0.20
RSS_SLACK_BYTES = 16 * MIB


# echo.proto by hand (Request{payload=1, count=2}, Response{payload=1}): the soak measures
# the binding, and protobuf's runtime would only add its own allocations.
def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def request(payload: bytes, count: int = 0) -> bytes:
    head = b"\x0a" + _varint(len(payload)) + payload
    return head + (b"\x10" + _varint(count) if count else b"")


def payload_of(response: bytes) -> bytes:
    if not response:
        return b""
    if response[0] != 0x0A:
        raise ValueError(f"not an echo.Response: {response[:8]!r}")
    n, shift, i = 0, 0, 1
    while True:
        b = response[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
    return response[i : i + n]


class Wrong(Exception):
    """An answer the echo service would not give."""


def expect(got: bytes, want: bytes) -> None:
    if payload_of(got) != want:
        raise Wrong(f"echoed {payload_of(got)[:16]!r}, sent {want[:16]!r}")


# ------------------------------------------------------------------ the calls
# Each returns OK or raises the call's RpcError; the worker checks the status is the one
# the call asked for (WANT).


async def unary(ch: rillrpc.Channel, p: bytes) -> StatusCode:
    expect(await ch.unary(PING, request(p)), p)
    return StatusCode.OK


async def unary_error(ch: rillrpc.Channel, p: bytes) -> StatusCode:
    await ch.unary(PING, request(p, -int(StatusCode.NOT_FOUND)))
    return StatusCode.NOT_FOUND


async def server_stream(ch: rillrpc.Channel, p: bytes) -> StatusCode:
    n = 0
    async for m in ch.server_streaming(ECHO_SERVER, request(p, 3)):
        expect(m, p)
        n += 1
    if n != 3:
        raise Wrong(f"server stream: {n} messages, asked for 3")
    return StatusCode.OK


async def client_stream(ch: rillrpc.Channel, p: bytes) -> StatusCode:
    got = await ch.client_streaming(ECHO_CLIENT, [request(p)] * 3)
    if payload_of(got) != str(3 * len(p)).encode():
        raise Wrong(f"client stream: total {payload_of(got)!r}, sent {3 * len(p)}")
    return StatusCode.OK


async def bidi(ch: rillrpc.Channel, p: bytes) -> StatusCode:
    call = ch.bidi(ECHO)
    for _ in range(3):
        await call.send(request(p))
        expect(await call.recv(), p)
    await call.close_send()
    if await call.recv() is not None:
        raise Wrong("bidi: a message past the end")
    return StatusCode.OK


async def cancelled(ch: rillrpc.Channel, p: bytes) -> StatusCode:
    call = ch.server_streaming(ECHO_SERVER, request(p, ENDLESS))
    expect(await call.recv(), p)
    call.cancel()
    while await call.recv() is not None:
        pass
    return StatusCode.OK


async def past_deadline(ch: rillrpc.Channel, p: bytes) -> StatusCode:
    call = ch.bidi(ECHO, timeout=0.05)
    await call.send(request(p))
    expect(await call.recv(), p)
    # Never half-closed: only the deadline ends it.
    while await call.recv() is not None:
        pass
    return StatusCode.OK


# One slot of a thousand each for the rare ones; unary calls take the rest.
Kind = Callable[[rillrpc.Channel, bytes], Awaitable[StatusCode]]
MIX: List[Tuple[str, Kind, int]] = [
    ("server-stream", server_stream, 10),
    ("client-stream", client_stream, 10),
    ("bidi", bidi, 10),
    ("unary error", unary_error, 10),
    ("cancel", cancelled, 4),
    ("deadline", past_deadline, 1),
]
KINDS = ["unary"] + [m[0] for m in MIX]
PLAN: List[int] = []
for k, m in enumerate(MIX, 1):
    PLAN += [k] * m[2]
PLAN += [0] * (1000 - len(PLAN))
FNS: List[Kind] = [unary] + [m[1] for m in MIX]
WANT = {"unary error": StatusCode.NOT_FOUND, "cancel": StatusCode.CANCELLED, "deadline": StatusCode.DEADLINE_EXCEEDED}


class Counts:
    def __init__(self) -> None:
        self.next = 0
        self.by: Dict[Tuple[str, str], int] = {}
        self.unexpected: List[str] = []


async def worker(chans: List[rillrpc.Channel], until: int, c: Counts) -> None:
    while c.next < until:
        i = c.next
        c.next += 1
        kind = PLAN[(i * 7919) % 1000]
        name = KINDS[kind]
        want = WANT.get(name, StatusCode.OK)
        p = b"p" * (1 + i % 64)
        try:
            got = (await FNS[kind](chans[i % len(chans)], p)).name
        except RpcError as e:
            got = e.code.name
        except Wrong as e:
            got = f"wrong answer ({e})"
        key = (name, got)
        c.by[key] = c.by.get(key, 0) + 1
        if got != want.name and len(c.unexpected) < 10:
            c.unexpected.append(f"{name}: {got}, wanted {want.name}")


# ------------------------------------------------------------------ measuring


def proc(pid: str = "self") -> Dict[str, int]:
    status = open(f"/proc/{pid}/status").read()
    field = {ln.split(":")[0]: ln.split()[1] for ln in status.splitlines() if len(ln.split()) > 1}
    return {
        "rss": int(field["VmRSS"]) * 1024,
        "threads": int(field["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def snapshot(server_pid: int) -> Dict[str, int]:
    gc.collect()
    s = proc()
    s["tasks"] = len(asyncio.all_tasks())
    s["server_rss"] = proc(str(server_pid))["rss"]
    return s


def row(label: str, calls: int, rate: Optional[float], s: Dict[str, int]) -> None:
    r = f"{rate:>9.0f}" if rate is not None else f"{'':>9}"
    print(
        f"{label:<14} {calls:>9} {r} {s['rss'] / MIB:>9.1f} {s['tasks']:>6} {s['fds']:>5} "
        f"{s['threads']:>8} {s['server_rss'] / MIB:>9.1f}",
        flush=True,
    )


async def run(a: argparse.Namespace, addr: str, server_pid: int) -> bool:
    chans = [rillrpc.Channel(f"http://{addr}"), rillrpc.Channel(f"http://{addr}", protocol="connect")]
    c = Counts()
    print(f"{'':<14} {'calls':>9} {'calls/s':>9} {'RSS MiB':>9} {'tasks':>6} {'fds':>5} {'threads':>8} {'srv MiB':>9}")
    start = snapshot(server_pid)
    row("start", 0, None, start)
    t0 = time.perf_counter()
    warm: Optional[Dict[str, int]] = None
    # Steps of a tenth of the run, each its own gather: between them no call is in
    # flight and no worker task alive, so what is counted there is what was left behind.
    marks = sorted({min(a.warmup, a.calls)} | {a.calls * k // 10 for k in range(1, 11)})
    done = 0
    end = start
    for m in marks:
        t = time.perf_counter()
        await asyncio.gather(*(worker(chans, m, c) for _ in range(a.tasks)))
        end = snapshot(server_pid)
        row("warm-up" if m == a.warmup else "", m, (m - done) / (time.perf_counter() - t), end)
        done = m
        if m == a.warmup:
            warm = end
    secs = time.perf_counter() - t0
    for ch in chans:
        ch.close()
    assert warm is not None

    print("\ncalls by kind (status: count)")
    for (kind, got), n in sorted(c.by.items()):
        print(f"  {kind:<14} {got}: {n}")
    for u in c.unexpected:
        print(f"  unexpected: {u}")
    unexpected = sum(n for (k, got), n in c.by.items() if got != WANT.get(k, StatusCode.OK).name)
    total = sum(c.by.values())
    print(f"\n{total} calls in {secs:.1f} s ({total / secs:.0f}/s) from {a.tasks} tasks")

    bound = int(warm["rss"] * (1 + RSS_SLACK)) + RSS_SLACK_BYTES
    failures = []
    if unexpected:
        failures.append(f"{unexpected} calls ended with a status they did not ask for")
    if total != a.calls:
        failures.append(f"{total} calls made, not {a.calls}")
    if end["tasks"] > warm["tasks"]:
        failures.append(f"asyncio tasks grew: {warm['tasks']} after the warm-up, {end['tasks']} at the end")
    if end["fds"] > warm["fds"]:
        failures.append(f"fds grew: {warm['fds']} after the warm-up, {end['fds']} at the end")
    if end["rss"] > bound:
        failures.append(
            f"RSS grew: {warm['rss'] / MIB:.1f} MiB after the warm-up, {end['rss'] / MIB:.1f} at the end "
            f"(bound {bound / MIB:.1f})"
        )
    for msg in failures:
        print(f"soak.py: FAIL: {msg}")
    verdict = "FAIL" if failures else "ok"
    if a.summary:
        with open(a.summary, "a") as f:
            f.write(
                f"python  {total:>9} calls ({total / secs:.0f}/s, {unexpected} unexpected)  "
                f"RSS {warm['rss'] / MIB:.1f} -> {end['rss'] / MIB:.1f} MiB, tasks {warm['tasks']} -> {end['tasks']}, "
                f"fds {warm['fds']} -> {end['fds']}, threads {warm['threads']} -> {end['threads']}  {verdict}\n"
            )
    return not failures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=50_000)
    ap.add_argument("--summary")
    a = ap.parse_args()
    p = subprocess.Popen([a.server, "--impl", "rill", "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline() if p.stdout else ""
        if not line.startswith("listening on "):
            sys.exit(f"soak.py: {a.server} said {line!r}")
        ok = asyncio.run(run(a, line.split()[-1], p.pid))
    finally:
        p.kill()
        p.wait()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
