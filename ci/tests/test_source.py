# SPDX-License-Identifier: GPL-2.0
import tempfile
import unittest
from pathlib import Path

from cxlsr.source import Version, check_ksrc, check_version, parse_makefile_version
from cxlsr.util import RunnerError

MAKEFILE = "# SPDX\nVERSION = {v}\nPATCHLEVEL = {p}\nSUBLEVEL = 4\nEXTRAVERSION =\nNAME = Baby\n"


class VersionTest(unittest.TestCase):
    def test_parse(self) -> None:
        self.assertEqual(parse_makefile_version(MAKEFILE.format(v=7, p=3)), Version(7, 3, 4, ""))

    def test_not_a_makefile(self) -> None:
        with self.assertRaises(RunnerError):
            parse_makefile_version("all:\n\techo hi\n")

    def test_wrong_version_message(self) -> None:
        with self.assertRaisesRegex(RunnerError, r"is Linux 6\.12\.4, but this suite needs 7\.3\.y"):
            check_version(Version(6, 12, 4), "KSRC=/x")
        check_version(Version(6, 12, 4), "KSRC=/x", any_version=True)

    def _tree(self, d: str, v: int, p: int, bus: str) -> Path:
        root = Path(d)
        (root / "drivers/dax/hmem").mkdir(parents=True)
        (root / "Makefile").write_text(MAKEFILE.format(v=v, p=p))
        (root / "drivers/dax/bus.c").write_text(bus)
        (root / "drivers/dax/hmem/hmem.c").write_text("static void process_defer_work(void)\n")
        return root

    def test_ksrc_checks(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(RunnerError, "needs 7.3.y"):
                check_ksrc(self._tree(d, 6, 12, "static struct resource dax_regions;"))
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(RunnerError, "lacks the Soft Reserved arbitration"):
                check_ksrc(self._tree(d, 7, 3, "/* no arbiter */"))
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(check_ksrc(self._tree(d, 7, 3, "dax_regions")).patchlevel, 3)
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(RunnerError, "not a kernel tree"):
                check_ksrc(Path(d))


if __name__ == "__main__":
    unittest.main()
