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

An array job script (``render_array``) runs one task per element: it finds its index
(``PBS_ARRAY_INDEX`` on PBS Pro and under Slurm's torque wrappers, ``PBS_ARRAYID`` on Torque,
``SLURM_ARRAY_TASK_ID``), sends its output to that task's own logs, writes its own job id next to
them (``<log>.jobid``: qsub prints only the array's id, and the wrappers' element ids cannot be
derived from it) and runs that task's runner (``jobscript.runner_command``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hsm_snake.executors import jobscript

# PBS Pro accepts job names of up to 236 characters; the first one must not be a digit on
# older servers, and no whitespace anywhere.
MAX_NAME = 200


def job_name(sweep_id: str, what: str) -> str:
    """``<sweep_id>-<task>``: who a job belongs to, readable in qstat (which may cut it)."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{sweep_id}-{what}")
    if not name[:1].isalpha():
        name = f"hsm_{name}"
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME // 2] + "_" + name[-(MAX_NAME // 2 - 1) :]
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
    for resource, option in (("pbs_queue", "-q"), ("pbs_account", "-A")):
        if resources.get(resource):
            lines.append(f"{option} {resources[resource]}")
    if resources.get("pbs_extra"):
        lines.extend(shlex.split(str(resources["pbs_extra"])))
    return lines


# Where an array element finds its index: PBS Pro (and Slurm's torque wrappers), Torque, Slurm.
INDEX_VARIABLES = ("PBS_ARRAY_INDEX", "PBS_ARRAYID", "SLURM_ARRAY_TASK_ID")
# Exit status of an element whose index the script has no task for.
UNKNOWN_INDEX_EXIT = 2
JOB_ID_SUFFIX = ".jobid"


@dataclass(frozen=True)
class Element:
    """One task of an array job: its index, its logs (``<log_base>.out/.err``, its job id in
    ``<log_base>.jobid``) and the command that runs it (the task runner)."""

    index: int
    log_base: str
    exec_job: str


def id_file(log_base: str) -> str:
    return f"{log_base}{JOB_ID_SUFFIX}"


def _header(options: Sequence[str], comment: str) -> list[str]:
    return [
        "#!/bin/bash",
        *(f"#PBS {option}" for option in options),
        f"# {comment}: written by hsm-snake's PBS executor (hsm-pbs).",
    ]


def _backend_lines() -> list[str]:
    return [
        "",
        "# Tell the task runner who runs it: under Slurm's torque wrappers a PBS job is a Slurm",
        "# job too (SLURM_JOB_ID is set), and status.yaml must say pbs with the PBS job id.",
        "export HSM_BACKEND=pbs",
        'export HSM_JOB_ID="${PBS_JOBID:-}"',
    ]


def _setup_and_cd(setup: str | None, workdir: str) -> list[str]:
    # PBS starts jobs in $HOME (Torque, PBS Pro) or the submit directory; the runner needs the
    # sweep directory.
    return jobscript.setup_and_cd(setup, "pbs", workdir)


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
    lines = [
        *_header(options, comment or name),
        "# Its logs are named by qsub -o/-e (logs/pbs/ of the sweep).",
        *_backend_lines(),
        *_setup_and_cd(setup, workdir),
        exec_job,
        "",
    ]
    return "\n".join(lines)


def render_array(
    *,
    name: str,
    options: list[str],
    workdir: str,
    elements: Sequence[Element],
    setup: str | None = None,
    comment: str = "",
) -> str:
    """An array job script: each element runs the task of its index, with that task's logs."""
    first, last = elements[0].index, elements[-1].index
    part = f'"$log{JOB_ID_SUFFIX}.part"'
    index = '"' + "".join(f"${{{variable}:-" for variable in INDEX_VARIABLES) + "}" * len(INDEX_VARIABLES) + '"'
    lines = [
        *_header(options, comment or name),
        "# qsub -o/-e name the array's logs; each element writes its task's own (logs/pbs/ of the sweep).",
        *_backend_lines(),
        "",
        f"index={index}",
        'case "$index" in',
        *(f"    {element.index}) log={shlex.quote(element.log_base)} ;;" for element in elements),
        f"    *) echo \"hsm-pbs: $0 has no task for array index '$index' (elements {first}-{last})\" >&2",
        f"       exit {UNKNOWN_INDEX_EXIT} ;;",
        "esac",
        'exec >"$log.out" 2>"$log.err"',
        "# hsm-pbs learns this element's job id (qstat's name for it) from this file.",
        f'printf \'%s\\n\' "$HSM_JOB_ID" >{part} && mv -f {part} "$log{JOB_ID_SUFFIX}"',
        *_setup_and_cd(setup, workdir),
        'case "$index" in',
    ]
    for element in elements:
        lines += [f"    {element.index})", f"        {element.exec_job}", "        ;;"]
    lines += ["esac", ""]
    return "\n".join(lines)


def array_option(flavor: str, count: int) -> list[str]:
    """qsub's array request: ``-J 1-N`` on PBS Pro, ``-t 1-N`` on Torque."""
    return ["-J" if flavor == "pro" else "-t", f"1-{count}"]


def qsub_command(
    script: str, stdout: str, stderr: str, export_env: bool = True, qsub: str = "qsub", array: Sequence[str] = ()
) -> list[str]:
    command = [qsub]
    if export_env:
        # Like sbatch's default: the job sees the submitting environment (PATH, a user's
        # exported variables), so a sweep behaves as it does locally and on Slurm.
        command.append("-V")
    return [*command, *array, "-o", stdout, "-e", stderr, script]


def parse_qsub_output(text: str) -> str | None:
    """The job id qsub printed: ``1234.server`` (PBS Pro, Torque) or a bare ``1234`` (Slurm's
    wrappers); some sites print a banner first, so take the last line that looks like an id."""
    for line in reversed(text.strip().splitlines()):
        token = line.strip().split()[-1] if line.strip() else ""
        if re.fullmatch(r"\d+(\[\d*\])?(\.[A-Za-z0-9_.-]+)?", token):
            return token
    return None
