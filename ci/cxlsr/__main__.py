# SPDX-License-Identifier: GPL-2.0
"""Command line: python3 -m cxlsr {run,check,ci,mutant,bench,report,prepare,...}.

Exit status: 0 all passed, 1 a test failed (or a mutant survived),
2 the runner could not do its job (bad input, build failure, timeout...).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from . import overlay, source
from .kunitrun import KunitRun, expected_suites, run_kunit
from .results import Layer, case_lines, table, write_junit, write_summary
from .util import RunnerError, atomic_write, cache_dir, log, run

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Settings:
    build: Path
    cache: Path
    ksrc: Optional[Path]
    jobs: int
    any_version: bool
    run_timeout: int
    layers: List[str]
    vm_timeout: int
    vm_debug: bool
    vm_shards: int

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        cache = cache_dir()
        ksrc = env.get("KSRC") or None
        return cls(build=Path(env.get("BUILD_DIR") or REPO / "build").resolve(),
                   cache=cache, ksrc=Path(ksrc) if ksrc else None,
                   jobs=int(env.get("JOBS") or os.cpu_count() or 2),
                   any_version=env.get("CXL_SR_ANY_KERNEL") == "1",
                   run_timeout=int(env.get("KUNIT_TIMEOUT") or 120),
                   layers=(env.get("LAYERS") or "kunit vm hw").replace(",", " ").split(),
                   vm_timeout=int(env.get("VM_TIMEOUT") or 1800),
                   vm_debug=env.get("VM_DEBUG", "1") != "0",
                   # Under TCG a guest keeps about one host core busy: a VM per core.
                   vm_shards=max(1, int(env.get("VM_SHARDS") or os.cpu_count() or 1)))

    @property
    def results(self) -> Path:
        return self.build / "results"


def setup_ccache(s: Settings) -> None:
    os.environ.setdefault("CCACHE_DIR", str(s.cache / "ccache"))
    # Paths below the build directory hash as relative ones: another clone,
    # elsewhere on the disk, still hits the cache.
    os.environ.setdefault("CCACHE_BASEDIR", str(s.build))
    os.environ.setdefault("CCACHE_COMPILERCHECK", "content")


def prepare(s: Settings, timings: Dict[str, float]) -> source.Tree:
    """Base tree (fetched or KSRC) plus overlay, under build/src."""
    tarball = None
    if s.ksrc:
        if not s.ksrc.is_dir():
            raise RunnerError(f"KSRC={s.ksrc} is not a directory")
    else:
        t0 = time.monotonic()
        env = dict(os.environ, CXL_SR_CACHE=str(s.cache))
        out = run([str(REPO / "ci" / "fetch-kernel.sh")], env=env, what="fetching linux-source-7.3")
        tarball = Path(out.stdout.strip().splitlines()[-1])
        timings["fetch"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    tree = source.import_tree(s.build / "src", tarball, s.ksrc, s.any_version)
    timings["import"] = round(time.monotonic() - t0, 1)
    if tree.imported:
        # Objects of another base would look newer than its sources.
        for d in list(s.build.glob("kunit*")) + list(s.build.glob("vm*")):
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
    t0 = time.monotonic()
    digest = overlay.apply(REPO, tree.path, s.build / "src" / "overlay.stamp")
    timings["overlay"] = round(time.monotonic() - t0, 1)
    source_meta = {"kernel": str(tree.version), "source": tree.source_id, "overlay": digest}
    atomic_write(s.build / "src" / "meta.json", json.dumps(source_meta) + "\n")
    return tree


def report(s: Settings, layers: List[Layer], timings: Dict[str, float], results: Path) -> int:
    meta = json.loads((s.build / "src" / "meta.json").read_text())
    meta["timings"] = timings
    doc = write_summary(results / "summary.json", layers, meta)
    write_junit(results / "junit.xml", layers)
    print(case_lines(layers))
    print(table(layers))
    t = doc["totals"]
    print(f"results: {results}/summary.json, junit.xml, *.ktap, *-serial.log")
    print("stage times (s): " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    print(f"tests: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
          + (f", {t['xfailed']} expected failures (known kernel bugs)" if t.get("xfailed") else ""))
    return 0 if doc["ok"] else 1


def kunit_run(s: Settings, results: Path) -> KunitRun:
    return KunitRun(REPO, s.build / "src" / "linux", s.build / "kunit", results, s.jobs,
                    run_timeout=s.run_timeout)


def cmd_run(s: Settings, _: argparse.Namespace) -> int:
    timings: Dict[str, float] = {}
    prepare(s, timings)
    layers: List[Layer] = []
    if "kunit" in s.layers:
        kr = kunit_run(s, s.results)
        layers.append(run_kunit(kr))
        timings.update(kr.timings)
    if "vm" in s.layers or "peer" in s.layers:
        # peer: ndctl's CXL tests, in the vm layer's VMs (alone without vm).
        from .peer import TESTS
        from .vm import VmBuild, run_vm
        log("building the VM kernel, cxl_test and the initramfs")
        tree = s.build / "src" / "linux"
        vb = VmBuild(REPO, tree, s.build, s.jobs, debug=s.vm_debug, shards=s.vm_shards,
                     peer=TESTS if "peer" in s.layers else (), selftests="vm" in s.layers)
        layers.append(run_vm(REPO, tree, s.build, s.results, s.jobs, s.vm_timeout, timings,
                             vb=vb, append=os.environ.get("VM_APPEND", "")))
    if "hw" in s.layers:
        from .hw import run_hw
        log("the hw layer: emulated CXL hardware, the tree's own modules")
        layers.append(run_hw(REPO, s.build / "src" / "linux", s.build, s.results, s.jobs,
                             s.vm_timeout, timings, debug=s.vm_debug,
                             append=os.environ.get("HW_APPEND", "")))
    atomic_write(s.results / "timings.json", json.dumps(timings) + "\n")
    return report(s, layers, timings, s.results)


def cmd_mutant(s: Settings, args: argparse.Namespace) -> int:
    """Break the code on purpose and require the named suite to notice."""
    patch = Path(args.patch).resolve()
    tree = prepare(s, {})
    results = s.results / "mutants" / patch.stem
    how = "leaving out" if args.reverse else "applying"
    log(f"mutant {patch.name}: {how} in {tree.path}")
    # A patch left out may have later patches of the series around its lines:
    # reverse it with a three-way merge on the blobs its index lines name
    # (which wants an index that agrees with the files).
    run(source.GIT + ["update-index", "-q", "--refresh"], cwd=tree.path, what="git update-index")
    run(source.GIT + ["apply"] + (["-R", "--3way"] if args.reverse else []) + [str(patch)],
        cwd=tree.path, what=f"{how} {patch.name}")
    header = patch.read_text().split("diff --git", 1)[0]
    found = re.search(r"^Layer:\s*(\S+)\s*$", header, re.MULTILINE)
    where = args.layer or (found.group(1) if found else "kunit")
    try:
        if where in ("vm", "hw"):
            results.mkdir(parents=True, exist_ok=True)
            # Harness: the harness options that pick the cases that matter (-f FIXTURE...).
            found = re.search(r"^Harness:\s*(.+?)\s*$", header, re.MULTILINE)
            harness = args.harness or (found.group(1) if found else "")
            append = (f"cxlsr.test={args.expect_fail} cxlsr.harness=" + ",".join(harness.split())
                      if harness else "")
            if where == "hw":
                from .hw import run_hw
                layer = run_hw(REPO, tree.path, s.build, results, s.jobs, s.vm_timeout, {},
                               debug=s.vm_debug, append=append)
            else:
                from .vm import run_vm
                layer = run_vm(REPO, tree.path, s.build, results, s.jobs, s.vm_timeout, {},
                               debug=s.vm_debug, append=append)
        else:
            layer = run_kunit(kunit_run(s, results))
    finally:
        overlay.restore(tree.path)  # the next build recompiles what the mutant touched
    suites = {x.name: x for x in layer.suites}
    hit = suites.get(args.expect_fail)
    if layer.status in ("timeout", "error") and hit is None:
        raise RunnerError(f"mutant {patch.name}: no verdict ({layer.status}: {layer.message})")
    if hit is None or not hit.failed:
        print(f"mutant {patch.name}: SURVIVED: suite {args.expect_fail} reported no failure")
        return 1
    failed = [c.name for c in hit.cases if c.status in ("FAIL", "ERROR")]
    missed = [c for c in args.expect_cases.split(",") if c and
              not any(f == c or f.startswith(c + ".") for f in failed)]
    if missed:
        print(f"mutant {patch.name}: SURVIVED in {', '.join(missed)} (failed: "
              + (", ".join(failed) or "none") + ")")
        return 1
    print(f"mutant {patch.name}: killed by {len(failed)} case(s) of {args.expect_fail}: "
          + ", ".join(failed))
    for c in hit.cases:
        if c.status in ("FAIL", "ERROR") and c.reason:
            print(f"  {c.name}: {c.reason}")
    return 0


def cmd_bench(s: Settings, args: argparse.Namespace) -> int:
    """Cold (empty build dir, no ccache) and warm (nothing changed) runs, per stage."""
    rows = {}
    for kind in ("cold", "warm"):
        env = dict(os.environ, BUILD_DIR=str(s.build / "bench"))
        if kind == "cold":
            shutil.rmtree(s.build / "bench", ignore_errors=True)
            env["CCACHE_DISABLE"] = "1"
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "cxlsr", "run"], cwd=REPO / "ci", env=env)
        total = round(time.monotonic() - t0, 1)
        timings = json.loads((s.build / "bench" / "results" / "timings.json").read_text())
        timings["total"] = total
        rows[kind] = timings
        if proc.returncode not in (0, 1):
            raise RunnerError(f"bench: the {kind} run failed (exit {proc.returncode})")
    stages = ["fetch", "import", "overlay", "configure", "build", "boot", "test",
              "vm-configure", "vm-build", "initramfs", "vm-boot", "vm-boot+test",
              "hw-initramfs", "hw-boot+test", "total"]
    stages = [st for st in stages if st in rows["cold"] or st in rows["warm"]]
    print(f"{'stage':<14}{'cold (s)':>10}{'warm (s)':>10}")
    for st in stages:
        print(f"{st:<14}{rows['cold'].get(st, '-'):>10}{rows['warm'].get(st, '-'):>10}")
    # Where the VM layer's time goes: each case's wall time in the warm run.
    cases_file = s.build / "bench" / "results" / "vm-case-seconds.json"
    cases = json.loads(cases_file.read_text()) if cases_file.is_file() else {}
    if cases:
        print(f"VM cases, warm run, slowest first (all in {cases_file}):")
        for name, sec in sorted(cases.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {sec:>7}  {name}")
    atomic_write(s.results / "bench.json",
                 json.dumps({**rows, "vm-cases": cases}, indent=2) + "\n")
    return 0


def cmd_check(s: Settings, _: argparse.Namespace) -> int:
    """make check: every step runs, each records a count, any failure fails."""
    from . import checks
    return checks.run_all(s, REPO, cmd_run)


def cmd_prefixes(s: Settings, _: argparse.Namespace) -> int:
    """Build the VM kernel (and cxl_test) at every prefix of the series as
    `make series` exports it (fixes, then the KUnit suites, then the
    selftests). The series bisects when every prefix builds. Incremental:
    each step rebuilds what that patch touches."""
    from . import series
    from .vm import VmBuild
    tree = prepare(s, {})
    series.export(REPO, tree.path, s.build / "series-check", series.CHECK_SENDER)
    git = source.GIT
    ref = run(git + ["rev-parse", "--abbrev-ref", "HEAD"], cwd=tree.path).stdout.strip()
    shas = run(git + ["rev-list", "--reverse", f"cxl-sr-base..{series.UPSTREAM}"],
               cwd=tree.path).stdout.split()
    failed = []
    try:
        for sha in shas:
            subject = run(git + ["log", "-1", "--format=%s", sha], cwd=tree.path).stdout.strip()
            run(git + ["checkout", "-q", "--detach", sha], cwd=tree.path, what="git checkout")
            try:
                VmBuild(REPO, tree.path, s.build, s.jobs, debug=s.vm_debug).kernel()
                print(f"prefix builds: {subject}")
            except RunnerError as e:
                print(f"prefix FAILS: {subject}: {e}")
                failed.append(subject)
    finally:
        run(git + ["checkout", "-q", ref], cwd=tree.path, what="git checkout")
    print(f"{len(shas) - len(failed)} of {len(shas)} prefixes build")
    return 1 if failed else 0


def cmd_coverage(s: Settings, _: argparse.Namespace) -> int:
    """Both layers on kernels built with gcov; lcov/genhtml report (see coverage.py)."""
    from . import coverage
    from .vm import VmBuild, run_vm
    timings: Dict[str, float] = {}
    tree = prepare(s, timings)
    results = s.results / "coverage"
    results.mkdir(parents=True, exist_ok=True)
    caps: List[coverage.Capture] = []
    if "kunit" in s.layers:
        initrd = coverage.kunit_initramfs(REPO, s.build / "kunit-cov-root",
                                          s.build / "kunit-cov-initramfs.cpio")
        kr = KunitRun(REPO, tree.path, s.build / "kunit-cov", results, s.jobs,
                      run_timeout=s.run_timeout, kconfig_add=list(coverage.KUNIT_KCONFIG),
                      make_options=coverage.make_vars(coverage.STEMS),
                      # kunit.py puts kunit_shutdown=reboot last on the command line; a
                      # second -append, which QEMU takes over the first, lets init run.
                      exec_args=[f"--qemu_args=-initrd {initrd} -append "
                                 "'console=ttyS0 kunit.enable=1 kunit_shutdown=none'"])
        coverage.remove_gcda([kr.build_dir])
        log("coverage: building and booting the KUnit kernel with gcov")
        layer = run_kunit(kr)
        timings.update({f"kunit-{k}": v for k, v in kr.timings.items()})
        caps.append(coverage.Capture("kunit", layer, [results / "kunit-serial.log"],
                                     [kr.build_dir]))
    if "vm" in s.layers:
        from .peer import TESTS
        vb = VmBuild(REPO, tree.path, s.build, s.jobs, debug=False, variant="-cov",
                     fragments=[REPO / "ci" / "configs" / "coverage.config"],
                     kernel_vars=coverage.make_vars(coverage.STEMS), cxl_vars=["GCOV_PROFILE=y"],
                     extra_files={"gcov-dump.sh": REPO / "ci" / "gcov-dump.sh"},
                     shards=s.vm_shards, peer=TESTS if "peer" in s.layers else ())
        coverage.remove_gcda([vb.kdir, vb.cxl_root])
        log("coverage: building and booting the VM kernel with gcov")
        layer = run_vm(REPO, tree.path, s.build, results, s.jobs, s.vm_timeout, timings, vb=vb,
                       append="cxlsr.gcov=1")
        consoles = sorted(results.glob("vm-serial-*.log")) or [results / "vm-serial.log"]
        caps.append(coverage.Capture("vm", layer, consoles, [vb.kdir, vb.cxl_root]))
    rc = report(s, [c.layer for c in caps], timings, results)
    return max(rc, coverage.finish(caps, tree.path, results, timings))


def cmd_series(s: Settings, _: argparse.Namespace) -> int:
    """Export the overlay as upstream series into build/series/NAME, from and
    signed off by your git identity, and check them: each applies alone, all
    of them on the base give the overlaid tree, the mails lint and checkpatch
    clean."""
    from . import checks, series
    who = series.sender(REPO)
    tree = prepare(s, {})
    out = s.build / "series"
    passed, failed, bad = checks.series_check(REPO, tree.path, out, who, series.history(s.ksrc))
    print("\n".join(sorted(str(p.relative_to(out)) for p in out.rglob("*.patch"))))
    print(f"series: {passed} checks passed, {failed} failed" + (": " + "; ".join(bad) if bad else ""))
    return 1 if failed else 0


def cmd_ci(s: Settings, args: argparse.Namespace) -> int:
    """The bots' entry point (see bot.py)."""
    from .bot import run_ci
    out = Path(args.results or os.environ.get("RESULTS_DIR") or s.results).resolve()
    given = args.budget or os.environ.get("BUDGET") or "5400"
    if not given.isdigit() or int(given) <= 0:
        raise RunnerError(f"BUDGET={given!r}: want a whole number of seconds > 0")
    budget = int(given)
    return run_ci(REPO, s.results, out, budget, args.ksrc or None)


