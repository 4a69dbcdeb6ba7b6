"""The Slurm part of a cluster remote (``backend: slurm``, executor ``hsm-remote-slurm``, or a member
of the SSH pool: ``pool.py``): the sbatch call and job-array script, what squeue/sbatch answer, the
cluster's squeue/sacct/scancel calls and its limits (the queries of ``slurm/limits.py``, over ssh).

An array element runs ``python -m hsm_snake.runner <remote task folder>`` and nothing else (no
Snakemake on the cluster): the element's index picks its task in a ``case``, the backend's set-up
(modules, pre_script) runs once before the runner, which is told so (``HSM_SETUP_DONE``).
Only hsm-snake's own paths, task names and validated settings appear in the script; parameter
values stay in each task's params.yaml.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

from hsm_snake.executors.remote_cluster.cluster import (
    CANCEL_WAIT_S,
    Cluster,
    SubmitError,
    pending_elements,
    status_of,
    submissions,
)
from hsm_snake.executors.slurm import accounting, limits
from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.layout.status import now_iso, write_status
from hsm_snake.runner import failures

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
# Waits before asking sacct again about jobs it has no scheduler verdict for yet (seconds).
SACCT_SETTLE_DELAYS_S = (1, 2, 4)


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


def is_array_id(job: str) -> bool:
    return ARRAY_ID.match(job) is not None


@dataclass(frozen=True)
class Element:
    """One task as one array element."""

    task: TaskPaths
    array_id: str
    index: int

    @property
    def job_id(self) -> str:
        return f"{self.array_id}_{self.index}"


class SlurmCluster(Cluster):
    scheduler = "slurm"
    title = "Slurm"
    tools = ("sbatch", "squeue", "sacct", "scancel")
    queue_tool = "squeue"
    query_timeout_s = limits.QUERY_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user: str | None = None

    def options(self, resources: dict[str, Any], threads: int = 1) -> tuple[str, ...]:
        return tuple(sbatch_options(resources))

    def submit_array(
        self, tasks: list[TaskPaths], options: list[str], resources: dict[str, Any], setup: str | None
    ) -> list[Element]:
        """One rsync of the tasks' folders (without markers) and their array script up, one
        ``sbatch --array``, recorded (``resources``: already in ``options``)."""
        host = self.host
        script = self.write_script(
            tasks,
            array_script(
                comment=f"{len(tasks)} task(s) of sweep {self.paths.sweep_id} on {self.alias}, one per element",
                tasks=[task.name for task in tasks],
                remote_sweep=self.remote_sweep,
                workdir=host.project_dir,
                runner_path=f"{host.project_dir}/.hsm-runner",
                python=list(host.python),
                alias=self.alias,
                setup=setup,
            ),
        )
        self.push([script], tasks)
        command = sbatch_command(self.remote_sweep, script, len(tasks), options, job_name=f"hsm-{self.paths.sweep_id}")
        array_id = parse_sbatch(self.submit_command(command, "sbatch", f"{self.remote_sweep}/{script}.submission"))
        self.submitted(script, array_id, command, tasks, shlex.join(options))
        return [Element(task, array_id, index) for index, task in enumerate(tasks, start=1)]

    def poll_ended(self, elements: list[Element], warn: Any) -> tuple[bool, list[tuple[Element, str | None]]]:
        """One squeue; the ended elements settled (one rsync, one sacct for those unexplained)."""
        states = self.squeue()
        if states is None:
            warn(f"squeue on {self.alias} did not answer; asked again next poll")
            return False, []
        self.note_running([element for element in elements if states.get(element.job_id) == "RUNNING"])
        ended = [element for element in elements if not self.queued(element, states)]
        settled = self.settle(ended) if ended else []
        return True, [(element, None if element.task.marker.exists() else self.outcome(element)) for element in settled]

    def logs_of(self, element: Element) -> list[str]:
        return [str(element.task.stderr), str(self.paths.slurm_logs_dir / f"{element.job_id}.out")]

    # -- limits ----------------------------------------------------------------------------
    def limits(
        self, slurm: dict[str, Any], query: limits.Query | None = None
    ) -> tuple[limits.SubmitRoom | None, int, list[str]]:
        """The cluster's room under MaxSubmitJobs/MaxJobCount (its user's jobs queued there
        counted), the tasks per array (``slurm.max_array_size`` within its MaxArraySize), and
        lines for the log; what it cannot tell bounds nothing. ``query``: how the Slurm tools are
        asked (``self.query`` unless given; ``room.RoomWatch`` answers from one batched call)."""
        ask = query or self.query
        if self.user is None:
            self.user = (self.query(["id", "-un"]) or "").strip() or None
        # No answer to id: the login node is unreachable; the check that follows says why.
        config = limits.cluster_config(ask) if self.user else ""
        size, why = limits.array_limit(slurm, config)
        notes = [why] if why else []
        index = limits.max_array_index(config)
        if index is not None and index < size:
            size = index
            notes.append(f"MaxArraySize is {index + 1} on {self.alias}: arrays of at most {size} tasks")
        room = limits.tightest_room(slurm, config, self.user, ask) if self.user else None
        if room is not None:
            notes.append(f"{room.source} on {self.alias} is {room.limit}, {room.queued} job(s) queued there")
        return room, size, notes

    # -- queue -----------------------------------------------------------------------------
    def squeue(self) -> dict[str, str] | None:
        """{element or job id: state} of the user's jobs there; None when squeue did not answer."""
        done = self.remote(shlex.join(SQUEUE_ARGV))
        if done is None or done.returncode != 0:
            return None
        return parse_squeue(done.stdout)

    @staticmethod
    def queued(element: Element, states: dict[str, str]) -> bool:
        return states.get(element.job_id) in ACTIVE_STATES or states.get(element.array_id) in ACTIVE_STATES

    def scancel(self, array_ids: list[str]) -> str | None:
        """scancel the arrays (all their elements, queued ones too); None when sent, else why not."""
        ids = checked_job_ids(sorted(set(array_ids)))
        done = self.remote(shlex.join(["scancel", "--", *ids]))
        self.log(f"scancel {' '.join(ids)}")
        return None if done is not None and done.returncode == 0 else self.failure(done)

    def cancel_and_pull(self, elements: list[Element]) -> str | None:
        """scancel the elements' arrays; once they left the queue (at most CANCEL_WAIT_S) their
        folders come back with the runners' records or Slurm's verdicts (queued ones never ran).
        None when scancel was sent, else why not."""
        why_not = self.cancel(elements)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            states = self.squeue()
            if states is None or not any(self.queued(element, states) for element in elements):
                break
            time.sleep(1)
        self.settle(elements)
        return why_not

    def sacct(self, job_ids: list[str]) -> dict[str, tuple[str, str, str]] | None:
        """Slurm's accounting of ``job_ids`` (one sacct over ssh); {} when sacct failed there (no
        accounting: nothing to wait for), None when the ssh call did (ask again)."""
        done = self.remote(shlex.join(accounting.sacct_argv(job_ids)))
        if done is None or done.returncode == 255:
            return None
        return accounting.parse_sacct(done.stdout) if done.returncode == 0 else {}

    # -- results ---------------------------------------------------------------------------
    def settle(self, elements: list[Element]) -> list[Element]:
        """Pull the folders of ended elements (one rsync), mark the completed ones, record Slurm's
        verdict on the others (one sacct); those settled. The rest (the pull or sacct's ssh call
        failed) are asked about again later."""
        if not elements or not self.pull(elements, [f"logs/slurm/{e.job_id}.out" for e in elements]):
            return []
        settled, unexplained = [], []
        for element in elements:
            status = status_of(element.task)
            if status.get("job_id") == element.job_id and status.get("status") == "completed":
                element.task.marker.touch()
                self.log(f"{element.task.name}\t{element.job_id}\tcompleted")
                settled.append(element)
            elif (
                status.get("job_id") != element.job_id
                or status.get("status") == "running"
                or status.get("error_category") in accounting.OVERRIDABLE
            ):
                unexplained.append(element)
            else:
                self.log(
                    f"{element.task.name}\t{element.job_id}\t{status.get('status')}:{status.get('error_category')}"
                )
                settled.append(element)
        return settled + self.record_verdicts(unexplained) if unexplained else settled

    def record_verdicts(self, elements: list[Element]) -> list[Element]:
        """Slurm's word (one sacct) on elements whose runner did not record why they ended; the
        elements decided: none when sacct's ssh call fails (the login node went away after the
        pull), as "no record" an OOM kill would be retried without more memory."""
        ids = checked_job_ids([element.job_id for element in elements])
        verdicts = self.sacct(ids)
        if verdicts is None:
            self.log(f"sacct on {self.alias} did not answer; {len(elements)} ended task(s) asked about again")
            return []
        # slurmdbd may not hold a step's final state (OUT_OF_MEMORY) the moment a job leaves the queue.
        for delay in SACCT_SETTLE_DELAYS_S:
            unsettled = [job for job in ids if (verdicts.get(job) or ("",))[0] not in accounting.SLURM_STATES]
            if not unsettled:
                break
            time.sleep(delay)
            verdicts.update(self.sacct(unsettled) or {})
        for element in elements:
            status = status_of(element.task)
            ran = status.get("job_id") == element.job_id
            record = self.element_record(element, status)
            found = verdicts.get(element.job_id)
            if found and found[0] in accounting.SLURM_STATES:
                accounting.record_verdict(element.task.status, record, element.job_id, found)
            elif not ran or record.get("status") == "running":
                state = f"{found[0]} (exit {found[1]})" if found else "no sacct record"
                what = "without running the task runner" if not ran else "while its task ran"
                record.update(
                    status="failed",
                    error_category=failures.LAUNCH_ERROR if not ran else failures.KILLED,
                    error_summary=f"Slurm job {element.job_id} on {self.alias} ended {what} ({state}); "
                    f"the element's output: {self.paths.slurm_logs_dir / (element.job_id + '.out')}",
                    finished=now_iso(),
                )
                write_status(element.task.status, record)
            self.log(f"{element.task.name}\t{element.job_id}\t{found[0] if found else 'ended'}")
        return elements

    # -- what earlier runs left ------------------------------------------------------------
    @classmethod
    def recorded(cls, paths: SweepPaths) -> list[dict[str, Any]]:
        return submissions(paths, cls.record_name(), is_array_id)

    @staticmethod
    def came_back(status: dict[str, Any], entry: dict[str, Any], index: int) -> bool:
        """The task's status was written by this very element (not the "running" of ``note_running``)."""
        return status.get("job_id") == f"{entry['array_id']}_{index}" and status.get("status") != "running"

    def live_elements(self, entries: list[dict[str, Any]], notify: Any) -> list[tuple[Element, str]]:
        """Elements of ``entries`` still queued or running (with their state); those that ended are
        pulled back and their verdicts recorded."""
        elements = [
            Element(task, str(entry["array_id"]), index)
            for group in pending_elements(self.paths, entries, self.came_back).values()
            for entry, index, task in group
        ]
        if not elements:
            return []
        states = self.squeue()
        if states is None:
            notify(f"could not ask {self.alias} about this sweep's earlier jobs (squeue over ssh); not waiting")
            return []
        live, ended = [], []
        for element in elements:
            if self.queued(element, states):
                live.append((element, states.get(element.job_id) or states.get(element.array_id, "")))
            else:
                ended.append(element)
        if len(self.settle(ended)) < len(ended):
            notify(f"could not pull the finished tasks back from {self.alias}; they run again")
        return live

    def cancel(self, elements: list[Element]) -> str | None:
        return self.scancel([element.array_id for element in elements])

    @staticmethod
    def job_id(element: Element) -> str:
        return element.job_id
