#!/usr/bin/env python3
"""The cross-language matrix: every rillrpc client (rust, c, python, node) against every
server (the four rillrpc ones and the grpcio, grpc-js, grpc-go, tonic, connect-go and
connect-node peers), and every peer client against every rillrpc server, on the six checks of
README.md. Each rillrpc client has a row per protocol: gRPC (`rust`), gRPC-Web
(`rust/grpc-web`) and Connect (`rust/connect`), all over h2c; the gRPC-Web and Connect rows
meet the servers that speak them: the rillrpc ones and the Connect peers' (connect-go's and
connect-node's, which answer all three protocols on one port). tonic, connect-go's server and
connect-node's are servers only; connect-go is also a client, a row per protocol (Connect,
gRPC-Web, gRPC) over h2c, and two rows over HTTP/1.1 (Connect, gRPC-Web). Then the shape
rules: every rillrpc gRPC client against the grpc-go server's matrix.Rules (zero and two
responses to a unary call) and every rillrpc server (two requests on a unary method), each
reporting the same code, 12 (UNIMPLEMENTED). Then the thrift table: shared/idl/echo.thrift
with real Kitex (v0.16.3) as a peer, every Thrift client (Kitex's kitex-client, and the
rillrpc ones: rust, python, node, c) in each of Kitex's transports (`grpc`: Thrift over
HTTP/2, application/grpc+thrift; `ttheader`: TTHeader Streaming for the streams,
TTHeader-framed PingPong for PingPong), a row each (`kitex/grpc`, `c/ttheader`, ...),
against every server of it with kitex-server's semantics (kitex-server, and the rillrpc
ones: rust, python, node), on kitex-client's eight checks.

    run.py --target-dir DIR --python PY [--node NODE] [--kitex-dir DIR] [--clients a,b]
           [--servers a,b] [--shape-rules on|off|only] [--thrift on|off|only] [--peer-pairs]

--clients and --servers take names or shell patterns (`'*/connect'`, `'rust*'`); in the
thrift table a name also matches a row by its client part (`--clients c` is `c/grpc` and
`c/ttheader` there), and `kitex` names Kitex's client and server, which only that table has.

Builds nothing (`make matrix` does): it starts each server once, runs the clients against
it one after the other, prints the three tables (rows = clients, columns = servers), then
the output of every failing cell, kills every server it started, and exits 1 if any
required cell failed. Python 3 standard library only."""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
RILL = ("rust", "c", "python", "node")
PEERS = ("grpcio", "grpc-js", "grpc-go")
ALL = RILL + PEERS
# Peers with a server and no client in the matrix: tonic (gRPC only), and the servers of
# the Connect peers, connect-go (go/connect-server) and connect-node
# (node/connect-server.mjs), each answering gRPC, gRPC-Web and Connect on one port.
CONNECT_SERVERS = ("connect-go", "connect-node")
SERVER_ONLY = ("tonic",) + CONNECT_SERVERS
ALL_SERVERS = ALL + SERVER_ONLY
# The rillrpc clients in the two other protocols, a row per client and protocol
# (`--protocol grpc-web|connect`, over h2c); the rows named as RILL speak gRPC.
OTHER_PROTOCOLS = ("grpc-web", "connect")
RILL_OTHER = tuple(f"{c}/{p}" for p in OTHER_PROTOCOLS for c in RILL)
RILL_CLIENTS = RILL + RILL_OTHER
# connect-go's client (go/connect-client), a row per protocol, each over h2c: every rillrpc
# server answers all three on its one port, chosen by content type. The gRPC-only peer
# servers never meet its Connect and gRPC-Web rows; the Connect peers' servers do with
# --peer-pairs (see speaks).
CONNECT_GO = ("connect-go/connect", "connect-go/grpc-web", "connect-go/grpc")
# The same client over HTTP/1.1 (--http1), where bidi cannot run: those rows must print
# `SKIP bidi` and pass the other five checks (error_status there asks EchoServer for its
# second status, since Echo is bidi).
CONNECT_GO_HTTP1 = ("connect-go/connect-http1", "connect-go/grpc-web-http1")
SKIPPED = {c: ("bidi",) for c in CONNECT_GO_HTTP1}
CLIENT_ONLY = CONNECT_GO + CONNECT_GO_HTTP1
ALL_CLIENTS = RILL + RILL_OTHER + PEERS + CLIENT_ONLY
KNOWN_CLIENTS = ALL_CLIENTS
# Clients that run the six checks only: the shape-rules table stays gRPC's.
NO_RULES = RILL_OTHER + CONNECT_GO + CONNECT_GO_HTTP1
# The protocols each server answers (on one port), and the servers that take HTTP/1.1 too.
# connect-node's is Node's http2 server without TLS: h2c only.
SERVER_PROTOCOLS = {s: ("grpc", "grpc-web", "connect") for s in RILL + CONNECT_SERVERS}
HTTP1_SERVERS = RILL + ("connect-go",)
CHECKS = ("unary", "server_streaming", "client_streaming", "bidi", "error_status", "metadata")
# The sub-checks of shape_rules (`--shape-rules zero,two,...` to a client): zero and two call
# the matrix.Rules methods only RULES_SERVER serves; two-requests runs against any server.
RULES = ("zero", "two", "two-requests")
RULES_SERVER = "grpc-go"
UNIMPLEMENTED = 12
# The thrift table (shared/idl/echo.thrift, Kitex v0.16.3): a row per Thrift client and
# Kitex transport, a column per server with kitex-server's semantics; kitex-client's eight
# checks (interop/kitex/README.md): the main table's six, cancel, and deadline (a 300 ms
# deadline on calls every server answers only after 3 s: payload `sleep:3000`). Every cell
# is required, Kitex's client against Kitex's server too: that reference cell is what the
# others are held to, and a failure there means the peer programs themselves are broken.
THRIFT_IMPLS = ("kitex", "rust", "python", "node", "c")
THRIFT_TRANSPORTS = ("grpc", "ttheader")
THRIFT_CLIENTS = tuple(f"{c}/{t}" for c in THRIFT_IMPLS for t in THRIFT_TRANSPORTS)
THRIFT_SERVERS = ("kitex", "rust", "python", "node")
THRIFT_CHECKS = CHECKS + ("cancel", "deadline")
# Checks a thrift row cannot run and must say so (`SKIP <check>: <why>`), as SKIPPED for the
# main table: none today (the C client runs all eight).
THRIFT_SKIPPED: Dict[str, Tuple[str, ...]] = {}
START_TIMEOUT = 90.0  # a cold start on 2 busy cores (node loads a large addon)
CLIENT_TIMEOUT = 180.0  # each check has its own 20 s deadline; this only catches a hang


