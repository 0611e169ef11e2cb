"""Python rows of the bench: rillrpc's Python client and server against grpcio aio's, in
the same run, on the echo workloads.

    python bench/python/bench.py [--bin-dir target/release] [--secs 3] [--rounds 3] [--rows unary]
                                 [--json FILE]

Clients: grpcio aio and rillrpc (bytes in and out, no protobuf on either side) against
one fast echo server (`echo-server --impl tonic`). Servers: grpcio aio and rillrpc (both
decode requests and encode responses with echo_pb2) driven by one fast client
(`echo-client --impl rill`). Prints a table with the ratio rillrpc / grpcio. Each cell is
the mean of `--rounds` slices, grpcio's and rillrpc's alternating, so that both see the
same machine load. `--json FILE` also writes the two tables' rows there, for
`before_after.py`, which runs this script with two builds of the binding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.environ.get("RILL_PY_GEN", str(HERE)))

import echo_pb2  # noqa: E402
import grpc.aio  # noqa: E402

import rillrpc  # noqa: E402

PING = "/echo.TestService/PingPong"
ECHO = "/echo.TestService/Echo"
ECHO_CLIENT = "/echo.TestService/EchoClient"
ECHO_SERVER = "/echo.TestService/EchoServer"
FOREVER = 2**31 - 1


def req(size: int, count: int = 0) -> bytes:
    return echo_pb2.Request(payload=b"x" * size, count=count).SerializeToString()


class Timer:
    def __init__(self, secs: float) -> None:
        self.end = time.perf_counter() + secs
        self.start = time.perf_counter()

    def over(self) -> bool:
        return time.perf_counter() >= self.end

    def rate(self, n: int) -> float:
        return n / (time.perf_counter() - self.start)


# ------------------------------------------------------------------ client workloads
# Each takes (open-call functions for one implementation, seconds) and returns a rate.


async def server_stream(c: "Client", size: int, secs: float) -> float:
    call = c.server_streaming(req(size, FOREVER))
    n = 0
    t = Timer(secs)
    async for _ in call:
        n += 1
        if n & 1023 == 0 and t.over():
            break
    r = t.rate(n)
    call.cancel()
    return r


async def pingpong(c: "Client", size: int, secs: float) -> float:
    call = c.bidi()
    m = req(size)
    n = 0
    t = Timer(secs)
    while not t.over():
        await c.write(call, m)
        await c.read(call)
        n += 1
    r = t.rate(n)
    await c.done_writing(call)
    return r


async def unary(c: "Client", size: int, secs: float, timeout: Optional[float] = None) -> float:
    m = req(size)
    n = 0
    t = Timer(secs)
    while not t.over():
        await c.unary(m, timeout)
        n += 1
    return t.rate(n)


async def unary_deadline(c: "Client", size: int, secs: float) -> float:
    """Sequential unary calls, each with a 10 s deadline that never passes: what the
    deadline's bookkeeping costs a call."""
    return await unary(c, size, secs, 10.0)


async def client_stream(c: "Client", size: int, secs: float) -> float:
    call = c.client_streaming()
    m = req(size)
    n = 0
    t = Timer(secs)
    while True:
        await c.write(call, m)
        n += 1
        if n & 255 == 0 and t.over():
            break
    await c.done_writing(call)
    resp = echo_pb2.Response.FromString(await call)
    assert int(resp.payload) == n * size, (resp.payload, n * size)
    return t.rate(n)


