"""The state of every task, read from the sweep directory alone (no Snakemake, no scheduler).

A task is done iff its completion marker exists and Snakemake has not flagged the marker as
incomplete. Only tasks that are not done have their status.yaml read, so scanning 10,000
tasks is a stat per task plus one directory listing.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hsm_snake.engine.lock import describe_holder, engine_alive, holder_record
from hsm_snake.layout.index import SweepIndex, TaskEntry
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import RecordError, read_record_text

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


@dataclass(frozen=True)
class TaskState:
    task: TaskEntry
    state: str
    status: dict[str, Any] | None = None
    note: str | None = None

    @property
    def done(self) -> bool:
        return self.state == COMPLETED


@dataclass(frozen=True)
class SweepState:
    index: SweepIndex
    tasks: list[TaskState]
    holder: str | None

    def counts(self) -> Counter:
        return Counter(t.state for t in self.tasks)

    def missing(self) -> list[TaskState]:
        return [t for t in self.tasks if not t.done]


def scan(index: SweepIndex, *, with_status: bool = False, selection: str | None = None) -> SweepState:
    """Classify every active task. ``with_status`` also reads status.yaml of completed tasks."""
    paths = index.paths
    incomplete = paths.incomplete_targets()
    record = holder_record(paths)
    holder = None if record is None else describe_holder(record)
    recording = record is not None and engine_alive(record)
    dispatched = _dispatched(paths, record) if recording else {}
    # Plain strings, not Path objects: pathlib's joins cost more than the stat calls at 10k tasks.
    tasks_dir = str(paths.tasks_dir)
    marker, status_name = paths.task("x").marker.name, paths.task("x").status.name
    states = []
    for entry in index.select(selection):
        task_dir = f"{tasks_dir}/{entry.name}"
        done = os.path.exists(f"{task_dir}/{marker}") and paths.marker_target(entry.name) not in incomplete
        dispatch = None if done else dispatched.get(entry.name)
        # Until this attempt's own status.yaml comes back with the task folder.
        if dispatch is not None and int(dispatch.get("attempt") or 0) > _attempt_of(f"{task_dir}/{status_name}"):
            states.append(dispatch_state(entry, dispatch))
            continue
        if done and not with_status:
            states.append(TaskState(entry, COMPLETED))
            continue
        try:
            status = read_record_text(f"{task_dir}/{status_name}")
        except FileNotFoundError:
            states.append(TaskState(entry, COMPLETED if done else PENDING))
            continue
        except RecordError as exc:
            states.append(TaskState(entry, COMPLETED if done else UNREADABLE, note=str(exc)))
            continue
        if "status" not in status:  # e.g. cut off after its header by a full disk or a crashed editor
            note = f"{task_dir}/{status_name}: has no status: line (truncated?)"
            states.append(TaskState(entry, COMPLETED if done else UNREADABLE, note=note))
            continue
        states.append(_classify(entry, status, done, holder, recording))
    return SweepState(index, states, holder)


def _dispatched(paths: SweepPaths, holder: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The records of tasks the live engine's SSH executor handed to a host, by task."""
    try:
        names = os.listdir(paths.remote_tasks_dir)
    except OSError:
        return {}
    records = {}
    for name in names:
        try:
            record = read_record_text(f"{paths.remote_tasks_dir}/{name}")
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


def _classify(entry: TaskEntry, status: dict[str, Any], done: bool, holder: str | None, recording: bool) -> TaskState:
    if done:
        return TaskState(entry, COMPLETED, status)
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
