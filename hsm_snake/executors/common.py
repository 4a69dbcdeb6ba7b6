"""What the backends share: scheduler tools run with a time limit (a cluster whose controller does
not answer, or a laptop with a Slurm client and no controller, must never hang a command that asks
it something), and the settings hsm-snake's executor plugins (hsm-pbs, hsm-ssh) declare alike."""

from __future__ import annotations

import subprocess
from dataclasses import field
from typing import Any


def run_bounded(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess | None:
    """``argv`` with no input, its output captured as text; None when it could not be started or
    did not end within ``timeout_s``."""
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def stdout_of(argv: list[str], timeout_s: float) -> str | None:
    """What ``argv`` printed when it ran and succeeded in time, else None."""
    done = run_bounded(argv, timeout_s)
    return done.stdout if done is not None and done.returncode == 0 else None


def setting(default: Any, help: str) -> Any:
    """An ExecutorSettings field: a ``--<plugin>-<name>`` option with its help text, not read from
    the environment, not required."""
    return field(default=default, metadata={"help": help, "env_var": False, "required": False})
