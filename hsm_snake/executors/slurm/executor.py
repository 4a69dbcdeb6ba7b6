"""hsm-snake's Slurm executor (``executor: hsm-slurm``): snakemake-executor-plugin-slurm, with the
jobs that run a sweep's tasks submitted as job scripts that run the task runner, not a Snakemake.

Snakemake finds it through the shim package ``snakemake_executor_plugin_hsm_slurm``. The plugin
starts a Snakemake in every job (its jobstep executor: ~2 s of CPU, ~6 s and ~200 MB per task)
and, for an array, hands every element's command to that Snakemake in one option
(``--slurm-jobstep-array-execs``). Its ``format_job_exec`` builds the command, but in an array
only a jobstep can pick an element's command out of that option: the plugin has no hook that
changes what an element runs. So this subclass submits task jobs itself (``run_jobs``):

- ready task jobs whose sbatch options are the same (a task whose memory or time was escalated
  differs) go out as one ``sbatch --array=1-N`` of at most ``--hsm-slurm-array-limit`` elements;
  a lone one as a single job. The options are the plugin's own (``get_submit_command``: the run
  id as job name, which its status queries filter on; log, partition, account, time, memory,
  CPUs, GPUs, ``slurm_extra``, ``-D`` the sweep directory);
- the job script, fed on stdin, picks the element's task by ``SLURM_ARRAY_TASK_ID``, runs the
  set-up (hsm.yaml ``slurm: modules / pre_script``) and execs ``python -m hsm_snake.runner
  tasks/<task>``, whose completion marker is what the engine's Snakemake checks;
- every sbatch call is kept in ``scripts/job_scripts/`` (``sbatch_record``).

Status (executors/polling.py): a task job whose runner recorded its completion (the marker, and
this job's id in status.yaml) is reported done at the next poll (every POLL_S); the others are
asked about by the plugin (squeue or sacct by run id) at most every
``seconds-between-status-checks``, without the plugin's back-off (+10 s per quiet poll, up to
180 s), which could leave a finished sweep waiting.
Cancellation (scancel) and log clean-up are the plugin's. A job that runs no task (none in
hsm-snake's workflow) goes through the plugin unchanged.
"""

# No ``from __future__ import annotations``: Snakemake reads the ExecutorSettings field types.
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_slurm import Executor as PluginExecutor
from snakemake_executor_plugin_slurm import ExecutorSettings, common_settings
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string
from snakemake_executor_plugin_slurm.validation import validate_or_get_slurm_job_id, validate_slurm_extra
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from hsm_snake.executors import jobscript, polling
from hsm_snake.executors.slurm import sbatch_record
from hsm_snake.layout.paths import SweepPaths, TaskPaths

__all__ = ["Executor", "ExecutorSettings", "common_settings"]

SBATCH_TIMEOUT_S = 120
# Exit status of an array element whose index the script has no task for.
UNKNOWN_INDEX_EXIT = 2


@dataclass(frozen=True)
class TaskJob:
    """A Snakemake job that runs one task, with the sbatch options it would go out with."""

    job: JobExecutorInterface
    task: TaskPaths
    options: tuple[str, ...]  # sbatch's argv without the script; equal options can share an array