def commands(a: argparse.Namespace) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """argv of each server (without --port) and of each client (without --target)."""
    t = Path(a.target_dir)
    b = t / "matrix-bin"
    py, node = a.python, a.node
    servers = {
        "rust": [str(t / "debug" / "echo-server"), "--impl", "rill"],
        "c": [str(b / "matrix-server-c")],
        "python": [py, str(HERE / "python" / "server.py"), "--impl", "rill"],
        "node": [node, str(HERE / "node" / "server.js"), "--impl", "rill"],
        "grpcio": [py, str(HERE / "python" / "server.py"), "--impl", "grpcio"],
        "grpc-js": [node, str(HERE / "node" / "server.js"), "--impl", "grpc-js"],
        "grpc-go": [str(b / "grpc-go-server")],
        "tonic": [str(t / "debug" / "matrix-server-tonic")],
    }
    clients = {
        "rust": [str(t / "debug" / "matrix-client")],
        "c": [str(b / "matrix-client-c")],
        "python": [py, str(HERE / "python" / "client.py"), "--impl", "rill"],
        "node": [node, str(HERE / "node" / "client.js"), "--impl", "rill"],
        "grpcio": [py, str(HERE / "python" / "client.py"), "--impl", "grpcio"],
        "grpc-js": [node, str(HERE / "node" / "client.js"), "--impl", "grpc-js"],
        "grpc-go": [str(b / "grpc-go-client")],
    }
    servers["connect-go"] = [str(b / "connect-go-server")]
    servers["connect-node"] = [node, str(HERE / "node" / "connect-server.mjs")]
    for c in RILL_OTHER:
        base, protocol = c.split("/", 1)
        clients[c] = clients[base] + ["--protocol", protocol]
    for c in CONNECT_GO + CONNECT_GO_HTTP1:
        clients[c] = ([str(b / "connect-go-client"), "--protocol", protocol_of(c)]
                      + (["--http1"] if c in CONNECT_GO_HTTP1 else []))
    return servers, clients


