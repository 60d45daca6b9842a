# SPDX-License-Identifier: GPL-2.0
import io
import os
import tempfile
import time
import unittest
from pathlib import Path
from unittest import mock

from cxlsr.accel import filter_accel, kvm_usable
from cxlsr.util import stream

KUNIT_ARGS = ["-nodefaults", "-accel", "kvm", "-accel", "hvf", "-accel", "tcg", "-serial", "stdio"]


class AccelTest(unittest.TestCase):
    def test_filter_without_kvm(self) -> None:
        self.assertEqual(filter_accel(KUNIT_ARGS, kvm=False),
                         ["-nodefaults", "-accel", "tcg", "-serial", "stdio"])
        self.assertEqual(filter_accel(["-enable-kvm", "-m", "1G"], kvm=False),
                         ["-m", "1G", "-accel", "tcg"])

    def test_filter_with_kvm(self) -> None:
        self.assertEqual(filter_accel(KUNIT_ARGS, kvm=True), KUNIT_ARGS)

    def test_no_vmx_means_no_kvm(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            cpuinfo, dev = Path(d) / "cpuinfo", Path(d) / "kvm"
            dev.write_text("")
            with mock.patch.dict(os.environ, {"CXL_SR_ACCEL": ""}):
                cpuinfo.write_text("flags\t\t: fpu sse2 hypervisor\n")
                self.assertFalse(kvm_usable(cpuinfo, dev))
                cpuinfo.write_text("flags\t\t: fpu vmx sse2\n")
                self.assertTrue(kvm_usable(cpuinfo, dev))
                self.assertFalse(kvm_usable(cpuinfo, Path(d) / "absent"))
            with mock.patch.dict(os.environ, {"CXL_SR_ACCEL": "tcg"}):
                self.assertFalse(kvm_usable(cpuinfo, dev))


class StreamTest(unittest.TestCase):
    def test_timeout_kills_the_whole_group(self) -> None:
        out = io.StringIO()
        t0 = time.monotonic()
        # The child keeps stdout open through a grandchild: both must go.
        rc = stream(["sh", "-c", "echo started; sleep 60 & sleep 60"], 1.0, out)
        self.assertIsNone(rc)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("started", out.getvalue())

    def test_exit_status(self) -> None:
        self.assertEqual(stream(["sh", "-c", "exit 3"], 10, io.StringIO()), 3)


if __name__ == "__main__":
    unittest.main()
