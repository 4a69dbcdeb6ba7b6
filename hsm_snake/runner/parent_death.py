"""Task scripts end with their runner: a script whose runner died would finish unrecorded and run again.

Locally the runner is a thread of the Snakemake process; kill -9 of Snakemake left the scripts
running as orphans, their results never recorded, so `complete` ran them a second time.
Linux's parent-death signal sends the script SIGTERM when the thread that started it dies
(with the process or alone); a script may catch it to save a checkpoint.

The signal is armed by util-linux's ``setpriv --pdeathsig TERM --`` in front of the script's
argv, not by a ``preexec_fn``: a preexec_fn makes Python fork the whole Snakemake process and run
Python code in the child of a multi-threaded process (unsafe, and ~3 ms per task against
vfork). Where setpriv (or its --pdeathsig) is missing, scripts run as before, without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path

SETPRIV_TIMEOUT_S = 5


@cache
def _setpriv() -> str | None:
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=SETPRIV_TIMEOUT_S).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if "--pdeathsig" in usage else None


def _runnable(program: str, cwd: str, env: Mapping[str, str]) -> bool:
    if "/" in program:
        return os.access(Path(cwd, program), os.X_OK)
    return shutil.which(program, path=env.get("PATH", os.defpath)) is not None


def with_parent_death_signal(argv: list[str], cwd: str, env: Mapping[str, str]) -> list[str]:
    """``argv`` started so that it gets SIGTERM when the thread that starts it dies.

    A program that cannot be started stays unwrapped, so that starting it fails as it would
    without setpriv (a launch error, not setpriv's exit status).
    """
    setpriv = _setpriv()
    if setpriv is None or not _runnable(argv[0], cwd, env):
        return argv
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]
