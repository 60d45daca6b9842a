# SPDX-License-Identifier: GPL-2.0
"""Run the KUnit suites with the tree's own kunit.py (config, build, exec).

kunit.py does the building, the booting and the KTAP parsing. This module
adds what these machines need: TCG where KVM cannot run guests (through the
QEMU shim in ci/bin), ccache, a hard timeout on every stage, and stage times.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .results import Layer, judge, suites_from_kunit_json
from .util import RunnerError, clip, log, stream

KUNITCONFIG_DIR = "drivers/dax/tests"
SUITE_RE = re.compile(r"struct\s+kunit_suite\s+\w+\s*=\s*\{\s*\.name\s*=\s*\"(\w+)\"")


# The tree's own suites that the series adds cases to, and their options:
# built beside the project's (not named in its .kunitconfig, which goes
# upstream with drivers/dax/tests) and required to report as they are.
TREE_SUITES = {"resource": "CONFIG_RESOURCE_KUNIT_TEST=y"}


def expected_suites(repo: Path) -> List[str]:
    """Every suite the project's KUnit sources declare, and TREE_SUITES: each must report."""
    names: List[str] = []
    for src in sorted((repo / "kunit").glob("*.c")):
        names += SUITE_RE.findall(src.read_text())
    return names + list(TREE_SUITES)


@dataclass
class KunitRun:
    repo: Path
    tree: Path
    build_dir: Path
    results: Path
    jobs: int
    run_timeout: int = 120
    build_timeout: int = 3600
    timings: Dict[str, float] = field(default_factory=dict)
    # For the coverage build: more options, more make variables, more exec arguments.
    kconfig_add: List[str] = field(default_factory=list)
    make_options: List[str] = field(default_factory=list)
    exec_args: List[str] = field(default_factory=list)

    def _env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.repo / 'ci' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep the kernel tree clean
        return env

    def _kunit(self, verb: str, *extra: str) -> List[str]:
        cmd = ["python3", "tools/testing/kunit/kunit.py", verb, "--arch=x86_64",
               f"--build_dir={self.build_dir}", f"--kunitconfig={KUNITCONFIG_DIR}"]
        if verb in ("config", "build"):
            if shutil.which("ccache"):
                cmd.append("--make_options=CC=ccache gcc")
            cmd += [f"--make_options={o}" for o in self.make_options]
            cmd += [f"--kconfig_add={o}" for o in [*TREE_SUITES.values(), *self.kconfig_add]]
        return cmd + list(extra)

    def _stage(self, name: str, cmd: List[str], timeout: int, logf: Path) -> None:
        t0 = time.monotonic()
        timeout = int(clip(timeout))
        with logf.open("a") as out:
            rc = stream(cmd, timeout, out, cwd=self.tree, env=self._env())
        self.timings[name] = round(time.monotonic() - t0, 1)
        if rc is None:
            raise RunnerError(f"kunit {name} hit its hard timeout of {timeout}s (log: {logf})")
        if rc != 0:
            raise RunnerError(f"kunit {name} failed with exit {rc} (log: {logf})")

    def build(self) -> None:
        self.results.mkdir(parents=True, exist_ok=True)
        logf = self.results / "kunit-build.log"
        logf.write_text("")
        self._stage("configure", self._kunit("config"), 600, logf)
        self._stage("build", self._kunit("build", f"--jobs={self.jobs}"), self.build_timeout, logf)

    def execute(self, expected: List[str]) -> Layer:
        """Boot and run; every way the run can go wrong ends in the Layer's status."""
        json_out = self.results / "kunit.json"
        serial = self.build_dir / "test.log"
        for stale in (json_out, serial):
            stale.unlink(missing_ok=True)
        layer = Layer("kunit", log="kunit-run.log", ktap="kunit.ktap")
        marks: Dict[str, float] = {}

        def on_line(line: str) -> None:
            if "Starting KUnit Kernel" in line:
                marks.setdefault("start", time.monotonic())
            elif re.search(r"\] =+ \S", line) or "KTAP version" in line:
                marks.setdefault("ktap", time.monotonic())

        # kunit.py's own --timeout ends QEMU; ours, a little longer, ends
        # kunit.py itself (and anything it started) if that does not work.
        run_timeout = int(clip(self.run_timeout))
        cmd = self._kunit("exec", f"--timeout={run_timeout}", "--qemu_args=-smp 2",
                          f"--json={json_out}", *self.exec_args)
        t0 = time.monotonic()
        with (self.results / layer.log).open("w") as out:
            rc = stream(cmd, run_timeout + 30, out, cwd=self.tree, env=self._env(),
                        on_line=on_line)
        end = time.monotonic()
        start = marks.get("start", t0)
        self.timings["boot"] = round(marks.get("ktap", end) - start, 1)
        self.timings["test"] = round(end - marks.get("ktap", end), 1)

        log_text = serial.read_text(errors="replace") if serial.is_file() else ""
        (self.results / "kunit-serial.log").write_text(log_text)
        self._save_ktap(serial)
        if rc is None or (end - t0 >= run_timeout and "ktap" not in marks):
            layer.status = "timeout"
            layer.message = (f"QEMU gave no KUnit output within {run_timeout}s "
                             "(hard timeout; a hang or a stuck accelerator)")
            return layer
        if json_out.is_file() and json_out.stat().st_size:
            try:
                layer.suites = suites_from_kunit_json(json.loads(json_out.read_text()), "kunit")
            except (ValueError, KeyError) as e:
                layer.status, layer.message = "error", f"unreadable kunit.py JSON: {e}"
                return layer
        if not layer.suites:
            layer.status = "error"
            layer.message = f"no KUnit results (kunit.py exit {rc}; see {layer.log})"
            return layer
        layer = judge(layer, expected, log_text)
        if layer.status == "ok" and rc != 0:
            layer.status, layer.message = "failed", f"kunit.py exec exited {rc}"
        return layer

    def _save_ktap(self, serial: Path) -> None:
        """The KTAP lines of the serial log, as `kunit.py parse --raw_output=kunit` extracts them."""
        ktap = self.results / "kunit.ktap"
        if not serial.is_file():
            ktap.write_text("")
            return
        with serial.open() as inp, ktap.open("w") as out:
            subprocess.run(["python3", "tools/testing/kunit/kunit.py", "parse", "--raw_output=kunit"],
                           cwd=self.tree, stdin=inp, stdout=out, stderr=subprocess.DEVNULL,
                           env=self._env(), timeout=120)


def run_kunit(run: KunitRun, expected: Optional[List[str]] = None) -> Layer:
    run.build()
    log("booting the KUnit kernel")
    return run.execute(expected if expected is not None else expected_suites(run.repo))
