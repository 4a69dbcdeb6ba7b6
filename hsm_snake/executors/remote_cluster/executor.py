"""hsm-snake's Snakemake executor for a cluster reached over SSH: ``executor: hsm-remote-slurm``
(Slurm login node) and ``executor: hsm-remote-pbs`` (PBS login node).

Snakemake finds them through the shim packages ``snakemake_executor_plugin_hsm_remote_slurm`` and
``…_remote_pbs``; ``hsm-snake run SWEEP --remote ALIAS`` picks the one of the remote's ``backend:``.
Everything goes through one ssh master connection to the login node:

- **set-up** (once per run): the runner packages, the project and the sweep's
  project_config.yaml (paths mapped to the cluster) are rsynced up, as for an SSH host
  (``executors/ssh/transfer.py``); the sweep's copy is ``<workdir>/<sweep id>``.
- **submit**: each batch of ready tasks with the same request is one rsync of their task folders
  and the array script up, then one ``sbatch --array`` / ``qsub -J`` (``slurm.py``, ``pbs.py``).
  Its elements run the task runner directly; the runner writes status.yaml (backend slurm/pbs,
  the element's job id) and the completion marker there.
- **status**: one ``squeue`` / ``qstat`` per poll; the folders of tasks whose element left the
  queue come back in one rsync; the scheduler's verdict goes to those the runner could not record
  (killed by the scheduler, never started: sacct for Slurm, qstat + ``pbs/accounting.py`` for PBS).
  A pulled status that says completed gets its marker locally, after the status is in place.
- **cancel**: one ``scancel``/``qdel`` of the arrays, then the folders come back with the verdicts.
A failing ssh (a dropped connection) leaves every job waiting for the next poll: nothing is
decided on a missing answer.
"""

# No ``from __future__ import annotations``: Snakemake builds CLI options from the field types.
import subprocess
from dataclasses import dataclass
from pathlib import Path

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from hsm_snake.engine.backends import cluster_remotes, remote_backend
from hsm_snake.executors import polling
from hsm_snake.executors.common import setting
from hsm_snake.executors.remote_cluster import pbs, slurm
from hsm_snake.executors.remote_cluster.cluster import (
    DEFAULT_ARRAY_LIMIT,
    SUBMIT_FAILURES,
    Cluster,
    ClusterError,
    arrays,
)
from hsm_snake.executors.ssh import transfer
from hsm_snake.executors.ssh.executor import common_settings as ssh_common_settings
from hsm_snake.executors.ssh.hosts import Ssh
from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.layout.records import read_yaml


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    alias: str = setting("", "The cluster remote (backend: slurm / pbs) of hsm.yaml distributed.remotes to run on.")
    array_limit: int = setting(
        DEFAULT_ARRAY_LIMIT, "Most tasks in one array (slurm: / pbs: max_array_size of the remote)."
    )


# Snakemake hands task jobs over exactly as to hsm-ssh: nothing deployed, no job command passed on
# (the executor starts the runner itself on the other side).
common_settings = ssh_common_settings

Batch = list[tuple[JobExecutorInterface, TaskPaths]]


