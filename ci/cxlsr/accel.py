# SPDX-License-Identifier: GPL-2.0
"""Pick the QEMU accelerator: KVM only where guests can really run.

On some hosts /dev/kvm opens fine but the CPU offers no virtualisation
(no vmx/svm flag): `-accel kvm` is then accepted and the guest never runs,
without a word. kunit.py passes `-accel kvm` first, so it hangs there.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence


def kvm_usable(cpuinfo: Path = Path("/proc/cpuinfo"), dev: Path = Path("/dev/kvm")) -> bool:
    override = os.environ.get("CXL_SR_ACCEL", "")
    if override in ("kvm", "tcg"):
        return override == "kvm"
    if not os.access(dev, os.R_OK | os.W_OK):
        return False
    try:
        flags = " ".join(ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("flags"))
    except OSError:
        return False
    return " vmx" in flags or " svm" in flags


def filter_accel(args: Sequence[str], kvm: bool) -> List[str]:
    """Drop `-accel kvm`/`-accel hvf` (and -enable-kvm) when KVM is not usable."""
    if kvm:
        return list(args)
    out: List[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "-accel" and i + 1 < len(args) and args[i + 1].split(",")[0] in ("kvm", "hvf"):
            skip = True
            continue
        if arg == "-enable-kvm":
            continue
        out.append(arg)
    if "-accel" not in out:
        out += ["-accel", "tcg"]
    return out
