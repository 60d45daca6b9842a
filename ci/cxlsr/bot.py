# SPDX-License-Identifier: GPL-2.0
"""`make ci`: the entry point for maintainer bots.

One command, no terminal needed: the main job (both layers by default) on
KSRC or on Debian's 7.3, within a time budget, its results in a directory of
the bot's choosing:

  summary.json  junit.xml  kunit.json  kunit.ktap  vm.ktap  *-serial.log ...

The budget is a deadline handed down to every hard timeout of the run (a VM
still running when it comes is stopped and the test it was in is named); a
run that overstays it even so is killed with everything it started.

Exit status: 0 only when every layer passed with a splat-free log; 1 when a
test failed, hung, crashed or splatted; 2 when the runner could not do its
job (bad KSRC, build failure, budget spent before there were results).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .results import Layer, write_junit, write_summary
from .util import DEADLINE_ENV, kill_group, log

# What the bot gets: the files of build/results a bot reads, and the logs.
ARTIFACTS = ("summary.json", "junit.xml", "kunit.json", "timings.json", "*.ktap", "*.log",
             "vm-*.json")
# After the deadline, how long the run may take to stop on its own.
GRACE = 60


def copy_results(src: Path, dst: Path) -> List[str]:
    """The artifacts of src, copied to dst (nothing to do when they are one)."""
    dst.mkdir(parents=True, exist_ok=True)
    if src.resolve() == dst.resolve():
        return sorted(p.name for pat in ARTIFACTS for p in src.glob(pat))
    copied = []
    for pat in ARTIFACTS:
        for f in sorted(src.glob(pat)):
            if f.is_file():
                shutil.copy2(f, dst / f.name)
                copied.append(f.name)
    return copied


def budget_summary(dst: Path, message: str, meta: Dict[str, Any]) -> None:
    """Results for a run that left none: one errored case says why."""
    layer = Layer("ci", status="error", message=message)
    write_summary(dst / "summary.json", [layer], meta)
    write_junit(dst / "junit.xml", [layer])


def run_ci(repo: Path, results: Path, out: Path, budget: int, ksrc: Optional[str],
           cmd: Optional[List[str]] = None, grace: int = GRACE) -> int:
    """Run `cxlsr run` (or `cmd`) under the budget; leave its results in `out`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env[DEADLINE_ENV] = str(time.time() + budget)
    if ksrc:
        env["KSRC"] = ksrc
    # Results of an earlier run (another layer's logs, say) must not pass for this one's.
    for pat in ARTIFACTS:
        for stale in results.glob(pat):
            if stale.is_file():
                stale.unlink()
    log(f"ci: budget {budget}s, results in {out}")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd or [sys.executable, "-m", "cxlsr", "run"], cwd=repo / "ci",
                            env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        rc: Optional[int] = proc.wait(timeout=budget + grace)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        proc.wait()
        rc = None
    spent = round(time.monotonic() - t0)
    copy_results(results, out)
    summary = out / "summary.json"
    if rc is None:
        log(f"ci: the run overstayed its budget of {budget}s and was stopped")
        budget_summary(out, f"budget of {budget}s spent after {spent}s; the run was stopped",
                       {"budget": budget})
        return 2
    if not summary.is_file() or rc == 2:
        if not summary.is_file():
            budget_summary(out, f"the run ended (exit {rc}) without results", {"budget": budget})
        return 2
    doc = json.loads(summary.read_text())
    doc["budget"] = {"seconds": budget, "spent": spent}
    summary.write_text(json.dumps(doc, indent=2) + "\n")
    t = doc["totals"]
    verdict = "PASS" if doc["ok"] and rc == 0 else "FAIL"
    xfail = f", {t['xfailed']} expected failures" if t.get("xfailed") else ""
    print(f"ci: {verdict}: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
          f"{xfail} in {spent}s; {summary}")
    return 0 if verdict == "PASS" else 1
