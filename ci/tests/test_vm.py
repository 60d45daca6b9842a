# SPDX-License-Identifier: GPL-2.0
import os
import unittest

from pathlib import Path

from cxlsr.vm import (BEGIN, END, Boot, VmBuild, boot_message, config_mismatches,
                      extract_ktap, kernel_seconds_at, running_test, selftest_programs,
                      split_kselftest)

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
        self.assertEqual(["cxl_sr_layout", "cxl_sr_owner"],
                         selftest_programs(repo / "selftests" / "Makefile"))

    def test_no_markers(self) -> None:
        self.assertEqual(extract_ktap("Kernel panic - not syncing\n"), "")

    def test_config_mismatches(self) -> None:
        config = "CONFIG_CXL_BUS=m\nCONFIG_NUMA=y\n# CONFIG_KASAN is not set\n"
        want = {"CONFIG_CXL_BUS": "m", "CONFIG_NUMA": "y", "CONFIG_KASAN": "y",
                "CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN": "n"}
        self.assertEqual(config_mismatches(config, want), ["CONFIG_KASAN=y (got n)"])


if __name__ == "__main__":
    unittest.main()