def verdicts(summary: Path) -> Dict[str, str]:
    """layer/suite/case -> status, and layer -> status, from a summary.json."""
    doc = json.loads(summary.read_text())
    out = {f"layer:{name}": v["status"] for name, v in doc.get("layers", {}).items()}
    for suite, v in doc.get("suites", {}).items():
        for c in v["cases"]:
            out[f"{v['layer']}/{suite}/{c['name']}"] = c["status"]
    return out


def keep_run(results: Path, dest: Path) -> None:
    """A copy of one run's logs and results: a flake is only worth its log."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in results.iterdir():
        if f.is_file() and f.suffix in (".log", ".ktap", ".json", ".xml"):
            shutil.copy2(f, dest / f.name)


def cmd_repeat(s: Settings, args: argparse.Namespace) -> int:
    """Run the main job N times in a row (nothing is rebuilt after the first)
    and compare the verdicts: any case whose verdict changes is a flake."""
    runs: List[Dict[str, str]] = []
    seconds: List[float] = []
    for i in range(1, args.n + 1):
        log(f"repeat: run {i} of {args.n}")
        t0 = time.monotonic()
        rc = cmd_run(s, args)
        seconds.append(round(time.monotonic() - t0, 1))
        runs.append(verdicts(s.results / "summary.json"))
        keep_run(s.results, s.results / "repeat" / f"run{i}")
        log(f"repeat: run {i}: exit {rc}, {seconds[-1]}s")
    keys = sorted(set().union(*runs))
    flaky = {k: [r.get(k, "-") for r in runs] for k in keys if len({r.get(k, "-") for r in runs}) > 1}
    doc = {"runs": args.n, "seconds": seconds, "verdicts": runs[0], "flaky": flaky}
    atomic_write(s.results / "repeat.json", json.dumps(doc, indent=2) + "\n")
    for k, seq in flaky.items():
        print(f"repeat: FLAKY {k}: {' '.join(seq)}")
    bad = sorted(k for k, v in runs[0].items() if v not in ("PASS", "SKIP", "ok"))
    print(f"repeat: {args.n} runs, {len(keys)} verdicts, {len(flaky)} changed between runs"
          + (f"; not passing in every run: {', '.join(bad)}" if bad else "")
          + f"; {s.results / 'repeat.json'}")
    return 1 if flaky or bad else 0


def cmd_tally(s: Settings, _: argparse.Namespace) -> int:
    from . import checks
    passed, failed = checks.tally(s.results)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


def cmd_report(s: Settings, _: argparse.Namespace) -> int:
    doc = json.loads((s.results / "summary.json").read_text())
    print(json.dumps(doc["totals"]))
    return 0 if doc["ok"] else 1


def cmd_prepare(s: Settings, _: argparse.Namespace) -> int:
    tree = prepare(s, {})
    print(tree.path)
    return 0


def cmd_suites(s: Settings, _: argparse.Namespace) -> int:
    print("\n".join(expected_suites(REPO)))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="cxlsr", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="prepare the tree, build, boot, run the KUnit suites, report")
    m = sub.add_parser("mutant", help="apply a known-bad patch; require a suite to fail")
    m.add_argument("patch")
    m.add_argument("--expect-fail", required=True, metavar="SUITE")
    m.add_argument("--expect-cases", default="", metavar="CASE,...",
                   help="cases of SUITE that must each fail")
    m.add_argument("--layer", choices=("kunit", "vm", "hw"), default="",
                   help="the layer to run (default: the patch's Layer: header, else kunit)")
    m.add_argument("--harness", default="", metavar="OPTIONS",
                   help="VM layer: kselftest harness options picking the cases"
                        " (default: the patch's Harness: header)")
    m.add_argument("--reverse", action="store_true",
                   help="leave the patch out (apply it in reverse) instead of applying it")
    sub.add_parser("bench", help="time each stage of a cold and a warm run")
    sub.add_parser("report", help="re-read build/results/summary.json")
    sub.add_parser("check", help="unit tests, checkpatch, the main job, hang and mutant proofs")
    c = sub.add_parser("ci", help="for CI bots: the main job within a time budget, results "
                       "in a directory of their choosing, exit 0 only when all passed")
    c.add_argument("--results", default="", metavar="DIR",
                   help="where the results go (default: $RESULTS_DIR, else build/results)")
    c.add_argument("--budget", default="", metavar="SECONDS",
                   help="time for the whole run (default: $BUDGET, else 5400)")
    c.add_argument("--ksrc", default="", metavar="DIR", help="kernel tree (default: $KSRC)")
    sub.add_parser("tally", help="print 'N passed, N failed' over everything make check ran")
    sub.add_parser("prepare", help="only fetch/import the base and apply the overlay")
    sub.add_parser("suites", help="list the KUnit suites the sources declare")
    sub.add_parser("prefixes", help="build the VM kernel at every prefix of the series")
    r = sub.add_parser("repeat", help="run the main job N times; any verdict that changes is a flake")
    r.add_argument("n", type=int, nargs="?", default=10)
    sub.add_parser("coverage", help="both layers on gcov kernels; lcov/genhtml report in "
                   "build/results/coverage")
    sub.add_parser("series", help="export the overlay as a git format-patch series "
                   "(build/series) and check it applies to the base")
    args = ap.parse_args(argv)
    s = Settings.from_env()
    setup_ccache(s)
    handler = {"run": cmd_run, "mutant": cmd_mutant, "bench": cmd_bench,
               "report": cmd_report, "prepare": cmd_prepare, "suites": cmd_suites,
               "check": cmd_check, "tally": cmd_tally, "ci": cmd_ci, "series": cmd_series, "coverage": cmd_coverage, "repeat": cmd_repeat, "prefixes": cmd_prefixes}[args.cmd]
    try:
        return handler(s, args)
    except RunnerError as e:
        print(f"cxl-sr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cxl-sr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
