# SPDX-License-Identifier: GPL-2.0
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from cxlsr import ndctl
from cxlsr.util import RunnerError


def tarball(path: Path, files: dict) -> str:
    """A source tarball of `files` (name -> text) under ndctl-81/; its SHA-256."""
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"ndctl-81/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


class NdctlTest(unittest.TestCase):
    """Bad input gets one line and exit 2 (RunnerError), and nothing is
    left half-installed in the cache."""

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = Path(tmp.name)
        self.cache = self.tmp / "cache"
        (self.cache / "apt-src").mkdir(parents=True)

    def _index_says(self, sha: str) -> None:
        (self.cache / "apt-src" / f"{ndctl.TARBALL}.sha256").write_text(sha + "\n")

    def test_missing_tarball(self) -> None:
        with mock.patch.dict(os.environ, {"NDCTL_TARBALL": str(self.tmp / "none.tar.gz")}):
            with self.assertRaisesRegex(RunnerError, "^ndctl: NDCTL_TARBALL=.*: no such file$"):
                ndctl.build(self.cache, 1)

    def test_not_served(self) -> None:
        with mock.patch.object(ndctl.Apt, "update"), \
             mock.patch.object(ndctl.Apt, "sha256", return_value="0" * 64), \
             mock.patch.object(ndctl.Apt, "_run"):
            with self.assertRaisesRegex(RunnerError, "^ndctl: ndctl_81.orig.tar.gz was not served"):
                ndctl.build(self.cache, 1)

    def test_wrong_hash(self) -> None:
        t = self.tmp / ndctl.TARBALL
        tarball(t, {"meson.build": "project('ndctl')\n"})
        self._index_says("a" * 64)
        with mock.patch.dict(os.environ, {"NDCTL_TARBALL": str(t)}):
            with self.assertRaisesRegex(RunnerError, "has SHA-256 [0-9a-f]{64}, the signed "
                                        "Sources index says a{64}$"):
                ndctl.build(self.cache, 1)
        self.assertFalse((self.cache / "ndctl").exists())

    def test_failed_build(self) -> None:
        t = self.tmp / ndctl.TARBALL
        self._index_says(tarball(t, {"meson.build": "this is not meson\n"}))
        with mock.patch.dict(os.environ, {"NDCTL_TARBALL": str(t)}):
            with self.assertRaisesRegex(RunnerError, r"^ndctl: meson setup failed \(log: .*build.log\)$"):
                ndctl.build(self.cache, 1)
        self.assertEqual([p.name for p in (self.cache / "ndctl").iterdir()
                          if p.name.startswith(ndctl.VERSION)], [])

    def test_index_hash_is_read_from_the_right_stanza(self) -> None:
        sources = ("Package: ndctl\nVersion: 78-2\nChecksums-Sha256:\n"
                   f" {'b' * 64} 1 ndctl_81.orig.tar.gz\n\n"
                   "Package: ndctl\nVersion: 81-1\nChecksums-Sha256:\n"
                   f" {'c' * 64} 2495 ndctl_81-1.dsc\n {'d' * 64} 436889 ndctl_81.orig.tar.gz\n")
        with mock.patch.object(ndctl.Apt, "_run") as run:
            run.return_value.stdout = sources
            self.assertEqual(ndctl.Apt(self.cache).sha256(), "d" * 64)
            run.return_value.stdout = sources.replace("81-1", "81-2")
            with self.assertRaisesRegex(RunnerError, "lists no SHA-256"):
                ndctl.Apt(self.cache).sha256()


def deb(where: Path, name: str, version: str, files: dict) -> Path:
    """A .deb of package `name` holding `files` (path -> text)."""
    root = where / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: nobody <nobody@example.org>\nDescription: test\n")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    out = where / f"{name}_{version.replace(':', '%3a')}_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out


class UnpackedTest(unittest.TestCase):
    """Packages unpacked into the cache once; a warm run asks nobody."""

    def test_cold_then_warm(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            made = [deb(tmp, "tool", "1:2.0-1", {"usr/bin/tool": "x"}),
                    deb(tmp, "tool-data", "2.0-1", {"usr/share/tool/data": "y"})]
            calls = []

            def fetch(debs: Path) -> list:
                calls.append(debs)
                return [Path(shutil.copy2(m, debs)) for m in made]

            home = tmp / "cache" / "tool"
            root = ndctl.unpacked(home, "tool", "usr/bin/tool", fetch)
            self.assertEqual(root, home / "1_2.0-1")  # the main package's version
            self.assertTrue((root / "usr/share/tool/data").is_file())  # every package
            self.assertFalse((home / "debs").exists())
            self.assertEqual(ndctl.unpacked(home, "tool", "usr/bin/tool", fetch), root)
            self.assertEqual(len(calls), 1)

    def test_failed_fetch_leaves_no_root(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            home = Path(d) / "tool"

            def fetch(debs: Path) -> list:
                raise RunnerError("tool: could not download it")

            with self.assertRaises(RunnerError):
                ndctl.unpacked(home, "tool", "usr/bin/tool", fetch)
            self.assertFalse((home / "current").exists())


if __name__ == "__main__":
    unittest.main()
