# SPDX-License-Identifier: GPL-2.0
"""`make check`: the project's own tests, around the main job.

Steps, each recorded in build/results/checks.json as passed/failed counts
with the seconds it took:
  unit        the runner's unit tests (ci/tests)
  kunit       the main job: every KUnit case (from summary.json)
  checkpatch  scripts/checkpatch.pl --strict on every patch and new file
  series      the overlay exported as an upstream series (make series): it
              applies with `git am` to the base and gives the overlaid tree,
              and each of its mails is checkpatch --strict clean
  hang        a QEMU that never prints must end in a timeout failure (KUnit),
              and a VM frozen inside a selftest must end in a timeout failure
              that names the test (VM layer)
  mutants     each ci/mutants/*.patch must make its named suite fail
  guards      each fix patch of the series, left out, must make the tests
              kernel-tree-overlay/guards names for it fail
  fastvm      the VM layer and ndctl's CXL tests (the peer suite) on a kernel
              without debug options (make coverage's, VM half): every case
              passes, no splat; ndctl's tests judged by peer.py's rule
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from . import overlay
from .series import CHECK_SENDER
from .kunitrun import KunitRun
from .util import RunnerError, atomic_write, log
from .vm import boot, boot_message, qemu_cmd

CHECKPATCH = ["scripts/checkpatch.pl", "--strict", "--quiet", "--no-summary",
              # The base tree has no upstream history to look Fixes: ids up in.
              "--ignore", "UNKNOWN_COMMIT_ID"]
CHECKED_SUFFIXES = {".c", ".h", ".sh", ""}


_step_start = [time.monotonic()]


def _record(results: Path, name: str, passed: int, failed: int, detail: Any = None) -> None:
    """A step's counts, and its seconds: the time since the previous step ended."""
    path = results / "checks.json"
    doc: Dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    now = time.monotonic()
    doc[name] = {"passed": passed, "failed": failed, "seconds": round(now - _step_start[0]),
                 "detail": detail}
    _step_start[0] = now
    atomic_write(path, json.dumps(doc, indent=2) + "\n")


def tally(results: Path) -> Tuple[int, int]:
    path = results / "checks.json"
    if not path.is_file():
        return 0, 1
    doc = json.loads(path.read_text())
    return (sum(v["passed"] for v in doc.values()), sum(v["failed"] for v in doc.values()))


def unit(repo: Path) -> Tuple[int, int]:
    suite = unittest.defaultTestLoader.discover(str(repo / "ci" / "tests"), top_level_dir=str(repo / "ci"))
    res = unittest.TextTestRunner(stream=sys.stderr, verbosity=1).run(suite)
    bad = len(res.failures) + len(res.errors)
    return res.testsRun - bad, bad


