# SPDX-License-Identifier: GPL-2.0
"""Small helpers shared by the runner modules: errors, logging, subprocesses."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable, Mapping, Optional, Sequence


def cache_dir() -> Path:
    """Where downloads, builds of tools and ccache live, outside the repo."""
    env = os.environ
    return Path(env.get("CXL_SR_CACHE") or
                Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cxl-sr-suite")


class RunnerError(Exception):
    """A failure the user can act on; printed as one line, exit status 2."""


def log(msg: str) -> None:
    print(f"cxl-sr: {msg}", file=sys.stderr, flush=True)


# A run started by `cxlsr ci` carries its time budget down as an absolute
# deadline (seconds since the epoch): every hard timeout is cut to what is left.
DEADLINE_ENV = "CXL_SR_DEADLINE"


def clip(timeout: float) -> float:
    """`timeout`, or less when the run's deadline comes first (at least 1 s)."""
    deadline = os.environ.get(DEADLINE_ENV)
    if not deadline:
        return timeout
    try:
        left = float(deadline) - time.time()
    except ValueError:
        return timeout
    return max(1.0, min(timeout, round(left)))


def run(cmd: Sequence[str], cwd: Optional[Path] = None,
        env: Optional[Mapping[str, str]] = None, what: str = "",
        quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run cmd; on failure raise RunnerError naming `what` and the tail of its output."""
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise RunnerError(f"{what or cmd[0]} failed (exit {proc.returncode})"
                          + (f":\n{tail}" if tail and not quiet else ""))
    return proc


def stream(cmd: Sequence[str], timeout: float, out: IO[str],
           cwd: Optional[Path] = None, env: Optional[Mapping[str, str]] = None,
           on_line: Optional[Callable[[str], None]] = None) -> Optional[int]:
    """Run cmd in its own process group, copying its output to `out`.

    On a terminal the output is shown as it comes; otherwise (CI, bots) it
    only goes to `out`, and the caller prints a summary.

    Returns the exit status, or None when `timeout` seconds passed (or the
    run's deadline came, see clip()): the whole process group (QEMU
    included) is then killed, so nothing outlives the run.
    """
    timeout = clip(timeout)
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, text=True,
                            errors="backslashreplace", bufsize=1,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    timed_out = False

    def watchdog() -> None:
        nonlocal timed_out
        while proc.poll() is None:
            if time.monotonic() > deadline:
                timed_out = True
                kill_group(proc.pid)
                return
            time.sleep(0.2)

    dog = threading.Thread(target=watchdog, daemon=True)
    dog.start()
    echo = sys.stderr.isatty()
    for line in proc.stdout:
        out.write(line)
        out.flush()
        if echo:
            sys.stderr.write(line)
        if on_line:
            on_line(line)
    proc.stdout.close()
    proc.wait()
    dog.join()
    kill_group(proc.pid)  # stragglers that closed stdout but kept running
    return None if timed_out else proc.returncode


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
