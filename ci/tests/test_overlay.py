# SPDX-License-Identifier: GPL-2.0
import subprocess
import tempfile
import unittest
from pathlib import Path

from cxlsr import overlay
from cxlsr.util import RunnerError

from .helpers import base_tree, git


class OverlayTest(unittest.TestCase):
    """A miniature base tree and repo: the same code paths as the real overlay."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        self.tree, self.repo = root / "tree", root / "repo"
        base_tree(self.tree, {"drivers/dax/Makefile": "obj-y += hmem/\n"})
        (self.repo / "kunit").mkdir(parents=True)
        (self.repo / "kunit/x_kunit.c").write_text("// test\n")
        (self.repo / "kernel-tree-overlay").mkdir()
        self.stamp = root / "overlay.stamp"
        self._make_patch("0001-hook.patch", "obj-y += hmem/\nobj-y += tests/\n")

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def _make_patch(self, name: str, makefile: str) -> None:
        scratch = Path(self.tmp.name) / "scratch"
        subprocess.run(["rm", "-rf", str(scratch)], check=True)
        subprocess.run(["git", "clone", "-q", str(self.tree), str(scratch)], check=True)
        (scratch / "drivers/dax/Makefile").write_text(makefile)
        git(scratch, "commit", "-qam", "dax: hook up tests")
        patch = git(scratch, "format-patch", "--stdout", "-1")
        (self.repo / "kernel-tree-overlay" / name).write_text(patch)
        (self.repo / "kernel-tree-overlay/series").write_text(f"# comment\n{name}\n")

    def test_apply_and_noop(self) -> None:
        d1 = overlay.apply(self.repo, self.tree, self.stamp)
        self.assertEqual((self.tree / "drivers/dax/tests/x_kunit.c").read_text(), "// test\n")
        self.assertIn("tests/", (self.tree / "drivers/dax/Makefile").read_text())
        head = git(self.tree, "rev-parse", "HEAD")
        mtime = (self.tree / "drivers/dax/Makefile").stat().st_mtime_ns
        self.assertEqual(overlay.apply(self.repo, self.tree, self.stamp), d1)
        self.assertEqual(git(self.tree, "rev-parse", "HEAD"), head)
        self.assertEqual((self.tree / "drivers/dax/Makefile").stat().st_mtime_ns, mtime)

    def test_change_reapplies(self) -> None:
        d1 = overlay.apply(self.repo, self.tree, self.stamp)
        (self.repo / "kunit/x_kunit.c").write_text("// changed\n")
        self.assertNotEqual(overlay.apply(self.repo, self.tree, self.stamp), d1)
        self.assertEqual((self.tree / "drivers/dax/tests/x_kunit.c").read_text(), "// changed\n")

    def test_unchanged_files_keep_their_mtime(self) -> None:
        overlay.apply(self.repo, self.tree, self.stamp)
        test_file = self.tree / "drivers/dax/tests/x_kunit.c"
        makefile = self.tree / "drivers/dax/Makefile"
        mtimes = (test_file.stat().st_mtime_ns, makefile.stat().st_mtime_ns)
        (self.repo / "selftests").mkdir()
        (self.repo / "selftests/t.c").write_text("// new\n")
        overlay.apply(self.repo, self.tree, self.stamp)
        self.assertTrue((self.tree / "tools/testing/selftests/cxl/t.c").is_file())
        self.assertEqual((test_file.stat().st_mtime_ns, makefile.stat().st_mtime_ns), mtimes)

    def test_patch_that_does_not_apply_is_named(self) -> None:
        self._make_patch("0001-hook.patch", "obj-y += hmem/\nobj-y += tests/\n")
        (self.tree / "drivers/dax/Makefile").write_text("obj-y += something-else/\n")
        git(self.tree, "commit", "-qam", "diverged")
        git(self.tree, "tag", "-f", "cxl-sr-base")
        with self.assertRaisesRegex(RunnerError, "patch kernel-tree-overlay/0001-hook.patch does not apply"):
            overlay.apply(self.repo, self.tree, self.stamp)
        self.assertFalse(self.stamp.exists())

    def test_missing_patch_in_series(self) -> None:
        (self.repo / "kernel-tree-overlay/series").write_text("0009-gone.patch\n")
        with self.assertRaisesRegex(RunnerError, "series:1: no such patch '0009-gone.patch'"):
            overlay.apply(self.repo, self.tree, self.stamp)

    def test_new_file_may_not_replace_upstream(self) -> None:
        (self.repo / "kunit/../cxl_test").mkdir()
        (self.tree / "tools/testing/cxl").mkdir(parents=True)
        (self.tree / "tools/testing/cxl/Kbuild").write_text("upstream\n")
        git(self.tree, "add", "-A")
        git(self.tree, "commit", "-qm", "cxl")
        git(self.tree, "tag", "-f", "cxl-sr-base")
        (self.repo / "cxl_test/Kbuild").write_text("ours\n")
        with self.assertRaisesRegex(RunnerError, "would replace the tree's own tools/testing/cxl/Kbuild"):
            overlay.apply(self.repo, self.tree, self.stamp)

    def test_dirty_tree_is_restored(self) -> None:
        overlay.apply(self.repo, self.tree, self.stamp)
        (self.tree / "drivers/dax/Makefile").write_text("mutant\n")
        (self.tree / "stray.o").write_text("x")
        self.assertFalse(overlay.tree_is_clean(self.tree))
        overlay.apply(self.repo, self.tree, self.stamp)
        self.assertTrue(overlay.tree_is_clean(self.tree))
        self.assertIn("tests/", (self.tree / "drivers/dax/Makefile").read_text())


if __name__ == "__main__":
    unittest.main()
