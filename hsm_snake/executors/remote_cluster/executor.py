"""hsm-snake's Snakemake executor for a Slurm cluster reached over SSH (``executor: hsm-remote-slurm``).

Snakemake finds it through the shim package ``snakemake_executor_plugin_hsm_remote_slurm``;
``hsm-snake run SWEEP --remote ALIAS`` picks it for the ``backend: slurm`` remote ALIAS of
``distributed.remotes``. Everything goes through one ssh master connection to the login node:

- **set-up** (once per run): the runner packages, the project and the sweep's
  project_config.yaml (paths mapped to the cluster) are rsynced up, as for an SSH host
  (``executors/ssh/transfer.py``); the sweep's copy is ``<workdir>/<sweep id>``.
- **submit**: each batch of ready tasks with the same request is one rsync of their task folders
  and the array script up, then one ``sbatch --array`` (``array.py``). Its elements run the task
  runner directly; the runner writes status.yaml (backend slurm, the element's job id) and the
  completion marker there.
- **status**: one ``squeue`` per poll; the folders of tasks whose element left the queue come back
  in one rsync; for those the runner could not record (killed by Slurm, never started) one
  ``sacct`` gives the verdict (OOM, TIMEOUT, NODE_FAIL, …: ``slurm/accounting.py``). A pulled
  status that says completed gets its marker locally, after the status is in place.
- **cancel**: one ``scancel`` of the arrays, then the folders come back with Slurm's verdicts.
A failing ssh (a dropped connection) leaves every job waiting for the next poll: nothing is
decided on a missing answer.
"""

# No ``from __future__ import annotations``: Snakemake builds CLI options from the field types.
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from hsm_snake.engine.backends import remote_backend, remote_slurm_section, slurm_remotes
from hsm_snake.executors.common import setting
from hsm_snake.executors.remote_cluster import slurm as array
from hsm_snake.executors.remote_cluster.cluster import Cluster, ClusterError, Element, arrays
from hsm_snake.executors.ssh import transfer
from hsm_snake.executors.ssh.executor import common_settings as ssh_common_settings
from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.layout.records import read_yaml

DEFAULT_ARRAY_LIMIT = 500


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    alias: str = setting("", "The backend: slurm remote of hsm.yaml distributed.remotes to run on.")
    array_limit: int = setting(DEFAULT_ARRAY_LIMIT, "Most tasks in one sbatch --array (slurm: max_array_size).")


# Snakemake hands task jobs over exactly as to hsm-ssh: nothing deployed, no job command passed on
# (the executor starts the runner itself on the other side).
common_settings = ssh_common_settings


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        self.sweep = Path.cwd()
        self.paths = SweepPaths(self.sweep)
        self.record = read_yaml(self.paths.project_config) or {}
        settings = self.workflow.executor_settings
        self.alias = str(getattr(settings, "alias", "") or "")
        self.array_limit = max(1, int(getattr(settings, "array_limit", DEFAULT_ARRAY_LIMIT) or 1))
        remotes = slurm_remotes(self.record.get("project") or {})
        if self.alias not in remotes:
            raise WorkflowError(
                f"hsm-remote-slurm: {self.alias!r} is not a backend: slurm remote of this sweep's project "
                f"(those are: {', '.join(remotes) or 'none'})"
            )
        self.control_dir = Path(tempfile.mkdtemp(prefix="hsm-rslurm-"))
        os.chmod(self.control_dir, 0o700)
        self.cluster = Cluster(self.paths, self.alias, remotes[self.alias], self.control_dir)
        host = self.cluster.host
        try:
            self.cluster.check()
            transfer.push_setup(self.cluster.ssh, host, self.record, self.sweep.name, self.control_dir)
        except (ClusterError, transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            raise WorkflowError(f"hsm-remote-slurm: {exc}") from None
        self.cluster.log(f"set up: sweep copy {self.cluster.remote_sweep}, project {host.project_dir}")
        section = remote_slurm_section(
            self.record.get("project") or {}, self.record.get("sweep_resources") or {}, self.alias
        )
        _, self.array_limit, notes = self.cluster.limits(section)
        for note in notes:
            self.cluster.log(note)

    # -- submission ------------------------------------------------------------------------
    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        """All jobs Snakemake has ready: tasks with the same sbatch options go out as one array."""
        batches: dict[tuple[str, ...], list[tuple[JobExecutorInterface, TaskPaths]]] = {}
        for job in jobs:
            self.run_job_pre(job)
            task = self.paths.task_of_outputs(job.output)
            if task is None or job.is_group():
                self.report_job_error(SubmittedJobInfo(job), msg="hsm-remote-slurm runs task jobs only")
                continue
            options = tuple(array.sbatch_options(dict(job.resources.items())))
            batches.setdefault(options, []).append((job, task))
        for options, batch in arrays(batches, lambda item: item[1], self.array_limit):
            self.submit_array(batch, list(options))

    def run_job(self, job: JobExecutorInterface) -> None:
        self.run_jobs([job])

    def submit_array(self, batch: list[tuple[JobExecutorInterface, TaskPaths]], options: list[str]) -> None:
        """One rsync of the tasks' folders and the array script up, one sbatch --array."""
        tasks = [task for _, task in batch]
        setup = ((self.record.get("runner") or {}).get("pre_scripts") or {}).get(remote_backend(self.alias))
        try:
            array_id = self.cluster.submit(tasks, options, setup)
        except (array.SubmitError, transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            for job, _ in batch:
                self.report_job_error(SubmittedJobInfo(job), msg=f"hsm-remote-slurm: {exc}")
            return
        for index, (job, task) in enumerate(batch, start=1):
            element = Element(task, array_id, index)
            self.report_job_submission(SubmittedJobInfo(job, external_jobid=element.job_id, aux={"element": element}))
        self.logger.info(f"hsm-remote-slurm: {len(tasks)} task(s) submitted on {self.alias} as array {array_id}")

    # -- status ----------------------------------------------------------------------------
    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]):
        if not active_jobs:
            return
        async with self.status_rate_limiter:
            states = self.cluster.squeue()
        if states is None:
            self.logger.warning(f"hsm-remote-slurm: squeue on {self.alias} did not answer; asked again next poll")
            for info in active_jobs:
                yield info
            return
        self.cluster.note_running([info.aux["element"] for info in active_jobs], states)
        ended = []
        for info in active_jobs:
            if self.cluster.queued(info.aux["element"], states):
                yield info
            else:
                ended.append(info)
        if not ended:
            return
        if not self.cluster.settle([info.aux["element"] for info in ended]):
            for info in ended:
                yield info
            return
        for info in ended:
            element: Element = info.aux["element"]
            if element.task.marker.exists():
                self.report_job_success(info)
                continue
            self.report_job_error(
                info,
                msg=self.cluster.outcome(element),
                aux_logs=[str(element.task.stderr), str(self.paths.slurm_logs_dir / f"{element.job_id}.out")],
            )

    # -- cancel ----------------------------------------------------------------------------
    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """scancel the arrays; their folders come back with the runners' records or Slurm's verdicts."""
        elements = [info.aux["element"] for info in active_jobs if "element" in (info.aux or {})]
        if not elements:
            return
        why_not = self.cluster.cancel(elements)
        if why_not is not None:
            self.logger.warning(f"hsm-remote-slurm: scancel on {self.alias} failed: {why_not}")

    def shutdown(self) -> None:
        super().shutdown()
        self.cluster.close()
        for path in self.control_dir.iterdir() if self.control_dir.exists() else ():
            path.unlink(missing_ok=True)
        try:
            self.control_dir.rmdir()
        except OSError:
            pass
