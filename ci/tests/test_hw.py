# SPDX-License-Identifier: GPL-2.0
import unittest
from pathlib import Path

from cxlsr import hw


class HwTest(unittest.TestCase):
    def cmd(self) -> list[str]:
        q = hw.Qemu(Path("/q/qemu-system-x86_64"), [Path("/q/data")])
        return hw.qemu_cmd(q, Path("/k"), Path("/i"), "cxlsr.shard=0")

    def test_soft_reserved_is_window_0(self) -> None:
        # Firmware's Soft Reserved covers all of the first window, the
        # kernel command line says so as an e820 entry.
        append = self.cmd()[self.cmd().index("-append") + 1]
        self.assertIn("memmap=512M%0x390000000+0xefffffff", append)
        self.assertIn("memhp_default_state=offline", append)
        self.assertTrue(append.endswith("cxlsr.shard=0"))

    def test_machine(self) -> None:
        cmd = self.cmd()
        self.assertEqual("q35,cxl=on", cmd[cmd.index("-machine") + 1])
        self.assertIn("tcg", cmd)
        devices = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
        self.assertEqual(2, sum(d.startswith("pxb-cxl,bus_nr=") for d in devices))
        self.assertEqual(2, sum("volatile-memdev=" in d for d in devices))
        fmw = cmd[cmd.index("-M") + 1]
        self.assertEqual("cxl-fmw.0.targets.0=cxl.0,cxl-fmw.0.size=512M,"
                         "cxl-fmw.1.targets.0=cxl.1,cxl-fmw.1.size=256M", fmw)
        self.assertEqual(["-L", "/q/data"], cmd[1:3])


if __name__ == "__main__":
    unittest.main()
