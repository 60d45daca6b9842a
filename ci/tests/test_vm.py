# SPDX-License-Identifier: GPL-2.0
import os
import unittest

from pathlib import Path

from cxlsr.results import FAIL, PASS, XFAIL, XPASS, Case, Suite
from cxlsr.vm import (BEGIN, END, Boot, VmBuild, boot_message, case_seconds, config_mismatches,
                      expected_failures, extract_ktap, harness_cases, kernel_seconds_at, merge_suites,
                      running_test, selftest_programs, shard, split_kselftest)

# What `cxl_sr_layout -l` prints (kselftest_harness.h, "%-20s %-25s %s"):
# variants and tests side by side, a variant name overflowing its column.
LISTING = (f"{'# FIXTURE':<20} {'VARIANT':<25} TEST\n"
           f"{'cxl_sr':<20} {'sr_equals_committed_region':<25} owner\n"
           f"{'':<20} {'no_soft_reserved':<25} recheck\n"
           + "-" * 80 + "\n"
           f"{'hmem_owned':<20} {'':<25} create_region_sysfs\n"
           f"{'':<20} {'':<25} reload\n"
           + "-" * 80 + "\n"
           f"{'layout':<20} {'region_first':<25} owners\n")

# What run_kselftest.sh prints for a harness program, as it reaches the console.
CONSOLE = f"""[    1.0] booting
{BEGIN}
TAP version 13
1..1
# timeout set to 300
# selftests: cxl: cxl_sr_owner
# TAP version 13
# 1..2
# # Starting 2 tests from 2 test cases.
# #  RUN           cxl_sr.a.owner ...
# #            OK  cxl_sr.a.owner
# ok 1 cxl_sr.a.owner
# #  RUN           cxl_sr.b.owner ...
# # cxl_sr_owner.c:300:owner:Expected 1 (1) == count (0)
# #          FAIL  cxl_sr.b.owner
# not ok 2 cxl_sr.b.owner
# # FAILED: 1 / 2 tests passed.
not ok 1 selftests: cxl: cxl_sr_owner # exit=1
{END}
[   20.0] reboot: Power down
"""


class VmTest(unittest.TestCase):
    def test_cxl_test_objects_stay_in_the_build_dir(self) -> None:
        # tools/testing/cxl/Kbuild rebuilds ../../../drivers/...: with MO= those
        # objects land three levels above MO, which must still be ours.
        for variant in ("", "-cov"):
            vb = VmBuild(Path("/r"), Path("/t"), Path("/x/main/build"), 1, variant=variant)
            landing = Path(os.path.normpath(vb.cxl_out / "../../../drivers/cxl/core/region.o"))
            self.assertTrue(landing.is_relative_to(vb.cxl_root), landing)
            self.assertTrue(vb.cxl_root.is_relative_to("/x/main/build"))

    def test_extract_and_split(self) -> None:
        ktap = extract_ktap(CONSOLE)
        self.assertTrue(ktap.startswith("TAP version 13"))
        self.assertNotIn("Power down", ktap)
        progs = split_kselftest(ktap)
        tap, verdict = progs["cxl_sr_owner"]
        self.assertIn("not ok 2 cxl_sr.b.owner", tap.splitlines())
        self.assertIn("ok 1 cxl_sr.a.owner", tap.splitlines())
        self.assertTrue(verdict.startswith("not ok 1 selftests: cxl: cxl_sr_owner"))

    def test_program_that_never_finished(self) -> None:
        cut = CONSOLE.split("# #  RUN           cxl_sr.b.owner")[0]
        progs = split_kselftest(extract_ktap(cut + f"\n{END}\n"))
        self.assertEqual(progs["cxl_sr_owner"][1], "")

    def test_running_test(self) -> None:
        cut = CONSOLE.split("# # cxl_sr_owner.c:300")[0]
        self.assertEqual(running_test(cut), "cxl_sr_owner: cxl_sr.b.owner")
        # Between cases: the program is running, no case is.
        cut = CONSOLE.split("# #  RUN           cxl_sr.b.owner")[0]
        self.assertEqual(running_test(cut), "cxl_sr_owner")
        # A finished run, or one that never reached the runner.
        self.assertEqual(running_test(CONSOLE), "")
        self.assertEqual(running_test("[    1.0] booting\n"), "")

    def test_boot_message(self) -> None:
        cut = CONSOLE.split("# # cxl_sr_owner.c:300")[0]
        b = Boot("timeout", cut, 60.0, running_test(cut))
        self.assertEqual(boot_message(b, 60),
                         "VM hit the hard timeout of 60s while running cxl_sr_owner: cxl_sr.b.owner")
        b = Boot("crashed", "BUG: kernel NULL pointer dereference\n", 3.0, "")
        self.assertIn("before any test started: BUG: kernel NULL pointer", boot_message(b, 60))

    def test_kernel_seconds_at(self) -> None:
        self.assertEqual(kernel_seconds_at(CONSOLE, "reboot: Power down"), 20.0)
        self.assertIsNone(kernel_seconds_at(CONSOLE, "Run /init"))

    def test_selftest_programs(self) -> None:
        # The programs the Makefile builds, not every .c (a helper library is none).
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            mk = Path(d) / "Makefile"
            mk.write_text("CFLAGS += -Wall\nTEST_GEN_PROGS := b_prog \\\n\ta_prog\n"
                          "TEST_GEN_PROGS += c_prog\nLOCAL_HDRS += lib.h\n"
                          "$(TEST_GEN_PROGS): lib.c\n")
            self.assertEqual(["a_prog", "b_prog", "c_prog"], selftest_programs(mk))
        repo = Path(__file__).resolve().parents[2]
        self.assertEqual(["cxl_sr_hw", "cxl_sr_layout", "cxl_sr_owner"],
                         selftest_programs(repo / "selftests" / "Makefile"))

    def test_programs_by_layer(self) -> None:
        # The vm layer (cxl_test) runs every program but the hw one; the hw
        # layer (no cxl_test) runs that one only.
        from cxlsr.vm import HW_PROGRAM, VmBuild
        repo = Path(__file__).resolve().parents[2]
        vb = VmBuild(repo, repo, repo / "build", 1)
        self.assertEqual(["cxl_sr_layout", "cxl_sr_owner"], vb.programs)
        vb.mock = False
        self.assertEqual([HW_PROGRAM], vb.programs)
        self.assertTrue(vb.root.name.endswith("-hw"))

    def test_no_markers(self) -> None:
        self.assertEqual(extract_ktap("Kernel panic - not syncing\n"), "")

    def test_config_mismatches(self) -> None:
        config = "CONFIG_CXL_BUS=m\nCONFIG_NUMA=y\n# CONFIG_KASAN is not set\n"
        want = {"CONFIG_CXL_BUS": "m", "CONFIG_NUMA": "y", "CONFIG_KASAN": "y",
                "CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN": "n"}
        self.assertEqual(config_mismatches(config, want), ["CONFIG_KASAN=y (got n)"])


