# SPDX-License-Identifier: GPL-2.0
"""The VM layer: a kernel with cxl_test, an initramfs with the cxl kselftests,
one QEMU boot, KTAP on the serial console.

The kernel comes from the same overlaid tree as the KUnit one, configured from
the fragments in ci/configs (merge_config.sh), built in build/vm; cxl_test's
modules are built with M=tools/testing/cxl into build/vm-cxl-test (MO=), so the
tree stays untouched. The initramfs is assembled from Debian's packages only:
busybox-static, kmod's modules, ndctl's `cxl` with its libraries.
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
from typing import Dict, List, Tuple

from .accel import kvm_usable
from .results import ERROR, FAIL, SKIP, Case, Layer, Suite, first_splat, judge
from . import ndctl
from .util import RunnerError, cache_dir, clip, log, run, stream

FRAGMENTS = ("vm.config", "debug.config")
# The serial console marks the start and the end of the selftest run with these.
BEGIN, END = "CXL-SR-KSELFTEST-BEGIN", "CXL-SR-KSELFTEST-END"


def read_fragment(path: Path) -> Dict[str, str]:
    """CONFIG_X -> value ('n' for '# CONFIG_X is not set' and '=n')."""
    want = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if m:
            want[m.group(1)] = m.group(2)
        m = re.match(r"^# (CONFIG_\w+) is not set$", line)
        if m:
            want[m.group(1)] = "n"
    return want


def config_mismatches(config_text: str, want: Dict[str, str]) -> List[str]:
    have = {}
    for line in config_text.splitlines():
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if m:
            have[m.group(1)] = m.group(2)
    bad = []
    for key, val in want.items():
        got = have.get(key, "n")
        if got != val:
            bad.append(f"{key}={val} (got {got})")
    return bad


@dataclass
class VmBuild:
    repo: Path
    tree: Path
    build: Path  # build/ root
    jobs: int
    debug: bool = True
    timings: Dict[str, float] = field(default_factory=dict)
    # A second kernel beside the main one (coverage): its own directories
    # (build/vm<variant>, ...), more fragments, more make variables.
    variant: str = ""
    fragments: List[Path] = field(default_factory=list)
    kernel_vars: List[str] = field(default_factory=list)
    cxl_vars: List[str] = field(default_factory=list)
    extra_files: Dict[str, Path] = field(default_factory=dict)  # initramfs path -> file

    @property
    def kdir(self) -> Path:
        return self.build / f"vm{self.variant}"

    @property
    def cxl_root(self) -> Path:
        return self.build / f"vm-cxl-test{self.variant}"

    @property
    def cxl_out(self) -> Path:
        """MO= for M=tools/testing/cxl. Its Kbuild names the sources it rebuilds
        as ../../../drivers/...: their objects land three levels above MO, so MO
        mirrors the tree's depth and they stay in cxl_root (not in build/../..)."""
        return self.cxl_root / "tools" / "testing" / "cxl"

    def _make(self, *args: str, what: str, cwd: Path | None = None, timeout: int = 3600) -> None:
        cc = ["CC=ccache gcc"] if shutil.which("ccache") else []
        cmd = ["make", "-C", str(self.tree), f"O={self.kdir}", "ARCH=x86_64", f"-j{self.jobs}"] + cc + list(args)
        logf = self.build / "results" / "vm-build.log"
        logf.parent.mkdir(parents=True, exist_ok=True)
        timeout = int(clip(timeout))
        with logf.open("a") as out:
            rc = stream(cmd, timeout, out, cwd=cwd)
        if rc is None:
            raise RunnerError(f"{what} hit its hard timeout of {timeout}s (log: {logf})")
        if rc != 0:
            raise RunnerError(f"{what} failed (exit {rc}; log: {logf})")

    def configure(self) -> None:
        frags = [self.repo / "ci" / "configs" / f for f in FRAGMENTS if self.debug or f != "debug.config"]
        frags += self.fragments
        want: Dict[str, str] = {}
        for f in frags:
            want.update(read_fragment(f))
        stamp = self.kdir / ".cxl-sr-fragments"
        key = "".join(f.read_text() for f in frags)
        if stamp.is_file() and stamp.read_text() == key and (self.kdir / ".config").is_file():
            return
        self.kdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, ARCH="x86_64")
        run([str(self.tree / "scripts/kconfig/merge_config.sh"), "-O", str(self.kdir)] + [str(f) for f in frags],
            cwd=self.tree, env=env, what="merge_config.sh for the VM kernel")
        bad = config_mismatches((self.kdir / ".config").read_text(), want)
        if bad:
            raise RunnerError("VM kernel config lost requested options (unmet dependencies?): "
                              + ", ".join(bad[:8]))
        stamp.write_text(key)

    def kernel(self) -> None:
        t0 = time.monotonic()
        self.configure()
        self.timings["vm-configure"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        self._make("bzImage", "modules", *self.kernel_vars, what="VM kernel build")
        # An external module build does not notice a kernel config change
        # (with CONFIG_DYNAMIC_DEBUG toggled, its struct module no longer
        # matches the kernel's: "Exec format error"): start it afresh then.
        config = (self.kdir / ".config").read_bytes()
        stamp = self.cxl_root / ".cxl-sr-kernel-config"
        if not stamp.is_file() or stamp.read_bytes() != config:
            shutil.rmtree(self.cxl_root, ignore_errors=True)
        self.cxl_out.mkdir(parents=True, exist_ok=True)
        self._make("M=tools/testing/cxl", f"MO={self.cxl_out}", "modules", *self.cxl_vars,
                   what="cxl_test build")
        stamp.write_bytes(config)
        self.timings["vm-build"] = round(time.monotonic() - t0, 1)

    def initramfs(self, out: Path) -> Path:
        t0 = time.monotonic()
        root = self.build / f"vm-root{self.variant}"
        if root.exists():
            shutil.rmtree(root)
        for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "run", "etc", "lib", "lib64",
                  "usr/bin", "usr/lib", "sys/kernel/debug"):
            (root / d).mkdir(parents=True, exist_ok=True)
        busybox = shutil.which("busybox") or "/bin/busybox"
        if not Path(busybox).is_file():
            raise RunnerError("busybox not found (apt-get install busybox-static)")
        shutil.copy2(busybox, root / "bin" / "busybox")
        # dash as /bin/sh: busybox's sh would run its own applets (modprobe!)
        # ahead of the real tools on PATH.
        self._copy_tool(root, shutil.which("dash") or "/bin/dash")
        (root / "bin" / "sh").symlink_to("/usr/bin/dash")
        # coreutils timeout: run_kselftest.sh uses `timeout --foreground`.
        self._copy_tool(root, "/usr/bin/timeout")
        # GNU sed: the runner prefixes each test's output through sed, and
        # busybox's sed holds it back until the test ends; GNU sed writes
        # each line to the console as it comes, so a hung test shows its name.
        self._copy_tool(root, shutil.which("sed") or "/bin/sed")
        # Every other applet busybox has; the tools copied above take precedence.
        replaced = {"sh", "modprobe", "insmod", "rmmod", "lsmod", "modinfo", "depmod", "timeout",
                    "sed"}
        applets = subprocess.run([busybox, "--list"], text=True, stdout=subprocess.PIPE).stdout
        for applet in applets.split():
            if applet not in replaced and not (root / "bin" / applet).exists():
                (root / "bin" / applet).symlink_to("busybox")
        # kmod, not busybox: softdeps (cxl_acpi's "pre: cxl_port"), updates/ priority, -n
        kmod = shutil.which("kmod")
        if not kmod:
            raise RunnerError("kmod not found (apt-get install kmod)")
        self._copy_tool(root, kmod)
        for tool in ("modprobe", "insmod", "rmmod", "lsmod", "modinfo", "depmod"):
            (root / "sbin" / tool).symlink_to("/usr/bin/kmod")
        mods = ["INSTALL_MOD_PATH=" + str(root), "INSTALL_MOD_STRIP=1", "DEPMOD=/bin/true"]
        self._make("modules_install", *mods, what="modules_install")
        self._make("M=tools/testing/cxl", f"MO={self.cxl_out}", "modules_install", *mods,
                   what="cxl_test modules_install")
        release = (self.kdir / "include/config/kernel.release").read_text().strip()
        run(["depmod", "-b", str(root), release], what="depmod for the initramfs")
        # ndctl 81 from Debian's source (Debian 12's 76.1 cannot create ram
        # regions): cxl, daxctl, ndctl, their libraries, ndctl's own tests.
        nd = ndctl.build(cache_dir(), self.jobs)
        for tool in ndctl.TOOLS:
            self._copy_tool(root, str(nd / "usr/bin" / tool), libdir=nd / "usr/lib")
        shutil.copytree(nd / "usr/share/ndctl-test", root / "usr/share/ndctl-test",
                        symlinks=True)
        for tool in ("bash", "jq"):
            self._copy_tool(root, shutil.which(tool))
        self._selftests(root)
        init = root / "init"
        init.write_text((self.repo / "ci" / "vm-init.sh").read_text())
        init.chmod(0o755)
        for dst, src in self.extra_files.items():
            shutil.copy2(src, root / dst)
        pack_cpio(root, out)
        self.timings["initramfs"] = round(time.monotonic() - t0, 1)
        return out

    def _copy_tool(self, root: Path, tool: str | None, libdir: Path | None = None) -> None:
        """A dynamically linked binary and every library ldd names; those
        found in `libdir` (a tool's own, outside the system) go to /usr/lib."""
        if not tool:
            raise RunnerError("a tool the VM needs is missing (run ci/setup.sh)")
        shutil.copy2(tool, root / "usr/bin" / Path(tool).name)
        env = dict(os.environ, LD_LIBRARY_PATH=str(libdir)) if libdir else None
        ldd = subprocess.run(["ldd", tool], text=True, stdout=subprocess.PIPE, env=env).stdout
        if "not found" in ldd:
            raise RunnerError(f"{tool}: a library is missing: " + " ".join(
                ln.split()[0] for ln in ldd.splitlines() if "not found" in ln))
        for lib in re.findall(r"(/\S+\.so[^\s]*)", ldd):
            own = libdir and Path(lib).parent == libdir
            dst = root / "usr/lib" / Path(lib).name if own else root / lib.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                shutil.copy2(os.path.realpath(lib), dst)

    def _selftests(self, root: Path) -> None:
        out = self.build / "vm-kselftest"
        logf = self.build / "results" / "vm-build.log"
        logf.parent.mkdir(parents=True, exist_ok=True)
        with logf.open("a") as f:
            rc = stream(["make", "-C", "tools/testing/selftests", "TARGETS=cxl", f"O={out}",
                         f"INSTALL_PATH={root / 'kselftest'}", "install"], 900, f, cwd=self.tree)
        if rc != 0:
            raise RunnerError(f"building the cxl kselftests failed (log: {logf})")


