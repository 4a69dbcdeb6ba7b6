"""The sbatch call and job-array script of the remote Slurm executor, and what squeue/sbatch answer.

An array element runs ``python -m hsm_snake.runner <remote task folder>`` and nothing else (no
Snakemake on the cluster): the element's index picks its task in a ``case``, the backend's set-up
(modules, pre_script) runs once before the runner, which is told so (``HSM_SETUP_DONE``).
Only hsm-snake's own paths, task names and validated settings appear in the script; parameter
values stay in each task's params.yaml.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from hsm_snake.errors import HsmError

# What sbatch --parsable prints: "<job id>" or "<job id>;<cluster>".
_SBATCH_ANSWER = re.compile(r"^(\d+)(?:;[A-Za-z0-9_.-]+)?$")
# An array element's id as squeue -r / sacct print it.
ELEMENT_ID = re.compile(r"^\d+_\d+$")
ARRAY_ID = re.compile(r"^\d+$")
# squeue states of jobs that have not ended (squeue lists ended ones only until MinJobAge).
ACTIVE_STATES = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}
SQUEUE_ARGV = ["squeue", "--me", "-h", "-r", "-o", "%i|%T"]


class SubmitError(HsmError):
    """sbatch refused or answered something that is not a job id."""


def sbatch_options(resources: dict[str, Any]) -> list[str]:
    """sbatch options of a task from its rule resources (hsm.yaml ``slurm:`` as backends.py maps it,
    memory and time grown by the task's history)."""
    options = []
    if resources.get("runtime"):
        options.append(f"--time={int(resources['runtime'])}")
    if resources.get("mem_mb_per_cpu"):
        options.append(f"--mem-per-cpu={int(resources['mem_mb_per_cpu'])}M")
    elif resources.get("mem_mb"):
        options.append(f"--mem={int(resources['mem_mb'])}M")
    if resources.get("cpus_per_task"):
        options.append(f"--cpus-per-task={int(resources['cpus_per_task'])}")
    for resource, option in (
        ("slurm_partition", "--partition"),
        ("slurm_account", "--account"),
        ("qos", "--qos"),
        ("constraint", "--constraint"),
    ):
        if resources.get(resource):
            options.append(f"{option}={resources[resource]}")
    if resources.get("gpu"):
        model = resources.get("gpu_model")
        options.append(f"--gpus={model}:{int(resources['gpu'])}" if model else f"--gpus={int(resources['gpu'])}")
    if resources.get("slurm_extra"):
        options += shlex.split(str(resources["slurm_extra"]))
    return options


def array_script(
    *,
    comment: str,
    tasks: list[str],
    remote_sweep: str,
    workdir: str,
    runner_path: str,
    python: list[str],
    alias: str,
    setup: str | None,
) -> str:
    """The job script of one array: element i runs the i-th of ``tasks`` (task folder names)."""
    cases = "\n".join(f"  {index}) task={shlex.quote(name)} ;;" for index, name in enumerate(tasks, start=1))
    env = shlex.join(
        [
            f"PYTHONPATH={runner_path}",
            "HSM_BACKEND=slurm",
            f"HSM_HOST_ALIAS={alias}",
            "HSM_SETUP_DONE=slurm",
        ]
    )
    lines = [
        "#!/bin/bash",
        f"# hsm-snake (hsm-remote-slurm): {comment}",
        'case "$SLURM_ARRAY_TASK_ID" in',
        cases,
        '  *) echo "hsm-snake: no task for array index $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
        "esac",
        f"cd {shlex.quote(workdir)} || exit 2",
        f"export {env}",
        'export HSM_JOB_ID="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
    ]
    if setup:
        lines += ["# set-up: hsm.yaml slurm: modules + pre_script", setup]
    lines.append(f'exec {shlex.join([*python, "-m", "hsm_snake.runner"])} {shlex.quote(remote_sweep)}/tasks/"$task"')
    return "\n".join(lines) + "\n"


def sbatch_command(remote_sweep: str, script: str, count: int, options: list[str], job_name: str) -> str:
    """The remote shell command that submits ``script`` (relative to the sweep copy) as an array
    of ``count`` elements; every word quoted."""
    argv = [
        "sbatch",
        "--parsable",
        f"--array=1-{count}",
        f"--job-name={job_name}",
        "--output=logs/slurm/%A_%a.out",
        *options,
        script,
    ]
    return f"cd {shlex.quote(remote_sweep)} && mkdir -p logs/slurm && {shlex.join(argv)}"


def parse_sbatch(stdout: str) -> str:
    """The job id sbatch --parsable printed (its last line; site wrappers may print more first)."""
    lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
    match = _SBATCH_ANSWER.match(lines[-1]) if lines else None
    if match is None:
        raise SubmitError(f"sbatch answered {stdout.strip()[-300:]!r}, not a job id")
    return match.group(1)


def parse_squeue(stdout: str) -> dict[str, str]:
    """``%i|%T`` lines of ``squeue -r`` → {element or job id: state}."""
    states = {}
    for line in stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state:
            states[job] = state.split()[0]
    return states


def checked_job_ids(ids: list[str]) -> list[str]:
    """Job ids about to reach a remote shell: array ids and element ids only."""
    for job in ids:
        if not (ARRAY_ID.match(job) or ELEMENT_ID.match(job)):
            raise SubmitError(f"{job!r} is not a Slurm job id")
    return ids
