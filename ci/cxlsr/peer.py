# SPDX-License-Identifier: GPL-2.0
"""The peer suite: ndctl's own CXL tests, judged against the pristine base.

ndctl 81's test/cxl-*.sh (built with its tests: ndctl.py) run in the vm
layer's VMs beside the kselftests, on the overlaid kernel with its cxl_test,
as the suite SUITE (vm-init.sh runs them, each under a hard timeout). When a
test does not pass there for a reason KNOWN does not explain, that test runs
on a kernel built from the pristine base (cxl-sr-base: no patch of the
series, the base's own tools/testing/cxl) with the same config fragments,
the baseline. Its verdicts are cached test by test, keyed by everything that
made them, so that a machine builds that kernel only for a test it has not
judged before.

A test's verdict on the overlay:
  passes                                      PASS
  fails the way KNOWN explains for this ndctl XFAIL, with the explanation
  fails or skips, passed on the baseline      FAIL (a regression: bisect the series)
  fails, failed on the baseline too           XFAIL, the baseline's reason with it
  skips, skipped on the baseline too          SKIP, its reason with it
  fails or skips, no baseline verdict         FAIL
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .results import ERROR, FAIL, PASS, SKIP, XFAIL, Case, Suite, first_splat
from .source import GIT
from .util import RunnerError, atomic_write, cache_dir, log

SUITE = "ndctl_cxl"
# ndctl 81's CXL tests (test/meson.build: suite 'cxl'), without ".sh".
TESTS: Tuple[str, ...] = (
    "cxl-topology", "cxl-region-sysfs", "cxl-labels", "cxl-create-region", "cxl-xor-region",
    "cxl-events", "cxl-sanitize", "cxl-destroy-region", "cxl-qos-class", "cxl-poison",
    "cxl-update-firmware", "cxl-security")
# How vm-init.sh reports each: "ok 3 selftests: ndctl_cxl: cxl-labels # SKIP why".
VERDICT = re.compile(r"^(ok|not ok) \d+ selftests: ndctl_cxl: (\S+)(?:\s+#\s*(.*))?$", re.M)
# Failures explained outside the kernel, by ndctl version: test -> (how its
# failure reason ends, why). Matched exactly, they need no baseline: the
# series cannot change them, and a failure anywhere else is still judged
# against the pristine base.
KNOWN: Dict[str, Dict[str, Tuple[str, str]]] = {
    "81": {
        "cxl-topology": (
            "failed at line 183",
            "ndctl 81's `cxl enable-port -m` looks a port's memdevs up through the port's "
            "dports, which the kernel now adds only when a memdev below the port probes, "
            "so after `cxl disable-port` it enables none; ndctl's fix is \"cxl: Add helper "
            "function to verify port is in memdev hierarchy\" (linux-cxl, 2025-07)"),
    },
}
# A baseline's verdicts are kept as long as nothing that made them changed.
BASELINE_ENV = "CXL_SR_PEER_BASELINE"  # "cached": use a cached one, never build it


@dataclass
class Result:
    status: str  # PASS | FAIL | SKIP
    reason: str = ""


def parse(ktap: str) -> Dict[str, Result]:
    """test -> its verdict, from the VM's console."""
    out: Dict[str, Result] = {}
    for m in VERDICT.finditer(ktap):
        directive = (m.group(3) or "").strip()
        if m.group(1) == "ok" and directive.upper().startswith("SKIP"):
            out[m.group(2)] = Result(SKIP, directive[4:].strip() or "skipped (no reason given)")
        elif m.group(1) == "ok":
            out[m.group(2)] = Result(PASS)
        else:
            out[m.group(2)] = Result(FAIL, directive or "failed")
    return out


def explained(test: str, got: Result, known: Dict[str, Tuple[str, str]]) -> str:
    """Why `test` failed as it did, when KNOWN says so; "" otherwise."""
    how, why = known.get(test, ("", ""))
    return why if how and got.status == FAIL and got.reason.endswith(how) else ""


def unexplained(tests: List[str], overlay: Dict[str, Result],
                known: Dict[str, Tuple[str, str]]) -> List[str]:
    """The tests whose verdict here needs the baseline's."""
    return [t for t in tests if t in overlay and overlay[t].status != PASS
            and not explained(t, overlay[t], known)]