class Client:
    """The few operations the workloads need, for one implementation."""

    def __init__(self, impl: str, port: int) -> None:
        self.impl = impl
        if impl == "grpcio":
            self.ch: Any = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        else:
            self.ch = rillrpc.Channel(f"http://127.0.0.1:{port}")

    def server_streaming(self, m: bytes) -> Any:
        return self.ch.unary_stream(ECHO_SERVER)(m)

    def bidi(self) -> Any:
        return self.ch.stream_stream(ECHO)()

    def client_streaming(self) -> Any:
        return self.ch.stream_unary(ECHO_CLIENT)()

    async def unary(self, m: bytes, timeout: Optional[float] = None) -> Any:
        return await self.ch.unary_unary(PING)(m, timeout=timeout)

    async def write(self, call: Any, m: bytes) -> None:
        if self.impl == "grpcio":
            await call.write(m)
        else:
            await call.send(m)

    async def read(self, call: Any) -> Any:
        return await (call.read() if self.impl == "grpcio" else call.recv())

    async def done_writing(self, call: Any) -> None:
        await (call.done_writing() if self.impl == "grpcio" else call.close_send())

    async def close(self) -> None:
        if self.impl == "grpcio":
            await self.ch.close()
        else:
            self.ch.close()


# (name, unit, workload, message size, echo-server --impl). Client streaming runs against
# both echo servers: tonic's (h2's small DATA-frame guard closes the connection of a client
# that frames each message alone, as grpcio does: that cell shows "failed") and ours.
CLIENT_ROWS: List[Tuple[str, str, Callable[..., Any], int, str]] = [
    ("server-stream 16 B", "msg/s", server_stream, 16, "tonic"),
    ("server-stream 1 KiB", "msg/s", server_stream, 1024, "tonic"),
    ("bidi ping-pong", "rt/s", pingpong, 16, "tonic"),
    ("unary (sequential)", "calls/s", unary, 16, "tonic"),
    ("unary (sequential, 10 s deadline)", "calls/s", unary_deadline, 16, "tonic"),
    ("client-stream 16 B (tonic server)", "msg/s", client_stream, 16, "tonic"),
    ("client-stream 16 B (rill server)", "msg/s", client_stream, 16, "rill"),
]


