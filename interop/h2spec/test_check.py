#!/usr/bin/env python3
"""Tests of check.py on small JUnit reports shaped as h2spec writes them."""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check  # noqa: E402

# Two sections; the IDs are the section's package plus the case's position in it.
REPORT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="5.1. Stream States" package="http2/5.1" id="5.1" tests="3">
    <testcase package="http2/5.1" classname="idle: Sends a DATA frame" time="0.0010"></testcase>
    <testcase package="http2/5.1" classname="idle: Sends a RST_STREAM frame" time="0.0010">
      <failure>Expect:\nGOAWAY Frame (Error Code: PROTOCOL_ERROR)\nActual:\nTimeout</failure>
    </testcase>
    <testcase package="http2/5.1" classname="closed: Sends a DATA frame" time="0.0010">
      <error>read: connection reset by peer</error>
    </testcase>
  </testsuite>
  <testsuite name="6.9.1. The Flow Control Window" package="http2/6.9.1" id="6.9.1" tests="1">
    <testcase package="http2/6.9.1" classname="window" time="0.0010"><skipped></skipped></testcase>
  </testsuite>
</testsuites>
"""


class CheckTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.report = Path(self.dir.name) / "report.xml"
        self.report.write_text(REPORT)

    def run_check(self, known: str) -> "tuple[int, str]":
        path = Path(self.dir.name) / "known.txt"
        path.write_text(known)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = check.main([str(self.report), str(path)])
        return code, out.getvalue()

    def test_ids_outcomes(self) -> None:
        cases = check.load_report(self.report)
        self.assertEqual(
            {k: v[0] for k, v in cases.items()},
            {
                "http2/5.1/1": check.PASSED,
                "http2/5.1/2": check.FAILED,
                "http2/5.1/3": check.FAILED,
                "http2/6.9.1/1": check.SKIPPED,
            },
        )

    def test_all_failures_listed_passes(self) -> None:
        code, out = self.run_check("# comment\n\nhttp2/5.1/2 # why\nhttp2/5.1/3 # why too\n")
        self.assertEqual(code, 0, out)
        self.assertIn("4 cases, 1 passed, 2 failed (2 known, 0 new), 1 skipped", out)

    def test_unlisted_failure_fails(self) -> None:
        code, out = self.run_check("http2/5.1/2 # why\n")
        self.assertEqual(code, 1)
        self.assertIn("http2/5.1/3 fails and is not in known-failures.txt", out)

    def test_listed_case_that_passes_fails(self) -> None:
        code, out = self.run_check("http2/5.1/1 # why\nhttp2/5.1/2 # a\nhttp2/5.1/3 # b\n")
        self.assertEqual(code, 1)
        self.assertIn("http2/5.1/1 now passes: remove it from known-failures.txt", out)

    def test_flaky_case_may_pass(self) -> None:
        code, out = self.run_check("http2/5.1/1 # flaky: a race\nhttp2/5.1/2 # a\nhttp2/5.1/3 # b\n")
        self.assertEqual(code, 0, out)
        self.assertIn("flaky, passed this time: http2/5.1/1", out)

    def test_listed_case_that_did_not_run_is_a_note(self) -> None:
        code, out = self.run_check("http2/5.1/2 # a\nhttp2/5.1/3 # b\nhttp2/6.9.1/1 # c\n")
        self.assertEqual(code, 0, out)
        self.assertIn("note: listed http2/6.9.1/1 did not run", out)

    def test_malformed_known_line_is_refused(self) -> None:
        for bad in ("http2/5.1/2\n", "http2/5.1/2 #   \n", "http2/5.1 2 # x\n"):
            with self.subTest(bad=bad), self.assertRaises(SystemExit) as e:
                self.run_check(bad)
            self.assertIn("want `CASE-ID # reason`", str(e.exception))

    def test_duplicate_known_line_is_refused(self) -> None:
        with self.assertRaises(SystemExit) as e:
            self.run_check("http2/5.1/2 # a\nhttp2/5.1/2 # b\n")
        self.assertIn("listed twice", str(e.exception))

    def test_unreadable_or_empty_report_is_refused(self) -> None:
        self.report.write_text("not xml")
        with self.assertRaises(SystemExit) as e:
            check.load_report(self.report)
        self.assertIn("cannot read the h2spec report", str(e.exception))
        self.report.write_text("<testsuites></testsuites>")
        with self.assertRaises(SystemExit) as e:
            check.load_report(self.report)
        self.assertIn("has no test cases", str(e.exception))


if __name__ == "__main__":
    unittest.main()
