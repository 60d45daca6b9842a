# SPDX-License-Identifier: GPL-2.0
"""`make series`: the overlay as a patch series a maintainer can `git am`.

The overlay lands as "new files, then the fix patches" (overlay.py); upstream
wants one logical change per patch with the tests after what they test.
kernel-tree-overlay/export/series says how to regroup: each line is a patch of
the series as it is, or a commit of new files (with patches folded in) and its
message, and `series NAME` starts another series, for another tree and its own
maintainers (driver core, resource). The export is built in a scratch worktree
of the overlaid tree, authored and signed off by the sender (their git
identity), and written with `git format-patch --signoff`, one directory a
series, To/Cc from get_maintainer.pl; verify() applies each series alone, then
all of them, with `git am` to the pristine base and requires the very tree the
overlay gives; lint() reads each mail as a reviewer's script would.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

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
class Part:
    """One series to send: its commits in order, its cover letter."""
    name: str
    steps: List[Step] = field(default_factory=list)
    cover: Optional[Path] = None


@dataclass
class Plan:
    parts: List[Part]

    @property
    def steps(self) -> List[Step]:
        return [s for part in self.parts for s in part.steps]


# Who `make check` and `make prefixes` sign the export as: a check, not a mail.
CHECK_SENDER = "cxl-sr series check <series-check@localhost.invalid>"
# RFC 2606 / 6761 names: nobody can reply to a patch signed off there.
RESERVED = re.compile(r"@(?:[^>]*\.)?(?:example(?:\.(?:com|net|org))?|invalid|test|localhost)>$")


def sender(repo: Path) -> str:
    """`Name <email>` of whoever runs `make series`: git's author identity
    (user.name/user.email, or GIT_AUTHOR_NAME/GIT_AUTHOR_EMAIL), which signs
    off every mail. None configured, or a reserved address: one clear error."""
    proc = subprocess.run(["git", "-c", "user.useConfigOnly=true", "var", "GIT_AUTHOR_IDENT"],
                          cwd=repo, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    m = re.match(r"(.+<[^>]+>)", proc.stdout.strip()) if proc.returncode == 0 else None
    if not m:
        raise RunnerError("make series signs off every patch with your git identity: "
                          "set user.name and user.email (git config), or GIT_AUTHOR_NAME "
                          "and GIT_AUTHOR_EMAIL")
    who = m.group(1).strip()
    if RESERVED.search(who):
        raise RunnerError(f"make series: '{who}' is a placeholder address (reserved domain); "
                          "sign off with your own: set user.email or GIT_AUTHOR_EMAIL")
    return who


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
    parts: List[Part] = [Part("cxl")]
    steps = parts[0].steps
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
            parts[-1].cover = base / args[0]
            if not parts[-1].cover.is_file():
                raise RunnerError(f"{where}: no cover letter {args[0]}")
        elif kind == "series" and len(args) == 1 and re.fullmatch(r"[a-z0-9-]+", args[0]):
            if any(p.name == args[0] for p in parts):
                raise RunnerError(f"{where}: series '{args[0]}' named twice")
            if not parts[-1].steps:
                parts.pop()
            parts.append(Part(args[0]))
            steps = parts[-1].steps
        else:
            raise RunnerError(f"{where}: want 'series NAME', 'patch NAME', "
                              f"'new MSG PATH... [+ PATCH...]' or 'cover FILE': {raw.strip()!r}")
    twice = [k for k, v in list(used_patches.items()) + list(used_files.items()) if v > 1]
    missing = [k for k in list(patches) + list(new_files)
               if k not in used_patches and k not in used_files]
    if twice:
        raise RunnerError(f"{EXPORT}/series uses more than once: {', '.join(twice)}")
    if missing:
        raise RunnerError(f"{EXPORT}/series leaves out: {', '.join(missing)}")
    empty = [p.name for p in parts if not p.steps]
    if empty:
        raise RunnerError(f"{EXPORT}/series: series {', '.join(empty)} has no patch")
    return Plan(parts)


def _git(cwd: Path, *args: str, what: str = "") -> str:
    return run(GIT + list(args), cwd=cwd, what=what or f"git {args[0]}").stdout


def _as(who: str) -> List[str]:
    name, email = re.match(r"(.*?)\s*<([^>]+)>", who).groups()  # type: ignore[union-attr]
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def _build(plan: Plan, work: Path, who: str) -> List[str]:
    """The commits of the plan, on the base, in the scratch worktree, each
    authored by `who`; returns the commit each part ends at."""
    ends = []
    for part in plan.parts:
        for step in part.steps:
            _step(step, work, who)
        ends.append(_git(work, "rev-parse", "HEAD").strip())
    return ends


def _step(step: Step, work: Path, who: str) -> None:
    if step.kind == "patch":
        _git(work, "am", "-q", "--no-3way", "--keep-cr", str(step.patches[0]),
             what=f"git am {step.patches[0].name}")
        run(GIT + _as(who) + ["commit", "-q", "--amend", "--no-edit", "--reset-author"],
            cwd=work, what="git commit --amend")
        return
    assert step.message is not None
    for f, dst in step.files:
        target = work / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    _git(work, "add", "-f", *[dst for _, dst in step.files])
    for patch in step.patches:
        _git(work, "apply", "--index", str(patch), what=f"folding {patch.name} in")
    run(GIT + _as(who) + ["commit", "-q", "--no-verify", "-F", str(step.message)],
        cwd=work, what=f"commit of {step.message.name}")


def _fill_cover(cover_patch: Path, cover: Path) -> None:
    subject, _, blurb = cover.read_text().partition("\n\n")
    text = cover_patch.read_text()
    text = text.replace("*** SUBJECT HERE ***", " ".join(subject.split()))
    text = text.replace("*** BLURB HERE ***", blurb.rstrip("\n"))
    cover_patch.write_text(text)


@contextlib.contextmanager
def worktree(tree: Path, prefix: str) -> Iterator[Path]:
    """A scratch worktree of `tree` at cxl-sr-base, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=tree.parent) as tmp:
        work = Path(tmp) / "linux"
        _git(tree, "worktree", "add", "-q", "--detach", str(work), "cxl-sr-base",
             what="git worktree add")
        try:
            yield work
        finally:
            subprocess.run(GIT + ["worktree", "remove", "--force", str(work)], cwd=tree,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(GIT + ["worktree", "prune"], cwd=tree)


def recipients(work: Path, mails: List[Path]) -> List[str]:
    """format-patch --to/--cc for these mails, as get_maintainer.pl answers
    in the tree: maintainers To, everyone else (lists, reviewers) Cc."""
    out = subprocess.run(["perl", "scripts/get_maintainer.pl", "--nogit", "--nogit-fallback",
                          "--rolestats"] + [str(m) for m in mails], cwd=work, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    args = []
    for line in out.splitlines():
        m = re.match(r"\s*(.*?<[^>]+>|[^\s<>()]+@[^\s<>()]+)\s*(?:\((.*)\))?\s*$", line)
        if m:
            to = (m.group(2) or "").startswith("maintainer")
            args += ["--to" if to else "--cc", m.group(1)]
    return args


@dataclass
class ExportPart:
    name: str
    out: Path
    patches: List[Path]  # in order, cover letter first when there is one
    subjects: List[str]


@dataclass
class Export:
    out: Path
    parts: List[ExportPart]
    sender: str

    @property
    def patches(self) -> List[Path]:
        return [p for part in self.parts for p in part.patches]

    @property
    def subjects(self) -> List[str]:
        return [s for part in self.parts for s in part.subjects]


def export(repo: Path, tree: Path, out: Path, who: str) -> Export:
    """Write each series of the plan to out/NAME (`out` emptied first), built
    on cxl-sr-base of the overlaid `tree`, from and signed off by `who`, and
    checked to end at the overlaid tree."""
    plan = read_plan(repo)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    parts = []
    with worktree(tree, "cxl-sr-series-") as work:
        ends = _build(plan, work, who)
        if subprocess.run(GIT + ["diff", "--quiet", "HEAD", _head(tree)], cwd=work).returncode:
            stat = _git(work, "diff", "--stat", "HEAD", _head(tree))
            raise RunnerError(f"{EXPORT}/series does not give the overlaid tree:\n{stat}")
        # Kept as a branch of the tree's repository, for `make prefixes`.
        _git(work, "branch", "-f", UPSTREAM, "HEAD")
        start = "cxl-sr-base"
        for part, end in zip(plan.parts, ends):
            dest = out / part.name
            rng = f"{start}..{end}"
            args = ["format-patch", "-q", "-o", str(dest), "--no-signature", "--signoff",
                    "--thread=shallow", rng]
            if part.cover:
                args.insert(1, "--cover-letter")
            run(GIT + _as(who) + args, cwd=work, what="git format-patch")
            # Once more, with the recipients get_maintainer.pl names for them.
            to = recipients(work, sorted(dest.glob("*.patch")))
            shutil.rmtree(dest)
            run(GIT + _as(who) + args[:1] + to + args[1:], cwd=work, what="git format-patch")
            patches = sorted(dest.glob("*.patch"))
            if part.cover:
                _fill_cover(patches[0], part.cover)
            subjects = _git(work, "log", "--reverse", "--format=%s", rng).splitlines()
            parts.append(ExportPart(part.name, dest, patches, subjects))
            start = end
    return Export(out, parts, who)


def _head(tree: Path) -> str:
    return _git(tree, "rev-parse", "HEAD").strip()


def _am(work: Path, mails: List[Path]) -> Optional[str]:
    """git am `mails` in `work`; what went wrong, or None."""
    am = subprocess.run(GIT + ["am", "-q", "--no-3way"] + [str(p) for p in mails],
                        cwd=work, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if not am.returncode:
        return None
    subprocess.run(GIT + ["am", "--abort"], cwd=work, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return next((ln for ln in am.stdout.splitlines() if "error" in ln.lower()
                 or "failed" in ln.lower()), am.stdout.strip()[-200:])


def verify(ex: Export, tree: Path) -> List[str]:
    """`git am` of each exported series alone on the pristine base (each goes
    to its own tree), then of all of them in order, in a scratch worktree:
    returns what is wrong (nothing when the whole gives the overlaid tree)."""
    problems: List[str] = []
    with worktree(tree, "cxl-sr-am-") as work:
        if len(ex.parts) > 1:
            for part in ex.parts:
                why = _am(work, _mails(part.patches))
                if why:
                    problems.append(f"series {part.name} does not apply alone to the base: {why}")
                _git(work, "checkout", "-q", "-f", "--detach", "cxl-sr-base")
        why = _am(work, _mails(ex.patches))
        if why:
            problems.append(f"git am of the exported series fails: {why}")
        elif subprocess.run(GIT + ["diff", "--quiet", "HEAD", _head(tree)], cwd=work).returncode:
            problems.append("the exported series applied to the base differs from the "
                            "overlaid tree")
        else:
            problems += unlisted(work)
    return problems


def _mails(patches: List[Path]) -> List[Path]:
    return [p for p in patches if not p.name.startswith("0000-")]


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


# What a script can check of each mail before it is sent; the rest of the
# review checklist is docs/review-checklist.md.
SUITE = re.compile(r"\bcxl-sr-suite\b|\bcxlsr\b|\bcxl_sr\.\w", re.I)
FIXES = re.compile(r"^Fixes: ([0-9a-f]{12,40}) \(\"(.+)\"\)$")
TEST_DIRS = ("drivers/dax/tests/", "tools/testing/selftests/cxl/")


def history(ksrc: Optional[Path]) -> Optional[Path]:
    """The tree Fixes: ids resolve in: KSRC when it is a git tree, else none."""
    return ksrc if ksrc and (ksrc / ".git").exists() else None


def test_names(repo: Path) -> List[str]:
    """Our KUnit suites and cases, kselftest programs, fixtures and cases: a
    fix's commit message says how the bug was reproduced, not which of our
    tests saw it. Only names specific enough to search for (an underscore,
    eight characters or more)."""
    names = set()
    for f in (repo / "kunit").glob("*.c"):
        text = f.read_text()
        names |= set(re.findall(r"KUNIT_CASE\w*\(\s*(\w+)", text))
        names |= set(re.findall(r"struct kunit_suite \w+ = \{\s*\.name\s*=\s*\"(\w+)\"", text))
    for f in (repo / "selftests").glob("*.c"):
        text = f.read_text()
        names |= set(re.findall(r"\bTEST_F\w*\(\s*\w+\s*,\s*(\w+)", text))
        names |= set(re.findall(r"\bFIXTURE\(\s*(\w+)", text))
        names.add(f.stem)
    return sorted(n for n in names if "_" in n and len(n) >= 8)


def _header(mail: str, name: str) -> str:
    head = mail.split("\n\n", 1)[0]
    m = re.search(rf"^{name}: (.*(?:\n[ \t].*)*)", head, re.M)
    return " ".join(m.group(1).split()) if m else ""


def lint(ex: Export, names: List[str], history: Optional[Path]) -> List[str]:
    """Each mail as a reviewer's script reads it: from and signed off by the
    sender alone, no test suite of ours named in a fix, Fixes: well formed
    (and resolved with its subject, when `history` is a git tree of Linux),
    Cc: stable only on a fix, no patch prefix left inside a subject."""
    problems: List[str] = []
    ours = re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b") if names else None
    for part in ex.parts:
        for mail in part.patches:
            text = mail.read_text()
            where = f"{part.name}/{mail.name}"
            if _header(text, "From") != ex.sender:
                problems.append(f"{where}: From: is not the sender ({ex.sender})")
            if mail.name.startswith("0000-"):
                continue
            body = text.split("\n\n", 1)[1].split("\n---\n", 1)[0]
            sobs = re.findall(r"^Signed-off-by: (.*)$", body, re.M)
            if sobs != [ex.sender]:
                problems.append(f"{where}: signed off by {sobs or 'nobody'}, "
                                f"want the sender alone")
            if "[PATCH" in re.sub(r"^\[[^]]*\]", "", _header(text, "Subject")):
                problems.append(f"{where}: a patch prefix inside the subject")
            adds_tests = any(re.search(rf"^diff --git a/{d}\S* b/{d}\S*\nnew file", text, re.M)
                             for d in TEST_DIRS)
            said = SUITE.search(body) or (ours.search(body) if ours and not adds_tests else None)
            if said:
                problems.append(f"{where}: names our tests ('{said.group(0)}'): say how it was "
                                "reproduced instead")
            fixes = [ln for ln in body.splitlines() if ln.startswith("Fixes:")]
            for ln in fixes:
                m = FIXES.match(ln)
                if not m:
                    problems.append(f"{where}: malformed '{ln}'")
                elif history:
                    got = subprocess.run(["git", "log", "-1", "--format=%s", m.group(1)],
                                         cwd=history, text=True, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL)
                    if got.returncode or got.stdout.strip() != m.group(2):
                        problems.append(f"{where}: {m.group(1)} is not \"{m.group(2)}\" "
                                        f"in {history}")
            if re.search(r"^Cc: .*stable@vger\.kernel\.org", body, re.M) and not fixes:
                problems.append(f"{where}: Cc: stable without a Fixes:")
    return problems
