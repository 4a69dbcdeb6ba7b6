"""How far a sweep is, how fast it goes and when it ends: the extra lines of ``hsm-snake status``.

Kept cheap for 10,000 tasks: finish times of completed tasks are the mtimes of their completion
markers (one stat each, no file read); durations, hosts and backends come from a sample of the
most recently finished tasks' status.yaml, plus the statuses scan already read (tasks that are
not completed). Throughput is the number of attempts finished (completed, failed or cancelled) per
wall second over the last ``window`` finishes of the current run; the ETA divides what is left by
it. Finishes and the mean duration count every finished attempt: failed and cancelled tasks, and
the earlier attempts of retried tasks (``attempts/<n>/status.yaml``, read only for those).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from hsm_snake.engine.lock import holder_record
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import RecordError, read_record_text
from hsm_snake.monitor import scan
from hsm_snake.monitor.readers import created_time, number, parse_time, status_mtime

FINISHED_STATES = (scan.COMPLETED, scan.FAILED, scan.CANCELLED)


@dataclass
class Progress:
    total: int
    completed: int
    finished: int
    """Completed, failed or cancelled: tasks the current run will not start again."""
    in_progress: bool
    """A run holds the sweep, or some task still runs (e.g. on Slurm)."""
    created: float | None = None
    run_since: float | None = None
    started: float | None = None
    last_finish: float | None = None
    elapsed_s: float | None = None
    throughput_per_s: float | None = None
    window: int = 0
    mean_duration_s: float | None = None
    parallelism: float | None = None
    remaining: int = 0
    eta_s: float | None = None
    running_backends: dict[str, int] = field(default_factory=dict)
    running_hosts: dict[str, int] = field(default_factory=dict)
    backends: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    by_host: dict[str, dict[str, int]] = field(default_factory=dict)
    """Tasks per host and state; only when every finished task's status was read (``status --all-status``)."""
    stale: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _label(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def host_label(status: dict[str, Any]) -> str | None:
    """Where a task ran: the SSH pool's alias of the host when it has one, else the machine's name."""
    # _label inlined: called twice per task on every status of a sweep.
    alias = status.get("host_alias")
    if alias and isinstance(alias, str):
        return alias
    host = status.get("host")
    return host if host and isinstance(host, str) else None


def _finish_time(status: dict[str, Any], marker: float | None) -> float | None:
    """When a task finished: its marker's mtime (sub-second) when it agrees with status.yaml, which
    it does unless the sweep was copied without times or a marker was restored; else status.yaml."""
    recorded = parse_time(status.get("finished"))
    if recorded is None:
        started, duration = parse_time(status.get("started")), number(status.get("duration_s"))
        recorded = started + duration if started is not None and duration is not None else None
    if marker is not None and (recorded is None or abs(marker - recorded) <= 2.0):
        return marker
    return recorded


def earlier_attempts(
    paths: SweepPaths, read: list[tuple[str, dict[str, Any]]]
) -> list[tuple[dict[str, Any], float | None]]:
    """(status, when written) of the finished earlier attempts of retried tasks, which the runner
    keeps in attempts/<n>/status.yaml: those attempts kept a slot busy too. Reads files only for
    tasks whose status says attempt > 1."""
    files = paths.task_files
    found = []
    for name, status in read:
        attempt = status.get("attempt")
        if type(attempt) is not int or attempt < 2:  # not isinstance: True is no attempt number
            continue
        for earlier in range(1, attempt):
            path = files.attempt_status(name, earlier)
            try:
                record = read_record_text(path)
                written = os.stat(path).st_mtime
            except (OSError, RecordError):
                continue
            if isinstance(record, dict) and record.get("status") in FINISHED_STATES:
                found.append((record, written))
    return found


def by_host(state: scan.SweepState) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for task in state.tasks:
        if isinstance(task.status, dict) and (host := host_label(task.status)):
            if host not in counts:
                counts[host] = Counter()
            counts[host][task.state] += 1
    return {host: dict(states) for host, states in sorted(counts.items())}


@dataclass
class _Seen:
    """What summarize read of a sweep: the statuses, the finish times, where tasks run."""

    statuses: list[dict[str, Any]] = field(default_factory=list)
    finishes: list[float] = field(default_factory=list)
    running_backends: Counter[str] = field(default_factory=Counter)
    running_hosts: Counter[str] = field(default_factory=Counter)
    stale: list[str] = field(default_factory=list)
    all_known: bool = True

    def add(self, status: dict[str, Any], written: float | None) -> None:
        self.statuses.append(status)
        finished = _finish_time(status, written)
        if finished is not None:
            self.finishes.append(finished)


def _observe(state: scan.SweepState, window: int) -> _Seen:
    """Unfinished tasks' statuses (scan read them), the ``window`` newest completed ones (by marker
    time; all of them when scan read every status), and earlier attempts of retried tasks."""
    paths = state.index.paths
    files = paths.task_files
    seen = _Seen()
    markers: list[tuple[float, str, dict[str, Any] | None]] = []
    named: list[tuple[str, dict[str, Any]]] = []  # (task, status) of every status read
    for task in state.tasks:
        name = task.task.name
        status = task.status if isinstance(task.status, dict) else None
        if task.state == scan.COMPLETED:
            if task.marker_mtime is not None:
                markers.append((task.marker_mtime, name, status))
            continue
        if status is None:
            continue
        named.append((name, status))
        if task.state in (scan.FAILED, scan.CANCELLED):
            seen.add(status, status_mtime(files, name))
            continue
        seen.statuses.append(status)
        if task.state == scan.RUNNING:
            seen.running_backends[_label(status.get("backend")) or "unknown"] += 1
            seen.running_hosts[host_label(status) or "unknown"] += 1
        elif task.state == scan.STALE:
            seen.stale.append(name)
    markers.sort(key=lambda m: m[0])
    seen.all_known = all(m[2] is not None for m in markers)
    for mtime, name, status in markers if seen.all_known else markers[-window:]:
        if status is None:
            try:
                status = read_record_text(files.status(name))
            except (OSError, RecordError):
                seen.finishes.append(mtime)
                continue
        named.append((name, status))
        seen.add(status, mtime)
    for status, written in earlier_attempts(paths, named):
        seen.add(status, written)
    seen.finishes.sort()
    return seen


def _throughput(finishes: list[float], run_since: float | None, window: int) -> tuple[float | None, int]:
    """Tasks per second over the last ``window`` finishes of the current run (all finishes when
    none runs), and how many finishes that is."""
    recent = [t for t in finishes if run_since is None or t >= run_since][-window:]
    if len(recent) >= 2 and recent[-1] > recent[0]:
        return (len(recent) - 1) / (recent[-1] - recent[0]), len(recent)
    if len(recent) == 1 and run_since is not None and recent[0] > run_since:
        return 1 / (recent[0] - run_since), 1
    return None, len(recent)


def _eta(in_progress: bool, remaining: int, throughput: float | None, mean: float | None, running: int) -> float | None:
    if not in_progress:
        return None
    if remaining <= 0:
        return 0.0
    if throughput:
        return remaining / throughput
    return mean * remaining / max(1, running) if mean is not None else None


def summarize(state: scan.SweepState, *, now: float | None = None, window: int = 50) -> Progress:
    """Progress figures of a scanned sweep (``with_status`` is not needed).

    Reads at most ``window`` status.yaml files beyond those scan read: the completed tasks whose
    markers are the newest.
    """
    now = time.time() if now is None else now
    paths = state.index.paths
    counts = state.counts()
    seen = _observe(state, window)
    statuses, finishes = seen.statuses, seen.finishes
    # Every finished task counts, failed ones too: two tasks that ran into a 5-s timeout kept two
    # slots busy, and a mean of the completed ones alone would make the sweep look idle.
    durations = [
        d
        for s in statuses
        if s.get("status") in FINISHED_STATES and (d := number(s.get("duration_s"))) is not None and d >= 0
    ]
    mean_duration = sum(durations) / len(durations) if durations else None

    holder = holder_record(paths) if state.holder else None
    run_since = parse_time((holder or {}).get("since"))
    in_progress = state.holder is not None or counts.get(scan.RUNNING, 0) > 0
    throughput, window_used = _throughput(finishes, run_since, window)

    created = started = created_time(paths)
    if started is None:
        started = min((t for s in statuses if (t := parse_time(s.get("started"))) is not None), default=None)
    last_finish = finishes[-1] if finishes else None
    end = now if in_progress else last_finish
    elapsed = end - started if started is not None and end is not None and end >= started else None

    finished_count = sum(counts.get(s, 0) for s in FINISHED_STATES)
    remaining = len(state.tasks) - finished_count
    eta = _eta(in_progress, remaining, throughput, mean_duration, counts.get(scan.RUNNING, 0))

    return Progress(
        total=len(state.tasks),
        completed=counts.get(scan.COMPLETED, 0),
        finished=finished_count,
        in_progress=in_progress,
        created=created,
        run_since=run_since,
        started=started,
        last_finish=last_finish,
        elapsed_s=elapsed,
        throughput_per_s=throughput,
        window=window_used,
        mean_duration_s=mean_duration,
        parallelism=throughput * mean_duration if throughput and mean_duration else None,
        remaining=remaining,
        eta_s=eta,
        running_backends=dict(seen.running_backends),
        running_hosts=dict(seen.running_hosts),
        backends=sorted({b for s in statuses if (b := _label(s.get("backend")))}),
        hosts=sorted({h for s in statuses if (h := host_label(s))}),
        by_host=by_host(state) if seen.all_known else {},
        stale=seen.stale,
    )
