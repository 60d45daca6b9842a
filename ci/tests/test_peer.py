# SPDX-License-Identifier: GPL-2.0
import os
from pathlib import Path
import tempfile
import unittest
from unittest import mock

from cxlsr.peer import (KNOWN, SUITE, Result, allowed_skips, load_baseline, parse,
                        save_baseline, suite, unexplained)
from cxlsr.ndctl import VERSION
from cxlsr.results import ERROR, FAIL, PASS, SKIP, XFAIL
from cxlsr.vm import VmBuild, case_seconds, running_test, split_kselftest

# What vm-init.sh prints for ndctl's tests, after a kselftest program.
KTAP = """TAP version 13
1..5
# selftests: cxl: cxl_sr_owner
# ok 1 cxl_sr.a.owner
ok 1 selftests: cxl: cxl_sr_owner
# selftests: ndctl_cxl: cxl-topology
# + modprobe cxl_test
ok 2 selftests: ndctl_cxl: cxl-topology
# selftests: ndctl_cxl: cxl-security
# kernel 7.3.4: missing keyctl, skipping...
ok 3 selftests: ndctl_cxl: cxl-security # SKIP missing keyctl, skipping...
# selftests: ndctl_cxl: cxl-poison
not ok 4 selftests: ndctl_cxl: cxl-poison # exit=1
# selftests: ndctl_cxl: cxl-events
not ok 5 selftests: ndctl_cxl: cxl-events # TIMEOUT 600s
"""


class Parse(unittest.TestCase):
    def test_verdicts(self) -> None:
        got = parse(KTAP)
        self.assertEqual(got["cxl-topology"], Result(PASS))
        self.assertEqual(got["cxl-security"], Result(SKIP, "missing keyctl, skipping..."))
        self.assertEqual(got["cxl-poison"], Result(FAIL, "exit=1"))
        self.assertEqual(got["cxl-events"], Result(FAIL, "TIMEOUT 600s"))
        self.assertNotIn("cxl_sr_owner", got)

    def test_kselftests_unaffected(self) -> None:
        # ndctl's tests are no kselftest program: their lines stay out of it
        progs = split_kselftest(KTAP)
        self.assertEqual(list(progs), ["cxl_sr_owner"])
        self.assertNotIn("modprobe", progs["cxl_sr_owner"][0])

    def test_running_and_seconds(self) -> None:
        cut = KTAP.split("not ok 5")[0]
        self.assertEqual(running_test(cut), "cxl-events")
        stamps = [(float(i), line) for i, line in enumerate(KTAP.splitlines())]
        secs = case_seconds(stamps)
        self.assertEqual(secs[f"{SUITE}.cxl-topology"], 2.0)
        self.assertEqual(secs[f"{SUITE}.cxl-poison"], 1.0)


class Judge(unittest.TestCase):
    TESTS = ["a", "b", "c", "d", "e", "f", "g"]

    def verdicts(self, base: dict | None) -> dict:
        over = {"a": Result(PASS), "b": Result(FAIL, "exit=1"), "c": Result(FAIL, "exit=1"),
                "d": Result(SKIP, "no x"), "e": Result(SKIP, "no x"), "f": Result(FAIL, "exit=2")}
        s = suite(self.TESTS, over, base)
        self.assertEqual(s.name, SUITE)
        return {c.name: c for c in s.cases}

    def test_against_the_baseline(self) -> None:
        base = {"a": Result(FAIL), "b": Result(PASS), "c": Result(FAIL, "exit=3"),
                "d": Result(SKIP, "no x"), "e": Result(PASS), "f": Result(SKIP, "no y")}
        got = self.verdicts(base)
        self.assertEqual(got["a"].status, PASS)      # better than the base
        self.assertEqual(got["b"].status, FAIL)      # a regression
        self.assertIn("regression", got["b"].reason)
        self.assertEqual(got["c"].status, XFAIL)     # fails on both: said, with why
        self.assertIn("exit=3", got["c"].reason)
        self.assertEqual(got["d"].status, SKIP)      # skips on both
        self.assertEqual(got["e"].status, FAIL)      # ran on the base, skips here
        self.assertEqual(got["f"].status, FAIL)      # fails here, skipped on the base
        self.assertEqual(got["g"].status, ERROR)     # no verdict at all

    def test_without_a_baseline_nothing_is_excused(self) -> None:
        got = self.verdicts(None)
        self.assertEqual([n for n, c in got.items() if c.status == PASS], ["a"])
        self.assertTrue(all(c.status in (FAIL, ERROR) for n, c in got.items() if n != "a"))

    def test_allowed_skips(self) -> None:
        s = suite(["d", "e"], {"d": Result(SKIP), "e": Result(SKIP)},
                  {"d": Result(SKIP), "e": Result(PASS)})
        self.assertEqual(allowed_skips(s), ("d",))


