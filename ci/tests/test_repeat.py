# SPDX-License-Identifier: GPL-2.0
import argparse
import json
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import cxlsr.__main__ as main


def summary(results: Path, status: str) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "summary.json").write_text(json.dumps({
        "layers": {"kunit": {"status": "ok" if status == "PASS" else "failed"}},
        "suites": {"dax_regions": {"layer": "kunit", "cases": [
            {"name": "same_range_twice", "status": "PASS"},
            {"name": "race_one_winner", "status": status}]}}}))


class RepeatTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.s = mock.Mock(results=Path(self.tmp.name) / "results")

    def repeat(self, statuses: list) -> int:
        seq = iter(statuses)

        def fake_run(s, _):
            summary(s.results, next(seq))
            return 0

        with mock.patch.object(main, "cmd_run", fake_run):
            return main.cmd_repeat(self.s, argparse.Namespace(n=len(statuses)))

    def test_same_verdicts(self) -> None:
        self.assertEqual(self.repeat(["PASS"] * 3), 0)
        doc = json.loads((self.s.results / "repeat.json").read_text())
        self.assertEqual(doc["flaky"], {})
        self.assertEqual(doc["verdicts"]["kunit/dax_regions/race_one_winner"], "PASS")

    def test_a_changing_verdict_is_a_flake(self) -> None:
        self.assertEqual(self.repeat(["PASS", "FAIL", "PASS"]), 1)
        doc = json.loads((self.s.results / "repeat.json").read_text())
        self.assertEqual(doc["flaky"]["kunit/dax_regions/race_one_winner"], ["PASS", "FAIL", "PASS"])
        self.assertEqual(doc["flaky"]["layer:kunit"], ["ok", "failed", "ok"])

    def test_each_run_keeps_its_results(self) -> None:
        self.repeat(["PASS", "FAIL"])
        for i, status in ((1, "PASS"), (2, "FAIL")):
            doc = json.loads((self.s.results / "repeat" / f"run{i}" / "summary.json").read_text())
            self.assertEqual(doc["suites"]["dax_regions"]["cases"][1]["status"], status)

    def test_a_steady_failure_is_not_a_pass(self) -> None:
        self.assertEqual(self.repeat(["FAIL", "FAIL"]), 1)


if __name__ == "__main__":
    unittest.main()
