# SPDX-License-Identifier: GPL-2.0
import json
import os
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path
from unittest import mock

from cxlsr.bot import run_ci
from cxlsr.util import DEADLINE_ENV, clip

REPO = Path(__file__).resolve().parents[2]

# A stand-in for `cxlsr run`: writes what the real one writes, exits as told.
FAKE_RUN = """
import json, os, sys, pathlib
r = pathlib.Path(sys.argv[1])
ok = sys.argv[2] == "ok"
assert os.environ["CXL_SR_DEADLINE"]
r.mkdir(parents=True, exist_ok=True)
(r / "summary.json").write_text(json.dumps({"ok": ok, "totals": {
    "passed": 3, "failed": 0 if ok else 1, "skipped": 0}}))
(r / "junit.xml").write_text("<testsuites/>")
(r / "kunit.ktap").write_text("KTAP version 1\\n")
(r / "kunit-serial.log").write_text("booted\\n")
sys.exit(0 if ok else 1)
"""


class ClipTest(unittest.TestCase):
    def test_no_deadline_keeps_the_timeout(self) -> None:
        with mock.patch.dict(os.environ, {}, clear=False):
            os.environ.pop(DEADLINE_ENV, None)
            self.assertEqual(clip(600), 600)

    def test_deadline_cuts_the_timeout(self) -> None:
        with mock.patch.dict(os.environ, {DEADLINE_ENV: str(time.time() + 100)}):
            self.assertLessEqual(clip(600), 100)
            self.assertGreater(clip(600), 90)
            self.assertEqual(clip(5), 5)

    def test_spent_deadline_leaves_one_second(self) -> None:
        with mock.patch.dict(os.environ, {DEADLINE_ENV: str(time.time() - 100)}):
            self.assertEqual(clip(600), 1)


class RunCiTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.results = Path(self.tmp.name) / "build-results"
        self.out = Path(self.tmp.name) / "bot"
        self.results.mkdir()

    def fake(self, verdict: str) -> list:
        return [sys.executable, "-c", FAKE_RUN, str(self.results), verdict]

    def test_pass_copies_results_and_exits_0(self) -> None:
        rc = run_ci(REPO, self.results, self.out, 60, None, cmd=self.fake("ok"))
        self.assertEqual(rc, 0)
        for name in ("summary.json", "junit.xml", "kunit.ktap", "kunit-serial.log"):
            self.assertTrue((self.out / name).is_file(), name)
        doc = json.loads((self.out / "summary.json").read_text())
        self.assertEqual(doc["budget"]["seconds"], 60)

    def test_failed_test_exits_1(self) -> None:
        rc = run_ci(REPO, self.results, self.out, 60, None, cmd=self.fake("fail"))
        self.assertEqual(rc, 1)
        self.assertFalse(json.loads((self.out / "summary.json").read_text())["ok"])

    def test_stale_results_do_not_pass_for_new_ones(self) -> None:
        (self.results / "summary.json").write_text(json.dumps({"ok": True, "totals": {}}))
        (self.results / "vm-serial.log").write_text("an earlier run's VM\n")
        rc = run_ci(REPO, self.results, self.out, 60, None,
                    cmd=[sys.executable, "-c", "import sys; sys.exit(2)"])
        self.assertEqual(rc, 2)
        self.assertFalse(json.loads((self.out / "summary.json").read_text())["ok"])
        self.assertFalse((self.out / "vm-serial.log").exists())

    def test_overstayed_budget_is_killed_and_reported(self) -> None:
        t0 = time.monotonic()
        rc = run_ci(REPO, self.results, self.out, 1, None, grace=1,
                    cmd=[sys.executable, "-c", "import time; time.sleep(60)"])
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(rc, 2)
        doc = json.loads((self.out / "summary.json").read_text())
        self.assertFalse(doc["ok"])
        self.assertIn("budget of 1s", doc["layers"]["ci"]["message"])
        errors = ET.parse(self.out / "junit.xml").getroot().iter("error")
        self.assertTrue(any("budget" in e.get("message", "") for e in errors))


if __name__ == "__main__":
    unittest.main()
