# SPDX-License-Identifier: GPL-2.0
"""Apply the project's overlay to the imported tree.

The rule (docs/overlay.md):
  1. each new-file directory of the repo is copied to one in-tree directory
     (NEW_FILE_DIRS); none of its files may already exist in the base;
  2. kernel-tree-overlay/series lists git-format patches, applied in order
     with `git am` on top: they are the only edits to upstream files.

Everything is committed in the tree's own git, so the result is checkable
(`git status`), restorable after a deliberate breakage, and exportable.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from .source import GIT
from .util import RunnerError, atomic_write, log, run

NEW_FILE_DIRS = {
    "kunit": "drivers/dax/tests",
    "cxl_test": "tools/testing/cxl",
    "selftests": "tools/testing/selftests/cxl",
}
SERIES_DIR = "kernel-tree-overlay"


@dataclass
class Overlay:
    repo: Path

    def series(self) -> List[Path]:
        """The patches named by kernel-tree-overlay/series, in order."""
        series = self.repo / SERIES_DIR / "series"
        if not series.is_file():
            return []
        patches = []
        for lineno, raw in enumerate(series.read_text().splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            patch = self.repo / SERIES_DIR / line
            if not patch.is_file():
                raise RunnerError(f"{SERIES_DIR}/series:{lineno}: no such patch '{line}'")
            patches.append(patch)
        return patches

    def new_files(self) -> List[tuple[Path, str]]:
        """(file in the repo, path in the tree) for every new file."""
        out = []
        for src, dst in NEW_FILE_DIRS.items():
            base = self.repo / src
            if not base.is_dir():
                continue
            for f in sorted(base.rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts:
                    out.append((f, f"{dst}/{f.relative_to(base).as_posix()}"))
        return out

    def digest(self) -> str:
        h = hashlib.sha256()
        for f, dst in self.new_files():
            h.update(dst.encode() + b"\0" + f.read_bytes() + b"\0")
        for p in self.series():
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        return h.hexdigest()[:16]


def _git(tree: Path, *args: str, what: str = "") -> str:
    return run(GIT + list(args), cwd=tree, what=what or f"git {args[0]}").stdout


def tree_is_clean(tree: Path) -> bool:
    """No edit to a tracked file and no stray file (ignored ones included)."""
    diff = subprocess.run(GIT + ["diff", "--quiet", "HEAD"], cwd=tree)
    if diff.returncode != 0:
        return False
    others = _git(tree, "ls-files", "--others", "--directory")
    return not others.strip()


def restore(tree: Path) -> None:
    """Undo any edit made after the overlay (an interrupted breakage test, say)."""
    _git(tree, "reset", "-q", "--hard", "HEAD", what="git reset")
    _git(tree, "clean", "-ffdxq", what="git clean")


def apply(repo: Path, tree: Path, stamp: Path) -> str:
    """Bring `tree` to base + overlay; a no-op when nothing changed. Returns the digest."""
    ov = Overlay(repo)
    digest = ov.digest()
    head = _git(tree, "rev-parse", "HEAD").strip()
    if stamp.is_file() and stamp.read_text().split() == [digest, head]:
        if not tree_is_clean(tree):
            log("kernel tree was left modified (interrupted run?): restoring it")
            restore(tree)
        return digest

    log(f"applying overlay {digest} to {tree}")
    stamp.unlink(missing_ok=True)
    before = _touched(tree)
    _git(tree, "reset", "-q", "--hard", "cxl-sr-base", what="git reset to the base")
    _git(tree, "clean", "-ffdxq", what="git clean")

    new = ov.new_files()
    if new:
        for f, dst in new:
            target = tree / dst
            if target.exists():
                raise RunnerError(f"overlay file {f.relative_to(repo)} would replace the tree's "
                                  f"own {dst}: edits to upstream files belong in {SERIES_DIR}/")
            target.parent.mkdir(parents=True, exist_ok=True)
            # Stamped now, not with the source's mtime: a file edited while an
            # earlier run was building is older than what that run built.
            # _keep_mtimes() gives an unchanged file its old mtime back.
            shutil.copy(f, target)
        _git(tree, "add", "-f", *[dst for _, dst in new])
        _git(tree, "commit", "-q", "--no-verify", "-m", "cxl-sr-suite: new files (kunit, cxl_test, selftests)")

    for patch in ov.series():
        am = subprocess.run(GIT + ["am", "-q", "--no-3way", "--keep-cr", str(patch)], cwd=tree,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if am.returncode != 0:
            subprocess.run(GIT + ["am", "--abort"], cwd=tree, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            reason = next((ln for ln in am.stdout.splitlines() if "error:" in ln),
                          am.stdout.strip().splitlines()[-1] if am.stdout.strip() else "")
            raise RunnerError(f"patch {SERIES_DIR}/{patch.name} does not apply to {tree}: {reason}")

    head = _git(tree, "rev-parse", "HEAD").strip()
    _keep_mtimes(tree, before)
    atomic_write(stamp, f"{digest} {head}\n")
    return digest


def _touched(tree: Path) -> Dict[str, Tuple[str, int]]:
    """path -> (blob, mtime) of every file the current overlay changed or added."""
    names = _git(tree, "diff", "--name-only", "cxl-sr-base", "HEAD").split()
    out = {}
    for name in names:
        path = tree / name
        if path.is_file():
            blob = _git(tree, "hash-object", name).strip()
            out[name] = (blob, path.stat().st_mtime_ns)
    return out


def _keep_mtimes(tree: Path, before: Dict[str, Tuple[str, int]]) -> None:
    """A file the new overlay left as it was keeps its old mtime: make rebuilds
    only what really changed."""
    for name, (blob, mtime) in before.items():
        path = tree / name
        if path.is_file() and _git(tree, "hash-object", name).strip() == blob:
            os.utime(path, ns=(path.stat().st_atime_ns, mtime))
