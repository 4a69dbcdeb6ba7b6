"""A full disk during a run, named: which file could not be written and how much room is left.

Snakemake's own message on a full disk is a logging traceback, often cut short because its log
is on the same full disk. State writes are atomic (records.py), so what was recorded before
stays; what the user needs is what happened and that `complete` resumes once there is room.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass

from hsm_snake.layout.paths import SweepPaths

_ENOSPC = re.compile(r"No space left on device(?:: '([^']+)')?")
# Less than this left on the sweep's file system after a failed run counts as full: a status
# write needs a few KiB, and Snakemake's log lines fill the last pages before it gives up.
NEARLY_FULL_BYTES = 64 * 1024


@dataclass(frozen=True)
class DiskFull:
    folder: str
    free_bytes: int
    file: str | None = None  # the file a write failed on, when the error named it


def free_bytes(folder: str | os.PathLike) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def engine_log_size(paths: SweepPaths) -> int:
    try:
        return paths.engine_log.stat().st_size
    except FileNotFoundError:
        return 0


def after_engine(paths: SweepPaths, log_from: int) -> DiskFull | None:
    """Whether a failed engine ran out of disk: its log (from ``log_from`` on) says so, or the
    sweep's file system has (next to) nothing left."""
    try:
        with open(paths.engine_log, encoding="utf-8", errors="replace") as log:
            log.seek(log_from)
            found = list(_ENOSPC.finditer(log.read()))
    except FileNotFoundError:
        found = []
    free = free_bytes(paths.root)
    if not found and free >= NEARLY_FULL_BYTES:
        return None
    named = [match.group(1) for match in found if match.group(1)]
    return DiskFull(str(paths.root), free, named[-1] if named else None)


def from_error(paths: SweepPaths, exc: OSError) -> DiskFull | None:
    """hsm-snake's own write failed for lack of space (None: another error)."""
    if exc.errno != errno.ENOSPC:
        return None
    return DiskFull(str(paths.root), free_bytes(paths.root), exc.filename)


def describe(full: DiskFull) -> str:
    room = f"{full.folder}: {full.free_bytes} bytes free"
    if full.file:
        return f"No space left on device: could not write {full.file} ({room})"
    return f"No space left on device: the run stopped writing to its sweep folder ({room}; its error names no file)"
