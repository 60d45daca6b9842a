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

import functools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from .accel import kvm_usable
from .results import ERROR, FAIL, PASS, SKIP, XFAIL, XPASS, Case, Layer, Suite, first_splat, judge
from . import ndctl, peer
from .util import RunnerError, atomic_write, cache_dir, clip, log, run, stream

FRAGMENTS = ("vm.config", "debug.config")
# The serial console marks the start and the end of the selftest run with these.
BEGIN, END = "CXL-SR-KSELFTEST-BEGIN", "CXL-SR-KSELFTEST-END"
Plan = List[Tuple[str, List[str]]]  # one VM's (program, its cases), in run order
# The program of the hw layer (ci/cxlsr/hw.py): emulated CXL hardware, no
# cxl_test. The vm layer runs every other program.
HW_PROGRAM = "cxl_sr_hw"
# Console lines of the kselftest runner and of the harness, as the VM prints them.
PROGRAM_START = re.compile(r"^# selftests: \S+: (\S+)$")
CASE_START = re.compile(r"^[# ]*#\s+RUN\s+(\S+) \.\.\.")
CASE_END = re.compile(r"^[# ]*#\s+(?:OK|FAIL|XFAIL|XPASS|SKIP)\s+(\S+)\s*$")
PEER_END = re.compile(r"^(?:not )?ok \d+ selftests: " + peer.SUITE + r": (\S+)")


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
    # The cases are split over that many VMs (shard()), each booted with
    # cxlsr.shard=K and running /cxlsr-plan/K; case_times weighs them. 0: no
    # plan (a run narrowed with cxlsr.test=/cxlsr.harness= picks its own).
    shards: int = 1
    # The initramfs carries cxl_test's modules (updates/), and the plans the
    # programs of the vm layer; without: the tree's own modules, and HW_PROGRAM.
    mock: bool = True
    case_times: Dict[str, float] = field(default_factory=dict)
    plans: List[Plan] = field(default_factory=list)
    # ndctl's CXL tests to plan beside the kselftests (peer.py), and whether
    # the kselftests are built at all (the pristine base has none).
    peer: Tuple[str, ...] = ()
    selftests: bool = True

    @property
    def ndctl_timeout(self) -> int:
        """The hard timeout of each of ndctl's tests: cxl-create-region took
        420 s on the debug kernel in a two-vCPU VM and ran past 600 s in a
        one-vCPU one (docs/measurements.md)."""
        return 1200 if self.debug else 600

    def boot_timeout(self, timeout: int) -> int:
        """A VM's hard timeout: `timeout` for the kselftests, plus ndctl's
        tests' own, clipped to what the run has left."""
        return int(clip(timeout + self.peer_seconds()))

    def peer_seconds(self) -> int:
        """What ndctl's tests add to a VM's hard timeout: their own timeouts,
        for the VM that runs the most of them."""
        if not self.plans:
            return len(self.peer) * self.ndctl_timeout
        return max((len(cs) for plan in self.plans for prog, cs in plan
                    if prog == peer.SUITE), default=0) * self.ndctl_timeout

    @property
    def kdir(self) -> Path:
        return self.build / f"vm{self.variant}"

    @property
    def cxl_root(self) -> Path:
        return self.build / f"vm-cxl-test{self.variant}"

    @property
    def root(self) -> Path:
        return self.build / f"vm-root{self.variant}{'' if self.mock else '-hw'}"

    @property
    def programs(self) -> List[str]:
        if not self.selftests:
            return []
        progs = selftest_programs(self.repo / "selftests" / "Makefile")
        return [p for p in progs if (p == HW_PROGRAM) != self.mock]

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
        if not self.mock:
            self.timings["vm-build"] = round(time.monotonic() - t0, 1)
            return
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
        root = self.root
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
        # GNU mktemp: ndctl's cxl-labels asks for templates of four X's.
        self._copy_tool(root, "/usr/bin/mktemp")
        replaced = {"sh", "modprobe", "insmod", "rmmod", "lsmod", "modinfo", "depmod", "timeout",
                    "sed", "mktemp"}
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
        if self.mock:
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
        # What ndctl's tests call beyond busybox: keyctl (cxl-security),
        # uuidgen (cxl-region-sysfs), and journalctl for check_dmesg.
        for tool in ("bash", "jq", "keyctl", "uuidgen"):
            self._copy_tool(root, shutil.which(tool))
        (root / "bin" / "bash").symlink_to("/usr/bin/bash")  # their #! line
        shutil.copy2(self.repo / "ci" / "vm-journalctl.sh", root / "usr/bin/journalctl")
        # udev, running only while one of ndctl's tests does (vm-init.sh):
        # udevadm, which is systemd-udevd by that name, and the module rule.
        ud = ndctl.udev(cache_dir())
        self._copy_tool(root, str(ud / "bin/udevadm"))
        (root / "lib/systemd").mkdir(parents=True)
        (root / "lib/systemd/systemd-udevd").symlink_to("/usr/bin/udevadm")
        (root / "lib/udev/rules.d").mkdir(parents=True)
        shutil.copy2(ud / "lib/udev/rules.d/80-drivers.rules", root / "lib/udev/rules.d")
        (root / "usr/share/ndctl-test/cxlsr-tests").write_text(" ".join(self.peer) + "\n")
        (root / "usr/share/ndctl-test/cxlsr-timeout").write_text(f"{self.ndctl_timeout}\n")
        if self.selftests:
            self._selftests(root)
        self._plans(root)
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

    def _plans(self, root: Path) -> None:
        """/cxlsr-plan/K: a line per program, its name and the harness's -r
        options for the cases VM K runs."""
        self.plans = []
        if self.shards < 1:
            return
        cases = {p: list_cases(root / "kselftest" / "cxl" / p) for p in self.programs}
        if self.peer:
            cases[peer.SUITE] = list(self.peer)
        self.plans = shard(cases, self.shards, self.case_times)
        (root / "cxlsr-plan").mkdir()
        for k, plan in enumerate(self.plans):
            (root / "cxlsr-plan" / str(k)).write_text("".join(
                f"{prog} " + " ".join(c if prog == peer.SUITE else f"-r {c}" for c in cs) + "\n"
                for prog, cs in plan))

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


