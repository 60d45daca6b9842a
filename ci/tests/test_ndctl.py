# SPDX-License-Identifier: GPL-2.0
import hashlib
import io
import os
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


if __name__ == "__main__":
    unittest.main()
