"""The parsed status.yaml of completed tasks, kept between monitoring commands (``.hsm/status-cache``).

Reading every status.yaml of a finished 10,000-task sweep costs one open and read per task (the
floor) and parsing 10,000 records costs more than reading them. A completed task's record does
not change, so ``status --json``, ``results`` and ``report`` reuse what an earlier command read.

An entry is keyed on the identity of the task's completion marker (inode, mtime and ctime in
nanoseconds), which scan stats anyway to decide that the task is done: a hit costs no system call
at all. That is exact because of the order every writer keeps (the runner, the SSH executor's
pull, migrate): the final status.yaml is in place before the marker is created, and a task that
runs again loses its marker before its status.yaml changes, so its next marker is another file.
Only records that say ``completed`` are cached, so a record read in the instant a rerun replaced
it is never kept. The cache never decides a state (scan does, from the marker); the file is
replaced atomically and not fsynced; a missing, damaged or foreign one (or another Python's) is
ignored and rebuilt, and a sweep directory one cannot write to goes without. A kill -9 at any
moment, or a task finishing while a command reads, costs at most a re-read. (A status.yaml edited by hand after its
task completed is out of this protocol: it is seen again once the marker changes, or after
deleting the cache file.)

The file is a header line and the ``marshal`` of the entries, every equal string written once
(marshal refers back to an object it has written): records repeat their keys, host, backend and
command prefix, so 10,000 of them load in a quarter of the time JSON takes. marshal only builds
plain values (the header names the Python version whose format it is); it runs nothing, unlike pickle.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any

from hsm_snake.layout.paths import TaskFiles
from hsm_snake.layout.records import decode_record, parse_json_lines, write_bytes_atomic

HEADER = f"hsm-snake status cache 1, python {sys.version_info[0]}.{sys.version_info[1]}\n".encode()


class StatusCache:
    def __init__(self, path: Path, entries: dict[str, list[Any]]) -> None:
        self.path = path
        self._entries = entries
        self._changed = False

    @classmethod
    def load(cls, path: Path) -> StatusCache:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            entries = marshal.loads(memoryview(data)[len(HEADER) :]) if data.startswith(HEADER) else None
        except (OSError, ValueError, EOFError, TypeError):
            entries = None
        return cls(path, entries if isinstance(entries, dict) else {})

    def completed_record(self, name: str, files: TaskFiles, marker: os.stat_result) -> dict[str, Any]:
        """A completed task's status record: the cached one if its marker is the same file, else
        read (and cached when it is in the form the runner writes and says completed).
        FileNotFoundError and RecordError as :func:`~hsm_snake.layout.records.read_record_text`."""
        key = [marker.st_ino, marker.st_mtime_ns, marker.st_ctime_ns]
        cached = self._entries.get(name)
        if isinstance(cached, list) and len(cached) == 2 and cached[0] == key and isinstance(cached[1], dict):
            return cached[1]
        status_path = files.status(name)
        with open(status_path, "rb") as handle:
            data = handle.read()
        try:
            record = parse_json_lines(data.decode("utf-8"))
        except UnicodeDecodeError:
            record = None
        if record is None or record.get("status") != "completed":
            self.forget(name)
            return decode_record(status_path, data)
        self._entries[name] = [key, record]
        self._changed = True
        return record

    def forget(self, name: str) -> None:
        """Drop a task that is not completed (any more): keeps the file to completed tasks."""
        if self._entries.pop(name, None) is not None:
            self._changed = True

    def save(self) -> None:
        """Write the cache if this scan changed it; a sweep directory one cannot write to goes without."""
        if not self._changed:
            return
        pool: dict[str, str] = {}
        entries = {name: _shared(entry, pool) for name, entry in self._entries.items()}
        try:
            write_bytes_atomic(self.path, HEADER + marshal.dumps(entries), durable=False)
        except OSError:
            return
        self._changed = False
        # The temp files of writers killed mid-write (a few MB each); one still being written just
        # loses its rename, and its command goes without saving.
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _shared(value: Any, pool: dict[str, str]) -> Any:
    """``value`` with each of its strings replaced by the first equal one in ``pool``."""
    if type(value) is str:
        return pool.setdefault(value, value)
    if type(value) is list:
        return [_shared(item, pool) for item in value]
    if type(value) is dict:
        return {pool.setdefault(key, key): _shared(item, pool) for key, item in value.items()}
    return value
