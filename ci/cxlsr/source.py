# SPDX-License-Identifier: GPL-2.0
"""The base kernel tree: Debian's linux-source-7.3 tarball or a maintainer's KSRC.

Either way the tests build from a private copy under build/src/linux, a git
repository whose first commit is the pristine base. The user's KSRC is only
ever read. The copy is re-imported only when its source changes.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .util import RunnerError, atomic_write, log, run

REQUIRED = (7, 3)
# 7.3 is the first Debian-packaged line with the merged arbitration; a tree
# without these markers cannot be tested, whatever its version says.
MARKERS = {
    "drivers/dax/bus.c": "dax_regions",
    "drivers/dax/hmem/hmem.c": "process_defer_work",
}
GIT = ["git", "-c", "user.name=cxl-sr-suite", "-c", "user.email=cxl-sr-suite@localhost",
       "-c", "core.hooksPath=/dev/null", "-c", "advice.detachedHead=false"]


@dataclass(frozen=True)
class Version:
    version: int
    patchlevel: int
    sublevel: int
    extra: str = ""

    def __str__(self) -> str:
        return f"{self.version}.{self.patchlevel}.{self.sublevel}{self.extra}"


def parse_makefile_version(text: str) -> Version:
    """The kernel version from the top of a kernel Makefile."""
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=\s*(\S*)\s*$", text, re.MULTILINE)
        if not m:
            raise RunnerError(f"not a kernel Makefile: no {key} line")
        fields[key] = m.group(1)
    try:
        return Version(int(fields["VERSION"]), int(fields["PATCHLEVEL"]),
                       int(fields["SUBLEVEL"] or 0), fields["EXTRAVERSION"])
    except ValueError as e:
        raise RunnerError(f"not a kernel Makefile: {e}") from e


def check_version(ver: Version, where: str, any_version: bool = False) -> None:
    if any_version or (ver.version, ver.patchlevel) == REQUIRED:
        return
    raise RunnerError(f"{where} is Linux {ver}, but this suite needs {REQUIRED[0]}.{REQUIRED[1]}.y "
                      "(the release line that merged the dax_hmem/dax_cxl arbitration); "
                      "set CXL_SR_ANY_KERNEL=1 to try it anyway")


def check_markers(tree: Path, where: str) -> None:
    for rel, marker in MARKERS.items():
        path = tree / rel
        if not path.is_file() or marker not in path.read_text(errors="replace"):
            raise RunnerError(f"{where} lacks the Soft Reserved arbitration ({rel} has no "
                              f"'{marker}'): is it really a 7.3 tree?")


def check_ksrc(ksrc: Path, any_version: bool = False) -> Version:
    """Validate a maintainer tree before anything is copied from it."""
    makefile = ksrc / "Makefile"
    if not makefile.is_file():
        raise RunnerError(f"KSRC={ksrc} is not a kernel tree (no Makefile)")
    ver = parse_makefile_version(makefile.read_text(errors="replace"))
    check_version(ver, f"KSRC={ksrc}", any_version)
    check_markers(ksrc, f"KSRC={ksrc}")
    return ver


@dataclass
class Tree:
    path: Path
    version: Version
    source_id: str
    imported: bool  # True when this call made a fresh copy


def _tar_version(tarball: Path) -> Version:
    with tarfile.open(tarball) as tar:
        for member in tar:
            if member.name.count("/") == 1 and member.name.endswith("/Makefile"):
                f = tar.extractfile(member)
                if f:
                    return parse_makefile_version(f.read().decode(errors="replace"))
    raise RunnerError(f"{tarball} holds no top-level kernel Makefile")


def _ksrc_changed(ksrc: Path, stamp: Path) -> bool:
    """Whether any file of KSRC is newer than our copy of it (.git excluded)."""
    proc = subprocess.run(["find", str(ksrc), "-path", str(ksrc / ".git"), "-prune", "-o",
                           "-newer", str(stamp), "-print", "-quit"],
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return bool(proc.stdout.strip())


def _git_base(dest: Path) -> None:
    # Debian's tarball ships a .gitignore that ignores the whole top level.
    run(GIT + ["init", "-q", "-b", "base"], cwd=dest, what="git init")
    run(GIT + ["add", "-A", "-f", "."], cwd=dest, what="git add of the base tree")
    run(GIT + ["commit", "-q", "--no-verify", "-m", "base"], cwd=dest, what="git commit of the base")
    run(GIT + ["tag", "-f", "cxl-sr-base"], cwd=dest, what="git tag")


def import_tree(src_dir: Path, tarball: Optional[Path], ksrc: Optional[Path],
                any_version: bool = False) -> Tree:
    """Make build/src/linux a git copy of the requested base; reuse it when unchanged."""
    dest = src_dir / "linux"
    stamp = src_dir / "source.id"
    if ksrc:
        ksrc = ksrc.resolve()
        ver = check_ksrc(ksrc, any_version)
        source_id = f"ksrc:{ksrc}"
    elif tarball:
        ver = _tar_version(tarball)
        check_version(ver, str(tarball.name), any_version)
        source_id = f"tarball:{tarball.name}"
    else:
        raise RunnerError("no kernel source: neither KSRC nor a fetched tarball")

    current = stamp.read_text().strip() if stamp.is_file() else ""
    fresh = (current == source_id and (dest / ".git").is_dir()
             and not (ksrc and _ksrc_changed(ksrc, stamp)))
    if fresh:
        return Tree(dest, ver, source_id, imported=False)

    log(f"importing Linux {ver} from {ksrc or tarball} into {dest}")
    stamp.unlink(missing_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    src_dir.mkdir(parents=True, exist_ok=True)
    if ksrc:
        dest.mkdir()
        run(["rsync", "-a", "--delete", "--exclude=/.git", "--exclude=*.o", "--exclude=*.ko",
             "--exclude=.*.cmd", f"{ksrc}/", f"{dest}/"], what=f"copy of KSRC={ksrc}")
        if (dest / ".config").exists() or (dest / "include/config").exists():
            # An in-tree build would make every O= build refuse to run.
            run(["make", "-s", "mrproper"], cwd=dest, what="make mrproper in the copy of KSRC")
    else:
        tmp = src_dir / "unpack.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        run(["tar", "-xf", str(tarball), "-C", str(tmp)], what=f"unpacking {tarball}")
        tops = [p for p in tmp.iterdir() if p.is_dir()]
        if len(tops) != 1:
            raise RunnerError(f"{tarball} does not hold exactly one top directory")
        tops[0].rename(dest)
        shutil.rmtree(tmp)
    check_markers(dest, source_id)
    _git_base(dest)
    atomic_write(stamp, source_id + "\n")
    return Tree(dest, ver, source_id, imported=True)