def pack_cpio(root: Path, out: Path) -> None:
    """The directory `root` as a newc cpio archive (an initramfs) in `out`."""
    with out.open("wb") as cpio:
        find = subprocess.Popen(["find", "."], cwd=root, stdout=subprocess.PIPE)
        rc = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, stdin=find.stdout,
                            stdout=cpio).returncode
        find.wait()
    if rc != 0:
        raise RunnerError(f"cpio failed packing {root} into {out}")


def qemu_cmd(kernel: Path, initrd: Path, append: str) -> List[str]:
    accel = "kvm" if kvm_usable() else "tcg"
    return ["qemu-system-x86_64", "-machine", "q35", "-accel", accel,
            "-m", "2G,slots=4,maxmem=128G", "-smp", "2,sockets=2,cores=1,threads=1",
            "-object", "memory-backend-ram,id=m0,size=1G",
            "-object", "memory-backend-ram,id=m1,size=1G",
            "-numa", "node,nodeid=0,memdev=m0,cpus=0",
            "-numa", "node,nodeid=1,memdev=m1,cpus=1",
            "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyS0 panic=-1 memhp_default_state=offline " + append]


@dataclass
class Boot:
    status: str  # ok | timeout | crashed
    log: str
    seconds: float
    running: str = ""  # the test that was running when the boot ended early