def thrift_commands(a: argparse.Namespace) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """The thrift table's servers (argv without --port) and clients (without --target)."""
    t = Path(a.target_dir)
    k = Path(a.kitex_dir) if a.kitex_dir else t / "kitex"
    repo = HERE.parents[1]
    servers = {
        "kitex": [str(k / "kitex-server")],
        "rust": [str(t / "debug" / "kitex-echo-rill-server")],
        "python": [a.python, str(repo / "bindings-python" / "tests" / "kitex_echo_server.py")],
        "node": [a.node, str(repo / "bindings-node" / "test" / "fixtures" / "kitex_echo_server.js")],
    }
    base = {
        "kitex": [str(k / "kitex-client")],
        "rust": [str(t / "debug" / "kitex-echo-rill-client")],
        "python": [a.python, str(HERE / "python" / "thrift_client.py")],
        "node": [a.node, str(HERE / "node" / "thrift_client.js")],
        "c": [str(t / "matrix-bin" / "matrix-thrift-client-c")],
    }
    clients = {}
    for row in THRIFT_CLIENTS:
        impl, transport = row.split("/", 1)
        # The checks named: a check kitex-client gains later joins the table when every
        # client and server here has it, not before.
        clients[row] = base[impl] + ["--transport", transport, "--check", ",".join(THRIFT_CHECKS)]
    return servers, clients


def protocol_of(client: str) -> str:
    """The protocol a row speaks: its name's part after `/` (less `-http1`), else gRPC."""
    return client.split("/", 1)[1].removesuffix("-http1") if "/" in client else "grpc"


def required(client: str, server: str) -> bool:
    return client in RILL_CLIENTS or server in RILL


def speaks(client: str, server: str) -> bool:
    """Whether the server answers the client's protocol (and HTTP version): the rillrpc and
    Connect peers' servers all three protocols, the other peer servers gRPC only."""
    if client in CONNECT_GO_HTTP1 and server not in HTTP1_SERVERS:
        return False
    return protocol_of(client) in SERVER_PROTOCOLS.get(server, ("grpc",))


def rule_required(client: str, server: str, sub: str) -> bool:
    """A rillrpc client's own rule (zero, two against the server that breaks it), and a
    rillrpc server's (two-requests)."""
    if client not in RILL:
        return False
    return server == RULES_SERVER if sub != "two-requests" else server in RILL


def rule_shown(client: str, server: str, sub: str, peer_pairs: bool) -> bool:
    """Required cells, and for information what the peers do: each peer client against the
    Rules server and the rillrpc servers, the rillrpc clients against each peer server."""
    if client in NO_RULES:
        return False
    if sub != "two-requests":
        return server == RULES_SERVER
    return peer_pairs or client in RILL or server in RILL


