# SPDX-License-Identifier: GPL-2.0
import subprocess
import tempfile
import unittest
from pathlib import Path

from cxlsr import overlay, series
from cxlsr.util import RunnerError

from .helpers import base_tree, git

# Sends files under drivers/ to the list, nothing else: enough MAINTAINERS.
GET_MAINTAINER = """#!/usr/bin/perl
my $f = $ARGV[-1];
print "someone <x\\@example.org>\\n";
print "linux-cxl\\@vger.kernel.org (open list)\\n" if $f =~ m{^drivers/};
"""


class SeriesTest(unittest.TestCase):
    """A miniature base, overlay and export manifest, through the real export."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        root = Path(self.tmp.name)
        self.tree, self.repo = root / "src" / "tree", root / "repo"
        base_tree(self.tree, {"drivers/dax/Makefile": "obj-y += hmem/\n",
                              "drivers/dax/bus.c": "int a;\n",
                              "scripts/get_maintainer.pl": GET_MAINTAINER})
        (self.repo / "kunit").mkdir(parents=True)
        (self.repo / "kunit/x_kunit.c").write_text("// test\n")
        (self.repo / "kunit/Makefile").write_text("obj-y += x_kunit.o\n")
        ov = self.repo / "kernel-tree-overlay"
        (ov / "export").mkdir(parents=True)
        self._patch("0001-hook.patch", "drivers/dax/Makefile", "obj-y += hmem/\nobj-y += tests/\n",
                    "dax: Hook up tests")
        self._patch("0002-fix.patch", "drivers/dax/bus.c", "int a = 1;\n", "dax/bus: Fix a")
        (ov / "series").write_text("0001-hook.patch\n0002-fix.patch\n")
        (ov / "export/kunit.msg").write_text("dax: Add tests\n\nWhy.\n\nSigned-off-by: A <a@b.c>\n")
        (ov / "export/cover").write_text("The subject\n\nThe blurb.\n")
        self._manifest("patch 0002-fix.patch\nnew kunit.msg kunit + 0001-hook.patch\ncover cover\n")
        overlay.apply(self.repo, self.tree, Path(self.tmp.name) / "stamp")

    def _manifest(self, text: str) -> None:
        (self.repo / "kernel-tree-overlay/export/series").write_text("# how\n" + text)

    def _patch(self, name: str, path: str, text: str, subject: str) -> None:
        scratch = Path(self.tmp.name) / "scratch"
        subprocess.run(["rm", "-rf", str(scratch)], check=True)
        subprocess.run(["git", "clone", "-q", str(self.tree), str(scratch)], check=True)
        (scratch / path).write_text(text)
        git(scratch, "commit", "-qam", subject, "--author", "Pat Ch <pat@example.org>")
        (self.repo / "kernel-tree-overlay" / name).write_text(
            git(scratch, "format-patch", "--stdout", "-1"))

    def test_export_regroups_and_gives_the_overlaid_tree(self) -> None:
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out")
        self.assertEqual(ex.subjects, ["dax/bus: Fix a", "dax: Add tests"])
        self.assertEqual([p.name[:5] for p in ex.patches], ["0000-", "0001-", "0002-"])
        cover = ex.patches[0].read_text()
        self.assertIn("From: Pat Ch <pat@example.org>", cover)
        self.assertIn("The subject", cover)
        self.assertIn("The blurb.", cover)
        self.assertNotIn("***", cover)
        tests = ex.patches[2].read_text()
        self.assertIn("From: Pat Ch <pat@example.org>", tests)
        self.assertIn("drivers/dax/tests/x_kunit.c", tests)
        self.assertIn("+obj-y += tests/", tests)
        self.assertEqual(series.verify(ex, self.tree), [])
        # The scratch worktrees are gone.
        self.assertNotIn("cxl-sr-", git(self.tree, "worktree", "list"))

    def test_tampered_series_does_not_apply(self) -> None:
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out")
        ex.patches[1].write_text(ex.patches[1].read_text().replace("-int a;", "-int b;"))
        problems = series.verify(ex, self.tree)
        self.assertTrue(problems and problems[0].startswith("git am"), problems)

    def test_new_file_maintainers_must_reach_the_list(self) -> None:
        (self.repo / "selftests").mkdir()
        (self.repo / "selftests/t.c").write_text("// t\n")
        self._manifest("patch 0002-fix.patch\nnew kunit.msg kunit selftests + 0001-hook.patch\n")
        overlay.apply(self.repo, self.tree, Path(self.tmp.name) / "stamp")
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out")
        problems = series.verify(ex, self.tree)
        self.assertEqual(len(problems), 1)
        self.assertIn("tools/testing/selftests/cxl/t.c", problems[0])
        self.assertNotIn("drivers/dax/tests", problems[0])

    def test_manifest_must_use_everything_once(self) -> None:
        bad = [
            ("patch 0002-fix.patch\n", "leaves out: 0001-hook.patch, kunit/Makefile"),
            ("patch 0002-fix.patch\npatch 0002-fix.patch\nnew kunit.msg kunit + 0001-hook.patch\n",
             "more than once: 0002-fix.patch"),
            ("patch 0003-none.patch\n", "series:2: '0003-none.patch' is not a patch"),
            ("new kunit.msg cxl_test\n", "series:2: no new file under 'cxl_test'"),
        ]
        for manifest, error in bad:
            with self.subTest(manifest=manifest):
                self._manifest(manifest)
                with self.assertRaisesRegex(RunnerError, error):
                    series.read_plan(self.repo)

    def test_export_that_misses_the_overlaid_tree_is_refused(self) -> None:
        # The tree moved on after the overlay (a new commit): no longer the same.
        (self.tree / "drivers/dax/bus.c").write_text("int a = 2;\n")
        git(self.tree, "commit", "-qam", "drift")
        with self.assertRaisesRegex(RunnerError, "does not give the overlaid tree"):
            series.export(self.repo, self.tree, Path(self.tmp.name) / "out")


if __name__ == "__main__":
    unittest.main()