def qemu_cmd(kernel: Path, initrd: Path, append: str, cpus: int = 2) -> List[str]:
    """Two NUMA nodes (cxl_test's mock devices sit on both), one socket per
    CPU; with one CPU the second node has memory only."""
    accel = "kvm" if kvm_usable() else "tcg"
    node1 = "node,nodeid=1,memdev=m1" + (",cpus=1" if cpus > 1 else "")
    return ["qemu-system-x86_64", "-machine", "q35", "-accel", accel,
            "-m", "2G,slots=4,maxmem=128G", "-smp", f"{cpus},sockets={cpus},cores=1,threads=1",
            "-object", "memory-backend-ram,id=m0,size=1G",
            "-object", "memory-backend-ram,id=m1,size=1G",
            "-numa", "node,nodeid=0,memdev=m0,cpus=0",
            "-numa", node1,
            "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyS0 panic=-1 memhp_default_state=offline " + append]


@dataclass
class Boot:
    status: str  # ok | timeout | crashed
    log: str
    seconds: float
    running: str = ""  # the test that was running when the boot ended early
    stamps: List[Tuple[float, str]] = field(default_factory=list)  # (s since start, line)


def boot(kernel: Path, initrd: Path, logf: Path, timeout: int, append: str = "",
         cpus: int = 2, cmd: List[str] | None = None) -> Boot:
    """One QEMU run (qemu_cmd(), or `cmd`); `timeout` must already be clip()ped
    (the caller reports it)."""
    t0 = time.monotonic()
    stamps: List[Tuple[float, str]] = []

    def stamp(line: str) -> None:
        stamps.append((time.monotonic() - t0, line.rstrip("\r\n")))

    with logf.open("w") as out:
        rc = stream(cmd or qemu_cmd(kernel, initrd, append, cpus), timeout, out, on_line=stamp)
    text = logf.read_text(errors="replace")
    seconds = round(time.monotonic() - t0, 1)
    running = running_test(text)
    status = "timeout" if rc is None else "crashed" if END not in text else "ok"
    return Boot(status, text, seconds, running, stamps)


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
        m = PROGRAM_START.match(line)
        if m:
            program, case = m.group(1), ""
            continue
        if re.match(r"^(?:not )?ok \d+ selftests: ", line):
            program, case = "", ""
            continue
        m = CASE_START.match(line)
        if m:
            case = m.group(1)
            continue
        m = CASE_END.match(line)
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


