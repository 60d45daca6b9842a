# SPDX-License-Identifier: GPL-2.0
"""The hw layer: dax_hmem and dax_cxl on QEMU-emulated CXL hardware, no mock.

QEMU: Debian 12's 7.2 has no volatile cxl-type3 device, bookworm-backports
has QEMU 10. Its packages are fetched with a private sources list (apt checks
them against the signed index) and unpacked into the cache; the system QEMU
stays what the other layers use.

The machine (BRIDGES): two pxb-cxl host bridges, each with a root port and
a volatile type-3 memdev, and a CXL fixed memory window per bridge. The
firmware's "Soft Reserved" is an e820 entry from the kernel command line
(memmap=SIZE%START+0xefffffff, parse_memmap_one()). Three of them
(MACHINES), booted side by side, one fixture of the hw kselftest program
(vm.HW_PROGRAM) each: `hw`, Soft Reserved over window 0 and nothing
committed; `hw_firmware`, Soft Reserved over both windows, whose host bridges
have HDM decoders that the fixture commits, as firmware would, before any CXL
driver loads; and `hw_cxl_late`, the same machine with the CXL drivers loaded
after dax_hmem. The kernel is the vm layer's; the initramfs is its root
without cxl_test's updates/: every CXL and DAX module is the tree's own.
"""
from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from .ndctl import KEYRING, Apt, _mirror, unpacked
from .results import Layer
from .results import judge
from .util import RunnerError, cache_dir, clip, log
from .vm import (HW_PROGRAM, MAY_SKIP, VmBuild, boot, failed_boot, gather, narrowed,
                 side_by_side)

SUITE = "bookworm-backports"
PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data", "seabios")


@dataclass(frozen=True)
class Bridge:
    bus_nr: int      # the pxb-cxl's bus number: its dport id in the CEDT
    memdev_mib: int  # the volatile type-3 device behind its root port
    window: int      # HPA of the fixed memory window that targets it
    window_mib: int


# Where QEMU 10 puts the windows for this shape (2G of RAM, maxmem 8G), read
# once from /proc/iomem. The guest checks the windows against the Soft
# Reserved ranges and fails, naming both, if they ever part.
BRIDGES = (Bridge(12, 512, 0x390000000, 512), Bridge(22, 256, 0x3B0000000, 256))


@dataclass(frozen=True)
class Machine:
    fixture: str                # the hw program's fixture its boot runs
    soft_reserved: Tuple[int, ...]  # the windows (BRIDGES) firmware marks Soft Reserved
    bridge_hdm: bool = False    # HDM decoders in the host bridges (hdm_for_passthrough)


# hw_firmware needs host-bridge decoders: 7.3 cannot assemble a firmware
# region below a bridge that passes through ("failed to find decoder mapping").
# hw_cxl_late is hw_firmware's machine, with the CXL drivers loaded after dax_hmem.
MACHINES = (Machine("hw", (0,)), Machine("hw_firmware", (0, 1), bridge_hdm=True),
            Machine("hw_cxl_late", (0, 1), bridge_hdm=True))


@dataclass
class Qemu:
    binary: Path
    datadirs: List[Path]


def qemu(cache: Path) -> Qemu:
    """qemu-system-x86_64 from bookworm-backports, unpacked once under
    cache/qemu/<version>; a warm run does not ask the archive."""
    def fetch(debs: Path) -> List[Path]:
        apt = Apt(cache, "apt-qemu", f"deb [signed-by={KEYRING}] {_mirror()} {SUITE} main\n")
        apt.update()
        proc = apt._run(["apt-get", "download", *[f"{p}/{SUITE}" for p in PACKAGES]], cwd=debs)
        got = sorted(debs.glob("*.deb"))
        if proc.returncode or len(got) != len(PACKAGES):
            raise RunnerError(f"hw: could not download {', '.join(PACKAGES)} from {SUITE} "
                              f"(log: {apt.log})")
        return got

    return _installed(unpacked(cache / "qemu", "qemu-system-x86", "usr/bin/qemu-system-x86_64",
                               fetch))


