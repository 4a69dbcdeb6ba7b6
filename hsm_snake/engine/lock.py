"""The sweep lock: one run or complete of a sweep at a time, and who holds it.

An exclusive flock() on ``.hsm/run.lock``. The kernel drops it when the last process holding
the descriptor dies, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hsm_snake.errors import SweepLockedError
from hsm_snake.layout.paths import SweepPaths

HOLDER_RECORD_WAITS = 25  # x 20 ms


@dataclass
class SweepLock:
    """An exclusive flock on ``.hsm/run.lock`` for one run/complete of a sweep.

    The lock file descriptor is inherited by Snakemake, so the lock lives exactly as long as
    the last process of the run: a kill -9 of hsm-snake alone leaves Snakemake holding it, and
    the kernel drops it when everything is gone (no stale lock to detect or clean).
    """

    paths: SweepPaths
    fd: int | None = None

    def acquire(self, command: list[str]) -> None:
        self.paths.lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise SweepLockedError(
                f"sweep {self.paths.sweep_id} is already being run by {holder}.\n"
                f"  hint: wait for it to finish, watch it with `hsm-snake status {self.paths.sweep_id}`, "
                f"or stop it with `hsm-snake cancel {self.paths.sweep_id}`"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        os.set_inheritable(fd, True)
        self.fd = fd

    def note_engine_pid(self, pid: int) -> None:
        holder = json.loads(os.pread(self.fd, 65536, 0) or b"{}")
        holder["snakemake_pid"] = pid
        holder["snakemake_started"] = process_start(pid)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, (json.dumps(holder) + "\n").encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> SweepLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder_record(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 65536, 0) or b"{}")
    except ValueError:
        return {}


def _read_holder(fd: int) -> str:
    # A holder that has just taken the lock writes its record a moment later: wait for it a little.
    for _ in range(HOLDER_RECORD_WAITS):
        record = _holder_record(fd)
        if record:
            break
        time.sleep(0.02)
    return describe_holder(record)


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process"
    text = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
    if holder.get("snakemake_pid"):
        text += f" (Snakemake pid {holder['snakemake_pid']})"
    return text


def engine_alive(holder: dict[str, Any]) -> bool:
    """Whether the holder's Snakemake still runs (another host's: assumed so)."""
    pid = holder.get("snakemake_pid")
    if not pid:
        return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/<pid>/stat field 22): with the
    pid, it names one process, whereas a pid alone may be reused by another."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def is_recorded_engine(holder: dict[str, Any]) -> bool:
    """Whether the holder record's Snakemake pid still is that Snakemake (same start time) on this
    host: only then may `cancel` signal its process group."""
    pid, started = holder.get("snakemake_pid"), holder.get("snakemake_started")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or not isinstance(started, int):
        return False
    return holder.get("host") == socket.gethostname() and process_start(pid) == started


def lock_holder(paths: SweepPaths) -> str | None:
    """Who runs the sweep now, or None: asks the kernel, so a dead holder never counts."""
    holder = holder_record(paths)
    return None if holder is None else describe_holder(holder)


def holder_record(paths: SweepPaths) -> dict[str, Any] | None:
    """The holder's record (pid, host, since, command, snakemake_pid), or None when free."""
    try:
        fd = os.open(paths.lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_record(fd)
    finally:
        os.close(fd)
    return None