def narrowed(append: str) -> bool:
    """Whether VM kernel arguments pick the program or cases to run
    (cxlsr.test=, cxlsr.harness=: vm-init.sh), rather than a plan."""
    return "cxlsr.test=" in append or "cxlsr.harness=" in append


def failed_boot(layer: Layer, boots: List[Boot], timeout: int) -> bool:
    """Whether a boot did not end normally; the layer then says how the
    first of them ended."""
    bad = [(k, b) for k, b in enumerate(boots) if b.status != "ok"]
    if bad:
        k, b = bad[0]
        layer.status = "timeout" if b.status == "timeout" else "error"
        layer.message = (f"VM {k}: " if len(boots) > 1 else "") + boot_message(b, timeout)
    return bool(bad)


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
            # ndctl's tests print no TAP of their own (peer.parse reads them)
            current, inner = ("", []) if m.group(1) == peer.SUITE else (m.group(2), [])
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


def expected_failures(suite: Suite, tap: str) -> None:
    """kunit.py reads the harness's "ok N case # XFAIL reason" (and # XPASS)
    as a pass: the directive decides. A case expected to fail names its
    known bug as the reason when that bug is what failed; an XFAIL without
    one ("unknown", the harness's default) failed on something else: FAIL."""
    for m in re.finditer(r"^(?:not )?ok \d+ (\S+) # (XFAIL|XPASS)\b[ \t]*(.*)$", tap, re.M):
        reason = m.group(3).strip()
        status = XPASS if m.group(2) == "XPASS" else XFAIL if reason not in ("", "unknown") else FAIL
        for c in suite.cases:
            if c.name == m.group(1):
                c.status = status
                c.reason = reason if status != FAIL else "expected to fail on its known bug, " \
                                                         "failed on another check"


def parse_program(tree: Path, name: str, tap: str, verdict: str, results: Path,
                  layer: str = "vm") -> Suite:
    """One kselftest program's cases, parsed by the tree's kunit.py."""
    json_out = results / f"{layer}-{name}.json"
    json_out.unlink(missing_ok=True)
    subprocess.run(["python3", "tools/testing/kunit/kunit.py", "parse", f"--json={json_out}"],
                   cwd=tree, input=tap, text=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
                   timeout=120)
    suite = Suite(name, layer)
    if json_out.is_file():
        data = json.loads(json_out.read_text())
        suite.cases = [Case(c["name"], c["status"]) for c in data.get("test_cases", [])]
        for sub in data.get("sub_groups", []):
            suite.cases += [Case(c["name"], c["status"]) for c in sub.get("test_cases", [])]
    expected_failures(suite, tap)
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


def harness_cases(listing: str) -> List[str]:
    """FIXTURE[.VARIANT].TEST of every case, in the order the harness runs
    them, from its `-l` table: per fixture, a column of variants beside a
    column of tests ("%-20s %-25s %s"), every variant running every test."""
    blocks: List[Tuple[str, List[str], List[str]]] = []
    for line in listing.splitlines():
        if line.startswith(("# FIXTURE", "---")):
            continue
        for m in re.finditer(r"\S+", line):
            if m.start() < 21:
                blocks.append((m.group(), [], []))
            elif blocks:
                blocks[-1][1 if m.start() < 47 else 2].append(m.group())
    cases: List[str] = []
    for fixture, variants, tests in blocks:
        cases += [f"{fixture}.{v}.{t}" for v in variants for t in tests] if variants else \
                 [f"{fixture}.{t}" for t in tests]
    return cases


