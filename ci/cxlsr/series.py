# SPDX-License-Identifier: GPL-2.0
"""`make series`: the overlay as a patch series a maintainer can `git am`.

The overlay lands as "new files, then the fix patches" (overlay.py); upstream
wants one logical change per patch with the tests after what they test.
kernel-tree-overlay/export/series says how to regroup: each line is a patch of
the series as it is, or a commit of new files (with patches folded in) and its
message. The export is built in a scratch worktree of the overlaid tree and
written with `git format-patch --cover-letter`; verify() applies it with
`git am` to the pristine base and requires the very tree the overlay gives.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .overlay import NEW_FILE_DIRS, SERIES_DIR, Overlay
from .source import GIT
from .util import RunnerError, run

EXPORT = f"{SERIES_DIR}/export"
UPSTREAM = "cxl-sr-upstream"  # the branch the export leaves in the tree's repository


@dataclass
class Step:
    kind: str  # patch | new
    patches: List[Path] = field(default_factory=list)
    files: List[Tuple[Path, str]] = field(default_factory=list)  # (repo file, tree path)
    message: Optional[Path] = None


@dataclass
class Plan:
    steps: List[Step]
    cover: Optional[Path]


def author_of(patch: Path) -> str:
    """The From: of a git-format patch, unfolded."""
    head = patch.read_text().split("\n\n", 1)[0]
    m = re.search(r"^From: (.*(?:\n[ \t].*)*)", head, re.M)
    if not m:
        raise RunnerError(f"{patch.name}: no From: header")
    return " ".join(m.group(1).split())


def read_plan(repo: Path) -> Plan:
    """kernel-tree-overlay/export/series, checked: every patch of the series
    and every new file used exactly once."""
    ov = Overlay(repo)
    base = repo / EXPORT
    manifest = base / "series"
    if not manifest.is_file():
        raise RunnerError(f"{EXPORT}/series is missing")
    patches = {p.name: p for p in ov.series()}
    new_files = dict((f.relative_to(repo).as_posix(), (f, dst)) for f, dst in ov.new_files())
    used_patches: Dict[str, int] = {}
    used_files: Dict[str, int] = {}
    steps: List[Step] = []
    cover = None
    for n, raw in enumerate(manifest.read_text().splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{EXPORT}/series:{n}"
        kind, args = words[0], words[1:]
        if kind == "patch" and len(args) == 1:
            if args[0] not in patches:
                raise RunnerError(f"{where}: '{args[0]}' is not a patch of {SERIES_DIR}/series")
            steps.append(Step("patch", patches=[patches[args[0]]]))
            used_patches[args[0]] = used_patches.get(args[0], 0) + 1
        elif kind == "new" and len(args) >= 2:
            msg = base / args[0]
            if not msg.is_file():
                raise RunnerError(f"{where}: no message file {args[0]}")
            paths, folded = (args[1:], [])
            if "+" in paths:
                i = paths.index("+")
                paths, folded = paths[:i], paths[i + 1:]
            step = Step("new", message=msg)
            for p in paths:
                if p.split("/", 1)[0] not in NEW_FILE_DIRS:
                    raise RunnerError(f"{where}: '{p}' is not under {', '.join(NEW_FILE_DIRS)}")
                hits = [k for k in new_files if k == p or k.startswith(p.rstrip("/") + "/")]
                if not hits:
                    raise RunnerError(f"{where}: no new file under '{p}'")
                for k in hits:
                    step.files.append(new_files[k])
                    used_files[k] = used_files.get(k, 0) + 1
            for name in folded:
                if name not in patches:
                    raise RunnerError(f"{where}: '{name}' is not a patch of {SERIES_DIR}/series")
                step.patches.append(patches[name])
                used_patches[name] = used_patches.get(name, 0) + 1
            steps.append(step)
        elif kind == "cover" and len(args) == 1:
            cover = base / args[0]
            if not cover.is_file():
                raise RunnerError(f"{where}: no cover letter {args[0]}")
        else:
            raise RunnerError(f"{where}: want 'patch NAME', 'new MSG PATH... [+ PATCH...]' "
                              f"or 'cover FILE': {raw.strip()!r}")
    twice = [k for k, v in list(used_patches.items()) + list(used_files.items()) if v > 1]
    missing = [k for k in list(patches) + list(new_files)
               if k not in used_patches and k not in used_files]
    if twice:
        raise RunnerError(f"{EXPORT}/series uses more than once: {', '.join(twice)}")
    if missing:
        raise RunnerError(f"{EXPORT}/series leaves out: {', '.join(missing)}")
    return Plan(steps, cover)


def _git(cwd: Path, *args: str, what: str = "") -> str:
    return run(GIT + list(args), cwd=cwd, what=what or f"git {args[0]}").stdout


def _build(plan: Plan, work: Path) -> None:
    """The commits of the plan, on the base, in the scratch worktree."""
    for step in plan.steps:
        if step.kind == "patch":
            _git(work, "am", "-q", "--no-3way", "--keep-cr", str(step.patches[0]),
                 what=f"git am {step.patches[0].name}")
            continue
        assert step.message is not None
        for f, dst in step.files:
            target = work / dst
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        _git(work, "add", "-f", *[dst for _, dst in step.files])
        for patch in step.patches:
            _git(work, "apply", "--index", str(patch), what=f"folding {patch.name} in")
        author = author_of(step.patches[0]) if step.patches else None
        if author is None:
            series = [s for s in plan.steps if s.kind == "patch"]
            author = author_of(series[0].patches[0]) if series else None
        _git(work, "commit", "-q", "--no-verify", "-F", str(step.message),
             *(["--author", author] if author else []), what=f"commit of {step.message.name}")


def _fill_cover(cover_patch: Path, cover: Path) -> None:
    subject, _, blurb = cover.read_text().partition("\n\n")
    text = cover_patch.read_text()
    text = text.replace("*** SUBJECT HERE ***", " ".join(subject.split()))
    text = text.replace("*** BLURB HERE ***", blurb.rstrip("\n"))
    cover_patch.write_text(text)


@dataclass
class Export:
    out: Path
    patches: List[Path]  # in order, cover letter first when there is one
    subjects: List[str]


def export(repo: Path, tree: Path, out: Path) -> Export:
    """Write the series to `out` (emptied first), built on cxl-sr-base of the
    overlaid `tree` and checked to end at the overlaid tree."""
    plan = read_plan(repo)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="cxl-sr-series-", dir=tree.parent) as tmp:
        work = Path(tmp) / "linux"
        _git(tree, "worktree", "add", "-q", "--detach", str(work), "cxl-sr-base",
             what="git worktree add")
        try:
            _build(plan, work)
            if subprocess.run(GIT + ["diff", "--quiet", "HEAD", _head(tree)], cwd=work).returncode:
                stat = _git(work, "diff", "--stat", "HEAD", _head(tree))
                raise RunnerError(f"{EXPORT}/series does not give the overlaid tree:\n{stat}")
            # Kept as a branch of the tree's repository, for `make prefixes`.
            _git(work, "branch", "-f", UPSTREAM, "HEAD")
            args = ["format-patch", "-q", "-o", str(out), "--no-signature", "cxl-sr-base..HEAD"]
            if plan.cover:
                args.insert(1, "--cover-letter")
            # The cover letter is from whoever wrote the series, not the runner.
            who = re.match(r"(.*?)\s*<([^>]+)>", _git(work, "log", "-1", "--format=%an <%ae>",
                                                          "cxl-sr-base..HEAD").strip() or "")
            ident = ["-c", f"user.name={who.group(1)}", "-c", f"user.email={who.group(2)}"] if who else []
            run(GIT + ident + args, cwd=work, what="git format-patch")
            subjects = _git(work, "log", "--reverse", "--format=%s", "cxl-sr-base..HEAD").splitlines()
        finally:
            subprocess.run(GIT + ["worktree", "remove", "--force", str(work)], cwd=tree,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(GIT + ["worktree", "prune"], cwd=tree)
    patches = sorted(out.glob("*.patch"))
    if plan.cover:
        _fill_cover(patches[0], plan.cover)
    return Export(out, patches, subjects)


def _head(tree: Path) -> str:
    return _git(tree, "rev-parse", "HEAD").strip()


def verify(ex: Export, tree: Path) -> List[str]:
    """`git am` of the exported series on the pristine base, in a scratch
    worktree: returns what is wrong (nothing when it gives the overlaid tree)."""
    problems: List[str] = []
    mails = [p for p in ex.patches if not p.name.startswith("0000-")]
    with tempfile.TemporaryDirectory(prefix="cxl-sr-am-", dir=tree.parent) as tmp:
        work = Path(tmp) / "linux"
        _git(tree, "worktree", "add", "-q", "--detach", str(work), "cxl-sr-base",
             what="git worktree add")
        try:
            am = subprocess.run(GIT + ["am", "-q", "--no-3way"] + [str(p) for p in mails],
                                cwd=work, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
            if am.returncode:
                problems.append("git am of the exported series fails: "
                                + next((ln for ln in am.stdout.splitlines() if "error" in ln.lower()
                                        or "failed" in ln.lower()), am.stdout.strip()[-200:]))
            elif subprocess.run(GIT + ["diff", "--quiet", "HEAD", _head(tree)], cwd=work).returncode:
                problems.append("the exported series applied to the base differs from the "
                                "overlaid tree")
            else:
                problems += unlisted(work)
        finally:
            subprocess.run(GIT + ["worktree", "remove", "--force", str(work)], cwd=tree,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(GIT + ["worktree", "prune"], cwd=tree)
    return problems


# Where changes to this code must be sent; every file the series adds must
# reach it through MAINTAINERS (checkpatch's FILE_PATH_CHANGES warning asks
# the same question of any new file, whether or not an F: entry covers it).
LIST = "linux-cxl@vger.kernel.org"


def unlisted(work: Path) -> List[str]:
    """New files of the series that MAINTAINERS does not send to LIST."""
    added = _git(work, "diff", "--name-only", "--diff-filter=A", "cxl-sr-base", "HEAD").split()
    bad = []
    for f in added:
        out = subprocess.run(["perl", "scripts/get_maintainer.pl", "--nogit", "--nogit-fallback",
                              "--norolestats", "-f", f], cwd=work, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
        if LIST not in out:
            bad.append(f)
    return [f"MAINTAINERS does not send {', '.join(bad)} to {LIST}"] if bad else []