def boot(kernel: Path, initrd: Path, logf: Path, timeout: int, append: str = "") -> Boot:
    """One QEMU run; `timeout` must already be clip()ped (the caller reports it)."""
    t0 = time.monotonic()
    with logf.open("w") as out:
        rc = stream(qemu_cmd(kernel, initrd, append), timeout, out)
    text = logf.read_text(errors="replace")
    seconds = round(time.monotonic() - t0, 1)
    running = running_test(text)
    if rc is None:
        return Boot("timeout", text, seconds, running)
    if END not in text:
        return Boot("crashed", text, seconds, running)
    return Boot("ok", text, seconds, running)


def kernel_seconds_at(text: str, needle: str) -> float | None:
    """The printk timestamp of the first console line containing needle."""
    m = re.search(r"^\[\s*(\d+\.\d+)\][^\n]*" + re.escape(needle), text, re.M)
    return round(float(m.group(1)), 1) if m else None


def running_test(text: str) -> str:
    """The test a log cut short was in: the last harness case started and not
    finished ("cxl_sr_owner: cxl_sr.x.owner"), else the program the runner
    started and gave no verdict for, else ""."""
    program, case = "", ""
    for line in text.splitlines():
        line = line.rstrip("\r")
        m = re.match(r"^# selftests: \S+: (\S+)$", line)
        if m:
            program, case = m.group(1), ""
            continue
        if re.match(r"^(?:not )?ok \d+ selftests: ", line):
            program, case = "", ""
            continue
        m = re.match(r"^[# ]*#\s+RUN\s+(\S+) \.\.\.", line)
        if m:
            case = m.group(1)
            continue
        m = re.match(r"^[# ]*#\s+(?:OK|FAIL|XFAIL|XPASS|SKIP)\s+(\S+)\s*$", line)
        if m and m.group(1) == case:
            case = ""
    if program and case:
        return f"{program}: {case}"
    return program


