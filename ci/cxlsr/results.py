# SPDX-License-Identifier: GPL-2.0
"""Results: kunit.py's KernelCI JSON -> summary.json, junit.xml and a table.

No KTAP parsing here: kunit.py parses the log (kunit_parser.py) and writes
the JSON; this module only flattens it, checks that every expected suite
reported, looks for kernel splats in the raw log, and writes the files bots
read.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from .util import atomic_write

PASS, FAIL, SKIP, ERROR = "PASS", "FAIL", "SKIP", "ERROR"
# A case marked as a known bug of the kernel under test (the kselftest
# harness's XFAIL_ADD): XFAIL while it still fails, XPASS (a failure of the
# run: the kernel changed, the expectation must follow) once it passes.
XFAIL, XPASS = "XFAIL", "XPASS"

# The first line of any of these anywhere in a kernel log fails the run.
SPLAT = re.compile(
    r"(BUG: |WARNING: |Oops|general protection fault|Kernel panic|"
    r"KASAN: |UBSAN: |kmemleak: \d+ new suspected|"
    r"INFO: task .* blocked for more than|"
    r"WARNING: possible (circular|recursive) locking|"
    r"inconsistent lock state|possible deadlock|"
    r"Unable to handle kernel|Call Trace:)")


@dataclass
class Case:
    name: str
    status: str
    reason: str = ""  # why an XFAIL/XPASS case is expected to fail


@dataclass
class Suite:
    name: str
    layer: str
    cases: List[Case] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)

    @property
    def failed(self) -> int:
        return self.count(FAIL) + self.count(ERROR) + self.count(XPASS)


@dataclass
class Layer:
    name: str
    status: str = "ok"  # ok | failed | timeout | error
    message: str = ""
    log: str = ""
    ktap: str = ""
    suites: List[Suite] = field(default_factory=list)


def _cases(group: Dict[str, Any], prefix: str) -> Iterable[Case]:
    """Leaf cases of a KernelCI group; parameterised cases become case.param."""
    for case in group.get("test_cases", []):
        yield Case(prefix + case["name"], case["status"])
    for sub in group.get("sub_groups", []):
        if sub.get("sub_groups") or sub.get("test_cases"):
            yield from _cases(sub, prefix + sub["name"] + ".")
        else:
            # A case that ran no subtest: its own verdict lives in the counts.
            misc = sub.get("misc", {})
            bad = misc.get("failed", 0) + misc.get("crashed", 0) + misc.get("errors", 0)
            yield Case(prefix + sub["name"], FAIL if bad else PASS)


def suites_from_kunit_json(data: Dict[str, Any], layer: str) -> List[Suite]:
    """Suites of a `kunit.py --json` document (its top group holds one group per suite)."""
    suites = []
    for group in data.get("sub_groups", []):
        suite = Suite(group["name"], layer, list(_cases(group, "")))
        # A crash before any case ran leaves only the counts to go by.
        misc = group.get("misc", {})
        if not suite.cases and (misc.get("crashed") or misc.get("errors") or misc.get("failed")):
            suite.cases.append(Case("(suite)", ERROR))
        suites.append(suite)
    return suites


def first_splat(log_text: str) -> Optional[str]:
    for line in log_text.splitlines():
        if SPLAT.search(line):
            return line.strip()
    return None


def judge(layer: Layer, expected: Iterable[str], log_text: str,
          may_skip: Optional[Iterable[str]] = None) -> Layer:
    """Fail the layer for a missing suite, a failed case or a kernel splat.

    With `may_skip` (a layer whose environment the runner built, so that
    nothing it needs can be missing), a skipped case is an error too, unless
    its name ends with one of `may_skip`; a layer whose every case skipped
    says so."""
    if layer.status != "ok":
        return layer
    seen = {s.name: s for s in layer.suites}
    missing = [name for name in expected if name not in seen or not seen[name].cases]
    failed = [f"{s.name}.{c.name}" for s in layer.suites for c in s.cases if c.status in (FAIL, ERROR)]
    xpassed = [f"{s.name}.{c.name}" for s in layer.suites for c in s.cases if c.status == XPASS]
    cases = [c for s in layer.suites for c in s.cases]
    allowed = tuple(may_skip or ())
    skipped = [f"{s.name}.{c.name}" for s in layer.suites for c in s.cases
               if c.status == SKIP and not c.name.endswith(allowed)] if may_skip is not None else []
    splat = first_splat(log_text)
    if missing:
        layer.status, layer.message = "error", f"no result from suite(s) {', '.join(missing)}"
    elif may_skip is not None and cases and all(c.status == SKIP for c in cases):
        layer.status, layer.message = "error", (f"every case skipped ({len(cases)}): the "
                                                f"{layer.name} layer tested nothing")
    elif skipped:
        layer.status, layer.message = "error", (f"{len(skipped)} case(s) skipped where nothing "
                                                f"may be missing: {', '.join(skipped[:5])}")
    elif failed:
        layer.status, layer.message = "failed", f"{len(failed)} case(s) failed: {', '.join(failed[:5])}"
    elif xpassed:
        layer.status, layer.message = "failed", (
            f"{len(xpassed)} case(s) marked as a known kernel bug passed (XPASS; the kernel "
            f"changed: update the expectation): {', '.join(xpassed[:5])}")
    elif splat:
        layer.status, layer.message = "failed", f"kernel splat in the log: {splat}"
    return layer


def totals(layers: List[Layer]) -> Dict[str, int]:
    t = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    for layer in layers:
        for s in layer.suites:
            t["passed"] += s.count(PASS)
            t["failed"] += s.failed
            t["skipped"] += s.count(SKIP)
            t["xfailed"] += s.count(XFAIL)
        if layer.status != "ok" and not any(s.failed for s in layer.suites):
            t["failed"] += 1  # a timeout, crash or splat counts as one failure
    return t


def write_summary(path: Path, layers: List[Layer], meta: Dict[str, Any]) -> Dict[str, Any]:
    doc: Dict[str, Any] = dict(meta)
    doc["ok"] = all(layer.status == "ok" for layer in layers)
    doc["totals"] = totals(layers)
    doc["layers"] = {
        layer.name: {"status": layer.status, "message": layer.message,
                     "log": layer.log, "ktap": layer.ktap}
        for layer in layers}
    doc["suites"] = {
        s.name: {"layer": s.layer, "passed": s.count(PASS), "failed": s.failed,
                 "skipped": s.count(SKIP), "xfailed": s.count(XFAIL),
                 "cases": [asdict(c) for c in s.cases]}
        for layer in layers for s in layer.suites}
    atomic_write(path, json.dumps(doc, indent=2) + "\n")
    return doc


def write_junit(path: Path, layers: List[Layer]) -> None:
    root = ET.Element("testsuites")
    for layer in layers:
        for s in layer.suites:
            ts = ET.SubElement(root, "testsuite", name=s.name, tests=str(len(s.cases)),
                               failures=str(s.count(FAIL) + s.count(XPASS)),
                               errors=str(s.count(ERROR)),
                               skipped=str(s.count(SKIP) + s.count(XFAIL)))
            for c in s.cases:
                tc = ET.SubElement(ts, "testcase", classname=f"{layer.name}.{s.name}", name=c.name)
                if c.status == FAIL:
                    ET.SubElement(tc, "failure", message="failed")
                elif c.status == ERROR:
                    ET.SubElement(tc, "error", message="crashed")
                elif c.status == SKIP:
                    ET.SubElement(tc, "skipped")
                elif c.status == XFAIL:
                    ET.SubElement(tc, "skipped", message=f"expected failure: {c.reason}")
                elif c.status == XPASS:
                    ET.SubElement(tc, "failure", message=f"unexpected pass: {c.reason}")
        if layer.status != "ok":
            ts = ET.SubElement(root, "testsuite", name=f"{layer.name}.run", tests="1",
                               failures="0", errors="1", skipped="0")
            tc = ET.SubElement(ts, "testcase", classname=layer.name, name="run")
            ET.SubElement(tc, "error", message=f"{layer.status}: {layer.message}")
    ET.indent(root)
    atomic_write(path, ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")


def case_lines(layers: List[Layer]) -> str:
    """Every case with its verdict, suite by suite."""
    out = []
    for layer in layers:
        for s in layer.suites:
            out.append(f"{layer.name}/{s.name}:")
            out += [f"  {c.status:<5} {c.name}" + (f"  ({c.reason})" if c.reason else "")
                    for c in s.cases]
    return "\n".join(out)


def table(layers: List[Layer]) -> str:
    rows = [("layer", "suite", "passed", "failed", "skipped", "xfail")]
    for layer in layers:
        for s in layer.suites:
            rows.append((layer.name, s.name, str(s.count(PASS)), str(s.failed), str(s.count(SKIP)),
                         str(s.count(XFAIL))))
    width = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(v.ljust(width[i]) if i < 2 else v.rjust(width[i]) for i, v in enumerate(r))
             for r in rows]
    for layer in layers:
        if layer.status != "ok":
            lines.append(f"{layer.name}: {layer.status.upper()}: {layer.message}")
    return "\n".join(lines)