def list_cases(binary: Path) -> List[str]:
    """The cases of a kselftest harness program (it lists them and exits)."""
    proc = subprocess.run([str(binary), "-l"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=60)
    cases = harness_cases(proc.stderr)
    if not cases:
        raise RunnerError(f"{binary.name} -l listed no case")
    return cases


def shard(cases: Dict[str, List[str]], n: int, seconds: Dict[str, float]) -> List[Plan]:
    """Split every program's cases over n VMs, longest first onto the least
    loaded one (by `seconds`, an earlier run's case times; unknown cases
    count as the mean); each VM runs its cases in the programs' own order."""
    names = [(prog, case) for prog, cs in cases.items() for case in cs]
    known = [seconds[f"{p}.{c}"] for p, c in names if f"{p}.{c}" in seconds]
    mean = sum(known) / len(known) if known else 1.0
    load = [0.0] * n
    where: Dict[Tuple[str, str], int] = {}
    for key in sorted(names, key=lambda k: -seconds.get(f"{k[0]}.{k[1]}", mean)):
        i = load.index(min(load))
        where[key] = i
        load[i] += seconds.get(f"{key[0]}.{key[1]}", mean)
    plans: List[Plan] = []
    for i in range(n):
        plan = [(prog, [c for c in cs if where[(prog, c)] == i]) for prog, cs in cases.items()]
        plans.append([(prog, cs) for prog, cs in plan if cs])
    return [p for p in plans if p]


def case_seconds(stamps: List[Tuple[float, str]]) -> Dict[str, float]:
    """program.case -> wall seconds, from console lines stamped as they came."""
    out: Dict[str, float] = {}
    program, started = "", {}
    for t, line in stamps:
        m = PROGRAM_START.match(line)
        if m:
            program = m.group(1)
            if line.startswith(f"# selftests: {peer.SUITE}: "):
                started[program] = t  # one of ndctl's tests: a case of its own
        m = PEER_END.match(line)
        if m and m.group(1) in started:
            out[f"{peer.SUITE}.{m.group(1)}"] = round(t - started.pop(m.group(1)), 1)
        m = CASE_START.match(line)
        if m:
            started[m.group(1)] = t
        m = CASE_END.match(line)
        if m and m.group(1) in started:
            out[f"{program}.{m.group(1)}"] = round(t - started.pop(m.group(1)), 1)
    return out


def boot_all(kernel: Path, initrd: Path, results: Path, timeout: int, append: str,
             shards: int) -> List[Boot]:
    """One QEMU per shard, side by side (shard K logs to vm-serial-K.log).

    Under TCG a guest with two vCPUs keeps a host core and a bit busy; two
    such guests on two cores made every case 1.7 times slower (vCPU threads
    preempting each other mid-IPI), a gain of 8 %. A VM per core with one
    vCPU each ran the debug layer in 660 s against one two-vCPU VM's 928 s."""
    for old in results.glob("vm-serial-*.log"):
        old.unlink()
    if shards < 2:
        planned = " cxlsr.shard=0" if shards == 1 else ""
        return [boot(kernel, initrd, results / "vm-serial.log", timeout, append + planned)]
    return side_by_side([functools.partial(boot, kernel, initrd, results / f"vm-serial-{k}.log",
                                           timeout, f"{append} cxlsr.shard={k}".strip(), cpus=1)
                         for k in range(shards)])


def side_by_side(boots: List[Callable[[], Boot]]) -> List[Boot]:
    """Run every boot at once, each in a thread; their results in order."""
    done: List[Boot | None] = [None] * len(boots)

    def one(k: int) -> None:
        done[k] = boots[k]()

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(boots))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [b for b in done if b is not None]


