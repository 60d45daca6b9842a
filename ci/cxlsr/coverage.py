# SPDX-License-Identifier: GPL-2.0
"""`make coverage`: line and function coverage of the code under test, from
real runs of both layers.

Two kernels of their own (build/kunit-cov, build/vm-cov), so that the fast
default builds stay as they are: CONFIG_GCOV_KERNEL, with profiling limited to
the objects under test (GCOV_PROFILE_<stem>.o on the make command line; all of
cxl_test's rebuilt modules, which are cxl_core, cxl_acpi and dax_hmem among
others). The KUnit kernel boots with kunit_shutdown=none and a small
initramfs whose init prints the counters on the console once the built-in
suites have run; the VM resets them when its init starts and prints them after
the kselftests (ci/gcov-dump.sh). The host puts each .gcda beside its .gcno,
captures with lcov, merges, and renders HTML with genhtml under
build/results/coverage/.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import re
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from .results import Layer
from .util import RunnerError, atomic_write, log, run
from .vm import pack_cpio

BEGIN, END = "CXL-SR-GCOV-BEGIN", "CXL-SR-GCOV-END"
# Objects profiled, by file name stem (kbuild's GCOV_PROFILE_<stem>.o): the
# code under test and little else (a few namesakes elsewhere come along).
STEMS = ("hmem", "device", "bus", "cxl", "region", "region_dax", "resource")
KUNIT_KCONFIG = ("CONFIG_GCOV_KERNEL=y", "CONFIG_DEBUG_FS=y", "CONFIG_BLK_DEV_INITRD=y")
# The files reported, in this order (paths in the kernel tree).
FILES = ("drivers/dax/hmem/hmem.c", "drivers/dax/hmem/device.c", "drivers/dax/cxl.c",
         "drivers/dax/bus.c", "drivers/cxl/core/region.c", "drivers/cxl/core/region_dax.c",
         "drivers/cxl/acpi.c", "kernel/resource.c")
# The arbitration itself: each function's lines must be reached, or named.
ARBITRATION: Dict[str, Tuple[str, ...]] = {
    "drivers/dax/hmem/hmem.c": (
        "hmem_publish_soft_reserved", "dax_hmem_probe", "__hmem_register_device",
        "hmem_decide", "hmem_register_cxl_device", "hmem_wait_for_cxl_probe",
        "hmem_process_deferred", "process_defer_work", "hmem_register_device",
        "dax_hmem_platform_probe"),
    "drivers/dax/bus.c": ("alloc_dax_region", "dax_region_unregister"),
    "drivers/cxl/core/region.c": ("region_contains_resource", "cxl_region_contains_resource",
                                  "alloc_hpa", "free_hpa"),
}


def console_payload(text: str) -> Optional[bytes]:
    """The tar.gz that gcov-dump.sh printed between the markers, or None."""
    if BEGIN not in text:
        return None
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    b64 = "".join(line.strip() for line in body.splitlines()
                  if re.fullmatch(r"[A-Za-z0-9+/=]+", line.strip()))
    try:
        return base64.b64decode(b64, validate=True)
    except binascii.Error as e:
        raise RunnerError(f"gcov data on the console is garbled: {e}")


def place_gcda(payload: bytes) -> List[Path]:
    """Write each .gcda of the dump beside its .gcno. The dump holds debugfs's
    view, /sys/kernel/debug/gcov/<absolute object directory>/..., and the
    object directories are this machine's build directories."""
    placed = []
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.endswith(".gcda"):
                continue
            dst = Path("/") / member.name.lstrip("./")
            if ".." in dst.parts or not dst.with_suffix(".gcno").is_file():
                continue
            data = tar.extractfile(member)
            if data is None:
                continue
            dst.write_bytes(data.read())
            placed.append(dst)
    return placed


def remove_gcda(dirs: Iterable[Path]) -> None:
    for d in dirs:
        if d.is_dir():
            for f in d.rglob("*.gcda"):
                f.unlink()


def lcov_capture(objdir: Path, out: Path, name: str) -> Path:
    run(["lcov", "--quiet", "--capture", "--directory", str(objdir), "--base-directory",
         str(objdir), "--test-name", name, "--output-file", str(out),
         "--rc", "lcov_branch_coverage=0", "--ignore-errors", "gcov,source"],
        what=f"lcov --capture in {objdir}")
    return out


@dataclass
class FileCov:
    lines: Dict[int, int] = field(default_factory=dict)  # line -> hits
    functions: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # name -> (line, hits)

    def merge(self, other: "FileCov") -> None:
        for ln, hits in other.lines.items():
            self.lines[ln] = self.lines.get(ln, 0) + hits
        for fn, (ln, hits) in other.functions.items():
            old = self.functions.get(fn, (ln, 0))
            self.functions[fn] = (ln, old[1] + hits)