class Executor(PluginExecutor):
    def __post_init__(self, test_mode: bool = False) -> None:
        super().__post_init__(test_mode)
        # Snakemake's working directory is the sweep directory (--directory, or sweep_dir=).
        self.sweep = SweepPaths(Path.cwd())
        self.array_log = self.slurm_logdir / "rule_task" / "%A_%a.log"
        self.active_count = 0  # jobs at the last check: spaces the checks out (polling.poll_interval)
        self.slurm_pace = polling.SchedulerPace(
            float(self.workflow.remote_execution_settings.seconds_between_status_checks or 10)
        )

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        others, task_jobs = [], []
        for job in jobs:
            task = None if job.is_group() else self.sweep.task_of_outputs(job.output)
            if task is None:
                others.append(job)
                continue
            self.run_job_pre(job)
            try:
                task_jobs.append(TaskJob(job, task, self.sbatch_options(job)))
            except WorkflowError as exc:
                self.report_job_error(SubmittedJobInfo(job), msg=f"cannot submit {task.name}: {exc}")
        if others:
            super().run_jobs(others)
        arrays = bool(self.array_jobs & {"all", "task"})
        for batch in array_batches(task_jobs, self.max_array_size if arrays else 1):
            self.submit(batch)

    def sbatch_options(self, job: JobExecutorInterface) -> tuple[str, ...]:
        validate_slurm_extra(job)
        params = {
            "run_uuid": self.run_uuid,
            "slurm_logfile": self.array_log,
            "comment_str": f"rule_{job.name}",
            "account": self.account_arg(job),
            "partition": self.get_partition_arg(job),
            # The sweep directory: with `--config sweep_dir=` not the one Snakemake started in.
            "workdir": self.sweep.root,
        }
        call = get_submit_command(
            job, params, settings=self.workflow.executor_settings, failed_nodes=self._failed_nodes
        )
        # The plugin quotes every value it puts into this command line.
        return tuple(shlex.split(call + set_gres_string(job)))

    def account_arg(self, job: JobExecutorInterface) -> str:
        if not job.resources.get("slurm_account") and self.workflow.executor_settings.no_account:
            return ""
        return next(self.get_account_arg(job))

    def submit(self, batch: Sequence[TaskJob]) -> None:
        """One sbatch call: an array for several task jobs, a single job for one."""
        python = self.get_python_executable()
        workdir = str(self.sweep.root)
        setup = jobscript.recorded_setup(self.sweep.root, "slurm")
        argv = list(batch[0].options)
        if len(batch) == 1:
            argv = with_log(argv, str(self.array_log.with_name("%j.log")))
            script = render_single(batch[0].task.name, python, workdir, setup, self.sweep.sweep_id)
        else:
            argv.append(f"--array=1-{len(batch)}")
            script = render_array([each.task.name for each in batch], python, workdir, setup, self.sweep.sweep_id)
        self.array_log.parent.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                argv, input=script.encode(), capture_output=True, timeout=SBATCH_TIMEOUT_S, check=False
            )
            code, out, err = done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired) as exc:
            code, out, err = 1, "", f"sbatch could not run: {exc}"
        sbatch_record.keep(self.sweep.job_scripts_dir, argv[1:], script.encode(), out or err, code)
        try:
            if code != 0:
                raise WorkflowError(f"sbatch failed (exit {code}): {err.strip()[:1000]}")
            job_id = validate_or_get_slurm_job_id(out.strip().split(";")[0], out)
        except WorkflowError as exc:
            for each in batch:
                self.report_job_error(SubmittedJobInfo(each.job), msg=f"{exc}\n    sbatch call: {shlex.join(argv)}")
            return
        self.note_cluster(batch[0].job)
        if len(batch) == 1:
            aux = {"slurm_logfile": self.array_log.with_name(f"{job_id}.log"), "hsm_task": batch[0].task}
            self.report_job_submission(SubmittedJobInfo(batch[0].job, external_jobid=job_id, aux=aux))
            self.logger.info(f"Job {batch[0].job.jobid} ({batch[0].task.name}) submitted as Slurm job {job_id}.")
            return
        for index, each in enumerate(batch, start=1):
            log = self.array_log.with_name(f"{job_id}_{index}.log")
            aux = {"slurm_logfile": log, "hsm_task": each.task}
            info = SubmittedJobInfo(each.job, external_jobid=f"{job_id}_{index}", aux=aux)
            self.report_job_submission(info)
        self.logger.info(
            f"Jobs {', '.join(str(each.job.jobid) for each in batch)} ({batch[0].task.name} …) submitted as "
            f"Slurm job array {job_id} (elements 1-{len(batch)})."
        )

    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]):
        self.active_count = len(active_jobs)
        waiting = []
        for info in active_jobs:
            if polling.recorded_done(info.aux.get("hsm_task"), info.external_jobid):
                self.report_job_success(info)
                if not self.workflow.executor_settings.keep_successful_logs:
                    info.aux["slurm_logfile"].unlink(missing_ok=True)
            else:
                waiting.append(info)
        if not waiting or not self.slurm_pace.due():
            for info in waiting:
                yield info
            return
        async for info in super().check_active_jobs(waiting):
            yield info

    async def sleep(self) -> None:
        await polling.pause(self, polling.poll_interval(self.active_count))

    def note_cluster(self, job: JobExecutorInterface) -> None:
        """The plugin's cancel names the clusters jobs went to."""
        cluster = job.resources.get("cluster") or job.resources.get("clusters") or job.resources.get("slurm_cluster")
        if cluster:
            self._submitted_job_clusters.add(cluster)


def with_log(argv: list[str], log: str) -> list[str]:
    """``argv`` with its ``--output`` log path replaced."""
    at = argv.index("--output")
    return [*argv[: at + 1], log, *argv[at + 2 :]]


def array_batches(jobs: list[TaskJob], limit: int) -> list[list[TaskJob]]:
    """Jobs with the same sbatch options, in task order (element i runs the i-th task), cut into
    arrays of at most ``limit``."""
    same: dict[tuple[str, ...], list[TaskJob]] = {}
    for job in jobs:
        same.setdefault(job.options, []).append(job)
    batches = []
    for group in same.values():
        group.sort(key=lambda job: (len(job.task.name), job.task.name))
        batches += [group[start : start + limit] for start in range(0, len(group), max(1, limit))]
    return batches


def _header(comment: str) -> list[str]:
    return ["#!/bin/bash", f"# {comment}: written by hsm-snake's Slurm executor (hsm-slurm)."]


def render_single(task: str, python: str, workdir: str, setup: str | None, sweep_id: str) -> str:
    lines = [
        *_header(f"{task} of sweep {sweep_id}"),
        *jobscript.setup_and_cd(setup, "slurm", workdir),
        jobscript.runner_command(python, shlex.quote(f"tasks/{task}")),
    ]
    return "\n".join(lines) + "\n"


def render_array(tasks: Sequence[str], python: str, workdir: str, setup: str | None, sweep_id: str) -> str:
    """Element i runs ``tasks[i-1]`` (task names are ``task_<digits>``: no quoting needed)."""
    lines = [
        *_header(f"{len(tasks)} tasks of sweep {sweep_id} ({tasks[0]} …), one per array element"),
        'case "$SLURM_ARRAY_TASK_ID" in',
        *(f"    {index}) task=tasks/{task} ;;" for index, task in enumerate(tasks, start=1)),
        f"    *) echo \"hsm-slurm: no task for array index '$SLURM_ARRAY_TASK_ID' (elements 1-{len(tasks)})\" >&2",
        f"       exit {UNKNOWN_INDEX_EXIT} ;;",
        "esac",
        *jobscript.setup_and_cd(setup, "slurm", workdir),
        jobscript.runner_command(python, '"$task"'),
    ]
    return "\n".join(lines) + "\n"