def gather(layer: Layer, boots: List[Boot], labels: List[str], tree: Path,
           results: Path) -> List[str]:
    """Each boot's KTAP (returned), parsed into layer.suites, a program's
    cases from every boot as one suite; the layer's KTAP file holds every
    boot's. Boot K logged to <layer>-serial-<labels[K]>.log, and the layer's
    log then gets them all; a boot labelled "" logged to the layer's log."""
    ktaps = [extract_ktap(b.log) for b in boots]
    suites: List[Suite] = []
    for label, ktap in zip(labels, ktaps):
        for name, (tap, verdict) in split_kselftest(ktap).items():
            suites.append(parse_program(tree, f"{name}-{label}" if label else name, tap,
                                        verdict, results, layer.name))
            suites[-1].name = name
    if any(labels):
        (results / layer.log).write_text("".join(
            f"### cxl-sr: {layer.name}-serial-{label}.log\n{b.log}"
            for label, b in zip(labels, boots)))
    (results / layer.ktap).write_text("".join(ktaps))
    layer.suites = merge_suites(suites)
    return ktaps


def merge_suites(suites: List[Suite]) -> List[Suite]:
    """A program's cases from every VM that ran some of them, as one suite."""
    merged: Dict[str, Suite] = {}
    for s in suites:
        if s.name in merged:
            merged[s.name].cases += s.cases
        else:
            merged[s.name] = Suite(s.name, s.layer, list(s.cases))
    return list(merged.values())


def run_vm(repo: Path, tree: Path, build: Path, results: Path, jobs: int, timeout: int,
           timings: Dict[str, float], debug: bool = True, vb: VmBuild | None = None,
           append: str = "") -> Layer:
    vb = vb or VmBuild(repo, tree, build, jobs, debug=debug)
    times_file = build / f"vm-case-seconds{vb.variant}.json"
    # A run narrowed to some cases stays in one VM, with no plan; ndctl's
    # tests run there only when it is narrowed to them (those of
    # cxlsr.harness=, else all).
    if narrowed(append):
        vb.shards = 0
        program = re.search(r"cxlsr\.test=(\S+)", append)
        named = re.search(r"cxlsr\.harness=(\S+)", append)
        if program and program.group(1) == peer.SUITE:
            vb.peer = tuple(named.group(1).split(",")) if named else (vb.peer or peer.TESTS)
        else:
            vb.peer = ()
    if times_file.is_file():
        vb.case_times = json.loads(times_file.read_text())
    vb.kernel()
    initrd = vb.initramfs(build / f"vm-initramfs{vb.variant}.cpio")
    timings.update(vb.timings)
    layer = Layer("vm", log="vm-serial.log", ktap="vm.ktap")
    hard = vb.boot_timeout(timeout)
    boots = boot_all(vb.kdir / "arch/x86/boot/bzImage", initrd, results, hard, append,
                     len(vb.plans))
    timings["vm-boot+test"] = max(b.seconds for b in boots)
    booted = kernel_seconds_at(boots[0].log, "Run /init")
    if booted is not None:
        timings["vm-boot"] = booted
    seconds: Dict[str, float] = {}
    for b in boots:
        seconds.update(case_seconds(b.stamps))
    labels = [str(k) for k in range(len(boots))] if len(boots) > 1 else [""]
    ktaps = gather(layer, boots, labels, tree, results)
    allowed: Tuple[str, ...] = ()
    if vb.peer:
        layer.suites.append(peer_suite(vb, "".join(ktaps), results, timeout))
        allowed = peer.allowed_skips(layer.suites[-1])
        timings.update(vb.timings)  # the baseline's, when it was built
    atomic_write(results / "vm-case-seconds.json", json.dumps(seconds, indent=1) + "\n")
    if failed_boot(layer, boots, hard):
        return layer
    # Weights only from whole-layer sharded runs: a narrowed run is one two-vCPU VM.
    if seconds and len(boots) > 1:
        atomic_write(times_file, json.dumps({**vb.case_times, **seconds}, indent=1) + "\n")
    planned = [f"{prog}.{c}" for plan in vb.plans for prog, cs in plan for c in cs]
    reported = {f"{s.name}.{c.name}" for s in layer.suites for c in s.cases}
    lost = [c for c in planned if c not in reported]
    expected = vb.programs + ([peer.SUITE] if vb.peer else [])
    layer = judge(layer, expected, "\n".join(b.log for b in boots), may_skip=MAY_SKIP + allowed)
    if lost and layer.status == "ok":
        layer.status, layer.message = "error", f"no result for planned case(s) {', '.join(lost[:5])}"
    return layer