if __name__ == "__main__":
    unittest.main()


class ShardTest(unittest.TestCase):
    def test_harness_cases(self) -> None:
        self.assertEqual(harness_cases(LISTING), [
            "cxl_sr.sr_equals_committed_region.owner", "cxl_sr.sr_equals_committed_region.recheck",
            "cxl_sr.no_soft_reserved.owner", "cxl_sr.no_soft_reserved.recheck",
            "hmem_owned.create_region_sysfs", "hmem_owned.reload", "layout.region_first.owners"])

    def test_shard_balances_and_keeps_order(self) -> None:
        cases = {"p": ["a", "b", "c", "d"], "q": ["e"]}
        plans = shard(cases, 2, {"p.a": 10, "p.b": 1, "p.c": 1, "p.d": 1, "q.e": 7})
        self.assertEqual(plans, [[("p", ["a"])], [("p", ["b", "c", "d"]), ("q", ["e"])]])
        # Every case once, whatever the weights; no empty VM.
        flat = sorted(f"{p}.{c}" for plan in shard(cases, 8, {}) for p, cs in plan for c in cs)
        self.assertEqual(flat, ["p.a", "p.b", "p.c", "p.d", "q.e"])
        self.assertEqual(len(shard(cases, 8, {})), 5)
        self.assertEqual(shard(cases, 1, {}), [[("p", cases["p"]), ("q", cases["q"])]])

    def test_case_seconds(self) -> None:
        stamps = [(0.0, "# selftests: cxl: p"), (1.0, "# #  RUN           f.v.t ..."),
                  (4.5, "# #            OK  f.v.t"), (5.0, "# #  RUN           f.w.t ..."),
                  (9.0, "# #          FAIL  f.w.t"), (9.5, "# #  RUN           f.x.t ...")]
        self.assertEqual(case_seconds(stamps), {"p.f.v.t": 3.5, "p.f.w.t": 4.0})

    def test_merge_suites(self) -> None:
        merged = merge_suites([Suite("p", "vm", [Case("a", PASS)]), Suite("q", "vm"),
                               Suite("p", "vm", [Case("b", FAIL)])])
        self.assertEqual([(s.name, [c.name for c in s.cases]) for s in merged],
                         [("p", ["a", "b"]), ("q", [])])


class ExpectedFailureTest(unittest.TestCase):
    def test_directives_decide(self) -> None:
        # What the harness prints for XFAIL_ADD cases, one failing, one passing.
        tap = ("#          FAIL  f.v.t\nok 1 f.v.t # XFAIL 7.3 leaves the range idle\n"
               "#            OK  f.w.t\nok 2 f.w.t # XPASS 7.3 leaves the range idle\n"
               "#            OK  f.x.t\nok 3 f.x.t\n"
               "#          FAIL  f.y.t\nok 4 f.y.t # XFAIL unknown\n")
        suite = Suite("p", "vm", [Case("f.v.t", PASS), Case("f.w.t", PASS), Case("f.x.t", PASS),
                                  Case("f.y.t", PASS)])
        expected_failures(suite, tap)
        self.assertEqual([(c.status, c.reason) for c in suite.cases[:3]],
                         [(XFAIL, "7.3 leaves the range idle"), (XPASS, "7.3 leaves the range idle"),
                          (PASS, "")])
        # Expected to fail, but it failed without naming its bug: on another check.
        self.assertEqual(suite.cases[3].status, FAIL)
        self.assertEqual(suite.failed, 2)