def parse_info(text: str, src: Path) -> Dict[str, FileCov]:
    """An lcov tracefile, by path relative to the kernel tree `src`."""
    out: Dict[str, FileCov] = {}
    cur: Optional[FileCov] = None
    fn_line: Dict[str, int] = {}
    root = str(src.resolve()) + "/"
    for line in text.splitlines():
        if line.startswith("SF:"):
            path = str(Path(line[3:]).resolve())
            rel = path[len(root):] if path.startswith(root) else path
            cur = out.setdefault(rel, FileCov())
            fn_line = {}
        elif cur is None:
            continue
        elif line.startswith("FN:"):
            ln, name = line[3:].split(",", 1)
            fn_line[name] = int(ln)
        elif line.startswith("FNDA:"):
            hits, name = line[5:].split(",", 1)
            cur.merge(FileCov(functions={name: (fn_line.get(name, 0), int(hits))}))
        elif line.startswith("DA:"):
            ln, hits = line[3:].split(",")[:2]
            cur.merge(FileCov(lines={int(ln): int(hits)}))
        elif line == "end_of_record":
            cur = None
    return out


def function_span(source: List[str], start: int) -> range:
    """The lines of the function whose definition starts at `start` (1-based):
    up to the brace that closes its body."""
    depth, seen = 0, False
    for i in range(start - 1, len(source)):
        code = re.sub(r"//.*|\"(?:\\.|[^\"])*\"|'(?:\\.|[^'])*'", "", source[i])
        depth += code.count("{") - code.count("}")
        seen = seen or "{" in code
        if seen and depth <= 0:
            return range(start, i + 2)
    return range(start, len(source) + 1)


def pct(hit: int, total: int) -> float:
    return round(100.0 * hit / total, 1) if total else 0.0


def report(cov: Dict[str, FileCov], src: Path) -> Dict[str, object]:
    """Per-file and per-arbitration-function figures, and the unreached lines."""
    files = {}
    for f in FILES:
        c = cov.get(f)
        if c is None:
            files[f] = {"lines": None, "functions": None, "note": "not built with coverage"}
            continue
        lh = sum(1 for h in c.lines.values() if h)
        fh = sum(1 for _, h in c.functions.values() if h)
        files[f] = {"lines": pct(lh, len(c.lines)), "lines_hit": lh, "lines_found": len(c.lines),
                    "functions": pct(fh, len(c.functions)), "functions_hit": fh,
                    "functions_found": len(c.functions)}
    arb = {}
    total_found = total_hit = 0
    for f, names in ARBITRATION.items():
        c = cov.get(f)
        source = (src / f).read_text(errors="replace").splitlines() if (src / f).is_file() else []
        for name in names:
            if c is None or name not in c.functions:
                arb[name] = {"file": f, "lines": None, "unreached": [], "note": "no data"}
                continue
            span = function_span(source, c.functions[name][0])
            lines = {ln: h for ln, h in c.lines.items() if ln in span}
            missed = sorted(ln for ln, h in lines.items() if not h)
            total_found += len(lines)
            total_hit += len(lines) - len(missed)
            arb[name] = {"file": f, "lines": pct(len(lines) - len(missed), len(lines)),
                         "unreached": [{"line": ln, "code": source[ln - 1].strip()}
                                       for ln in missed if ln <= len(source)]}
    return {"files": files, "arbitration": arb,
            "arbitration_lines": pct(total_hit, total_found),
            "arbitration_lines_found": total_found, "arbitration_lines_hit": total_hit}


def table(rep: Dict[str, object]) -> str:
    files = rep["files"]
    assert isinstance(files, dict)
    rows = [("file", "lines %", "functions %")]
    for f, v in files.items():
        rows.append((f, "-" if v["lines"] is None else f"{v['lines']:.1f}",
                     "-" if v["functions"] is None else f"{v['functions']:.1f}"))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    out = ["  ".join((r[0].ljust(w[0]), r[1].rjust(w[1]), r[2].rjust(w[2]))) for r in rows]
    out.append(f"arbitration functions: {rep['arbitration_lines']}% of "
               f"{rep['arbitration_lines_found']} lines")
    arb = rep["arbitration"]
    assert isinstance(arb, dict)
    for name, v in arb.items():
        for u in v["unreached"]:
            out.append(f"  unreached: {v['file']}:{u['line']} ({name}): {u['code']}")
        if v["lines"] is None:
            out.append(f"  no data: {v['file']}: {name}")
    return "\n".join(out)


