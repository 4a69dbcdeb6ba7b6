"""How hsm-snake's cluster executors (hsm-slurm, hsm-pbs) wait for their jobs.

Snakemake's remote executors check their jobs, then sleep, in a thread of their own; its
shutdown waits for that thread. Here a check looks at every active task's completion record (a
stat of the marker each; status.yaml only once the marker is there) every POLL_S, and asks the
scheduler (squeue/sacct, qstat) only every ``seconds-between-status-checks``: a finished task is
seen within POLL_S of its end, however slow the scheduler's cadence. With many active tasks
the checks space out (at most MARKER_STATS_PER_S stats a second: a network file system serves
every one), up to MAX_POLL_S. The sleep between checks ends as soon as Snakemake stops waiting,
so the run's end does not wait out a poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from hsm_snake.layout.paths import TaskPaths
from hsm_snake.layout.records import RecordError, read_record

POLL_S = 0.5
MAX_POLL_S = 5.0
MARKER_STATS_PER_S = 2000
# How often a sleep between polls looks whether Snakemake has stopped waiting.
STOP_CHECK_S = 0.05


def recorded_done(
    task: TaskPaths | None, job_id: str | None, same_job: Callable[[Any, str], bool] | None = None
) -> bool:
    """The task runner recorded the task completed in job ``job_id`` (the marker is written last).
    ``same_job``: how a recorded job id matches ``job_id`` (default: equal as text)."""
    if task is None or not job_id or not task.marker.exists():
        return False
    try:
        record = read_record(task.status)
    except (FileNotFoundError, RecordError):
        return False
    recorded = record.get("job_id")
    matches = same_job(recorded, job_id) if same_job else str(recorded) == job_id
    return record.get("status") == "completed" and matches


class SchedulerPace:
    """Whether the scheduler is due to be asked: at most once every ``interval_s``."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return False
        self.last = now
        return True


def poll_interval(active: int) -> float:
    """Seconds between checks of ``active`` tasks' markers."""
    return min(MAX_POLL_S, max(POLL_S, active / MARKER_STATS_PER_S))


async def pause(executor: Any, seconds: float = POLL_S) -> None:
    """``seconds``, or less once ``executor`` (a Snakemake RemoteExecutor) stops waiting for its jobs."""
    deadline = time.monotonic() + seconds
    while executor.wait:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, STOP_CHECK_S))