async def run_clients(port: int, fn: Callable[..., Any], size: int, secs: float, rounds: int) -> Tuple[float, float]:
    """Both clients in one loop, measured in alternating slices: on a shared machine the
    load drifts within seconds, and alternating gives both the same conditions. A client
    that fails is reported (NaN) and the other goes on."""
    clients = [Client("grpcio", port), Client("rill", port)]
    rates: List[List[float]] = [[], []]
    failed = [False, False]

    async def measure(i: int, s: float) -> Optional[float]:
        if failed[i]:
            return None
        try:
            return float(await fn(clients[i], size, s))
        except Exception as e:
            failed[i] = True
            print(f"  {clients[i].impl} failed: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
            return None

    try:
        for i in range(2):
            await measure(i, min(0.5, secs / 4))  # warm-up: connect, first allocations
        for _ in range(rounds):
            for i in range(2):
                v = await measure(i, secs / rounds)
                if v is not None:
                    rates[i].append(v)
    finally:
        for c in clients:
            await c.close()
    return tuple(float("nan") if failed[i] else sum(rates[i]) / rounds for i in range(2))  # type: ignore[return-value]


def spawn(cmd: List[str], env: Optional[Dict[str, str]] = None) -> Tuple[subprocess.Popen, int]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None
    line = p.stdout.readline()
    m = re.search(r"listening on \S*?(\d+)\s*$", line)
    if not m:
        p.kill()
        raise SystemExit(f"{cmd[0]} did not start: {line!r}")
    return p, int(m.group(1))


def stop(p: subprocess.Popen) -> None:
    p.kill()
    p.wait()


SERVER_ROWS = [
    ("server-stream 16 B", "msg/s", "server-stream", 16),
    ("server-stream 1 KiB", "msg/s", "server-stream", 1024),
    ("bidi ping-pong", "rt/s", "pingpong", 16),
    ("unary (sequential)", "calls/s", "unary", 16),
    ("unary (sequential, 10 s deadline)", "calls/s", "unary-deadline", 16),
    ("client-stream 16 B", "msg/s", "client-stream", 16),
]


def drive(client: Path, port: int, workload: str, size: int, secs: float) -> float:
    out = subprocess.run(
        [str(client), "--impl", "rill", "--addr", f"127.0.0.1:{port}", "--workload", workload,
         "--size", str(size), "--duration-secs", str(secs), "--warmup-secs", "0.3",
         "--streams", "1"],
        capture_output=True, text=True, timeout=120,
    )
    for line in out.stdout.splitlines():
        m = re.search(r"\bvalue=([0-9.]+)", line)
        if line.startswith("RESULT") and m:
            return float(m.group(1))
    raise RuntimeError(f"echo-client failed: {out.stdout} {out.stderr}")


def attempt(f: Callable[[], float]) -> float:
    """A failed cell is reported (NaN in the table) instead of ending the run."""
    try:
        return f()
    except Exception as e:
        print(f"  failed: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
        return float("nan")


def fmt(v: float) -> str:
    return "failed" if v != v else f"{v:,.0f}"


def table(title: str, rows: List[Tuple[str, str, float, float]]) -> None:
    print(f"\n{title}")
    print("| workload | unit | grpcio aio | rillrpc | ratio |")
    print("|---|---|---:|---:|---:|")
    for name, unit, g, r in rows:
        ratio = "-" if g != g or r != r or g == 0 else f"{r / g:.1f}x"
        print(f"| {name} | {unit} | {fmt(g)} | {fmt(r)} | {ratio} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release"))
    ap.add_argument("--secs", type=float, default=3.0, help="measured seconds per cell")
    ap.add_argument("--rounds", type=int, default=4, help="alternating slices per cell")
    ap.add_argument("--only", choices=["client", "server"], default=None)
    ap.add_argument("--rows", default="", help="run only the workloads whose name contains this")
    ap.add_argument("--json", default=None, help="also write the rows here (before_after.py reads them)")
    a = ap.parse_args()
    tables: Dict[str, List[Tuple[str, str, float, float]]] = {}
    bins = Path(a.bin_dir)
    env = dict(os.environ)

    if a.only in (None, "client"):
        server, tport = spawn([str(bins / "echo-server"), "--impl", "tonic", "--port", "0"])
        rserver, rport = spawn([str(bins / "echo-server"), "--impl", "rill", "--port", "0"])
        rows = []
        try:
            for name, unit, fn, size, impl in CLIENT_ROWS:
                if a.rows not in name:
                    continue
                port = tport if impl == "tonic" else rport
                try:
                    g, r = asyncio.run(run_clients(port, fn, size, a.secs, a.rounds))
                except Exception as e:
                    print(f"  failed: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
                    g = r = float("nan")
                rows.append((name, unit, g, r))
                print(f"  client {name}: grpcio {fmt(g)}  rillrpc {fmt(r)}", file=sys.stderr)
        finally:
            stop(server)
            stop(rserver)
        table("Python clients -> echo-server (Rust)", rows)
        tables["client"] = rows

    if a.only in (None, "server"):
        client = bins / "echo-client"
        if not client.exists():
            raise SystemExit(f"{client} is missing: cargo build --release -p rill-bench --bin echo-client")
        rows = []
        servers = HERE / "servers.py"
        for name, unit, workload, size in SERVER_ROWS:
            if a.rows not in name:
                continue
            # Both servers up, driven in alternating slices (see run_clients).
            procs = [spawn([sys.executable, str(servers), "--impl", impl], env) for impl in ("grpcio", "rill")]
            vals: List[List[float]] = [[], []]
            try:
                for _ in range(a.rounds):
                    for i, (_, port) in enumerate(procs):
                        vals[i].append(attempt(lambda: drive(client, port, workload, size, a.secs / a.rounds)))
            finally:
                for p, _ in procs:
                    stop(p)
            g, r = (sum(v) / len(v) for v in vals)
            rows.append((name, unit, g, r))
            print(f"  server {name}: grpcio {fmt(g)}  rillrpc {fmt(r)}", file=sys.stderr)
        table("Python servers <- echo-client --impl rill", rows)
        tables["server"] = rows
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rillrpc": rillrpc.__file__, "tables": tables}, f)


if __name__ == "__main__":
    main()