def kunit_initramfs(repo: Path, root: Path, out: Path) -> Path:
    """busybox, the dump script and an init that runs it: enough for the KUnit kernel."""
    if root.exists():
        shutil.rmtree(root)
    for d in ("bin", "proc", "sys", "tmp", "dev"):
        (root / d).mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not Path(busybox).is_file():
        raise RunnerError("busybox not found (apt-get install busybox-static)")
    shutil.copy2(busybox, root / "bin/busybox")
    for applet in ("sh", "mount", "mkdir", "cat", "find", "tar", "gzip", "base64", "cut",
                   "poweroff", "echo"):
        (root / "bin" / applet).symlink_to("busybox")
    for name, dst in (("kunit-cov-init.sh", "init"), ("gcov-dump.sh", "gcov-dump.sh")):
        shutil.copy2(repo / "ci" / name, root / dst)
        (root / dst).chmod(0o755)
    pack_cpio(root, out)
    return out


def make_vars(stems: Iterable[str]) -> List[str]:
    return [f"GCOV_PROFILE_{s}.o=y" for s in stems]


@dataclass
class Capture:
    name: str
    layer: Layer
    consoles: List[Path]  # one per VM that ran a share of the cases
    objdirs: List[Path]


def collect(cap: Capture, work: Path) -> Optional[Path]:
    """The runs' counters, each console's placed beside their .gcno in turn,
    captured and summed into work/<name>.info."""
    infos = []
    for k, console in enumerate(cap.consoles):
        text = console.read_text(errors="replace") if console.is_file() else ""
        payload = console_payload(text)
        if payload is None:
            log(f"coverage: the {cap.name} run printed no gcov data ({console})")
            return None
        remove_gcda(cap.objdirs)  # what another console left would count twice
        placed = place_gcda(payload)
        log(f"coverage: {cap.name}: {len(placed)} .gcda files from {console.name}")
        for i, d in enumerate(cap.objdirs):
            if any(p.is_relative_to(d) for p in placed):
                infos.append(lcov_capture(d, work / f"{cap.name}-{k}-{i}.info", cap.name))
    if not infos:
        return None
    out = work / f"{cap.name}.info"
    merge(infos, out)
    return out


def merge(infos: List[Path], out: Path) -> Path:
    args = ["lcov", "--quiet", "--output-file", str(out)]
    for i in infos:
        args += ["--add-tracefile", str(i)]
    run(args, what="lcov --add-tracefile")
    return out


def render(info: Path, src: Path, html: Path) -> None:
    if html.exists():
        shutil.rmtree(html)
    kept = info.with_name("tested.info")
    run(["lcov", "--quiet", "--extract", str(info)] + [str(src.resolve() / f) for f in FILES]
        + ["--output-file", str(kept)], what="lcov --extract")
    run(["genhtml", "--quiet", "--output-directory", str(html), "--title", "cxl-sr-suite",
         "--prefix", str(src.resolve()), str(kept)], what="genhtml")


def finish(caps: List[Capture], src: Path, work: Path, timings: Dict[str, float]) -> int:
    """Collect, merge, render, report into `work` (where the runs left their
    results and summary.json); 0 when every layer gave data and passed."""
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    infos = [i for i in (collect(c, work) for c in caps) if i is not None]
    if not infos:
        raise RunnerError("coverage: no run gave gcov data")
    total = merge(infos, work / "total.info")
    render(total, src, work / "html")
    cov = parse_info(total.read_text(), src)
    rep = report(cov, src)
    timings["coverage-report"] = round(time.monotonic() - t0, 1)
    rep["layers"] = {c.name: {"status": c.layer.status, "message": c.layer.message,
                              "data": any(i.stem == c.name for i in infos)} for c in caps}
    rep["html"] = str(work / "html" / "index.html")
    rep["timings"] = timings
    atomic_write(work / "coverage.json", json.dumps(rep, indent=2) + "\n")
    summary = work / "summary.json"
    if summary.is_file():
        doc = json.loads(summary.read_text())
        doc["coverage"] = {k: rep[k] for k in ("files", "arbitration_lines", "html")}
        atomic_write(summary, json.dumps(doc, indent=2) + "\n")
    print(table(rep))
    print(f"coverage: report {rep['html']}, figures {work / 'coverage.json'}")
    bad = [c for c in caps if c.layer.status != "ok"]
    for c in bad:
        print(f"coverage: the {c.name} run did not pass: {c.layer.status}: {c.layer.message}")
    return 1 if bad or len(infos) < len(caps) else 0
