# SPDX-License-Identifier: GPL-2.0
"""The hw layer: dax_hmem and dax_cxl on QEMU-emulated CXL hardware, no mock.

QEMU: Debian 12's 7.2 has no volatile cxl-type3 device, bookworm-backports
has QEMU 10. Its packages are fetched with a private sources list (apt checks
them against the signed index) and unpacked into the cache; the system QEMU
stays what the other layers use.

The machine (MACHINE): two pxb-cxl host bridges, each with a root port and
a volatile type-3 memdev, and a CXL fixed memory window per bridge. The
firmware's "Soft Reserved" is an e820 entry from the kernel command line
(memmap=SIZE%START+0xefffffff, parse_memmap_one()), over all of window 0;
no decoder is committed at boot. The kernel is the vm layer's; the initramfs
is its root without cxl_test's updates/: every CXL and DAX module is the
tree's own. One two-vCPU VM runs the hw kselftest program (vm.HW_PROGRAM).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from .ndctl import KEYRING, Apt, _mirror, unpacked
from .results import Layer
from .results import judge
from .util import RunnerError, cache_dir, clip, log
from .vm import (HW_PROGRAM, MAY_SKIP, VmBuild, boot, extract_ktap, failed_boot, narrowed,
                 parse_program, split_kselftest)

SUITE = "bookworm-backports"
PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data", "seabios")


@dataclass(frozen=True)
class Bridge:
    bus_nr: int      # the pxb-cxl's bus number: its dport id in the CEDT
    memdev_mib: int  # the volatile type-3 device behind its root port
    window: int      # HPA of the fixed memory window that targets it
    window_mib: int


# Where QEMU 10 puts the windows for this shape (2G of RAM, maxmem 8G), read
# once from /proc/iomem. The guest checks window 0 against the Soft Reserved
# range and fails, naming both, if they ever part.
MACHINE = (Bridge(12, 512, 0x390000000, 512), Bridge(22, 256, 0x3B0000000, 256))
SOFT_RESERVED = (MACHINE[0].window, MACHINE[0].window_mib)


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


def qemu_cmd(q: Qemu, kernel: Path, initrd: Path, append: str) -> List[str]:
    cmd = [str(q.binary)]
    for d in q.datadirs:
        cmd += ["-L", str(d)]
    cmd += ["-machine", "q35,cxl=on", "-accel", "tcg", "-m", "2G,slots=4,maxmem=8G",
            "-smp", "2", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio"]
    fmw = []
    for i, b in enumerate(MACHINE):
        cmd += ["-object", f"memory-backend-ram,id=vmem{i},share=on,size={b.memdev_mib}M",
                "-device", f"pxb-cxl,bus_nr={b.bus_nr},bus=pcie.0,id=cxl.{i}",
                "-device", f"cxl-rp,port=0,bus=cxl.{i},id=rp{i},chassis=0,slot={i + 2}",
                "-device", f"cxl-type3,bus=rp{i},volatile-memdev=vmem{i},id=cxl-vmem{i}"]
        fmw += [f"cxl-fmw.{i}.targets.0=cxl.{i}", f"cxl-fmw.{i}.size={b.window_mib}M"]
    start, mib = SOFT_RESERVED
    return cmd + ["-M", ",".join(fmw), "-kernel", str(kernel), "-initrd", str(initrd),
                  "-append", "console=ttyS0 panic=-1 memhp_default_state=offline "
                  f"memmap={mib}M%{start:#x}+0xefffffff dax_hmem.dyndbg=+p log_buf_len=4M "
                  + append]


def run_hw(repo: Path, tree: Path, build: Path, results: Path, jobs: int, timeout: int,
           timings: Dict[str, float], debug: bool = True, append: str = "") -> Layer:
    """Build (the vm layer's kernel, an initramfs without cxl_test), boot the
    emulated machine once, and judge the hw program's cases."""
    q = qemu(cache_dir())
    vb = VmBuild(repo, tree, build, jobs, debug=debug, mock=False)
    if narrowed(append):
        vb.shards = 0  # the arguments pick the cases
        if "cxlsr.test=" not in append:
            append += f" cxlsr.test={HW_PROGRAM}"
    else:
        append += " cxlsr.shard=0"
    vb.kernel()
    initrd = vb.initramfs(build / "vm-initramfs-hw.cpio")
    timings.update({f"hw-{k}": v for k, v in vb.timings.items()})
    layer = Layer("hw", log="hw-serial.log", ktap="hw.ktap")
    timeout = int(clip(timeout))
    kernel = vb.kdir / "arch/x86/boot/bzImage"
    b = boot(kernel, initrd, results / layer.log, timeout,
             cmd=qemu_cmd(q, kernel, initrd, append.strip()))
    timings["hw-boot+test"] = b.seconds
    ktap = extract_ktap(b.log)
    (results / layer.ktap).write_text(ktap)
    layer.suites = [parse_program(tree, name, tap, verdict, results, "hw")
                    for name, (tap, verdict) in split_kselftest(ktap).items()]
    if failed_boot(layer, [b], timeout):
        return layer
    return judge(layer, vb.programs, b.log, may_skip=MAY_SKIP)
