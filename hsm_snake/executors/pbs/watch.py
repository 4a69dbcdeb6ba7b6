"""When a submitted PBS job leaves the wait, and with which verdict (no Snakemake imports).

Each poll cycle the executor asks qstat once about all active jobs and hands the answer to
:meth:`Watcher.settle` for each job. A job leaves the wait when

- qstat says it finished (C, F, X);
- qstat no longer lists it, ``MISSING_POLLS`` successful polls in a row (Torque with
  ``keep_completed = 0``, PBS Pro without job history, a purged job);
- it has run ``walltime_grace`` seconds past its walltime (it is qdel'ed, verdict ``timeout``);
- while qstat fails: its task's record, written in this job, is final; or qstat has failed for
  ``qstat_failure_timeout`` seconds (then it is given up with an error).

An element of a job array is tracked by (array id, index) until it starts and writes its own
job id (``script.id_file``): from then on it is settled like a job of its own, by its own qstat
entry (``123[4].server`` on PBS Pro and Torque, the element's own Slurm job id under Slurm's
torque wrappers). Until then qstat is asked about the array; an element that has not started when
the array has finished or left qstat fails after ``latency_wait``.

So nothing leaves Snakemake waiting forever. The verdict itself is ``accounting.decide``; a job
that ended leaving neither a completion marker nor a record of its task is given
``latency_wait`` seconds (files written on a compute node may show late on a network file
system) before it counts as failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hsm_snake.executors.pbs import accounting
from hsm_snake.executors.pbs.qstat import JobInfo, QstatAnswer
from hsm_snake.layout.paths import TaskPaths

MISSING_POLLS = 2


@dataclass(frozen=True)
class ArrayElement:
    """Where a task sits in a job array: qsub's id of the array, the task's index in it, and the
    file the element writes its own job id to when it starts."""

    array_id: str
    index: int
    id_file: Path


@dataclass
class Tracking:
    """What the executor saw of one submitted job (kept in SubmittedJobInfo.aux)."""

    task: TaskPaths | None
    script: str
    stdout: str
    stderr: str
    walltime_s: int | None
    # qsub's id of a single job; an array element's own id once it has written it (see learn_job_id).
    job_id: str | None = None
    element: ArrayElement | None = None
    submitted: float = field(default_factory=time.monotonic)
    first_running: float | None = None
    finished_seen: float | None = None
    missing_polls: int = 0
    last_info: JobInfo | None = None
    killed_overdue: bool = False
    how: str = ""  # how the job was found to have ended, when not by its qstat state
    array_ended: float | None = None  # when the array of a not yet started element was seen ended

    @property
    def label(self) -> str:
        """The job's id; for an element that has not told its own, the id it will have on PBS
        (``123[].server`` → ``123[4].server``), else ``<array id>[<index>]``."""
        if self.job_id is not None or self.element is None:
            return self.job_id or ""
        array_id, index = self.element.array_id, self.element.index
        return array_id.replace("[]", f"[{index}]", 1) if "[]" in array_id else f"{array_id}[{index}]"

    def learn_job_id(self) -> str | None:
        """The job id, read from the element's id file once it has started."""
        if self.job_id is None and self.element is not None:
            try:
                self.job_id = self.element.id_file.read_text().strip() or None
            except OSError:
                pass
            if self.job_id is not None:
                self.missing_polls = 0  # from now on: polls that missed the element's own entry
        return self.job_id

    def qstat_id(self) -> str:
        """What to ask qstat about: the job, or the array of an element that has not started."""
        if self.job_id is not None or self.element is None:
            return self.job_id or ""
        return self.element.array_id


