"""Render a PBS job script and its qsub command for one Snakemake job.

The resources come from ``backends.pbs_resources`` (hsm.yaml ``pbs:``), as the task rule's
Snakemake resources, so that a task's memory and walltime can grow after it ran out of them:

- ``runtime`` (minutes) → ``-l walltime=HH:MM:SS``;
- flavor ``torque``: ``-l nodes=N:ppn=C[:gpus=G]`` and ``-l mem=Mmb`` (job-wide);
  flavor ``pro``: ``-l select=N:ncpus=C:mem=Mmb[:ngpus=G]`` (memory per chunk);
- ``pbs_queue`` → ``-q``, ``pbs_account`` → ``-A``, ``pbs_extra`` → one ``#PBS`` line each.

``-o``/``-e`` go on the qsub command line, not in the script: Slurm's torque wrappers ignore
``#PBS -o/-e``. No parameter value of a task ever appears in a job script: the task runner reads
them from the task folder.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

# PBS Pro accepts job names of up to 236 characters; the first one must not be a digit on
# older servers, and no whitespace anywhere.
MAX_NAME = 200


def job_name(sweep_id: str, what: str) -> str:
    """``<sweep_id>-<task>``: who a job belongs to, readable in qstat (which may cut it)."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{sweep_id}-{what}")
    if not name[:1].isalpha():
        name = f"hsm_{name}"
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME // 2] + "_" + name[-(MAX_NAME // 2 - 1):]
    return name


def format_walltime(minutes: Any) -> str:
    seconds = max(1, int(round(float(minutes) * 60)))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def mem_text(mem_mb: Any) -> str:
    return f"{int(mem_mb)}mb"


def _int(resources: Mapping[str, Any], name: str, default: int) -> int:
    value = resources.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def directives(resources: Mapping[str, Any], name: str, threads: int = 1) -> list[str]:
    """The qsub options of a job, as they appear after ``#PBS``."""
    lines = [f"-N {name}"]
    if resources.get("runtime"):
        lines.append(f"-l walltime={format_walltime(resources['runtime'])}")
    flavor = str(resources.get("pbs_flavor") or "torque")
    chunks = _int(resources, "pbs_chunks", 1)
    cpus = _int(resources, "pbs_ncpus", max(1, int(threads or 1)))
    gpus = _int(resources, "pbs_ngpus", 0)
    mem_mb = resources.get("mem_mb")
    if flavor == "pro":
        select = f"select={chunks}:ncpus={cpus}"
        if mem_mb:
            select += f":mem={mem_text(mem_mb)}"
        if gpus:
            select += f":ngpus={gpus}"
        lines.append(f"-l {select}")
    else:
        nodes = f"nodes={chunks}:ppn={cpus}"
        if gpus:
            nodes += f":gpus={gpus}"
        lines.append(f"-l {nodes}")
        if mem_mb:
            lines.append(f"-l mem={mem_text(mem_mb)}")
    if resources.get("pbs_queue"):
        lines.append(f"-q {resources['pbs_queue']}")
    if resources.get("pbs_account"):
        lines.append(f"-A {resources['pbs_account']}")
    if resources.get("pbs_extra"):
        lines.extend(shlex.split(str(resources["pbs_extra"])))
    return lines


def render(
    *,
    name: str,
    options: list[str],
    workdir: str,
    exec_job: str,
    setup: str | None = None,
    comment: str = "",
) -> str:
    """The job script: directives, the backend marker for the runner, set-up, the job."""
    lines = ["#!/bin/bash"]
    lines += [f"#PBS {option}" for option in options]
    lines += [
        f"# {comment or name}: written by hsm-snake's PBS executor (hsm-pbs).",
        "# Its logs are named by qsub -o/-e (logs/pbs/ of the sweep).",
        "",
        "# Tell the task runner who runs it: under Slurm's torque wrappers a PBS job is a Slurm",
        "# job too (SLURM_JOB_ID is set), and status.yaml must say pbs with the PBS job id.",
        "export HSM_BACKEND=pbs",
        'export HSM_JOB_ID="${PBS_JOBID:-}"',
    ]
    if setup:
        lines += [
            "",
            "# Task set-up from hsm.yaml pbs: (modules, pre_script); never a parameter value.",
            setup.rstrip("\n"),
            # The runner skips its own copy of the set-up when this says it ran here.
            "export HSM_SETUP_DONE=pbs",
        ]
    lines += [
        "",
        # PBS starts jobs in $HOME (Torque, PBS Pro) or the submit directory; Snakemake needs
        # the sweep directory, and the set-up above may have changed directory.
        f"cd {shlex.quote(workdir)} || exit 1",
        exec_job,
        "",
    ]
    return "\n".join(lines)


def qsub_command(script: str, stdout: str, stderr: str, export_env: bool = True, qsub: str = "qsub") -> list[str]:
    command = [qsub]
    if export_env:
        # Like sbatch's default: the job sees the submitting environment (PATH, a user's
        # exported variables), so a sweep behaves as it does locally and on Slurm.
        command.append("-V")
    return [*command, "-o", stdout, "-e", stderr, script]


def parse_qsub_output(text: str) -> str | None:
    """The job id qsub printed: ``1234.server`` (PBS Pro, Torque) or a bare ``1234`` (Slurm's
    wrappers); some sites print a banner first, so take the last line that looks like an id."""
    for line in reversed(text.strip().splitlines()):
        token = line.strip().split()[-1] if line.strip() else ""
        if re.fullmatch(r"\d+(\[\d*\])?(\.[A-Za-z0-9_.-]+)?", token):
            return token
    return None
