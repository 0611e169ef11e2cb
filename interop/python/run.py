#!/usr/bin/env python3
"""Runs every case of interop_client.py (the rillrpc Python binding) against grpc-go's interop
server, over h2c and over TLS, and prints a table case x transport.

    run.py --python VENV/bin/python --server GO_INTEROP_SERVER --testdata GRPC_GO/testdata
           --gen GEN_DIR [--case NAME ...]

Each case is its own client process, as the gRPC interop harness runs them. A cell is
`pass`, `FAIL` or `n/a` (the case cannot run against this server or with this binding; the
reason is listed under the table). Any FAIL fails the run. The servers are always stopped.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "interop_client.py"
EXIT_NA = 3
CASE_TIMEOUT = 60.0

# The client's own list (importing it needs only the standard library).
sys.path.insert(0, str(HERE))
from interop_client import CASES as CLIENT_CASES  # noqa: E402

CASES = list(CLIENT_CASES)


# Features of the interop spec that grpc-go's interop server (interop/test_utils.go, v1.85.0)
# does not implement: these cells are n/a without running. (client_compressed_* find out for
# themselves with the spec's probe call.)
SERVER_LACKS = {
    "server_compressed_unary": "grpc-go's interop server has no CompressedResponse feature "
    "(its UnaryCall ignores response_compressed)",
    "server_compressed_streaming": "grpc-go's interop server has no CompressedResponse feature "
    "(its StreamingOutputCall ignores ResponseParameters.compressed)",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(p: "subprocess.Popen[bytes]", port: int, log: Path) -> None:
    until = time.monotonic() + 30
    while time.monotonic() < until:
        if p.poll() is not None:
            raise RuntimeError(f"the server exited ({p.returncode}): {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on port {port} within 30 s")


def start_server(cmd: List[str], log: Path) -> "Tuple[subprocess.Popen[bytes], int]":
    # The port is chosen here and handed over, so another process may take it meanwhile:
    # try a few.
    last = ""
    for _ in range(5):
        port = free_port()
        with open(log, "wb") as out:
            p = subprocess.Popen(cmd + [f"--port={port}"], stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_listening(p, port, log)
            return p, port
        except RuntimeError as e:
            last = str(e)
            p.kill()
            p.wait()
    raise SystemExit(f"run.py: cannot start {cmd[0]}: {last}")


def run_case(python: str, gen: str, case: str, port: int, tls: List[str]) -> Tuple[str, str]:
    if case in SERVER_LACKS:
        return "n/a", SERVER_LACKS[case]
    cmd = [
        python,
        str(CLIENT),
        "--server_host=127.0.0.1",
        f"--server_port={port}",
        f"--test_case={case}",
        f"--gen_dir={gen}",
    ] + tls
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return "FAIL", f"the client did not exit within {CASE_TIMEOUT:.0f} s"
    lines = (r.stdout + r.stderr).strip().splitlines()
    last = lines[-1] if lines else ""
    if r.returncode == 0:
        return "pass", ""
    if r.returncode == EXIT_NA:
        return "n/a", last.split("n/a: ", 1)[-1]
    return "FAIL", "\n    ".join(lines[-15:]) or f"exit status {r.returncode}"


# Bad command lines the client must refuse (argparse's exit status 2) with a clear message.
BAD_FLAGS = [
    (["--server_port=1", "--test_case=no_such_case"], "unknown --test_case 'no_such_case'"),
    (["--server_port=0"], "--server_port 0 is out of range"),
    (["--server_port=1", "--use_tls"], "--use_tls needs --use_test_ca"),
    (["--server_port=1", "--use_tls=maybe"], "expected true or false"),
    (["--server_port=1", "--use_test_ca=true"], "--use_test_ca needs --ca_file"),
]


def check_bad_flags(python: str, gen: str) -> List[str]:
    problems = []
    for flags, want in BAD_FLAGS:
        r = subprocess.run(
            [python, str(CLIENT), f"--gen_dir={gen}"] + flags,
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT,
        )
        if r.returncode != 2 or want not in r.stderr:
            problems.append(
                f"{' '.join(flags)}: exit {r.returncode}, want 2 and {want!r} in: {r.stderr.strip()}"
            )
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable, help="a Python with rillrpc installed")
    ap.add_argument("--server", required=True, help="grpc-go's interop server binary")
    ap.add_argument("--testdata", required=True, help="grpc-go's testdata (ca.pem, server1.*)")
    ap.add_argument("--gen", required=True, help="the grpc.testing protobuf modules")
    ap.add_argument("--logs", default="", help="directory for the servers' logs")
    ap.add_argument("--case", action="append", choices=CASES, help="run only these cases")
    a = ap.parse_args()

    td = Path(a.testdata)
    for f in ("ca.pem", "server1.pem", "server1.key"):
        if not (td / f).exists():
            raise SystemExit(f"run.py: {td / f} is missing")
    logs = Path(a.logs or os.environ.get("TMPDIR", "/tmp"))
    logs.mkdir(parents=True, exist_ok=True)
    cases = a.case or CASES

    servers = []
    try:
        plain, plain_port = start_server([a.server], logs / "go-interop-server-h2c.log")
        servers.append(plain)
        tls_srv, tls_port = start_server(
            [
                a.server,
                "--use_tls=true",
                f"--tls_cert_file={td / 'server1.pem'}",
                f"--tls_key_file={td / 'server1.key'}",
            ],
            logs / "go-interop-server-tls.log",
        )
        servers.append(tls_srv)
        transports = {
            "h2c": (plain_port, []),
            "tls": (
                tls_port,
                [
                    "--use_tls=true",
                    "--use_test_ca=true",
                    f"--ca_file={td / 'ca.pem'}",
                    "--server_host_override=foo.test.google.fr",
                ],
            ),
        }
        results: Dict[Tuple[str, str], Tuple[str, str]] = {}
        for case in cases:
            for t, (port, flags) in transports.items():
                results[(case, t)] = run_case(a.python, a.gen, case, port, flags)
    finally:
        for p in servers:
            p.kill()
            p.wait()

    width = max(len(c) for c in cases)
    print(f"{'case':<{width}}  {'h2c':<5} {'tls':<5}")
    for case in cases:
        print(f"{case:<{width}}  {results[(case, 'h2c')][0]:<5} {results[(case, 'tls')][0]:<5}")
    reasons: Dict[str, str] = {}
    for (case, t), (cell, why) in results.items():
        if cell == "FAIL":
            print(f"FAIL {case} over {t}:\n    {why}")
        elif cell == "n/a":
            reasons.setdefault(case, why)
    for case, why in reasons.items():
        print(f"n/a {case}: {why}")
    bad = check_bad_flags(a.python, a.gen)
    for problem in bad:
        print(f"FAIL bad command line {problem}")
    count = {c: sum(1 for cell, _ in results.values() if cell == c) for c in ("pass", "FAIL", "n/a")}
    print(
        f"interop-python: {len(results)} cells, {count['pass']} passed, {count['FAIL']} failed, "
        f"{count['n/a']} n/a; bad command lines: {len(BAD_FLAGS) - len(bad)}/{len(BAD_FLAGS)} refused"
    )
    return 1 if count["FAIL"] or bad else 0

if __name__ == "__main__":
    sys.exit(main())
