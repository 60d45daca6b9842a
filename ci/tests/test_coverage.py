# SPDX-License-Identifier: GPL-2.0
import base64
import io
import tarfile
import tempfile
import unittest
from pathlib import Path

from cxlsr import coverage
from cxlsr.util import RunnerError

SOURCE = """// SPDX
static int helper(int a)
{
	if (a)
		return 1;
	return 0;
}

bool cxl_region_contains_resource(const struct resource *res)
{
	char *s = "{";

	return helper(!!res);
}
"""

INFO_A = """TN:kunit
SF:{src}/drivers/cxl/core/region.c
FN:2,helper
FN:9,cxl_region_contains_resource
FNDA:3,helper
FNDA:0,cxl_region_contains_resource
DA:4,3
DA:5,0
DA:6,3
DA:11,0
DA:13,0
end_of_record
"""

INFO_B = """TN:vm
SF:{src}/drivers/cxl/core/region.c
FN:9,cxl_region_contains_resource
FNDA:2,cxl_region_contains_resource
DA:11,2
DA:13,2
end_of_record
"""


def dump(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class CoverageTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.root = Path(self.tmp.name)

    def test_console_payload_survives_the_serial_line(self) -> None:
        payload = dump({"./a.gcda": b"x" * 500})
        b64 = base64.encodebytes(payload).decode()
        console = ("[ 1.0] boot\r\nCXL-SR-GCOV-BEGIN\r\n"
                   + b64.replace("\n", "\r\n") + "CXL-SR-GCOV-END\r\n[ 2.0] reboot\r\n")
        self.assertEqual(coverage.console_payload(console), payload)
        self.assertIsNone(coverage.console_payload("no dump here"))

    def test_garbled_payload_is_an_error(self) -> None:
        with self.assertRaisesRegex(RunnerError, "garbled"):
            coverage.console_payload("CXL-SR-GCOV-BEGIN\nQUJD\nQQ\nCXL-SR-GCOV-END\n")

    def test_gcda_goes_beside_its_gcno_only(self) -> None:
        obj = self.root / "build/vm/drivers/dax/hmem"
        obj.mkdir(parents=True)
        (obj / "hmem.gcno").write_bytes(b"notes")
        rel = str(obj).lstrip("/")
        payload = dump({f"./{rel}/hmem.gcda": b"counts", f"./{rel}/other.gcda": b"orphan",
                        f"./{rel}/../../../../../../etc/x.gcda": b"escape"})
        placed = coverage.place_gcda(payload)
        self.assertEqual(placed, [obj / "hmem.gcda"])
        self.assertEqual((obj / "hmem.gcda").read_bytes(), b"counts")
        self.assertFalse((obj / "other.gcda").exists())
        coverage.remove_gcda([self.root / "build"])
        self.assertFalse((obj / "hmem.gcda").exists())

    def test_function_span_follows_braces(self) -> None:
        lines = SOURCE.splitlines()
        self.assertEqual(coverage.function_span(lines, 2), range(2, 8))
        self.assertEqual(coverage.function_span(lines, 9), range(9, 15))

    def test_layers_merge_and_unreached_lines_are_named(self) -> None:
        src = self.root / "linux"
        (src / "drivers/cxl/core").mkdir(parents=True)
        (src / "drivers/cxl/core/region.c").write_text(SOURCE)
        cov = coverage.parse_info(INFO_A.format(src=src), src)
        for f, c in coverage.parse_info(INFO_B.format(src=src), src).items():
            cov.setdefault(f, coverage.FileCov()).merge(c)
        c = cov["drivers/cxl/core/region.c"]
        self.assertEqual(c.lines, {4: 3, 5: 0, 6: 3, 11: 2, 13: 2})
        self.assertEqual(c.functions["cxl_region_contains_resource"], (9, 2))
        rep = coverage.report(cov, src)
        self.assertEqual(rep["files"]["drivers/cxl/core/region.c"]["lines"], 80.0)
        self.assertEqual(rep["files"]["drivers/cxl/core/region.c"]["functions"], 100.0)
        self.assertIsNone(rep["files"]["drivers/dax/bus.c"]["lines"])
        arb = rep["arbitration"]["cxl_region_contains_resource"]
        self.assertEqual((arb["lines"], arb["unreached"]), (100.0, []))
        # Only the first layer: the function's lines were never reached.
        rep = coverage.report(coverage.parse_info(INFO_A.format(src=src), src), src)
        arb = rep["arbitration"]["cxl_region_contains_resource"]
        self.assertEqual(arb["lines"], 0.0)
        self.assertEqual([u["line"] for u in arb["unreached"]], [11, 13])
        self.assertIn("return helper(!!res);", coverage.table(rep))


if __name__ == "__main__":
    unittest.main()
