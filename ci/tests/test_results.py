# SPDX-License-Identifier: GPL-2.0
import json
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

from cxlsr.results import (PASS, XFAIL, XPASS, Case, Layer, Suite, first_splat, judge,
                           suites_from_kunit_json, table, totals, write_junit, write_summary)

# The shape kunit.py --json writes (kunit_json.py), with one parameterised case.
KUNIT_JSON = {
    "name": "KUnit Test Group",
    "test_cases": [],
    "sub_groups": [{
        "name": "dax_regions",
        "test_cases": [{"name": "dax_regions_same_range_twice", "status": "PASS"},
                       {"name": "dax_regions_failure_clears_drvdata", "status": "FAIL"}],
        "sub_groups": [{
            "name": "dax_regions_overlap",
            "sub_groups": [],
            "test_cases": [{"name": "nested", "status": "PASS"},
                           {"name": "adjacent_above", "status": "SKIP"}],
            "misc": {"failed": 0},
        }],
        "misc": {"failed": 1},
    }],
}


class ResultsTest(unittest.TestCase):
    def test_flatten_params(self) -> None:
        (suite,) = suites_from_kunit_json(KUNIT_JSON, "kunit")
        names = [c.name for c in suite.cases]
        self.assertIn("dax_regions_overlap.nested", names)
        self.assertEqual(suite.failed, 1)
        self.assertEqual(suite.count("SKIP"), 1)

    def test_crash_before_any_case_is_an_error(self) -> None:
        data = {"sub_groups": [{"name": "s", "test_cases": [], "sub_groups": [],
                                "misc": {"crashed": 1}}]}
        (suite,) = suites_from_kunit_json(data, "kunit")
        self.assertEqual(suite.failed, 1)

    def test_judge_missing_suite(self) -> None:
        layer = Layer("kunit", suites=suites_from_kunit_json(KUNIT_JSON, "kunit"))
        judge(layer, ["dax_regions", "hmem_defer"], "")
        self.assertEqual(layer.status, "error")
        self.assertIn("hmem_defer", layer.message)

    def test_judge_skips_where_nothing_may_be_missing(self) -> None:
        def layer(*statuses: str) -> Layer:
            cases = [Case(f"f.c{i}", s) for i, s in enumerate(statuses)]
            cases.append(Case("hmem_owned.create_region_cxl_tool", "SKIP"))
            return Layer("vm", suites=[Suite("prog", "vm", cases)])

        every = judge(layer("SKIP", "SKIP"), ["prog"], "", may_skip=("create_region_cxl_tool",))
        self.assertEqual(every.status, "error")
        self.assertIn("every case skipped (3)", every.message)
        one = judge(layer("PASS", "SKIP"), ["prog"], "", may_skip=("create_region_cxl_tool",))
        self.assertEqual(one.status, "error")
        self.assertIn("1 case(s) skipped where nothing may be missing: prog.f.c1", one.message)
        ok = judge(layer("PASS", "PASS"), ["prog"], "", may_skip=("create_region_cxl_tool",))
        self.assertEqual(ok.status, "ok", ok.message)
        # KUnit (no may_skip): a skip is a skip.
        self.assertEqual(judge(layer("PASS", "SKIP"), ["prog"], "").status, "ok")

    def test_judge_failed_case(self) -> None:
        layer = judge(Layer("kunit", suites=suites_from_kunit_json(KUNIT_JSON, "kunit")),
                      ["dax_regions"], "")
        self.assertEqual(layer.status, "failed")
        self.assertIn("dax_regions_failure_clears_drvdata", layer.message)

    def test_splat_fails_a_green_run(self) -> None:
        data = json.loads(json.dumps(KUNIT_JSON))
        data["sub_groups"][0]["test_cases"][1]["status"] = "PASS"
        log = "[ 1.0] ok 1 x\n[ 1.2] WARNING: CPU: 0 PID: 1 at drivers/dax/bus.c:650\n"
        layer = judge(Layer("kunit", suites=suites_from_kunit_json(data, "kunit")),
                      ["dax_regions"], log)
        self.assertEqual(layer.status, "failed")
        self.assertIn("drivers/dax/bus.c:650", layer.message)

    def test_no_false_splat(self) -> None:
        self.assertIsNone(first_splat("# dax_regions_overlap: pass:7 fail:0\nok 1 dax_regions\n"))

    def test_timeout_counts_as_failure(self) -> None:
        self.assertEqual(totals([Layer("kunit", status="timeout")])["failed"], 1)

    def test_summary_and_junit(self) -> None:
        layer = judge(Layer("kunit", suites=suites_from_kunit_json(KUNIT_JSON, "kunit")),
                      ["dax_regions"], "")
        with tempfile.TemporaryDirectory() as d:
            doc = write_summary(Path(d) / "summary.json", [layer], {"kernel": "7.3.4"})
            self.assertFalse(doc["ok"])
            self.assertEqual(doc["totals"], {"passed": 2, "failed": 1, "skipped": 1, "xfailed": 0})
            back = json.loads((Path(d) / "summary.json").read_text())
            self.assertEqual(back["suites"]["dax_regions"]["failed"], 1)
            write_junit(Path(d) / "junit.xml", [layer])
            root = ET.parse(Path(d) / "junit.xml").getroot()
            self.assertEqual(len(root.findall(".//testcase")), 5)  # 4 cases + the run
            self.assertEqual(len(root.findall(".//failure")), 1)
        self.assertIn("dax_regions", table([layer]))

    def test_expected_failure_and_unexpected_pass(self) -> None:
        why = "7.3 leaves the range idle"
        known = Suite("p", "vm", [Case("a", PASS), Case("b", XFAIL, why)])
        layer = judge(Layer("vm", suites=[known]), ["p"], "", may_skip=())
        self.assertEqual(layer.status, "ok")  # a known bug still there is no failure
        self.assertEqual(totals([layer]), {"passed": 1, "failed": 0, "skipped": 0, "xfailed": 1})
        changed = Suite("p", "vm", [Case("a", PASS), Case("b", XPASS, why)])
        layer = judge(Layer("vm", suites=[changed]), ["p"], "", may_skip=())
        self.assertEqual(layer.status, "failed")
        self.assertIn("XPASS", layer.message)
        self.assertIn("p.b", layer.message)
        with tempfile.TemporaryDirectory() as d:
            write_junit(Path(d) / "junit.xml", [Layer("vm", suites=[known]), layer])
            root = ET.parse(Path(d) / "junit.xml").getroot()
            self.assertEqual(root.find(".//testcase[@name='b']/skipped").get("message"),
                             f"expected failure: {why}")
            self.assertEqual(root.findall(".//failure")[0].get("message"), f"unexpected pass: {why}")


if __name__ == "__main__":
    unittest.main()
