"""What Slurm says about a sweep's jobs, recorded into the tasks' status.yaml.

The runner inside a job cannot always record why it ended: a cgroup out-of-memory kill, a
walltime kill or an scancel may take the runner down with the script, or leave it seeing only
"killed by SIGKILL". After a run, one ``sacct`` call for all such tasks gives the scheduler's
verdict (OUT_OF_MEMORY, TIMEOUT, CANCELLED, NODE_FAIL, PREEMPTED) and its reason.
Every call is bounded by a timeout: a machine whose Slurm tools cannot reach a controller must
never hang a command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hsm_snake.executors.common import of_local_scheduler, stdout_of
from hsm_snake.layout import names
from hsm_snake.layout.records import read_record
from hsm_snake.layout.status import now_iso, write_status
from hsm_snake.monitor import scan
from hsm_snake.runner import failures

SACCT_TIMEOUT_S = 30

# Slurm job state → (status, error category). States not listed leave the runner's record alone.
SLURM_STATES = {
    "OUT_OF_MEMORY": ("failed", failures.OUT_OF_MEMORY),
    "TIMEOUT": ("failed", failures.TIMEOUT),
    "DEADLINE": ("failed", failures.TIMEOUT),
    "CANCELLED": ("cancelled", failures.CANCELLED),
    "NODE_FAIL": ("failed", "node_fail"),
    "BOOT_FAIL": ("failed", "node_fail"),
    "PREEMPTED": ("failed", "preempted"),
}
# Runner categories that say "something outside killed me": the scheduler knows better.
OVERRIDABLE = {None, failures.KILLED, failures.CANCELLED}


def parse_sacct(text: str) -> dict[str, tuple[str, str, str]]:
    """``JobID|State|ExitCode|Reason`` lines (steps included) → {job id: (state, exit, reason)}.

    A job's verdict is the most telling state among the job and its steps: with the slurm
    plugin the task runs in a step, and an out-of-memory step leaves the job itself only FAILED.
    States such as ``CANCELLED by 0`` keep only their first word.
    """
    jobs: dict[str, tuple[str, str, str]] = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 4 or not fields[0]:
            continue
        step_id, state, exit_code, reason = fields[:4]
        job_id = step_id.split(".")[0]
        found = (state.split()[0] if state else "", exit_code, reason)
        if job_id not in jobs or _rank(found[0]) < _rank(jobs[job_id][0]):
            jobs[job_id] = found
    return jobs


def _rank(state: str) -> int:
    """Lower is more telling: the scheduler's own kills first, in SLURM_STATES order."""
    order = list(SLURM_STATES)
    return order.index(state) if state in order else len(order)


def parse_requests(text: str) -> dict[str, int]:
    """``JobID|State|ExitCode|Reason|ReqMem`` lines → {job id: memory request in MB} (the job's
    own line: its steps have none)."""
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    requests = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 5 or "." in fields[0]:
            continue
        request = fields[4].rstrip("nc")  # older Slurm: 4000Mn per node, 500Mc per CPU
        if request[-1:].upper() in units and request[:-1].replace(".", "", 1).isdigit():
            requests[fields[0]] = max(1, round(float(request[:-1]) * units[request[-1].upper()]))
    return requests


def sacct_argv(job_ids: list[str]) -> list[str]:
    """The one sacct call that answers for ``job_ids`` (parsed by :func:`parse_sacct` and
    :func:`parse_requests`)."""
    return ["sacct", "-n", "-P", "-o", "JobID,State,ExitCode,Reason,ReqMem", "-j", ",".join(job_ids)]


def query_sacct(job_ids: list[str]) -> tuple[dict[str, tuple[str, str, str]], dict[str, int]]:
    """(verdicts, memory requests in MB) of the jobs."""
    job_ids = [job for job in job_ids if names.is_job_id(job)]
    if not job_ids:
        return {}, {}
    out = stdout_of(sacct_argv(job_ids), SACCT_TIMEOUT_S)
    return (parse_sacct(out), parse_requests(out)) if out is not None else ({}, {})


def candidates(state: scan.SweepState) -> list[scan.TaskState]:
    """Slurm tasks that are not done and whose record may not tell the whole story."""
    found = []
    for task in state.tasks:
        status = task.status or {}
        if task.done or not of_local_scheduler(status, "slurm"):
            continue
        if status.get("status") == "running" or status.get("error_category") in OVERRIDABLE:
            found.append(task)
    return found


def record_scheduler_verdicts(state: scan.SweepState) -> list[str]:
    """Write Slurm's verdict into status.yaml of tasks it killed; return their names."""
    tasks = candidates(state)
    verdicts, requests = query_sacct([t.status["job_id"] for t in tasks])
    updated = []
    for task in tasks:
        found = verdicts.get(task.status["job_id"])
        if not found or found[0] not in SLURM_STATES:
            continue
        path = state.index.paths.task(task.task.name).status
        record_verdict(path, read_record(path), task.status["job_id"], found, requests.get(task.status["job_id"]))
        updated.append(task.task.name)
    return updated


def record_verdict(
    path: Path, record: dict[str, Any], job_id: str, found: tuple[str, str, str], mem_request_mb: int | None = None
) -> None:
    """Write Slurm's verdict ``found`` (state, exit code, reason; state in SLURM_STATES) about
    ``job_id`` into the task's status ``record`` at ``path``, with the job's memory request: what it
    had (the cluster's default when hsm.yaml asks for none) is the base a retry's memory grows from
    (runner/escalation.py)."""
    slurm_state, exit_code, reason = found
    status_name, category = SLURM_STATES[slurm_state]
    summary = f"Slurm job {job_id} ended {slurm_state} (exit {exit_code}"
    summary += f", reason {reason})" if reason and reason != "None" else ")"
    record = dict(record)
    record.update(status=status_name, error_category=category, error_summary=summary)
    record["finished"] = record.get("finished") or now_iso()
    record["scheduler_state"] = slurm_state
    if mem_request_mb is not None:
        record["mem_request_mb"] = mem_request_mb
    write_status(path, record)