def suite(tests: List[str], overlay: Dict[str, Result],
          base: Optional[Dict[str, Result]], layer: str = "vm",
          known: Optional[Dict[str, Tuple[str, str]]] = None) -> Suite:
    """The overlay's verdicts, each judged against the baseline's."""
    s = Suite(SUITE, layer)
    for t in tests:
        got = overlay.get(t)
        was = base.get(t) if base is not None else None
        why = explained(t, got, known or {}) if got is not None else ""
        if got is None:
            s.cases.append(Case(t, ERROR, "no verdict: the VM stopped before it finished"))
        elif got.status == PASS:
            s.cases.append(Case(t, PASS))
        elif why:
            s.cases.append(Case(t, XFAIL, f"{got.reason}: {why}"))
        elif was is None:
            s.cases.append(Case(t, FAIL, f"{_said(got)}; no baseline verdict to compare"))
        elif was.status == PASS:
            s.cases.append(Case(t, FAIL, f"{_said(got)}; passes on the pristine base: a "
                                         "regression of the series (make prefixes bisects it)"))
        elif got.status == FAIL and was.status == FAIL:
            s.cases.append(Case(t, XFAIL, f"fails on the pristine base too ({was.reason})"))
        elif got.status == SKIP and was.status == SKIP:
            s.cases.append(Case(t, SKIP, got.reason))
        else:
            s.cases.append(Case(t, FAIL, f"{_said(got)}; on the pristine base: {_said(was)}"))
    return s


def _said(r: Result) -> str:
    return {FAIL: "fails", SKIP: "skips"}.get(r.status, r.status.lower()) + \
        (f" ({r.reason})" if r.reason else "")


def allowed_skips(s: Suite) -> Tuple[str, ...]:
    """The cases that skip on the pristine base as well: said, not hidden,
    and no error of a layer in which nothing may be missing."""
    return tuple(c.name for c in s.cases if c.status == SKIP)


def base_tree(tree: Path, where: Path) -> Path:
    """A worktree of `tree` at cxl-sr-base (the pristine base) at `where`,
    made when missing or when it is not at today's base."""
    base = subprocess.run(GIT + ["rev-parse", "cxl-sr-base^{commit}"], cwd=tree, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.strip()
    if not base:
        raise RunnerError(f"peer: {tree} has no cxl-sr-base tag (the pristine base)")
    here = subprocess.run(GIT + ["rev-parse", "HEAD"], cwd=where, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.strip() \
        if (where / ".git").exists() else ""
    dirty = here and subprocess.run(GIT + ["status", "--porcelain", "--untracked-files=no"],
                                    cwd=where, text=True, stdout=subprocess.PIPE).stdout.strip()
    if here == base and not dirty:
        return where
    shutil.rmtree(where, ignore_errors=True)
    subprocess.run(GIT + ["worktree", "prune"], cwd=tree)
    where.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(GIT + ["worktree", "add", "-q", "--detach", "-f", str(where),
                                 "cxl-sr-base"], cwd=tree, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RunnerError(f"peer: git worktree add {where} failed: {proc.stdout.strip()}")
    return where


def baseline_key(tree: Path, repo: Path, parts: List[str]) -> str:
    """What the baseline's verdicts depend on: the base's content, the VM's
    config fragments and init, and `parts` (ndctl's build, the kernel kind)."""
    base = subprocess.run(GIT + ["rev-parse", "cxl-sr-base^{tree}"], cwd=tree, text=True,
                          stdout=subprocess.PIPE, check=True).stdout.strip()
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], text=True,
                          stdout=subprocess.PIPE).stdout.splitlines()[:1]
    files = sorted((repo / "ci" / "configs").glob("*.config")) + \
        sorted((repo / "ci").glob("vm-*.sh"))
    text = "\n".join([base, *qemu, *parts, *(f.read_text() for f in files)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_baseline(key: str) -> Dict[str, Result]:
    """The verdicts the pristine base has given so far, test by test."""
    path = cache_dir() / "peer-baseline" / f"{key}.json"
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    return {t: Result(*v) for t, v in doc["tests"].items()}


def save_baseline(key: str, verdicts: Dict[str, Result], log_text: str) -> Path:
    """Adds `verdicts` to the ones cached under `key`."""
    path = cache_dir() / "peer-baseline" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(path.read_text()) if path.is_file() else {"tests": {}, "splat": ""}
    doc["tests"].update({t: [r.status, r.reason] for t, r in verdicts.items()})
    doc["splat"] = doc["splat"] or first_splat(log_text) or ""
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path
