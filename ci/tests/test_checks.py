# SPDX-License-Identifier: GPL-2.0
import subprocess
import tempfile
import unittest
from pathlib import Path
from typing import Any, List
from unittest import mock

from cxlsr import checks


class GuardsTest(unittest.TestCase):
    """make check's guards: a KUnit guard rebuilds the KUnit kernel; a guard
    naming a kselftest program runs just its cases in the VM."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.repo = Path(self.tmp.name)
        ov = self.repo / "kernel-tree-overlay"
        ov.mkdir()
        for name in ("0001-a.patch", "0002-b.patch"):
            (ov / name).write_text("")
        (ov / "guards").write_text("# patch suite cases\n"
                                   "0001-a.patch  dax_regions  k_case\n"
                                   "0002-b.patch  cxl_sr_layout  layout.v.owners layout.w.owners\n")
        (self.repo / "selftests").mkdir()
        (self.repo / "selftests" / "Makefile").write_text(
            "TEST_GEN_PROGS := cxl_sr_owner cxl_sr_layout\n")
        self.calls: List[List[str]] = []

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def fake_run(self, args: List[str], **_: Any) -> subprocess.CompletedProcess:
        self.calls.append(args)
        return subprocess.CompletedProcess(args, 0)

    def test_vm_guard_runs_its_cases_in_the_vm(self) -> None:
        with mock.patch.object(checks.subprocess, "run", self.fake_run):
            self.assertEqual((2, 0, []), checks.guards(self.repo))
        kunit, vm = self.calls
        self.assertNotIn("--layer", kunit)
        self.assertEqual(["k_case"], kunit[kunit.index("--expect-cases") + 1].split(","))
        self.assertEqual("vm", vm[vm.index("--layer") + 1])
        self.assertEqual("-r layout.v.owners -r layout.w.owners", vm[vm.index("--harness") + 1])
        self.assertEqual("cxl_sr_layout", vm[vm.index("--expect-fail") + 1])
        self.assertIn("--reverse", vm)

    def test_a_guard_that_survives_is_named(self) -> None:
        def run(args: List[str], **_: Any) -> subprocess.CompletedProcess:
            return subprocess.CompletedProcess(args, int(any(a.endswith("0002-b.patch") for a in args)))
        with mock.patch.object(checks.subprocess, "run", run):
            passed, failed, bad = checks.guards(self.repo)
        self.assertEqual((1, 1, ["0002-b.patch"]), (passed, failed, bad))


class MutantsTest(unittest.TestCase):
    def test_expect_cases_header_is_passed_on(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            repo = Path(d)
            (repo / "ci" / "mutants").mkdir(parents=True)
            (repo / "ci" / "mutants" / "m.patch").write_text(
                "Expect-Fail: cxl_sr_layout\nExpect-Cases: layout.v.owners\nLayer: vm\n\n")
            calls: List[List[str]] = []

            def run(args: List[str], **_: Any) -> subprocess.CompletedProcess:
                calls.append(args)
                return subprocess.CompletedProcess(args, 0)
            with mock.patch.object(checks.subprocess, "run", run):
                self.assertEqual((1, 0, []), checks.mutants(repo, ["kunit", "vm"]))
                self.assertEqual((0, 0, []), checks.mutants(repo, ["kunit"]))
        self.assertEqual(1, len(calls))
        self.assertEqual("layout.v.owners", calls[0][calls[0].index("--expect-cases") + 1])


if __name__ == "__main__":
    unittest.main()
