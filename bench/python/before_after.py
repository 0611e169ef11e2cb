"""The Python tables of the bench before and after a change, from one run: bench.py run by
two Pythons in turn, each a venv holding its own build of the rillrpc wheel.

    python bench/python/before_after.py --before OLD_VENV/bin/python [--after PY] [--runs 2]
        [bench.py options: --bin-dir, --secs, --rounds, --only, --rows]

The runs go after, before, before, after, ... (`--runs` of each), so drift in the machine's
load during the run weighs on both; every cell is the median of its runs. The Rust peers
(`--bin-dir`) and grpcio are the same for both builds; grpcio's after/before ratio is
therefore the drift between the two builds' runs, a gauge of the noise in rillrpc's.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent

TITLES = {
    "client": "Python clients -> echo-server (Rust)",
    "server": "Python servers <- echo-client --impl rill",
}


def run_once(python: str, extra: List[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "rows.json")
        subprocess.run([python, str(HERE / "bench.py"), "--json", out, *extra], check=True)
        with open(out) as f:
            return json.load(f)


def median(xs: List[float]) -> float:
    v = [x for x in xs if x == x]
    return statistics.median(v) if v else float("nan")


def fmt(v: float) -> str:
    return "failed" if v != v else f"{v:,.0f}"


def ratio(a: float, b: float) -> str:
    return "-" if a != a or b != b or b == 0 else f"{a / b:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="python of the venv with the older rillrpc")
    ap.add_argument("--after", default=sys.executable, help="python of the venv with the newer rillrpc")
    ap.add_argument("--runs", type=int, default=2, help="runs of bench.py per build")
    a, extra = ap.parse_known_args()

    # runs[build][side][row] = [(grpcio, rillrpc), ...]
    runs: Dict[str, Dict[str, Dict[str, list]]] = {"after": {}, "before": {}}
    units: Dict[str, str] = {}
    order: Dict[str, List[str]] = {}
    where: Dict[str, str] = {}
    for i in range(a.runs):
        builds = ["after", "before"] if i % 2 == 0 else ["before", "after"]
        for b in builds:
            py = a.after if b == "after" else a.before
            print(f"before_after: run {i + 1}/{a.runs}, {b} ({py})", file=sys.stderr)
            got = run_once(py, extra)
            where[b] = got["rillrpc"]
            for side, rows in got["tables"].items():
                order.setdefault(side, [r[0] for r in rows])
                for name, unit, g, r in rows:
                    units[name] = unit
                    runs[b].setdefault(side, {}).setdefault(name, []).append((g, r))

    for side in ("client", "server"):
        if side not in order:
            continue
        print(f"\n{TITLES[side]}: median of {a.runs} runs per build")
        print("| workload | unit | grpcio aio | rillrpc before | rillrpc after | after/before "
              "| rillrpc/grpcio before | rillrpc/grpcio after | grpcio after/before (drift) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for name in order[side]:
            cell = {b: runs[b].get(side, {}).get(name, []) for b in runs}
            g = {b: median([x[0] for x in cell[b]]) for b in cell}
            r = {b: median([x[1] for x in cell[b]]) for b in cell}
            print(f"| {name} | {units[name]} | {fmt(median([g['after'], g['before']]))} "
                  f"| {fmt(r['before'])} | {fmt(r['after'])} | {ratio(r['after'], r['before'])} "
                  f"| {ratio(r['before'], g['before'])} | {ratio(r['after'], g['after'])} "
                  f"| {ratio(g['after'], g['before'])} |")
    print(f"\nrillrpc before: {where.get('before')}\nrillrpc after: {where.get('after')}")


if __name__ == "__main__":
    main()
