# SPDX-License-Identifier: GPL-2.0
"""A current ndctl (`cxl`, `daxctl`, `ndctl`) for the VM, from Debian alone.

Debian 12's ndctl 76.1 cannot create ram regions. The archive still serves the
upstream tarball of trixie's ndctl 81 (`apt-get source --download-only`, with
a private sources list that has only a deb-src line; the .dsc and the Debian
tarball are not served, so that part of apt's answer is expected to fail).
The tarball's SHA-256 is checked against the signed Sources index, then it is
built with meson against Debian 12's libraries and installed into a root in
the cache, keyed by everything the build depends on: a warm run builds
nothing.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .util import RunnerError, log

VERSION = "81"
DEBIAN_VERSION = "81-1"
TARBALL = f"ndctl_{VERSION}.orig.tar.gz"
# Tests on (ndctl's own suite needs them), documentation and systemd off.
MESON_OPTS = ["-Dversion-tag=" + VERSION, "-Ddocs=disabled", "-Dasciidoctor=disabled",
              "-Dsystemd=disabled", "-Dtest=enabled", "-Ddestructive=enabled",
              "-Dbashcompletiondir=no"]
TOOLS = ("cxl", "daxctl", "ndctl")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _mirror() -> str:
    """The archive the machine's apt already uses, as fetch-kernel.sh finds it."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = f.read_text()
        except OSError:
            continue
        m = re.search(r"^(?:URIs:|deb)\s+(https?://\S*/debian)/?\s", text, re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


class Apt:
    """apt-get and apt-cache with a private sources list and state, in
    cache/`name`; `sources` is that list (default: trixie's deb-src)."""

    def __init__(self, cache: Path, name: str = "apt-src", sources: str = "") -> None:
        self.dir = cache / name
        self.log = self.dir / "apt.log"
        self.sources = sources or f"deb-src [signed-by={KEYRING}] {_mirror()} trixie main\n"

    def opts(self) -> List[str]:
        d = self.dir
        return ["-q", "-o", f"Dir::Etc::sourcelist={d}/sources.list",
                "-o", "Dir::Etc::sourceparts=-", "-o", f"Dir::State::Lists={d}/lists",
                "-o", f"Dir::Cache={d}/cache", "-o", "Dir::State::status=/dev/null",
                "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1"]

    def _run(self, cmd: List[str], cwd: Optional[Path] = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd[:1] + self.opts() + cmd[1:], cwd=cwd, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with self.log.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{proc.stdout}")
        return proc

    def update(self) -> None:
        for sub in ("lists/partial", "cache/archives/partial", "src"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "sources.list").write_text(self.sources)
        if self._run(["apt-get", "update"]).returncode:
            raise RunnerError(f"apt-get update failed for {self.sources.strip()!r} "
                              f"(log: {self.log})")

    def sha256(self) -> str:
        """The tarball's SHA-256 as the signed Sources index gives it."""
        out = self._run(["apt-cache", "showsrc", "ndctl"]).stdout
        for stanza in out.split("\n\n"):
            if not re.search(rf"^Version: {re.escape(DEBIAN_VERSION)}$", stanza, re.M):
                continue
            m = re.search(rf"^ ([0-9a-f]{{64}}) \d+ {re.escape(TARBALL)}$", stanza, re.M)
            if m:
                return m.group(1)
        raise RunnerError(f"ndctl: the trixie Sources index lists no SHA-256 for {TARBALL} "
                          f"(ndctl {DEBIAN_VERSION})")

    def download(self) -> Path:
        """apt-get source --download-only: only the orig tarball is served."""
        dest = self.dir / "src"
        self._run(["apt-get", "source", "--download-only", f"ndctl={DEBIAN_VERSION}"], cwd=dest)
        tarball = dest / TARBALL
        if not tarball.is_file():
            raise RunnerError(f"ndctl: {TARBALL} was not served by {_mirror()} (deb-src trixie; "
                              f"log: {self.log})")
        return tarball


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified_tarball(cache: Path) -> Path:
    """The orig tarball, downloaded once, whose hash the signed index vouches
    for (NDCTL_TARBALL names a local copy instead; it is checked all the same)."""
    apt = Apt(cache)
    given = os.environ.get("NDCTL_TARBALL")
    tarball = Path(given) if given else apt.dir / "src" / TARBALL
    if given and not tarball.is_file():
        raise RunnerError(f"ndctl: NDCTL_TARBALL={given}: no such file")
    stamp = apt.dir / f"{TARBALL}.sha256"
    if tarball.is_file() and stamp.is_file():
        want = stamp.read_text().strip()
    else:
        apt.update()
        want = apt.sha256()
        if not tarball.is_file():
            tarball = apt.download()
        stamp.write_text(want + "\n")
    got = file_sha256(tarball)
    if got != want:
        raise RunnerError(f"ndctl: {tarball} has SHA-256 {got}, the signed Sources index says "
                          f"{want}")
    return tarball


def _key(tarball_sha: str) -> str:
    """What the build depends on: the source, the options, the libraries."""
    libs = subprocess.run(["dpkg-query", "-W", "-f", "${Package}=${Version}\n", "libkmod-dev",
                           "libudev-dev", "uuid-dev", "libjson-c-dev", "libkeyutils-dev",
                           "libiniparser-dev", "libtraceevent-dev", "libtracefs-dev"],
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    text = "\n".join([tarball_sha, *MESON_OPTS, libs])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build(cache: Path, jobs: int) -> Path:
    """Install root of ndctl VERSION (usr/bin/{cxl,daxctl,ndctl}, usr/lib,
    and the test suite under usr/share/ndctl-test), built when missing."""
    tarball = verified_tarball(cache)
    home = cache / "ndctl"
    root = home / f"{VERSION}-{_key(file_sha256(tarball))}"
    if (root / "usr/bin/cxl").is_file():
        return root
    log(f"building ndctl {VERSION} from {tarball.name} into {root}")
    work = home / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    logf = home / "build.log"
    with tarfile.open(tarball) as tf:
        try:
            tf.extractall(work, filter="data")
        except TypeError:  # a Python without extraction filters (3.11 before 3.11.4)
            tf.extractall(work)
    src = next(p for p in work.iterdir() if p.is_dir())
    stage = home / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    steps = [["meson", "setup", str(work / "build"), "--prefix=/usr", "--libdir=lib",
              *MESON_OPTS],
             ["ninja", "-C", str(work / "build"), f"-j{jobs}"],
             ["meson", "install", "-C", str(work / "build"), "--no-rebuild",
              f"--destdir={stage}"]]
    with logf.open("w") as out:
        for cmd in steps:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            if subprocess.run(cmd, cwd=src, stdout=out, stderr=subprocess.STDOUT).returncode:
                raise RunnerError(f"ndctl: {cmd[0]} {cmd[1]} failed (log: {logf})")
    # The test suite (ndctl's test/*.sh and the programs they run), for the VM.
    tests = stage / "usr/share/ndctl-test"
    shutil.copytree(src / "test", tests / "test")
    for prog in (work / "build" / "test").iterdir():
        if prog.is_file() and os.access(prog, os.X_OK):
            shutil.copy2(prog, tests / "test" / prog.name)
    shutil.rmtree(root, ignore_errors=True)
    stage.rename(root)
    shutil.rmtree(work, ignore_errors=True)
    return root


def tool_env(root: Path) -> Dict[str, str]:
    """Environment in which ldd resolves the built tools' own libraries."""
    return dict(os.environ, LD_LIBRARY_PATH=str(root / "usr/lib"))


def unpacked(home: Path, main: str, marker: str, fetch: Callable[[Path], List[Path]]) -> Path:
    """Debian packages unpacked (not installed) under home/<version>, the
    version of the package `main`: the root already there when it holds
    `marker`, else `fetch(dir)` downloads the .debs into dir (or raises
    RunnerError) and they are unpacked. A warm run does not ask the archive."""
    current = home / "current"
    if current.is_file():
        root = home / current.read_text().strip()
        if (root / marker).is_file():
            return root
    debs = home / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    got = fetch(debs)
    deb = next(d for d in got if d.name.startswith(main + "_"))
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], text=True,
                             stdout=subprocess.PIPE, check=True).stdout.strip().replace(":", "_")
    root = home / version
    shutil.rmtree(root, ignore_errors=True)
    for d in got:
        subprocess.run(["dpkg-deb", "-x", str(d), str(root)], check=True)
    shutil.rmtree(debs, ignore_errors=True)
    current.write_text(version + "\n")
    log(f"{main} {version} unpacked into {root}")
    return root


def udev(cache: Path) -> Path:
    """Debian 12's udev, unpacked (not installed) under cache/udev/<version>:
    bin/udevadm (also systemd-udevd, by name) and lib/udev/rules.d. ndctl's
    tests need it in the VM: they load cxl_test and count on udev's module
    rule for the drivers of what it adds, and libcxl waits for udev's queue
    to drain before it reads sysfs. Fetched once with `apt-get download`."""
    def fetch(debs: Path) -> List[Path]:
        proc = subprocess.run(["apt-get", "download", "udev"], cwd=debs, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        got = sorted(debs.glob("udev_*.deb"))
        if proc.returncode or not got:
            tail = proc.stdout.strip().splitlines()[-1:] or [""]
            raise RunnerError(f"udev: apt-get download udev failed: {tail[0]} "
                              "(run apt-get update first?)")
        return got

    return unpacked(cache / "udev", "udev", "bin/udevadm", fetch)