class ClusterExecutor(RemoteExecutor):
    """What both schedulers share: the set-up push, batching ready tasks into arrays, shutdown."""

    kind: type[Cluster] = Cluster

    def __post_init__(self) -> None:
        self.sweep = Path.cwd()
        self.paths = SweepPaths(self.sweep)
        self.record = read_yaml(self.paths.project_config) or {}
        settings = self.workflow.executor_settings
        self.alias = str(getattr(settings, "alias", "") or "")
        self.array_limit = max(1, int(getattr(settings, "array_limit", DEFAULT_ARRAY_LIMIT) or 1))
        self.name = f"hsm-remote-{self.kind.scheduler}"
        remotes = cluster_remotes(self.record.get("project") or {}, self.kind.scheduler)
        if self.alias not in remotes:
            raise WorkflowError(
                f"{self.name}: {self.alias!r} is not a backend: {self.kind.scheduler} remote of this sweep's "
                f"project (those are: {', '.join(remotes) or 'none'})"
            )
        ssh = Ssh.private("hsm-rcluster-")
        self.cluster = self.kind(self.paths, self.alias, remotes[self.alias], ssh)
        host = self.cluster.host
        try:
            self.cluster.check()
            transfer.push_setup(ssh, host, self.record, self.sweep.name, ssh.control_dir)
        except (ClusterError, transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            raise WorkflowError(f"{self.name}: {exc}") from None
        self.cluster.log(f"set up: sweep copy {self.cluster.remote_sweep}, project {host.project_dir}")
        # Submitted elements not reported yet, by task. What cancel_jobs cancels: Snakemake hands it
        # its active jobs, which leave that list while a status check runs (ssh calls take seconds).
        self.outstanding: dict[str, object] = {}

    # -- submission ------------------------------------------------------------------------
    def batch_key(self, job: JobExecutorInterface) -> tuple[str, ...]:
        """The scheduler options of a job: jobs with the same ones share an array."""
        return self.cluster.options(dict(job.resources.items()), threads=getattr(job, "threads", 1))

    def submit_array(self, batch: Batch, key: tuple[str, ...]) -> None:
        """One rsync of the tasks' folders and the array script up, one submission of the array."""
        tasks = [task for _, task in batch]
        try:
            elements = self.cluster.submit_array(tasks, list(key), dict(batch[0][0].resources.items()), self.setup())
        except SUBMIT_FAILURES as exc:
            for job, _ in batch:
                self.report_job_error(SubmittedJobInfo(job), msg=f"{self.name}: {exc}")
            return
        self.logger.info(f"{self.name}: {len(tasks)} task(s) submitted on {self.alias} as array {elements[0].array_id}")
        for (job, task), element in zip(batch, elements, strict=True):
            self.outstanding[task.name] = element
            info = SubmittedJobInfo(job, external_jobid=self.cluster.job_id(element), aux={"element": element})
            self.report_job_submission(info)

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        """All jobs Snakemake has ready: tasks with the same scheduler options go out as one array."""
        batches: dict[tuple[str, ...], Batch] = {}
        for job in jobs:
            self.run_job_pre(job)
            task = self.paths.task_of_outputs(job.output)
            if task is None or job.is_group():
                self.report_job_error(SubmittedJobInfo(job), msg=f"{self.name} runs task jobs only")
                continue
            batches.setdefault(self.batch_key(job), []).append((job, task))
        for key, batch in arrays(batches, lambda item: item[1], self.array_limit):
            self.submit_array(batch, key)

    def run_job(self, job: JobExecutorInterface) -> None:
        self.run_jobs([job])

    def setup(self) -> str | None:
        """The remote's set-up (modules + pre_script of ``<scheduler>@<alias>``)."""
        pre_scripts = (self.record.get("runner") or {}).get("pre_scripts") or {}
        return pre_scripts.get(remote_backend(self.alias, self.kind.scheduler))

    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]):
        if not active_jobs:
            return
        async with self.status_rate_limiter:
            _, ended = self.cluster.poll_ended([info.aux["element"] for info in active_jobs], self.warn)
        why = {id(element): message for element, message in ended}
        for info in active_jobs:
            element = info.aux["element"]
            if id(element) not in why:
                yield info
                continue
            self.outstanding.pop(element.task.name, None)
            if why[id(element)] is None:
                self.report_job_success(info)
            else:
                self.report_job_error(info, msg=why[id(element)], aux_logs=self.cluster.logs_of(element))

    def warn(self, text: str) -> None:
        self.logger.warning(f"{self.name}: {text}")

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """Cancel the arrays of what was submitted and not reported; their folders come back with
        the runners' records or the scheduler's verdicts."""
        elements = list(self.outstanding.values())
        if not elements:
            return
        why_not = self.cluster.cancel_and_pull(elements)
        if why_not is not None:
            self.warn(f"cancelling the jobs on {self.alias} failed: {why_not}")

    async def sleep(self) -> None:
        """Snakemake's shutdown joins the polling thread: the pause between polls ends as soon as
        it stops waiting (its own sleep made every run wait out one whole interval at the end)."""
        await polling.pause(self, float(self.workflow.remote_execution_settings.seconds_between_status_checks or 5))

    def shutdown(self) -> None:
        super().shutdown()
        self.cluster.close()
        self.cluster.ssh.discard()


class SlurmExecutor(ClusterExecutor):
    """The array size (within MaxArraySize) and --jobs (within the submit room) come from the
    cluster's limits, read before Snakemake started (``remote_cluster/room.py``)."""

    kind = slurm.SlurmCluster


class PbsExecutor(ClusterExecutor):
    kind = pbs.PbsCluster

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cluster.watch(
            poll_s=float(self.workflow.remote_execution_settings.seconds_between_status_checks or 10),
            latency_wait_s=float(getattr(self.workflow.execution_settings, "latency_wait", 5) or 0),
        )