def boot_message(b: Boot, timeout: int) -> str:
    """What a boot that did not end normally tells the reader."""
    where = f" while running {b.running}" if b.running else " before any test started"
    if b.status == "timeout":
        return f"VM hit the hard timeout of {timeout}s{where}"
    splat = first_splat(b.log)
    return f"VM stopped before the tests finished{where}" + (f": {splat}" if splat else "")


def extract_ktap(text: str) -> str:
    """The run_kselftest.sh output between the init's markers."""
    if BEGIN not in text:
        return ""
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    return "\n".join(line.rstrip("\r") for line in body.splitlines()[1:]) + "\n"


def split_kselftest(ktap: str) -> Dict[str, Tuple[str, str]]:
    """binary -> (its own TAP, with the runner's '# ' prefix removed; the
    runner's verdict line for it). run_kselftest.sh nests each program's
    output one level down as diagnostics."""
    out: Dict[str, Tuple[str, str]] = {}
    current = ""
    inner: List[str] = []
    for line in ktap.splitlines():
        m = re.match(r"^# selftests: (\S+): (\S+)$", line)
        if m:
            current, inner = m.group(2), []
            continue
        m = re.match(r"^(not ok|ok) \d+ selftests: (\S+): (\S+)(.*)$", line)
        if m and current:
            out[current] = ("\n".join(inner) + "\n", line)
            current = ""
            continue
        if current:
            inner.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    if current:  # the run ended inside this program
        out[current] = ("\n".join(inner) + "\n", "")
    return out


def parse_program(tree: Path, name: str, tap: str, verdict: str, results: Path) -> Suite:
    """One kselftest program's cases, parsed by the tree's kunit.py."""
    json_out = results / f"vm-{name}.json"
    json_out.unlink(missing_ok=True)
    subprocess.run(["python3", "tools/testing/kunit/kunit.py", "parse", f"--json={json_out}"],
                   cwd=tree, input=tap, text=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
                   timeout=120)
    suite = Suite(name, "vm")
    if json_out.is_file():
        data = json.loads(json_out.read_text())
        suite.cases = [Case(c["name"], c["status"]) for c in data.get("test_cases", [])]
        for sub in data.get("sub_groups", []):
            suite.cases += [Case(c["name"], c["status"]) for c in sub.get("test_cases", [])]
    if not verdict:
        suite.cases.append(Case("(program)", ERROR))  # it never finished
    elif verdict.startswith("not ok") and not any(c.status in (FAIL, ERROR) for c in suite.cases):
        suite.cases.append(Case("(program)", SKIP if "# SKIP" in verdict else FAIL))
    return suite


# The VM carries cxl_test for its own kernel and the tools the cases use
# (ndctl 81): a case that skips for want of them is broken. None may skip.
MAY_SKIP: Tuple[str, ...] = ()


def selftest_programs(makefile: Path) -> List[str]:
    """The programs the kselftest Makefile builds (TEST_GEN_PROGS), sorted."""
    text = makefile.read_text().replace("\\\n", " ")
    progs: List[str] = []
    for m in re.finditer(r"^TEST_GEN_PROGS\s*[:+]?=(.*)$", text, re.MULTILINE):
        progs += m.group(1).split()
    return sorted(progs)


def run_vm(repo: Path, tree: Path, build: Path, results: Path, jobs: int, timeout: int,
           timings: Dict[str, float], debug: bool = True, vb: VmBuild | None = None,
           append: str = "") -> Layer:
    vb = vb or VmBuild(repo, tree, build, jobs, debug=debug)
    vb.kernel()
    initrd = vb.initramfs(build / f"vm-initramfs{vb.variant}.cpio")
    timings.update(vb.timings)
    layer = Layer("vm", log="vm-serial.log", ktap="vm.ktap")
    timeout = int(clip(timeout))
    b = boot(vb.kdir / "arch/x86/boot/bzImage", initrd, results / layer.log, timeout, append)
    timings["vm-boot+test"] = b.seconds
    booted = kernel_seconds_at(b.log, "Run /init")
    if booted is not None:
        timings["vm-boot"] = booted
    ktap = extract_ktap(b.log)
    (results / layer.ktap).write_text(ktap)
    programs = split_kselftest(ktap)
    expected = selftest_programs(repo / "selftests" / "Makefile")
    layer.suites = [parse_program(tree, name, tap, verdict, results)
                    for name, (tap, verdict) in programs.items()]
    if b.status != "ok":
        layer.status = "timeout" if b.status == "timeout" else "error"
        layer.message = boot_message(b, timeout)
        return layer
    return judge(layer, expected, b.log, may_skip=MAY_SKIP)
