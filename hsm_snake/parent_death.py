"""Task scripts end with their runner: a script whose runner died would finish unrecorded and run again.

Locally the runner is a thread of the Snakemake process; kill -9 of Snakemake left the scripts
running as orphans, their results never recorded, so `complete` ran them a second time.
Linux's parent-death signal sends the script SIGTERM when the thread that started it dies
(with the process or alone); a script may catch it to save a checkpoint.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def preexec_fn() -> Callable[[], None] | None:
    """For ``subprocess.Popen(preexec_fn=...)``; None where the signal does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        # Runs in the child between fork and exec: no imports, no allocation-heavy work.
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the runner died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm
