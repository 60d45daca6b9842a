# SPDX-License-Identifier: GPL-2.0
import unittest
from pathlib import Path

from cxlsr import hw


class HwTest(unittest.TestCase):
    def cmd(self, m: hw.Machine = hw.MACHINES[0], cpus: int = 2) -> list[str]:
        q = hw.Qemu(Path("/q/qemu-system-x86_64"), [Path("/q/data")])
        return hw.qemu_cmd(q, m, Path("/k"), Path("/i"), "cxlsr.test=cxl_sr_hw", cpus)

    def test_soft_reserved_is_window_0(self) -> None:
        # Firmware's Soft Reserved covers all of the first window, the
        # kernel command line says so as an e820 entry.
        append = self.cmd()[self.cmd().index("-append") + 1]
        self.assertIn("memmap=512M%0x390000000+0xefffffff", append)
        self.assertEqual(1, append.count("memmap="))
        self.assertIn("memhp_default_state=offline", append)
        self.assertTrue(append.endswith("cxlsr.test=cxl_sr_hw"))

    def test_firmware_machine(self) -> None:
        # Soft Reserved over both windows, host bridges with HDM decoders.
        fw = [m for m in hw.MACHINES if m.fixture == "hw_firmware"][0]
        cmd = self.cmd(fw, cpus=1)
        append = cmd[cmd.index("-append") + 1]
        self.assertIn("memmap=512M%0x390000000+0xefffffff "
                      "memmap=256M%0x3b0000000+0xefffffff", append)
        bridges = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"
                   and cmd[i + 1].startswith("pxb-cxl")]
        self.assertEqual(2, sum(b.endswith(",hdm_for_passthrough=on") for b in bridges))
        self.assertEqual("1", cmd[cmd.index("-smp") + 1])
        plain = self.cmd()
        self.assertFalse(any("hdm_for_passthrough" in a for a in plain))

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

    def test_machines(self) -> None:
        # Every machine runs its own fixture; a narrowed run boots the one
        # whose fixture it names, `hw` when it names none.
        whole = hw.machines("")
        self.assertEqual(["hw", "hw_firmware", "hw_cxl_late"], [m.fixture for m, _ in whole])
        self.assertEqual("cxlsr.test=cxl_sr_hw cxlsr.harness=-f,hw_firmware", whole[1][1])
        for args, fixture in (("cxlsr.harness=-r,hw.handoff", "hw"),
                              ("cxlsr.harness=-f,hw_firmware", "hw_firmware"),
                              ("cxlsr.harness=-r,hw_firmware.range_larger.owner", "hw_firmware"),
                              ("cxlsr.harness=-r,hw_cxl_late.daxctl_round_trip", "hw_cxl_late"),
                              ("cxlsr.test=cxl_sr_hw", "hw")):
            (m, got), = hw.machines(args)
            self.assertEqual(fixture, m.fixture, args)
            self.assertIn("cxlsr.test=cxl_sr_hw", got)


if __name__ == "__main__":
    unittest.main()
