"""How a PBS job ended, and what the task's status.yaml should say about it.

Success is decided by the task's completion marker, not by the scheduler: every finished job
shows state C on Torque-style front ends (Slurm's torque wrappers report no exit status at
all), while the task runner inside the job writes ``tasks/<task>/.completed`` only after the
user's script exited cleanly, and records the real outcome in ``status.yaml``. So a finished job
succeeded when its marker exists (or the runner's record for this very job says ``completed``,
and the marker is only slow to show on a network file system), unless PBS reports a nonzero
``exit_status`` (PBS Pro ``qstat -x -f -F json``, Torque ``qstat -f``/``-x``), which is used
when present.

The scheduler's word matters for why a job was killed, which the runner may not live to
record: walltime kills are ``timeout`` (exit status -11 on Torque and PBS Pro, -29 on newer
PBS Pro, or a signal kill — 271 SIGTERM, 265 SIGKILL — once the job used its walltime), a qdel
is ``cancelled``. Only records that carry this job's id and do not already name a more specific
cause (``_OVERRIDABLE``) are rewritten, as for Slurm in ``slurm_accounting.py``.

No Snakemake imports: ``hsm-snake cancel`` uses this module.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsm_snake.executors.common import run_bounded
from hsm_snake.executors.pbs.qstat import JobInfo, short_id
from hsm_snake.layout import names
from hsm_snake.layout.paths import TaskPaths
from hsm_snake.layout.records import RecordError, read_record
from hsm_snake.layout.status import now_iso, write_status
from hsm_snake.runner import failures

QDEL_TIMEOUT_S = 60
# Exit statuses PBS gives a job it killed for its walltime: Torque JOB_EXEC_OVERLIMIT_WT and
# PBS Pro's -11, newer PBS Pro JOB_EXEC_KILL_WALLTIME.
WALLTIME_EXITS = frozenset({-11, -29})
# PBS reports a job killed by signal N as 256 + N (some shells: 128 + N).
SIGTERM_EXITS = frozenset({271, 143})
SIGKILL_EXITS = frozenset({265, 137})
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
# Runner categories that say "something outside killed me": the scheduler knows better.
_OVERRIDABLE = {None, failures.KILLED, failures.CANCELLED}


@dataclass(frozen=True)
class Verdict:
    """``success``; else the task's status/category (None: the runner's own record stands);
    ``undecided``: no evidence yet either way (the caller waits a little, then fails it)."""

    success: bool
    status: str | None = None
    category: str | None = None
    summary: str = ""
    undecided: bool = False


def same_job(a: Any, b: Any) -> bool:
    return bool(a) and bool(b) and (str(a) == str(b) or short_id(str(a)) == short_id(str(b)))


def task_record(task: TaskPaths, job_id: str) -> dict[str, Any] | None:
    """The task's status.yaml if the runner wrote it in this PBS job, else None."""
    try:
        record = read_record(task.status)
    except (FileNotFoundError, RecordError):
        return None
    return record if same_job(record.get("job_id"), job_id) else None