class Watcher:
    def __init__(
        self,
        *,
        walltime_grace: float,
        qstat_failure_timeout: float,
        latency_wait: float,
        slack_s: float,
        qdel: Callable[[list[str]], object] = accounting.qdel,
    ) -> None:
        self.walltime_grace = walltime_grace
        self.qstat_failure_timeout = qstat_failure_timeout
        self.latency_wait = latency_wait
        self.slack_s = slack_s
        self.qdel = qdel
        self.failing_since: float | None = None

    def note(self, answer: QstatAnswer, now: float) -> bool:
        """Once per poll cycle; True when qstat has just started failing (worth a warning)."""
        if answer.ok:
            self.failing_since = None
            return False
        started = self.failing_since is None
        if started:
            self.failing_since = now
        return started

    def settle(self, track: Tracking, answer: QstatAnswer, now: float) -> accounting.Verdict | None:
        """The job's verdict once it has left the wait; None while it is queued or running."""
        job_id = track.job_id
        if job_id is None and track.element is not None:
            return self._settle_unstarted(track, track.element, answer, now)
        if job_id is None:
            return None
        if track.finished_seen is None:
            info = answer.get(job_id) if answer.ok else None
            if answer.ok and info is None:
                track.missing_polls += 1
                if track.missing_polls >= MISSING_POLLS:
                    track.finished_seen, track.how = now, "is gone from qstat"
            elif info is not None:
                track.missing_polls = 0
                track.last_info = info
                if info.running and track.first_running is None:
                    track.first_running = now
                if info.finished:
                    track.finished_seen = now
            elif self._record_says_ended(job_id, track):
                track.finished_seen, track.how = now, "ended (its task says so; qstat is failing)"
            elif self._qstat_failed_too_long(now):
                return self._give_up(job_id, answer, now)
            if track.finished_seen is None and self._overdue(track, now):
                self.qdel([job_id])
                track.killed_overdue, track.finished_seen = True, now
                track.how = f"ran {int(self.walltime_grace)} s past its walltime and was qdel'ed"
            if track.finished_seen is None:
                return None
        return self._conclude(job_id, track, now)

    def _settle_unstarted(
        self, track: Tracking, element: ArrayElement, answer: QstatAnswer, now: float
    ) -> accounting.Verdict | None:
        """An array element that has not written its job id: wait while its array is in qstat."""
        if not answer.ok:
            return self._give_up(track.label, answer, now) if self._qstat_failed_too_long(now) else None
        array = answer.get(element.array_id)
        if array is not None and not array.finished:
            track.missing_polls, track.array_ended = 0, None
            return None
        if array is None:
            track.missing_polls += 1
            if track.missing_polls < MISSING_POLLS:
                return None
        if track.array_ended is None:
            track.array_ended = now
        if now - track.array_ended < self.latency_wait:
            return None
        ended = f"finished in state {array.state}" if array is not None else "is gone from qstat"
        return accounting.Verdict(
            False,
            "failed",
            None,
            f"PBS job array {element.array_id} {ended}; its element {element.index} never started its task",
        )

    def _qstat_failed_too_long(self, now: float) -> bool:
        return self.failing_since is not None and now - self.failing_since > self.qstat_failure_timeout

    def _give_up(self, label: str, answer: QstatAnswer, now: float) -> accounting.Verdict:
        failing_s = now - self.failing_since if self.failing_since is not None else 0.0
        return accounting.Verdict(
            False, None, None, f"PBS job {label}: qstat failed for {int(failing_s)} s ({answer.error}); giving up on it"
        )

    def _record_says_ended(self, job_id: str, track: Tracking) -> bool:
        record = accounting.task_record(track.task, job_id) if track.task is not None else None
        return bool(record) and record.get("status") in accounting.FINAL_STATUSES

    def _overdue(self, track: Tracking, now: float) -> bool:
        return (
            track.first_running is not None
            and track.walltime_s is not None
            and now - track.first_running > track.walltime_s + self.walltime_grace
        )

    def _conclude(self, job_id: str, track: Tracking, now: float) -> accounting.Verdict | None:
        info = track.last_info if track.last_info is not None and track.last_info.finished else None
        record = accounting.task_record(track.task, job_id) if track.task is not None else None
        elapsed = (track.finished_seen - track.first_running) if track.first_running is not None else None
        verdict = accounting.decide(
            job_id,
            info,
            marker_exists=track.task is None or track.task.marker.exists(),
            record=record,
            walltime_s=track.walltime_s,
            elapsed_s=elapsed,
            slack_s=self.slack_s,
            how=track.how,
        )
        if track.killed_overdue and not verdict.success:
            return accounting.Verdict(False, "failed", "timeout", f"PBS job {job_id} {track.how}")
        if verdict.undecided and now - track.finished_seen < self.latency_wait:
            return None
        return verdict