def _installed(root: Path) -> Qemu:
    binary = root / "usr/bin/qemu-system-x86_64"
    ldd = subprocess.run(["ldd", str(binary)], text=True, stdout=subprocess.PIPE).stdout
    missing = [ln.split()[0] for ln in ldd.splitlines() if "not found" in ln]
    if missing:
        raise RunnerError(f"hw: {binary} needs {', '.join(missing)} (install them from Debian 12)")
    return Qemu(binary, [root / "usr/share/qemu", root / "usr/share/seabios"])


def qemu_cmd(q: Qemu, m: Machine, kernel: Path, initrd: Path, append: str,
             cpus: int = 2) -> List[str]:
    cmd = [str(q.binary)]
    for d in q.datadirs:
        cmd += ["-L", str(d)]
    cmd += ["-machine", "q35,cxl=on", "-accel", "tcg", "-m", "2G,slots=4,maxmem=8G",
            "-smp", str(cpus), "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio"]
    fmw = []
    hdm = ",hdm_for_passthrough=on" if m.bridge_hdm else ""
    for i, b in enumerate(BRIDGES):
        cmd += ["-object", f"memory-backend-ram,id=vmem{i},share=on,size={b.memdev_mib}M",
                "-device", f"pxb-cxl,bus_nr={b.bus_nr},bus=pcie.0,id=cxl.{i}{hdm}",
                "-device", f"cxl-rp,port=0,bus=cxl.{i},id=rp{i},chassis=0,slot={i + 2}",
                "-device", f"cxl-type3,bus=rp{i},volatile-memdev=vmem{i},id=cxl-vmem{i}"]
        fmw += [f"cxl-fmw.{i}.targets.0=cxl.{i}", f"cxl-fmw.{i}.size={b.window_mib}M"]
    sr = " ".join(f"memmap={BRIDGES[w].window_mib}M%{BRIDGES[w].window:#x}+0xefffffff"
                  for w in m.soft_reserved)
    return cmd + ["-M", ",".join(fmw), "-kernel", str(kernel), "-initrd", str(initrd),
                  "-append", "console=ttyS0 panic=-1 memhp_default_state=offline "
                  f"{sr} dax_hmem.dyndbg=+p log_buf_len=4M {append}".strip()]


def machines(append: str) -> List[Tuple[Machine, str]]:
    """The machines to boot and each one's kernel arguments: every machine,
    running its fixture; a run narrowed by arguments boots the machine whose
    fixture they name (`hw` if none)."""
    if not narrowed(append):
        return [(m, f"{append} cxlsr.test={HW_PROGRAM} cxlsr.harness=-f,{m.fixture}".strip())
                for m in MACHINES]
    if "cxlsr.test=" not in append:
        append += f" cxlsr.test={HW_PROGRAM}"
    named = [m for m in MACHINES if re.search(rf"\b{m.fixture}\b", append)]
    return [((named or list(MACHINES))[0], append.strip())]


def run_hw(repo: Path, tree: Path, build: Path, results: Path, jobs: int, timeout: int,
           timings: Dict[str, float], debug: bool = True, append: str = "") -> Layer:
    """Build (the vm layer's kernel, an initramfs without cxl_test), boot the
    emulated machines side by side, and judge the hw program's cases."""
    q = qemu(cache_dir())
    vb = VmBuild(repo, tree, build, jobs, debug=debug, mock=False)
    vb.shards = 0  # each machine's arguments pick its cases
    vb.kernel()
    initrd = vb.initramfs(build / "vm-initramfs-hw.cpio")
    timings.update({f"hw-{k}": v for k, v in vb.timings.items()})
    layer = Layer("hw", log="hw-serial.log", ktap="hw.ktap")
    timeout = int(clip(timeout))
    kernel = vb.kdir / "arch/x86/boot/bzImage"
    todo = machines(append)
    # Side by side: one vCPU each (vm.boot_all() says why).
    cpus = 1 if len(todo) > 1 else 2
    done = side_by_side([functools.partial(
        boot, kernel, initrd, results / f"hw-serial-{m.fixture}.log", timeout,
        cmd=qemu_cmd(q, m, kernel, initrd, args, cpus)) for m, args in todo])
    timings["hw-boot+test"] = max(b.seconds for b in done)
    gather(layer, done, [m.fixture for m, _ in todo], tree, results)
    if failed_boot(layer, done, timeout):
        return layer
    return judge(layer, vb.programs, "\n".join(b.log for b in done), may_skip=MAY_SKIP)