def _walltime_text(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def decide(
    job_id: str,
    info: JobInfo | None,
    *,
    marker_exists: bool,
    record: dict[str, Any] | None,
    walltime_s: int | None,
    elapsed_s: float | None,
    slack_s: float,
    cancelled_by_us: bool = False,
    how: str = "",
) -> Verdict:
    """The outcome of a PBS job that is no longer queued or running.

    ``info``: qstat's last word on the finished job (None when it is gone from qstat);
    ``record``: the runner's status.yaml written in this job (see ``task_record``);
    ``walltime_s``: the walltime requested; ``elapsed_s``: how long hsm-snake saw it run
    (used when PBS does not report ``resources_used.walltime``).
    """
    exit_status = info.exit_status if info is not None else None
    record_status = (record or {}).get("status")
    if exit_status == 0 or (exit_status is None and (marker_exists or record_status == "completed")):
        return Verdict(True)

    # The walltime hsm-pbs requested is exact; qstat's Resource_List.walltime is garbage on some
    # front ends (Slurm's torque wrappers).
    limit = walltime_s or (info.walltime_limit_s if info is not None else None)
    used: float | None = info.used_walltime_s if info is not None and info.used_walltime_s is not None else elapsed_s
    comment = ((info.comment if info is not None else None) or "").lower()
    ran_out = used is not None and limit is not None and used >= limit - slack_s
    ended = f"PBS job {job_id} " + (how or (f"ended in state {info.state}" if info is not None else "ended"))
    if exit_status is not None:
        ended += f" with exit_status {exit_status}"

    def timeout() -> Verdict:
        return Verdict(
            False,
            "failed",
            failures.TIMEOUT,
            f"{ended}: walltime {_walltime_text(limit)} exceeded (ran {_walltime_text(_secs(used))})",
        )

    if exit_status in WALLTIME_EXITS or ("walltime" in comment and "exceed" in comment):
        return timeout()
    if exit_status is None or exit_status in SIGTERM_EXITS or exit_status in SIGKILL_EXITS:
        if ran_out:
            return timeout()
        if cancelled_by_us or "deleted" in comment or "qdel" in comment:
            return Verdict(False, "cancelled", failures.CANCELLED, f"{ended}: cancelled (qdel)")
        if exit_status in SIGTERM_EXITS:
            if used is None:
                # PBS Pro kills at the walltime with SIGTERM too; without the time used, the
                # walltime is the likelier cause than a qdel nobody here issued.
                return timeout()
            return Verdict(False, "cancelled", failures.CANCELLED, f"{ended}: killed by SIGTERM (qdel)")
        if exit_status in SIGKILL_EXITS:
            if used is None:
                return timeout()
            return Verdict(False, "failed", failures.KILLED, f"{ended}: killed by SIGKILL")
        if record is None and not marker_exists:
            return Verdict(False, "failed", None, f"{ended} before its task wrote a status", undecided=True)
        if record_status not in FINAL_STATUSES:
            return Verdict(False, "failed", failures.KILLED, f"{ended} while its task was running")
        return Verdict(False, record_status, None, f"{ended}: {record.get('error_summary') or record_status}")
    # A plain nonzero exit: the task (or Snakemake in the job) failed; the runner said why.
    if record is not None and record_status not in FINAL_STATUSES:
        return Verdict(False, "failed", failures.KILLED, f"{ended} while its task was running")
    return Verdict(False, "failed", None, ended)


def _secs(value: float | None) -> int | None:
    return None if value is None else int(value)


def record_verdict(task: TaskPaths, job_id: str, verdict: Verdict, scheduler_state: str | None = None) -> bool:
    """Write a failed job's verdict into status.yaml when the runner could not; True if written.

    Only a record the runner wrote in this job is touched, and only when it is still
    ``running`` or names no more specific cause than killed/cancelled.
    """
    if verdict.success or verdict.category is None and verdict.status is None:
        return False
    record = task_record(task, job_id)
    if record is None:
        return False
    still_running = record.get("status") not in FINAL_STATUSES
    if not still_running and record.get("error_category") not in _OVERRIDABLE:
        return False
    if record.get("status") == "completed":
        return False
    category = verdict.category or (failures.KILLED if still_running else record.get("error_category"))
    if not still_running and category == record.get("error_category") and verdict.category is None:
        return False
    record.update(
        status=verdict.status or "failed",
        error_category=category,
        error_summary=verdict.summary,
        finished=record.get("finished") or now_iso(),
        scheduler_state=scheduler_state,
    )
    write_status(task.status, record)
    return True


def qdel(job_ids: list[str], command: str = "qdel") -> subprocess.CompletedProcess | None:
    """One qdel call for all ids (finished ones make qdel complain; that is fine)."""
    job_ids = [job for job in job_ids if names.is_job_id(job)]  # never an option such as --me
    if not job_ids:
        return None
    return run_bounded([command, *job_ids], QDEL_TIMEOUT_S)


def record_cancelled(tasks: list[tuple[TaskPaths, str]]) -> list[str]:
    """After a qdel: tasks whose runner started in the job and did not finish → ``cancelled``."""
    done = []
    for task, job_id in tasks:
        verdict = Verdict(False, "cancelled", failures.CANCELLED, f"PBS job {job_id} cancelled (qdel)")
        if record_verdict(task, job_id, verdict, scheduler_state="qdel"):
            done.append(task.name)
    return done


def cancel_tasks(tasks: list[tuple[Path, str]]) -> list[str]:
    """qdel the PBS jobs of running tasks (one call) and record them cancelled; the job ids."""
    if not tasks:
        return []
    job_ids = [job_id for _, job_id in tasks]
    qdel(job_ids)
    record_cancelled([(TaskPaths(Path(task_dir)), job_id) for task_dir, job_id in tasks])
    return job_ids
