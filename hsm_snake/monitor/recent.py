"""The latest sweeps under a project's output folder (``hsm-snake recent``)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hsm_snake.errors import HsmError
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import RecordError, read_record_text
from hsm_snake.monitor import scan
from hsm_snake.monitor.readers import created_time, format_time, load_sweep_index
from hsm_snake.sweep.locate import sweep_dirs


@dataclass
class SweepSummary:
    sweep_id: str
    path: str
    created: str | None
    tasks: int | None = None
    completed: int | None = None
    failed: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    backends: list[str] = field(default_factory=list)
    running_by: str | None = None
    error: str | None = None

    @property
    def in_progress(self) -> bool:
        return self.running_by is not None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["in_progress"] = self.in_progress
        return data


def _sort_key(path: Path) -> float:
    # None only when its task mapping went away since the listing: last.
    created = created_time(SweepPaths(path))
    return 0.0 if created is None else created


def recent_sweeps(
    output_dir: Path, limit: int | None = 10, sample: int = 5, days: float | None = None
) -> list[SweepSummary]:
    """The ``limit`` newest sweeps (by creation time; all with None), newest first; with ``days``,
    only those created in the last ``days`` days."""
    created = {path: _sort_key(path) for path in sweep_dirs(output_dir)}
    if days is not None:
        since = time.time() - days * 86400
        created = {path: when for path, when in created.items() if when >= since}
    found = sorted(created, key=created.__getitem__, reverse=True)
    if limit is not None:
        found = found[: max(0, limit)]
    return [summarize_sweep(path, sample) for path in found]


def summarize_sweep(root: Path, sample: int = 5) -> SweepSummary:
    paths = SweepPaths(root)
    created = created_time(paths)
    summary = SweepSummary(paths.sweep_id, str(root), format_time(created) if created is not None else None)
    try:
        state = scan.scan(load_sweep_index(root))
    except (HsmError, OSError, RecordError, ValueError) as exc:
        summary.error = str(exc).splitlines()[0]
        return summary
    counts = state.counts()
    summary.tasks = len(state.tasks)
    summary.completed = counts.get(scan.COMPLETED, 0)
    summary.failed = counts.get(scan.FAILED, 0)
    summary.counts = dict(counts)
    summary.running_by = state.holder
    summary.backends = _backends(state, sample)
    return summary


def _backends(state: scan.SweepState, sample: int) -> list[str]:
    """Backends seen in the statuses scan read, plus a few completed tasks' (first and last)."""
    seen = {s.get("backend") for t in state.tasks if isinstance(s := t.status, dict)}
    completed = [t.task.name for t in state.tasks if t.state == scan.COMPLETED]
    picks = completed[: sample // 2] + completed[-(sample - sample // 2) :] if completed else []
    files = state.index.paths.task_files
    for name in dict.fromkeys(picks):
        try:
            seen.add(read_record_text(files.status(name)).get("backend"))
        except (OSError, RecordError):
            continue
    return sorted(b for b in seen if isinstance(b, str) and b)
