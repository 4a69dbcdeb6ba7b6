"""The state of every task, read from the sweep directory alone (no Snakemake, no scheduler).

A task is done iff its completion marker exists and Snakemake has not flagged the marker as
incomplete. Only tasks that are not done have their status.yaml read, so scanning 10,000
tasks is a stat per task plus one directory listing. ``with_status`` also reads completed
tasks' records, through the status cache (a stat per task when nothing changed).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hsm_snake.engine.lock import describe_holder, engine_alive, holder_record
from hsm_snake.layout.index import SweepIndex, TaskEntry
from hsm_snake.layout.paths import SweepPaths, TaskFiles
from hsm_snake.layout.records import RecordError, read_record_text
from hsm_snake.monitor.readers import gc_paused
from hsm_snake.monitor.status_cache import StatusCache

COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
RUNNING = "running"
PENDING = "pending"
# A status that says running although no run holds the sweep: its process is gone.
STALE = "stale"
# Finished by the runner but its marker is missing or flagged incomplete, and no live run will record it.
INTERRUPTED = "interrupted"
UNREADABLE = "unreadable"

STATES = (COMPLETED, RUNNING, PENDING, FAILED, CANCELLED, STALE, INTERRUPTED, UNREADABLE)


# The status.yaml fields `status --json` shows for each task.
STATUS_JSON_FIELDS = (
    "attempt",
    "duration_s",
    "host",
    "host_alias",
    "backend",
    "job_id",
    "error_category",
    "error_summary",
    "cuda_visible_devices",
    "tracker_url",
)


@dataclass(slots=True)
class TaskState:
    """One task's state. Not frozen: a frozen dataclass's __init__ costs three times as much
    (object.__setattr__ per field), and scan builds one per task."""

    task: TaskEntry
    state: str
    status: dict[str, Any] | None = None
    note: str | None = None
    marker_mtime: float | None = None
    """When a completed task's marker was written (its finish time, to the sub-second)."""

    @property
    def done(self) -> bool:
        return self.state == COMPLETED

    def as_dict(self) -> dict[str, Any]:
        status = self.status or {}
        record = {"task": self.task.name, "state": self.state, "note": self.note}
        for field in STATUS_JSON_FIELDS:  # a plain loop: a third cheaper than update(zip(...)) here
            record[field] = status.get(field)
        return record


@dataclass(frozen=True)
class SweepState:
    index: SweepIndex
    tasks: list[TaskState]
    holder: str | None

    def counts(self) -> Counter:
        return Counter(t.state for t in self.tasks)

    def missing(self) -> list[TaskState]:
        return [t for t in self.tasks if not t.done]

    def as_dict(self, progress: dict[str, Any] | None = None) -> dict[str, Any]:
        """What `status --json` prints of the sweep, with the figures of monitor.progress."""
        paths = self.index.paths
        with gc_paused():
            tasks = [task.as_dict() for task in self.tasks]
        return {
            "sweep_id": paths.sweep_id,
            "path": str(paths.root),
            "total": len(self.tasks),
            "counts": dict(self.counts()),
            "running_by": self.holder,
            **({"progress": progress} if progress is not None else {}),
            "tasks": tasks,
        }


def scan(index: SweepIndex, *, with_status: bool = False, selection: str | None = None) -> SweepState:
    """Classify every active task. ``with_status`` also reads status.yaml of completed tasks."""
    with gc_paused():
        return _scan(index, with_status, selection)