class Server:
    """One server process: started in its own process group, its output collected by a
    thread, its address taken from the `listening on HOST:PORT` line."""

    def __init__(self, name: str, argv: List[str], env: Dict[str, str]) -> None:
        self.name = name
        self.lines: List[str] = []
        self.addr: Optional[str] = None
        self.error: Optional[str] = None
        self._ready = threading.Event()
        try:
            self.proc: Optional[subprocess.Popen] = subprocess.Popen(
                argv + ["--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True, text=True,
                errors="replace")
        except OSError as e:
            self.proc = None
            self.error = f"cannot start {argv[0]}: {e}"
            self._ready.set()
            return
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = re.match(r"listening on (\S+:\d+)\s*$", line)
            if m and self.addr is None:
                # Connect by IPv4 loopback whatever host the server printed.
                self.addr = "127.0.0.1:" + m.group(1).rsplit(":", 1)[1]
                self._ready.set()
        self._ready.set()

    def wait_ready(self, deadline: float) -> bool:
        self._ready.wait(max(0.0, deadline - time.monotonic()))
        if self.addr is None and self.error is None:
            code = self.proc.poll() if self.proc else None
            self.error = (f"exited with {code} before listening" if code is not None
                          else f"printed no `listening on` line within {START_TIMEOUT:.0f} s")
        return self.addr is not None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def log_tail(self, n: int = 15) -> str:
        return "\n".join(self.lines[-n:])


def run_program(argv: List[str], env: Dict[str, str]) -> Tuple[Optional[int], str]:
    """Its exit status (None if it could not run to its end) and output."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, env=env, timeout=CLIENT_TIMEOUT, text=True,
                           errors="replace")
    except subprocess.TimeoutExpired as e:
        out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
        return None, out + f"\n(killed after {CLIENT_TIMEOUT:.0f} s)"
    except OSError as e:
        return None, f"cannot start {argv[0]}: {e}"
    return p.returncode, p.stdout


def run_client(argv: List[str], addr: str, env: Dict[str, str],
               skipped: Sequence[str] = (), checks: Sequence[str] = CHECKS) -> Tuple[bool, str]:
    """`skipped`: checks the client cannot run; it must say so (`SKIP <check>: <why>`).
    `checks`: the ones it must pass (or skip so)."""
    code, out = run_program(argv + ["--target", addr], env)
    passed = {m.group(1) for m in re.finditer(r"^PASS (\S+)$", out, re.M)}
    passed |= {m.group(1) for m in re.finditer(r"^SKIP (\S+):", out, re.M)} & set(skipped)
    ok = code == 0 and passed >= set(checks)
    if code == 0 and not ok:
        out += f"\n(exit 0, but no PASS line for: {', '.join(sorted(set(checks) - passed))})"
    elif code is not None and code != 0:
        out += f"\n(exit status {code})"
    return ok, out


def run_rules(argv: List[str], addr: str, env: Dict[str, str],
              subs: List[str]) -> Tuple[Dict[str, Tuple[bool, Optional[int]]], str]:
    """Each sub-check's verdict and the code the client got (None if it printed none)."""
    _, out = run_program(argv + ["--target", addr, "--shape-rules", ",".join(subs)], env)
    got: Dict[str, Tuple[bool, Optional[int]]] = {}
    for m in re.finditer(r"^(PASS|FAIL) shape_rules/(\S+): (?:code (-?\d+))?", out, re.M):
        got[m.group(2)] = (m.group(1) == "PASS", int(m.group(3)) if m.group(3) else None)
    return {sub: got.get(sub, (False, None)) for sub in subs}, out


def table(rows: List[str], keys: Sequence[Any], heads: List[List[str]],
          cells: Dict[Tuple[str, Any], str]) -> str:
    """Rows = clients; a column per key, headed by one line per entry of `heads`."""
    head = "client \\ server"
    w0 = max(len(head), *(len(r) for r in rows))
    ws = [max(6, *(len(h[i]) for h in heads)) for i in range(len(keys))]
    lines = ["  ".join([(head if n == 0 else "").ljust(w0)] + [c.ljust(w) for c, w in zip(h, ws)]).rstrip()
             for n, h in enumerate(heads)]
    for r in rows:
        lines.append("  ".join([r.ljust(w0)] + [cells[(r, k)].ljust(w) for k, w in zip(keys, ws)]).rstrip())
    return "\n".join(lines)


def thrift_match(row: str, pat: str) -> bool:
    """A thrift row matches a pattern by its name (`c/ttheader`) or its client part (`c`)."""
    return fnmatch.fnmatchcase(row, pat) or fnmatch.fnmatchcase(row.split("/", 1)[0], pat)


def names(arg: Optional[str], known: Tuple[str, ...],
          thrift: Tuple[str, ...] = ()) -> Tuple[List[str], List[str]]:
    """The names `arg` lists (comma-separated names or shell patterns), in the order of
    `known`, and the thrift table's (`thrift_match`). A pattern must match some name in
    one of the two."""
    if not arg:
        return list(known), list(thrift)
    pats = [n.strip() for n in arg.split(",") if n.strip()]
    bad = [p for p in pats if not any(fnmatch.fnmatchcase(k, p) for k in known)
           and not any(thrift_match(k, p) for k in thrift)]
    if bad:
        sys.exit(f"run.py: unknown name(s) {', '.join(bad)}; known: {', '.join(known)}"
                 + (f"; thrift table: {', '.join(thrift)}" if thrift else ""))
    return ([k for k in known if any(fnmatch.fnmatchcase(k, p) for p in pats)],
            [k for k in thrift if any(thrift_match(k, p) for p in pats)])


def run_thrift(rows: List[str], cols: List[str], server_cmds: Dict[str, List[str]],
               client_cmds: Dict[str, List[str]], env: Dict[str, str], w: int,
               started: Dict[str, "Server"]) -> Tuple[Dict[Tuple[str, Any], str], List[str]]:
    """The thrift table's cells ("pass" or "FAIL") and the output of its failing cells. Its
    servers are started together (and recorded in `started`, for the caller to kill on the
    way out); each is killed once its column has run. Every client run is a process of its
    own: Kitex's TTHeader Streaming client keeps a lock after one failed connect to an
    address, so one run must not inherit another's."""
    cells: Dict[Tuple[str, Any], str] = {}
    failures: List[str] = []
    for s in cols:
        started[f"thrift/{s}"] = Server(s, server_cmds[s], env)
    deadline = time.monotonic() + START_TIMEOUT
    for s in cols:
        srv = started[f"thrift/{s}"]
        ready = srv.wait_ready(deadline)
        for c in rows:
            if not ready or not srv.alive():
                cells[(c, s)] = "FAIL"
                why = f"the server did not start: {srv.error}" if not ready else "the server exited"
                failures.append(f"--- thrift: {c} client × {s} server: {why}\n{srv.log_tail()}".rstrip())
                continue
            assert srv.addr is not None  # ready
            ok, out = run_client(client_cmds[c], srv.addr, env, THRIFT_SKIPPED.get(c, ()), THRIFT_CHECKS)
            cells[(c, s)] = "pass" if ok else "FAIL"
            print(f"{c:>{w}} -> {s:<8} thrift {'pass' if ok else 'FAIL'}", flush=True)
            if not ok:
                log = srv.log_tail()
                failures.append(f"--- thrift: {c} client × {s} server ({srv.addr})\n{out.rstrip()}"
                                + (f"\n[{s} server output]\n{log}" if log.strip() else ""))
        srv.kill()
    return cells, failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-dir", required=True,
                    help="CARGO_TARGET_DIR: debug/echo-server, debug/matrix-client, "
                         "debug/matrix-server-tonic, matrix-bin/*")
    ap.add_argument("--python", required=True, help="the venv's python (rillrpc, grpcio installed)")
    ap.add_argument("--node", default=shutil.which("node") or "node")
    ap.add_argument("--clients", help="comma-separated subset of: " + ",".join(KNOWN_CLIENTS))
    ap.add_argument("--servers", help="comma-separated subset of: " + ",".join(ALL_SERVERS))
    ap.add_argument("--peer-pairs", action="store_true",
                    help="also run peer × peer cells (a check of the matrix's own peer programs; "
                         "never required: a failure shows as `(FAIL)`)")
    ap.add_argument("--shape-rules", choices=("on", "off", "only"), default="on",
                    help="the shape rules table after the main one (on), not at all (off), or alone (only)")
    ap.add_argument("--thrift", choices=("on", "off", "only"),
                    help="the thrift table (echo.thrift, Kitex as a peer) after the others (on, the "
                         "default; off with --shape-rules=only), not at all (off), or alone (only)")
    ap.add_argument("--kitex-dir", help="kitex-server and kitex-client (default: TARGET_DIR/kitex)")
    a = ap.parse_args()
    rows, thrift_rows = names(a.clients, KNOWN_CLIENTS, THRIFT_CLIENTS)
    cols, thrift_cols = names(a.servers, ALL_SERVERS, THRIFT_SERVERS)
    thrift = a.thrift or ("off" if a.shape_rules == "only" else "on")
    if thrift == "off":
        thrift_rows, thrift_cols = [], []
    # The shape-rules table's rows: the clients that run its sub-checks.
    rule_rows = [c for c in rows if c not in NO_RULES]
    # the progress lines' client column
    w = max([8] + [len(c) for c in rows] + [len(c) for c in thrift_rows])
    server_cmds, client_cmds = commands(a)
    thrift_server_cmds, thrift_client_cmds = thrift_commands(a)
    env = dict(os.environ)
    env.setdefault("RILL_SHARED", str(HERE.parents[2] / "shared"))
    env["PYTHONUNBUFFERED"] = "1"

    started = time.monotonic()
    servers: Dict[str, Server] = {}
    # Whatever happens (a failure, Ctrl-C, a kill), the servers go down with the runner.
    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    main_on = a.shape_rules != "only" and thrift != "only" and bool(rows) and bool(cols)
    rules_on = (a.shape_rules == "only" or (a.shape_rules == "on" and thrift != "only")) and bool(cols)
    thrift_on = bool(thrift_rows) and bool(thrift_cols)

    def wanted(c: str, s: str) -> bool:
        return main_on and speaks(c, s) and (a.peer_pairs or required(c, s))

    def rule_subs(c: str, s: str) -> List[str]:
        return [sub for sub in RULES if rules_on and rule_shown(c, s, sub, a.peer_pairs)]

    cells: Dict[Tuple[str, Any], str] = {}
    rcells: Dict[Tuple[str, Any], str] = {(c, (s, sub)): "—" for c in rule_rows for s in cols for sub in RULES}
    # What each rules outcome said (sub-check, code, message), and in which cells (client→server):
    # printed once each.
    outcomes: Dict[str, List[str]] = {}
    failures: List[str] = []
    try:
        # Only servers some cell needs are started.
        for s in cols:
            if any(wanted(c, s) or rule_subs(c, s) for c in rows):
                servers[s] = Server(s, server_cmds[s], env)
        deadline = time.monotonic() + START_TIMEOUT
        for s in cols:
            srv = servers.get(s)
            ready = srv.wait_ready(deadline) if srv else False
            for c in rows:
                if not wanted(c, s):
                    cells[(c, s)] = "—"
                    continue
                if not ready:
                    cells[(c, s)] = "FAIL" if required(c, s) else "(FAIL)"
                    failures.append(f"--- {c} client × {s} server: the server did not start: "
                                    f"{srv.error if srv else '?'}\n{srv.log_tail() if srv else ''}")
                    continue
                if not srv.alive():
                    cells[(c, s)] = "FAIL" if required(c, s) else "(FAIL)"
                    failures.append(f"--- {c} client × {s} server: the server exited\n{srv.log_tail()}")
                    continue
                ok, out = run_client(client_cmds[c], srv.addr, env, SKIPPED.get(c, ()))
                cells[(c, s)] = "pass" if ok else "FAIL" if required(c, s) else "(FAIL)"
                print(f"{c:>{w}} -> {s:<8} {'pass' if ok else 'FAIL'}", flush=True)
                if not ok:
                    log = srv.log_tail()
                    failures.append(f"--- {c} client × {s} server ({srv.addr})\n{out.rstrip()}"
                                    + (f"\n[{s} server output]\n{log}" if log.strip() else ""))
            # After the main cells, so that a server broken by a rule's case fails only here.
            for c in rule_rows:
                subs = rule_subs(c, s)
                if not subs:
                    continue
                need = [sub for sub in subs if rule_required(c, s, sub)]
                if srv is None or not ready or not srv.alive():
                    for sub in subs:
                        rcells[(c, (s, sub))] = "FAIL" if sub in need else "(FAIL)"
                    if need:
                        failures.append(f"--- shape_rules: {c} client × {s} server: the server "
                                        f"{'exited' if ready else 'did not start'}\n"
                                        f"{srv.log_tail() if srv else ''}")
                    continue
                got, out = run_rules(client_cmds[c], srv.addr, env, subs)
                bad = []
                for sub, (ok, code) in got.items():
                    # The code is checked here too: a client's PASS alone is not trusted.
                    ok = ok and code == UNIMPLEMENTED
                    shown = "?" if code is None else str(code)
                    if sub in need:
                        rcells[(c, (s, sub))] = shown if ok else f"FAIL {shown}" if code is not None else "FAIL"
                        if not ok:
                            bad.append(sub)
                    else:
                        rcells[(c, (s, sub))] = f"({shown})" if code is not None else "(FAIL)"
                    # Grouped by what was got, whether or not the client wanted it.
                    m = re.search(rf"^(?:PASS|FAIL) shape_rules/{re.escape(sub)}: (.*?)(?:, want code \d+)?$",
                                  out, re.M)
                    outcomes.setdefault(f"{sub}: {m.group(1) if m else '(no line)'}", []).append(f"{c}→{s}")
                print(f"{c:>{w}} -> {s:<8} shape_rules {' '.join(rcells[(c, (s, x))] for x in subs)}",
                      flush=True)
                if bad:
                    log = srv.log_tail()
                    failures.append(f"--- shape_rules ({', '.join(bad)}): {c} client × {s} server "
                                    f"({srv.addr})\n{out.rstrip()}"
                                    + (f"\n[{s} server output]\n{log}" if log.strip() else ""))
            if srv is not None:
                srv.kill()
        tcells: Dict[Tuple[str, Any], str] = {}
        if thrift_on:
            tcells, tfailures = run_thrift(thrift_rows, thrift_cols, thrift_server_cmds,
                                           thrift_client_cmds, env, w, servers)
            failures += tfailures
    finally:
        for srv in servers.values():
            srv.kill()

    n_fail = 0
    if main_on:
        print()
        print(table(rows, list(cols), [list(cols)], cells))
        n_req = sum(1 for k in cells if required(*k))
        n_fail += sum(1 for v in cells.values() if v == "FAIL")
        print(f"\n{n_req - n_fail}/{n_req} required cells pass ({len(CHECKS)} checks each; "
              f"— = peer × peer, not required, or a protocol the peer server does not speak)")
        skipping = [c for c in rows if c in SKIPPED]
        if skipping:
            print(f"{', '.join(skipping)}: a `pass` skipped "
                  f"{', '.join(sorted({x for c in skipping for x in SKIPPED[c]}))} (not possible over "
                  "HTTP/1.1) and passed the other checks")
    if rules_on and rule_rows:
        keys = [(RULES_SERVER, sub) for sub in RULES[:2] if RULES_SERVER in cols]
        keys += [(s, "two-requests") for s in cols]
        r_req = [(c, k) for c in rule_rows for k in keys if rule_required(c, *k)]
        r_fail = sum(1 for ck in r_req if rcells[ck] != str(UNIMPLEMENTED))
        n_fail += r_fail
        print(f"\nShape rules: the code each client reports ({UNIMPLEMENTED} = UNIMPLEMENTED, required; "
              "(n) = information only, not required; — = not run)")
        print(table(rule_rows, keys, [[k[0] for k in keys], [k[1] for k in keys]], rcells))
        print(f"\n{len(r_req) - r_fail}/{len(r_req)} required shape-rule cells report {UNIMPLEMENTED}")
        print("\nWhat the clients printed, and where:")
        for text, where in sorted(outcomes.items(), key=lambda o: RULES.index(o[0].split(":")[0])):
            print(f"  {text}")
            print(textwrap.fill(", ".join(where), width=100, initial_indent=" " * 6,
                                subsequent_indent=" " * 6, break_on_hyphens=False))
    if thrift_on:
        t_fail = sum(1 for v in tcells.values() if v == "FAIL")
        n_fail += t_fail
        print("\nThrift (shared/idl/echo.thrift, Kitex v0.16.3 as a peer): rows = client/transport "
              "(grpc: Thrift over HTTP/2, application/grpc+thrift; ttheader: TTHeader Streaming, "
              "PingPong over TTHeader), columns = servers")
        print(table(thrift_rows, list(thrift_cols), [list(thrift_cols)], tcells))
        print(f"\n{len(tcells) - t_fail}/{len(tcells)} required thrift cells pass ({len(THRIFT_CHECKS)} "
              f"checks each: {', '.join(THRIFT_CHECKS)}; kitex/* × kitex is the reference cell)")
        skipping = [c for c in thrift_rows if c in THRIFT_SKIPPED]
        if skipping:
            print(f"{', '.join(skipping)}: a `pass` skipped "
                  f"{', '.join(sorted({x for c in skipping for x in THRIFT_SKIPPED[c]}))} and passed the others")
    print(f"\n{time.monotonic() - started:.0f} s")
    if failures:
        print("\nFailing cells:\n")
        print("\n\n".join(failures))
    return 1 if n_fail else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:  # the servers were killed on the way out
        print(f"run.py: interrupted ({e or 'Ctrl-C'})", file=sys.stderr)
        sys.exit(130)
