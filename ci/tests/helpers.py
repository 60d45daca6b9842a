# SPDX-License-Identifier: GPL-2.0
"""What several test modules need."""
import subprocess
from pathlib import Path

from cxlsr.source import GIT


def git(cwd: Path, *args: str) -> str:
    """git with the runner's identity and settings; its output, or an exception."""
    return subprocess.run(GIT + list(args), cwd=cwd, check=True, text=True,
                          stdout=subprocess.PIPE).stdout


def base_tree(tree: Path, files: dict) -> None:
    """A miniature imported base: `files` (path -> text) committed and tagged
    cxl-sr-base, as source.import_tree() leaves a real one."""
    for path, text in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)
    git(tree, "init", "-q", "-b", "base")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "base")
    git(tree, "tag", "cxl-sr-base")