def _checkpatch(jobs: list[tuple[str, list[str]]], tree: Path) -> Iterator[tuple[str, str]]:
    """(name, what checkpatch said) for each job it did not pass."""
    # checkpatch runs scripts/spdxcheck.py through `env python3`; its modules
    # (ply, git) come from Debian's python3-ply/python3-git, for /usr/bin/python3.
    env = dict(os.environ, PATH=f"/usr/bin{os.pathsep}{os.environ.get('PATH', '')}")
    for name, cmd in jobs:
        proc = subprocess.run(cmd, cwd=tree, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0 or proc.stdout.strip():
            yield name, proc.stdout


def checkpatch_files(patches: list[Path], tree: Path) -> list[tuple[str, str]]:
    """checkpatch --strict on the exported series: what it said of each mail it
    did not pass. FILE_PATH_CHANGES ("does MAINTAINERS need updating?") is
    answered by series.unlisted() instead: it asks of every new file, even one
    an F: entry already covers."""
    cmd = CHECKPATCH + ["--ignore", "FILE_PATH_CHANGES"]
    return list(_checkpatch([(p.name, cmd + [str(p)]) for p in patches], tree))


def checkpatch(repo: Path, tree: Path) -> Tuple[int, int, list[str]]:
    ov = overlay.Overlay(repo)
    # The overlay's patches carry no Signed-off-by: whoever sends them signs
    # off (make series); series_check() runs checkpatch on those mails in full.
    # A patch that adds a file gets FILE_PATH_CHANGES whether or not an F:
    # entry covers it: series_check() asks MAINTAINERS instead (unlisted()).
    unsigned = CHECKPATCH + ["--ignore", "MISSING_SIGN_OFF,FILE_PATH_CHANGES"]
    jobs = [(p.name, unsigned + [str(p)]) for p in ov.series()]
    jobs += [(dst, CHECKPATCH + ["-f", dst]) for f, dst in ov.new_files()
             if f.suffix in CHECKED_SUFFIXES and not f.name.startswith(".")]
    bad = []
    for name, out in _checkpatch(jobs, tree):
        bad.append(name)
        print(f"checkpatch: {name}:\n{out}", file=sys.stderr)
    return len(jobs) - len(bad), len(bad), bad


def series_check(repo: Path, tree: Path, out: Path, who: str,
                 history: Optional[Path] = None) -> Tuple[int, int, list[str]]:
    """The exported upstream series, signed off by `who`: each series applies
    alone and `git am` of all of them on the base gives the overlaid tree (one
    check), each mail reads as a reviewer wants it (one check: series.lint())
    and is checkpatch --strict clean (one each)."""
    from . import series
    try:
        ex = series.export(repo, tree, out, who)
    except RunnerError as e:
        print(f"series: {e}", file=sys.stderr)
        return 0, 1, [str(e)]
    problems = series.verify(ex, tree)
    said = series.lint(ex, series.test_names(repo), history)
    for p in problems + said:
        print(f"series: {p}", file=sys.stderr)
    if history is None:
        log("series: Fixes: ids not resolved (KSRC is not a git tree with history)")
    mails = [p for p in ex.patches if not p.name.startswith("0000-")]
    bad = []
    for name, out_ in checkpatch_files(mails, tree):
        bad.append(name)
        print(f"checkpatch: {name}:\n{out_}", file=sys.stderr)
    log(f"series: {', '.join(f'{x.name} {len(x.patches)}' for x in ex.parts)} mails in {out}; "
        "git am on the base: " + ("differs or fails" if problems else "gives the overlaid tree"))
    failed = len(bad) + (1 if problems else 0) + (1 if said else 0)
    return 2 + len(mails) - failed, failed, bad + problems + said


@contextlib.contextmanager
def fake_qemu(script: str, **env: str) -> Iterator[None]:
    """`script` as qemu-system-x86_64, first on PATH (plus `env`), for the duration."""
    old = dict(os.environ)
    with tempfile.TemporaryDirectory() as fake:
        qemu = Path(fake) / "qemu-system-x86_64"
        qemu.write_text(script)
        qemu.chmod(0o755)
        os.environ.update(env, PATH=f"{fake}{os.pathsep}{old['PATH']}")
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(old)


def hang(repo: Path, tree: Path, build: Path, results: Path) -> bool:
    """Boot through a QEMU that prints nothing: the run must fail as a timeout, promptly."""
    with fake_qemu("#!/bin/sh\nexec sleep 3600\n"):
        kr = KunitRun(repo, tree, build / "kunit", results / "hang", jobs=1, run_timeout=10)
        kr.results.mkdir(parents=True, exist_ok=True)
        layer = kr.execute(["dax_regions"])
    log(f"hang check: {layer.status}: {layer.message}")
    return layer.status == "timeout"


# Runs QEMU (its arguments) and freezes it (SIGSTOP) once a selftest case
# starts: the guest is then as silent as a deadlocked kernel.
FREEZER = """
import os, signal, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
for line in p.stdout:
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
    if b" RUN " in line:
        os.kill(p.pid, signal.SIGSTOP)
"""
VM_HANG_TIMEOUT = 150


def vm_hang(build: Path, results: Path) -> bool:
    """Boot the built VM, freeze it inside its first test: the boot must end
    at the hard timeout, and the message must name that test."""
    kernel, initrd = build / "vm/arch/x86/boot/bzImage", build / "vm-initramfs.cpio"
    real = shutil.which("qemu-system-x86_64")
    if not (kernel.is_file() and initrd.is_file() and real):
        log("VM hang check: no VM kernel/initramfs built, or no QEMU")
        return False
    (results / "hang").mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", FREEZER] + qemu_cmd(kernel, initrd, "")
    b = boot(kernel, initrd, results / "hang" / "vm-serial.log", VM_HANG_TIMEOUT, cmd=cmd)
    msg = boot_message(b, VM_HANG_TIMEOUT)
    log(f"VM hang check: {b.status}: {msg}")
    return b.status == "timeout" and bool(re.search(r": \S+\.\S+$", b.running))


# A mutant or a left-out patch that makes one of ndctl's tests fail has
# shown what it must with or without the pristine base's verdicts: they are
# used when the main job left them in the cache, never built for it.
NO_NEW_BASELINE = dict(os.environ, CXL_SR_PEER_BASELINE="cached")


def mutants(repo: Path, layers: list[str]) -> Tuple[int, int, list[str]]:
    passed, bad = 0, []
    for patch in sorted((repo / "ci" / "mutants").glob("*.patch")):
        layer = re.search(r"^Layer:\s*(\S+)", patch.read_text(), re.MULTILINE)
        if (layer.group(1) if layer else "kunit") not in layers:
            continue
        m = re.search(r"^Expect-Fail:\s*(\S+)", patch.read_text(), re.MULTILINE)
        if not m:
            raise RunnerError(f"{patch.name}: no 'Expect-Fail: <suite>' line")
        cases = re.search(r"^Expect-Cases:\s*(\S+)", patch.read_text(), re.MULTILINE)
        rc = subprocess.run([sys.executable, "-m", "cxlsr", "mutant", str(patch),
                             "--expect-fail", m.group(1)]
                            + (["--expect-cases", cases.group(1)] if cases else []),
                            cwd=repo / "ci", env=NO_NEW_BASELINE).returncode
        if rc == 0:
            passed += 1
        else:
            bad.append(patch.name)
    return passed, len(bad), bad


def read_guards(repo: Path) -> list[tuple[str, str, list[str]]]:
    """kernel-tree-overlay/guards: `<patch> <suite> <case>...` per line."""
    out = []
    for n, line in enumerate((repo / "kernel-tree-overlay" / "guards").read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) < 3 or not (repo / "kernel-tree-overlay" / words[0]).is_file():
            raise RunnerError(f"kernel-tree-overlay/guards:{n}: want '<patch> <suite> <case>...'"
                              f" naming a patch of the series: {line!r}")
        out.append((words[0], words[1], words[2:]))
    return out


def guards(repo: Path) -> Tuple[int, int, list[str]]:
    """Each fix patch left out (applied in reverse on the full overlay): the
    tests that guard it must fail; the main job has shown they pass with it."""
    from .vm import HW_PROGRAM, selftest_programs

    programs = selftest_programs(repo / "selftests" / "Makefile")
    passed, bad = 0, []
    for patch, suite, cases in read_guards(repo):
        # A kselftest program guards from its VM (the emulated hardware's
        # for the hw program), running just those cases.
        vm = ["--layer", "hw" if suite == HW_PROGRAM else "vm",
              "--harness", " ".join(f"-r {c}" for c in cases)] if suite in programs else []
        rc = subprocess.run([sys.executable, "-m", "cxlsr", "mutant", "--reverse",
                             str(repo / "kernel-tree-overlay" / patch), "--expect-fail", suite,
                             "--expect-cases", ",".join(cases)] + vm, cwd=repo / "ci").returncode
        if rc == 0:
            passed += 1
        else:
            bad.append(patch)
    return passed, len(bad), bad


def fast_vm(repo: Path, results: Path) -> Tuple[int, int, Any]:
    """The VM layer once more, on make coverage's kernel: no debug options,
    so fast enough to hit the races the debug kernel's slowness hides (it
    found patch 0010 and a selftest that settled too early). Every case must
    pass with a splat-free log; the VM layer's coverage report comes along.
    ndctl's CXL tests run here too, ten times faster than on the debug
    kernel (docs/measurements.md)."""
    summary = results / "coverage" / "summary.json"
    summary.unlink(missing_ok=True)
    rc = subprocess.run([sys.executable, "-m", "cxlsr", "coverage"], cwd=repo / "ci",
                        env=dict(os.environ, LAYERS="vm peer")).returncode
    if not summary.is_file():
        return 0, 1, f"make coverage (VM) gave no results (exit {rc})"
    doc = json.loads(summary.read_text())
    t = doc["totals"]
    failed = t["failed"] or (1 if rc else 0)
    detail = {"vm": doc["layers"].get("vm", {}).get("message", ""),
              "arbitration_lines_vm": doc.get("coverage", {}).get("arbitration_lines")}
    return t["passed"], failed, detail


def run_all(s: Any, repo: Path, cmd_run: Callable[..., int]) -> int:
    results: Path = s.results
    results.mkdir(parents=True, exist_ok=True)
    (results / "checks.json").unlink(missing_ok=True)
    _step_start[0] = time.monotonic()
    ok = True

    p, f = unit(repo)
    _record(results, "unit", p, f)
    ok &= f == 0

    try:
        rc = cmd_run(s, None)
    except RunnerError as e:
        print(f"cxl-sr: error: {e}", file=sys.stderr)
        rc = 2
    summary = results / "summary.json"
    if rc == 2 or not summary.is_file():
        _record(results, "kunit", 0, 1, "the main job did not produce results")
        return 2
    t = json.loads(summary.read_text())["totals"]
    _record(results, "kunit", t["passed"], t["failed"])
    ok &= rc == 0

    # The frozen VM of the VM hang check waits out its timeout on no CPU:
    # let it, beside checkpatch and the series export.
    vm_hung: list[bool] = []
    waiter = threading.Thread(target=lambda: vm_hung.append(vm_hang(s.build, results)))
    if "vm" in s.layers:
        waiter.start()
    try:
        tree = s.build / "src" / "linux"
        p, f, bad = checkpatch(repo, tree)
        _record(results, "checkpatch", p, f, bad)
        ok &= f == 0

        from .series import history
        p, f, bad = series_check(repo, tree, s.build / "series-check", CHECK_SENDER,
                                 history(s.ksrc))
        _record(results, "series", p, f, bad)
        ok &= f == 0

        hung = [hang(repo, tree, s.build, results)]
    finally:
        if waiter.is_alive():
            waiter.join()
    if "vm" in s.layers:
        hung += vm_hung or [False]
    _record(results, "hang", hung.count(True), hung.count(False))
    ok &= all(hung)

    p, f, bad = mutants(repo, s.layers)
    _record(results, "mutants", p, f, bad)
    ok &= f == 0

    if "kunit" in s.layers:
        p, f, bad = guards(repo)
        _record(results, "guards", p, f, bad)
        ok &= f == 0

    if "vm" in s.layers:
        p, f, detail = fast_vm(repo, results)
        _record(results, "fastvm", p, f, detail)
        ok &= f == 0

    print(json.dumps(json.loads((results / "checks.json").read_text()), indent=1))
    return 0 if ok else 1
