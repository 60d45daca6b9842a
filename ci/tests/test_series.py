# SPDX-License-Identifier: GPL-2.0
import os
import subprocess
import tempfile
import unittest
from unittest import mock
from pathlib import Path

from cxlsr import overlay, series
from cxlsr.util import RunnerError

from .helpers import base_tree, git

WHO = "Send Er <sender@kernel.org>"

# Sends files under drivers/ to the list, nothing else: enough MAINTAINERS.
GET_MAINTAINER = """#!/usr/bin/perl
my $f = $ARGV[-1];
print "Main Tainer <m\\@example.org> (maintainer:DAX)\\n";
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
        (ov / "export/kunit.msg").write_text("dax: Add tests\n\nWhy, x_case_one.\n")
        (self.repo / "kunit/x_kunit.c").write_text("KUNIT_CASE(x_case_one),\n")
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
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out", WHO)
        self.assertEqual(ex.subjects, ["dax/bus: Fix a", "dax: Add tests"])
        self.assertEqual([p.name[:5] for p in ex.patches], ["0000-", "0001-", "0002-"])
        self.assertEqual({p.parent.name for p in ex.patches}, {"cxl"})
        cover = ex.patches[0].read_text()
        self.assertIn(f"From: {WHO}", cover)
        self.assertIn("The subject", cover)
        self.assertIn("The blurb.", cover)
        self.assertNotIn("***", cover)
        tests = ex.patches[2].read_text()
        self.assertIn(f"From: {WHO}", tests)
        self.assertIn(f"Signed-off-by: {WHO}", tests)
        self.assertNotIn("Pat Ch", tests)
        self.assertIn("To: Main Tainer <m@example.org>", tests)
        self.assertIn("Cc: someone <x@example.org>", tests)
        self.assertIn("drivers/dax/tests/x_kunit.c", tests)
        self.assertIn("+obj-y += tests/", tests)
        self.assertEqual(series.verify(ex, self.tree), [])
        # The KUnit patch may name its own cases, which it adds.
        self.assertEqual(series.lint(ex, series.test_names(self.repo), None), [])
        # The scratch worktrees are gone.
        self.assertNotIn("cxl-sr-", git(self.tree, "worktree", "list"))

    def test_tampered_series_does_not_apply(self) -> None:
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out", WHO)
        ex.patches[1].write_text(ex.patches[1].read_text().replace("-int a;", "-int b;"))
        problems = series.verify(ex, self.tree)
        self.assertTrue(problems and problems[0].startswith("git am"), problems)

    def test_new_file_maintainers_must_reach_the_list(self) -> None:
        (self.repo / "selftests").mkdir()
        (self.repo / "selftests/t.c").write_text("// t\n")
        self._manifest("patch 0002-fix.patch\nnew kunit.msg kunit selftests + 0001-hook.patch\n")
        overlay.apply(self.repo, self.tree, Path(self.tmp.name) / "stamp")
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out", WHO)
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
            series.export(self.repo, self.tree, Path(self.tmp.name) / "out", WHO)

    def test_series_of_their_own_apply_alone(self) -> None:
        self._manifest("series fix\npatch 0002-fix.patch\nseries cxl\n"
                       "new kunit.msg kunit + 0001-hook.patch\ncover cover\n")
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out", WHO)
        self.assertEqual([p.name for p in ex.parts], ["fix", "cxl"])
        self.assertEqual([p.relative_to(ex.out).as_posix()[:9] for p in ex.patches],
                         ["fix/0001-", "cxl/0000-", "cxl/0001-"])
        self.assertEqual(series.verify(ex, self.tree), [])
        # A series that needs another one first is refused.
        self._patch("0003-more.patch", "drivers/dax/bus.c", "int a = 3;\n", "dax/bus: More")
        (self.repo / "kernel-tree-overlay/series").write_text(
            "0001-hook.patch\n0002-fix.patch\n0003-more.patch\n")
        overlay.apply(self.repo, self.tree, Path(self.tmp.name) / "stamp")
        self._manifest("series fix\npatch 0002-fix.patch\nseries more\npatch 0003-more.patch\n"
                       "series cxl\nnew kunit.msg kunit + 0001-hook.patch\n")
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out", WHO)
        problems = series.verify(ex, self.tree)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("series more does not apply alone", problems[0])

    def test_lint_reads_each_mail_as_a_reviewer(self) -> None:
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out", WHO)
        fix = ex.patches[1]
        text = fix.read_text()
        names = series.test_names(self.repo)
        self.assertEqual(names, ["x_case_one"])
        cases = [
            ("Signed-off-by: " + WHO, "Signed-off-by: Other <o@kernel.org>\nSigned-off-by: " + WHO,
             "signed off by"),
            ("Signed-off-by: " + WHO, "Seen by the cxl-sr-suite kselftest.\n\nSigned-off-by: " + WHO,
             "names our tests ('cxl-sr-suite')"),
            ("Signed-off-by: " + WHO, "Guarded by x_case_one.\n\nSigned-off-by: " + WHO,
             "names our tests ('x_case_one')"),
            ("Signed-off-by: " + WHO, "Fixes: 1234 (\"short\")\nSigned-off-by: " + WHO,
             "malformed 'Fixes: 1234"),
            ("Signed-off-by: " + WHO, "Cc: stable@vger.kernel.org\nSigned-off-by: " + WHO,
             "Cc: stable without a Fixes:"),
            ("From: " + WHO, "From: Pat Ch <pat@example.org>", "From: is not the sender"),
            ("] dax/bus: Fix a", "] [PATCH 2/2] dax/bus: Fix a", "patch prefix inside"),
        ]
        for old, new, said in cases:
            with self.subTest(said=said):
                self.assertIn(old, text)
                fix.write_text(text.replace(old, new, 1))
                problems = series.lint(ex, names, None)
                self.assertEqual(len(problems), 1, problems)
                self.assertIn(said, problems[0])
        fix.write_text(text)
        self.assertEqual(series.lint(ex, names, None), [])

    def test_fixes_resolve_in_a_history(self) -> None:
        ex = series.export(self.repo, self.tree, Path(self.tmp.name) / "out", WHO)
        fix = ex.patches[1]
        sha = git(self.tree, "rev-parse", "cxl-sr-base").strip()[:12]
        text = fix.read_text()
        for subject, n in (("base", 0), ("not its subject", 1)):
            fix.write_text(text.replace("Signed-off-by:", f'Fixes: {sha} ("{subject}")\n'
                                        "Signed-off-by:", 1))
            self.assertEqual(len(series.lint(ex, [], self.tree)), n)

    def test_sender_is_the_git_identity(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        home = Path(self.tmp.name) / "home"
        home.mkdir()
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
        repo = Path(self.tmp.name) / "r"
        repo.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
        with mock.patch.dict(os.environ, env, clear=True):
            with self.assertRaisesRegex(RunnerError, "set user.name and user.email"):
                series.sender(repo)
            os.environ.update(GIT_AUTHOR_NAME="Send Er", GIT_AUTHOR_EMAIL="s@group.example")
            with self.assertRaisesRegex(RunnerError, "placeholder address"):
                series.sender(repo)
            os.environ.update(GIT_AUTHOR_EMAIL="sender@kernel.org")
            self.assertEqual(series.sender(repo), WHO)


if __name__ == "__main__":
    unittest.main()
