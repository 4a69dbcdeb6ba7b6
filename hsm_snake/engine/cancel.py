"""Stop a running sweep on any backend; finished results are untouched and `complete` resumes.

- A run on this host: SIGINT to its Snakemake's process group (Snakemake stops, cancels the
  cluster jobs it submitted, and the local scripts see SIGINT; their runners record
  ``cancelled``); SIGKILL to the group if it has not stopped after a grace period. A sweep with
  cluster remotes gets a longer one: its executors scancel/qdel over ssh, wait for the queue
  (``CANCEL_WAIT_S``) and pull the folders back before they exit; a SIGKILL meanwhile would leave
  the cancelled tasks unrecorded.
- Cluster jobs whose tasks still say ``running`` (a run that died, or one on another host):
  ``scancel`` (Slurm) / ``qdel`` (PBS) by their recorded job ids, then the verdict is recorded.
- Jobs and SSH tasks of a killed run that are still queued or running (leftovers.py): scancel /
  qdel / SIGTERM to the remote process group; the next `complete` records and reruns them.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass, field

from hsm_snake.engine import leftovers
from hsm_snake.engine.backends import cluster_remotes
from hsm_snake.engine.lock import holder_record, is_recorded_engine
from hsm_snake.executors.common import of_local_scheduler, run_bounded
from hsm_snake.executors.remote_cluster.cluster import CANCEL_WAIT_S
from hsm_snake.executors.slurm import accounting as slurm_accounting
from hsm_snake.layout import names
from hsm_snake.layout.index import load_index
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import RecordError, read_yaml
from hsm_snake.monitor import scan

SCANCEL_TIMEOUT_S = 30
STOP_GRACE_S = 30.0
# CANCEL_WAIT_S and a few ssh calls (qstat/squeue, qdel/scancel, one rsync pull) on a loaded login node.
CLUSTER_REMOTE_STOP_GRACE_S = CANCEL_WAIT_S + 90.0


@dataclass
class CancelOutcome:
    stopped_run: str | None = None
    cancelled_jobs: list[str] = field(default_factory=list)
    remote_holder: str | None = None
    notes: list[str] = field(default_factory=list)


def stop_grace_s(paths: SweepPaths) -> float:
    """How long a run of the sweep may take to stop after SIGINT before it is killed."""
    try:
        record = read_yaml(paths.project_config)
    except (FileNotFoundError, RecordError):
        record = None  # still stopped, with a local run's grace
    project = (record.get("project") if isinstance(record, dict) else None) or {}
    return CLUSTER_REMOTE_STOP_GRACE_S if cluster_remotes(project) else STOP_GRACE_S


def cancel(paths: SweepPaths, grace_s: float | None = None) -> CancelOutcome:
    outcome = CancelOutcome()
    grace_s = stop_grace_s(paths) if grace_s is None else grace_s
    holder = holder_record(paths)
    if holder is not None:
        if holder.get("host") == socket.gethostname():
            if is_recorded_engine(holder):  # no engine yet while a `complete` waits for leftovers
                _stop_group(int(holder["snakemake_pid"]), paths, grace_s)
                outcome.stopped_run = f"pid {holder.get('pid')} (Snakemake pid {holder['snakemake_pid']})"
            elif holder.get("snakemake_pid"):
                outcome.notes.append(
                    f"the lock record names Snakemake pid {holder['snakemake_pid']!r}, which is not the engine "
                    "that took the lock (a process started since, or an edited record): not signalled"
                )
        else:
            outcome.remote_holder = f"pid {holder.get('pid')} on {holder.get('host')}"
    if outcome.remote_holder is None:
        # Jobs and remote tasks of a killed run, queued ones too (they have no status yet).
        outcome.cancelled_jobs += leftovers.cancel_leftovers(paths, outcome.notes.append)
    state = scan.scan(load_index(paths.root))
    jobs = [
        t.status["job_id"]
        for t in _with_job_ids(state, outcome)
        if t.state in (scan.RUNNING, scan.STALE) and of_local_scheduler(t.status, "slurm")
    ]
    if jobs:
        # An element the leftovers' pass already cancelled is not named twice; its verdict is recorded all the same.
        already = set(outcome.cancelled_jobs)
        not_yet = [job for job in jobs if job not in already]
        if not_yet:
            _scancel(not_yet)
            outcome.cancelled_jobs += not_yet
        slurm_accounting.record_scheduler_verdicts(scan.scan(load_index(paths.root)))
    pbs_tasks = [
        (str(paths.task(t.task.name).dir), t.status["job_id"])
        for t in _with_job_ids(state, outcome)
        if t.state in (scan.RUNNING, scan.STALE) and of_local_scheduler(t.status, "pbs")
    ]
    if pbs_tasks:
        from hsm_snake.executors.pbs import accounting as pbs_accounting

        already = set(outcome.cancelled_jobs)
        outcome.cancelled_jobs += [job for job in pbs_accounting.cancel_tasks(pbs_tasks) if job not in already]
    return outcome


def _with_job_ids(state: scan.SweepState, outcome: CancelOutcome) -> list[scan.TaskState]:
    """Tasks whose status.yaml names a job; a job id that is no scheduler's (``--me`` would make
    scancel cancel every job of the user) is noted and never passed on."""
    tasks = []
    for task in state.tasks:
        job_id = (task.status or {}).get("job_id")
        if not job_id:
            continue
        if names.is_job_id(job_id):
            tasks.append(task)
        else:
            outcome.notes.append(
                f"{task.task.name}: status.yaml names no job id a scheduler gives ({job_id!r}); skipped"
            )
    return tasks


def _stop_group(pgid: int, paths: SweepPaths, grace_s: float) -> None:
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if holder_record(paths) is None:
                return
            time.sleep(0.2)


def _scancel(job_ids: list[str]) -> None:
    job_ids = [job for job in job_ids if names.is_job_id(job)]
    if job_ids:
        run_bounded(["scancel", *job_ids], SCANCEL_TIMEOUT_S)