class Budget(unittest.TestCase):
    def test_ndctl_timeouts_add_to_the_vm_that_runs_most(self) -> None:
        vb = VmBuild(Path("."), Path("."), Path("."), 1, debug=False, peer=("a", "b", "c"))
        self.assertEqual(vb.peer_seconds(), 3 * 600)  # no plan: one VM runs them all
        vb.plans = [[("cxl_sr_owner", ["x"]), (SUITE, ["a", "b"])], [(SUITE, ["c"])]]
        self.assertEqual(vb.peer_seconds(), 2 * 600)
        vb.debug = True
        self.assertEqual(vb.peer_seconds(), 2 * 1200)
        vb.plans = [[("cxl_sr_owner", ["x"])]]
        self.assertEqual(vb.peer_seconds(), 0)


class Known(unittest.TestCase):
    KNOWN = {"t": ("failed at line 183", "ndctl's own bug")}

    def test_only_the_exact_failure_is_explained(self) -> None:
        over = {"t": Result(FAIL, "exit=1: test/t.sh: failed at line 183"),
                "u": Result(FAIL, "exit=1: test/u.sh: failed at line 183")}
        self.assertEqual(unexplained(["t", "u"], over, self.KNOWN), ["u"])
        got = {c.name: c for c in suite(["t", "u"], over, None, known=self.KNOWN).cases}
        self.assertEqual(got["t"].status, XFAIL)
        self.assertIn("ndctl's own bug", got["t"].reason)
        self.assertEqual(got["u"].status, FAIL)

    def test_failing_elsewhere_needs_the_baseline(self) -> None:
        for r in (Result(FAIL, "exit=1: test/t.sh: failed at line 150"),
                  Result(FAIL, "TIMEOUT 600s"), Result(SKIP, "failed at line 183")):
            self.assertEqual(unexplained(["t"], {"t": r}, self.KNOWN), ["t"])
            self.assertEqual(suite(["t"], {"t": r}, None, known=self.KNOWN).cases[0].status, FAIL)

    def test_passing_needs_nothing(self) -> None:
        self.assertEqual(unexplained(["t", "v"], {"t": Result(PASS)}, self.KNOWN), [])

    def test_this_ndctl_is_listed(self) -> None:
        # a new ndctl must say which of its failures it explains (maybe none)
        self.assertIn(VERSION, KNOWN)


class Cache(unittest.TestCase):
    def test_verdicts_round_trip(self) -> None:
        with tempfile.TemporaryDirectory() as d, mock.patch.dict(os.environ, {"CXL_SR_CACHE": d}):
            self.assertEqual(load_baseline("k1"), {})
            verdicts = {"a": Result(PASS), "b": Result(FAIL, "exit=1: line 3")}
            save_baseline("k1", verdicts, "[ 1.0] ok\n")
            self.assertEqual(load_baseline("k1"), verdicts)
            self.assertEqual(load_baseline("k2"), {})

    def test_verdicts_add_up_test_by_test(self) -> None:
        with tempfile.TemporaryDirectory() as d, mock.patch.dict(os.environ, {"CXL_SR_CACHE": d}):
            save_baseline("k", {"a": Result(PASS), "b": Result(FAIL, "x")}, "")
            save_baseline("k", {"b": Result(PASS), "c": Result(SKIP, "y")}, "")
            self.assertEqual(load_baseline("k"), {"a": Result(PASS), "b": Result(PASS),
                                                  "c": Result(SKIP, "y")})


if __name__ == "__main__":
    unittest.main()