def peer_suite(vb: VmBuild, ktap: str, results: Path, timeout: int) -> Suite:
    """ndctl's tests on this kernel, judged against the pristine base's
    verdicts; those are needed (and made, or read from the cache) only for
    the tests that did not pass here for a reason peer.KNOWN explains."""
    got = peer.parse(ktap)
    known = peer.KNOWN.get(ndctl.VERSION, {})
    ask = peer.unexplained(list(vb.peer), got, known)
    base = run_baseline(vb, results, timeout, ask) if ask else None
    return peer.suite(list(vb.peer), got, base, known=known)


def run_baseline(over: VmBuild, results: Path, timeout: int,
                 tests: List[str]) -> Dict[str, peer.Result]:
    """The verdicts of ndctl's `tests` on a kernel of the pristine base
    (cxl-sr-base), with the config fragments, ndctl and VM of `over`: cached
    by what made them; the tests missing from the cache built (in build/base)
    and run, unless CXL_SR_PEER_BASELINE=cached."""
    nd = ndctl.build(cache_dir(), over.jobs)
    key = peer.baseline_key(over.tree, over.repo, [nd.name, f"debug={over.debug}"])
    cached = peer.load_baseline(key)
    missing = [t for t in tests if t not in cached]
    if not missing:
        log(f"peer: the pristine base's verdicts of {' '.join(tests)} from the cache ({key})")
        return cached
    if os.environ.get(peer.BASELINE_ENV) == "cached":
        log(f"peer: the pristine base has no cached verdict ({key}) of {' '.join(missing)} "
            f"and {peer.BASELINE_ENV}=cached: not building it")
        return cached
    home = over.build / "base"
    log(f"peer: {' '.join(missing)} on the pristine base (baseline {key}), built in {home}")
    work = peer.base_tree(over.tree, home / "src" / "linux")
    vb = VmBuild(over.repo, work, home, over.jobs, debug=over.debug,
                 shards=min(max(over.shards, len(over.plans), 1), len(missing)),
                 peer=tuple(missing), selftests=False)
    vb.case_times = over.case_times
    vb.kernel()
    initrd = vb.initramfs(home / "vm-initramfs.cpio")
    out = results / "peer-base"
    out.mkdir(parents=True, exist_ok=True)
    hard = vb.boot_timeout(timeout)
    boots = boot_all(vb.kdir / "arch/x86/boot/bzImage", initrd, out, hard, "", len(vb.plans))
    over.timings.update({f"peer-base-{k}": v for k, v in vb.timings.items()})
    over.timings["peer-base-boot+test"] = max(b.seconds for b in boots)
    verdicts = peer.parse("".join(extract_ktap(b.log) for b in boots))
    logs = "\n".join(b.log for b in boots)
    bad = [k for k, b in enumerate(boots) if b.status != "ok"]
    if bad:
        log(f"peer: the pristine base's VM {bad[0]}: {boot_message(boots[bad[0]], hard)}; "
            "its verdicts are used, not cached")
        return {**cached, **verdicts}
    log(f"peer: the pristine base's verdicts cached in {peer.save_baseline(key, verdicts, logs)}")
    splat = first_splat(logs)
    if splat:
        log(f"peer: the pristine base's log has a splat of its own: {splat}")
    return {**cached, **verdicts}
