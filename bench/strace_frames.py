"""The HTTP/2 frames a process read and wrote, syscall by syscall, from an strace of it.

    strace -f -tt -e trace=read,readv,recvfrom,recvmsg,write,writev,sendto,sendmsg -xx -s 1000000 \\
        -o trace.txt -p PID        # a server while one echo-client runs against it, or a client
    python3 bench/strace_frames.py trace.txt [--skip 10] [--calls 4]

Decodes the bytes each syscall moved on every TCP connection that carries HTTP/2 (found by
the client preface, read by a server or written by a client), and prints:
- `--calls` streams' frames (after `--skip`), grouped by the syscall that read or wrote them
  (`<` read by the traced process, `>` written), with the time since the previous syscall;
- per stream (a call): how many syscalls and frames of each type went each way, the
  median over all streams, so a pattern (separate HEADERS and DATA reads, an empty
  END_STREAM DATA frame, a WINDOW_UPDATE per call) shows as counts.
Standard library only; strace's `-xx` hex strings are what it parses.
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import statistics
import sys
from typing import Dict, List, Optional, Tuple

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TYPES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS", 5: "PUSH_PROMISE",
         6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}

# pid [time] name(fd, "..." or [{iov_base="...", ...}], ...) = n
LINE = re.compile(r'^(\d+)\s+(?:(\d+:\d+:\d+\.\d+)\s+)?(\w+)\((\d+),\s*(.*)\)\s+=\s+(-?\d+)')
HEX = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def secs(t: Optional[str]) -> float:
    if not t:
        return 0.0
    h, m, s = t.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


class Frame:
    def __init__(self, sys_no: int, typ: int, flags: int, stream: int, length: int, payload: bytes):
        self.sys_no, self.typ, self.flags, self.stream, self.length = sys_no, typ, flags, stream, length
        self.payload = payload

    def describe(self) -> str:
        name = TYPES.get(self.typ, f"type{self.typ}")
        fl = []
        if self.typ in (0, 1) and self.flags & 1:
            fl.append("END_STREAM")
        if self.typ in (1, 9) and self.flags & 4:
            fl.append("END_HEADERS")
        if self.typ in (4, 6) and self.flags & 1:
            fl.append("ACK")
        extra = ""
        if self.typ == 4 and not self.flags & 1:
            names = {1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS",
                     4: "INITIAL_WINDOW_SIZE", 5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE"}
            p = self.payload
            extra = " " + ",".join(f"{names.get(int.from_bytes(p[i:i + 2], 'big'), p[i:i + 2].hex())}="
                                   f"{int.from_bytes(p[i + 2:i + 6], 'big')}" for i in range(0, len(p) - 5, 6))
        if self.typ == 8 and len(self.payload) >= 4:
            extra = f" +{int.from_bytes(self.payload[:4], 'big') & 0x7fffffff}"
        return f"{name}[s{self.stream} {self.length}B{' ' + ','.join(fl) if fl else ''}{extra}]"


class Direction:
    """One direction of one connection: bytes in syscall order, frames as they complete."""

    def __init__(self, skip_preface: bool):
        self.buf = b""
        self.need_preface = skip_preface
        self.frames: List[Frame] = []
        self.start_sys: Optional[int] = None

    def feed(self, sys_no: int, data: bytes) -> None:
        if self.start_sys is None or not self.buf:
            self.start_sys = sys_no
        self.buf += data
        if self.need_preface and len(self.buf) >= len(PREFACE):
            self.buf = self.buf[len(PREFACE):]
            self.need_preface = False
        while not self.need_preface and len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                break
            typ, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            # A frame belongs to the syscall that completed it: that is when the server
            # could act on it.
            self.frames.append(Frame(sys_no, typ, flags, stream, length, self.buf[9:9 + length]))
            self.buf = self.buf[9 + length:]


def parse(path: str) -> Tuple[Dict[Tuple[int, int], Dict[str, Direction]], List[Tuple[str, int, float]]]:
    conns: Dict[Tuple[int, int], Dict[str, Direction]] = {}
    syscalls: List[Tuple[str, int, float]] = []  # (direction, fd, time) by syscall number
    early: Dict[Tuple[int, int], List[Tuple[int, bytes]]] = {}
    for line in open(path, errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        pid, t, name, fd, args, ret = m.groups()
        n = int(ret)
        if n <= 0:
            continue
        data = b"".join(bytes.fromhex(h.replace("\\x", "")) for h in HEX.findall(args))
        reading = name.startswith("read") or name.startswith("recv")
        if reading:
            data = data[:n]
        key = (0, int(fd))  # fds are per process; strace -p of one process: one table
        d = "<" if reading else ">"
        syscalls.append((d, int(fd), secs(t)))
        if key not in conns:
            # The client preface opens a connection, read by a server, written by a client;
            # a server writes its SETTINGS before it reads the preface: keep writes until then.
            if not data.startswith(PREFACE[:min(len(data), len(PREFACE))]):
                if not reading:
                    early.setdefault(key, []).append((len(syscalls) - 1, data))
                continue
            conns[key] = {"<": Direction(reading), ">": Direction(not reading)}
            if reading:
                for no, b in early.pop(key, []):
                    conns[key][">"].feed(no, b)
        conns[key][d].feed(len(syscalls) - 1, data)
    return conns, syscalls


def main() -> None:
    # Piped into head: stop quietly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--calls", type=int, default=4, help="streams to print frame by frame")
    ap.add_argument("--skip", type=int, default=10, help="streams to skip first (connection setup, warm-up)")
    a = ap.parse_args()
    conns, syscalls = parse(a.trace)
    if not conns:
        sys.exit("no HTTP/2 connection in the trace (strace -xx of the server, from before the client connected?)")
    for (_, fd), dirs in conns.items():
        frames = sorted(dirs["<"].frames + dirs[">"].frames, key=lambda f: f.sys_no)
        streams = sorted({f.stream for f in frames if f.stream})
        print(f"connection fd {fd}: {len(streams)} streams, {len(frames)} frames, "
              f"{sum(1 for s in syscalls if s[1] == fd)} syscalls moving data")
        shown = streams[a.skip:a.skip + a.calls]
        if shown:
            # From the connection's start when nothing is skipped: its SETTINGS come first.
            lo = 0 if a.skip == 0 else min(f.sys_no for f in frames if f.stream == shown[0])
            hi = max(f.sys_no for f in frames if f.stream == shown[-1])
            print(f"  frames of streams {shown[0]}..{shown[-1]}, by syscall (< read, > written):")
            by_sys = collections.defaultdict(list)
            for f in frames:
                if lo <= f.sys_no <= hi:
                    by_sys[f.sys_no].append(f)
            prev = None
            for s in sorted(by_sys):
                d, _, t = syscalls[s]
                gap = f"+{(t - prev) * 1e6:7.0f} µs" if prev is not None and t else ""
                prev = t
                print(f"    {d} {gap:>12}  " + " ".join(f.describe() for f in by_sys[s]))
        # Per stream: syscalls touching it and frames by type, each way; then connection-level
        # frames (stream 0) per stream.
        per: Dict[int, collections.Counter] = {s: collections.Counter() for s in streams}
        conn_level = collections.Counter()
        for d, dirn in dirs.items():
            for f in dirn.frames:
                name = TYPES.get(f.typ, str(f.typ))
                if f.typ == 0 and f.length == 0:
                    name = "DATA(empty)"
                if f.stream:
                    per[f.stream][f"{d} {name}"] += 1
                else:
                    conn_level[f"{d} {name}"] += 1
        for s in streams:
            sys_of = {(syscalls[f.sys_no][0], f.sys_no) for dn in dirs.values() for f in dn.frames if f.stream == s}
            per[s]["< syscalls"] = sum(1 for d, _ in sys_of if d == "<")
            per[s]["> syscalls"] = sum(1 for d, _ in sys_of if d == ">")
        body = streams[a.skip:] or streams
        keys = sorted({k for s in body for k in per[s]})
        print(f"  per stream, median over {len(body)} streams (skipping the first {len(streams) - len(body)}):")
        for k in keys:
            print(f"    {k:22} {statistics.median(per[s][k] for s in body):g}")
        print(f"  connection-level frames (stream 0), per stream: " + ", ".join(
            f"{k} {v / max(1, len(streams)):.2f}" for k, v in sorted(conn_level.items())))
        print()


if __name__ == "__main__":
    main()
