#!/usr/bin/env python3
"""Judges an h2spec JUnit report against interop/h2spec/known-failures.txt.

    check.py REPORT.xml [KNOWN_FAILURES]

Fails when a case fails that is not listed, and when a listed case passes ("now passes:
remove it from known-failures.txt"), so the list can only shrink. A case whose reason starts
with `flaky:` fails in some runs and passes in others (a race the reason explains): either
outcome is accepted. A listed case that did not run (skipped, or absent from the report) is
reported but does not fail the check.

Case IDs are h2spec's own (`http2/6.9.1/2` = the 2nd case of section 6.9.1), the ones
`h2spec http2/6.9.1/2` runs alone: the section's package plus the case's position in it.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


def load_report(path: Path) -> Dict[str, Tuple[str, str, str]]:
    """Case ID -> (outcome, description, failure text)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise SystemExit(f"check.py: cannot read the h2spec report {path}: {e}")
    cases: Dict[str, Tuple[str, str, str]] = {}
    for suite in root.iter("testsuite"):
        for i, tc in enumerate(suite.findall("testcase"), start=1):
            cid = f"{tc.get('package', suite.get('package', '?'))}/{i}"
            desc = tc.get("classname", "")
            bad = tc.find("failure")
            if bad is None:
                bad = tc.find("error")
            if bad is not None:
                cases[cid] = (FAILED, desc, (bad.text or "").strip())
            elif tc.find("skipped") is not None:
                cases[cid] = (SKIPPED, desc, "")
            else:
                cases[cid] = (PASSED, desc, "")
    if not cases:
        raise SystemExit(f"check.py: the h2spec report {path} has no test cases")
    return cases


def load_known(path: Path) -> Dict[str, str]:
    """Case ID -> reason. Lines: `http2/6.9.1/2 # reason`; blank lines and `#` lines skip."""
    known: Dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cid, sep, reason = line.partition("#")
        cid = cid.strip()
        if not sep or not reason.strip() or " " in cid:
            raise SystemExit(f"{path}:{n}: want `CASE-ID # reason`, got {raw!r}")
        if cid in known:
            raise SystemExit(f"{path}:{n}: {cid} is listed twice")
        known[cid] = reason.strip()
    return known


def is_flaky(reason: str) -> bool:
    return reason.startswith("flaky:")


def judge(cases: Dict[str, Tuple[str, str, str]], known: Dict[str, str]) -> List[str]:
    """The problems; empty when the run is as expected."""
    problems: List[str] = []
    for cid, (outcome, desc, text) in cases.items():
        if outcome == FAILED and cid not in known:
            detail = " | ".join(text.splitlines())
            problems.append(f"{cid} fails and is not in known-failures.txt: {desc} [{detail}]")
        if outcome == PASSED and cid in known and not is_flaky(known[cid]):
            problems.append(f"{cid} now passes: remove it from known-failures.txt ({desc})")
    return problems


def main(argv: List[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    cases = load_report(Path(argv[0]))
    known = load_known(Path(argv[1]) if len(argv) == 2 else HERE / "known-failures.txt")
    count = {o: sum(1 for c in cases.values() if c[0] == o) for o in (PASSED, FAILED, SKIPPED)}
    known_failing = [cid for cid in known if cases.get(cid, ("",))[0] == FAILED]
    for cid in known_failing:
        print(f"known failure {cid}: {cases[cid][1]} # {known[cid]}")
    flaky_passed = [c for c in known if is_flaky(known[c]) and cases.get(c, ("",))[0] == PASSED]
    if flaky_passed:
        print(f"flaky, passed this time: {' '.join(flaky_passed)}")
    for cid in known:
        if cid not in cases or cases[cid][0] == SKIPPED:
            print(f"note: listed {cid} did not run")
    problems = judge(cases, known)
    for p in problems:
        print(f"h2spec: {p}")
    print(
        f"h2spec: {len(cases)} cases, {count[PASSED]} passed, {count[FAILED]} failed "
        f"({len(known_failing)} known, {count[FAILED] - len(known_failing)} new), "
        f"{count[SKIPPED]} skipped"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