def _scan(index: SweepIndex, with_status: bool, selection: str | None) -> SweepState:
    paths = index.paths
    incomplete = paths.incomplete_targets()
    record = holder_record(paths)
    holder = None if record is None else describe_holder(record)
    recording = record is not None and engine_alive(record)
    dispatched = _dispatched(paths, record) if recording else {}
    files = paths.task_files
    cache = StatusCache.load(paths.status_cache) if with_status else None
    states = []
    for entry in index.select(selection):
        name = entry.name
        try:
            marker_info = os.stat(files.marker(name))
        except OSError:
            marker_info = None
        if marker_info is not None and not (incomplete and paths.marker_target(name) in incomplete):
            if cache is None:
                states.append(TaskState(entry, COMPLETED, marker_mtime=marker_info.st_mtime))
            else:
                states.append(_completed(entry, files, cache, marker_info))
            continue
        if cache is not None:
            cache.forget(name)
        status_path = files.status(name)
        dispatch = dispatched.get(name)
        # Until this attempt's own status.yaml comes back with the task folder.
        if dispatch is not None and int(dispatch.get("attempt") or 0) > _attempt_of(status_path):
            states.append(dispatch_state(entry, dispatch))
            continue
        try:
            status = read_record_text(status_path)
        except FileNotFoundError:
            states.append(TaskState(entry, PENDING))
            continue
        except RecordError as exc:
            states.append(TaskState(entry, UNREADABLE, note=str(exc)))
            continue
        if "status" not in status:
            states.append(TaskState(entry, UNREADABLE, note=_no_status_line(status_path)))
            continue
        states.append(_classify(entry, status, holder, recording))
    if cache is not None:
        cache.save()
    return SweepState(index, states, holder)


def _completed(entry: TaskEntry, files: TaskFiles, cache: StatusCache, marker: os.stat_result) -> TaskState:
    """A completed task with its status record (a damaged record does not undo its completion)."""
    finished = marker.st_mtime
    try:
        status = cache.completed_record(entry.name, files, marker)
    except FileNotFoundError:
        return TaskState(entry, COMPLETED, marker_mtime=finished)
    except RecordError as exc:
        return TaskState(entry, COMPLETED, note=str(exc), marker_mtime=finished)
    if "status" not in status:
        return TaskState(entry, COMPLETED, note=_no_status_line(files.status(entry.name)), marker_mtime=finished)
    return TaskState(entry, COMPLETED, status, marker_mtime=finished)


def _no_status_line(status_path: str) -> str:
    # e.g. cut off after its header by a full disk or a crashed editor
    return f"{status_path}: has no status: line (truncated?)"


def _dispatched(paths: SweepPaths, holder: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The records of tasks the live engine's SSH executor handed to a host, by task."""
    try:
        names = os.listdir(paths.remote_tasks_dir)
    except OSError:
        return {}
    records = {}
    for name in names:
        try:
            record = read_record_text(str(paths.remote_tasks_dir / name))
        except (OSError, RecordError):
            continue
        if holder.get("snakemake_pid") and record.get("engine_pid") == holder["snakemake_pid"]:
            records[name.removesuffix(".yaml")] = record
    return records


def _attempt_of(status_path: str) -> int:
    try:
        return int(read_record_text(status_path).get("attempt") or 0)
    except (OSError, RecordError, TypeError, ValueError):
        return 0


def dispatch_state(entry: TaskEntry, dispatch: dict[str, Any]) -> TaskState:
    alias = dispatch.get("host_alias")
    status = {
        "status": RUNNING,
        "task_id": entry.name,
        "attempt": dispatch.get("attempt"),
        "started": dispatch.get("dispatched"),
        "host_alias": alias,
        "backend": "ssh",
        "job_id": alias,
    }
    return TaskState(entry, RUNNING, status, f"running on {alias}")


def _classify(entry: TaskEntry, status: dict[str, Any], holder: str | None, recording: bool) -> TaskState:
    """A task that is not done, from its status record."""
    recorded = status.get("status")
    if recorded == RUNNING:
        if holder is None and status.get("backend", "local") == "local":
            return TaskState(entry, STALE, status, "status says running, but no hsm-snake run holds the sweep")
        return TaskState(entry, RUNNING, status)
    if recorded == COMPLETED:
        if recording:
            # The runner's last writes and Snakemake's bookkeeping are not one step: seen mid-run.
            return TaskState(entry, RUNNING, status, "finished; its run is recording it")
        return TaskState(entry, INTERRUPTED, status, "finished, but its run was killed before it was recorded")
    if recorded in (FAILED, CANCELLED):
        return TaskState(entry, recorded, status)
    return TaskState(entry, UNREADABLE, status, f"unknown status {recorded!r}")
