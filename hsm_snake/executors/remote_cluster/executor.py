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
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from hsm_snake.engine.backends import cluster_remotes, remote_backend
from hsm_snake.executors import polling
from hsm_snake.executors.common import setting
from hsm_snake.executors.pbs import accounting as pbs_accounting
from hsm_snake.executors.pbs import script as pbs_script
from hsm_snake.executors.pbs.watch import Watcher
from hsm_snake.executors.remote_cluster import pbs, slurm
from hsm_snake.executors.remote_cluster.cluster import (
    CANCEL_WAIT_S,
    Cluster,
    ClusterError,
    SubmitError,
    arrays,
    status_of,
)
from hsm_snake.executors.ssh import transfer
from hsm_snake.executors.ssh.executor import common_settings as ssh_common_settings
from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.layout.records import read_yaml

DEFAULT_ARRAY_LIMIT = 500
# hsm-pbs's defaults for when a job leaves the wait (see executors/pbs/watch.py).
PBS_WALLTIME_GRACE_S = 300
PBS_QSTAT_FAILURE_TIMEOUT_S = 900


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
        self.control_dir = Path(tempfile.mkdtemp(prefix="hsm-rcluster-"))
        os.chmod(self.control_dir, 0o700)
        self.cluster = self.kind(self.paths, self.alias, remotes[self.alias], self.control_dir)
        host = self.cluster.host
        try:
            self.cluster.check()
            transfer.push_setup(self.cluster.ssh, host, self.record, self.sweep.name, self.control_dir)
        except (ClusterError, transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            raise WorkflowError(f"{self.name}: {exc}") from None
        self.cluster.log(f"set up: sweep copy {self.cluster.remote_sweep}, project {host.project_dir}")
        # Submitted elements not reported yet, by task. What cancel_jobs cancels: Snakemake hands it
        # its active jobs, which leave that list while a status check runs (ssh calls take seconds).
        self.outstanding: dict[str, object] = {}

    # -- submission ------------------------------------------------------------------------
    def batch_key(self, job: JobExecutorInterface) -> tuple[str, ...]:
        """The scheduler options of a job: jobs with the same ones share an array."""
        raise NotImplementedError

    def submit_array(self, batch: Batch, key: tuple[str, ...]) -> None:
        raise NotImplementedError

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

    def submitted(self, tasks: list[TaskPaths], array_id: str) -> None:
        self.logger.info(f"{self.name}: {len(tasks)} task(s) submitted on {self.alias} as array {array_id}")

    def reported(self, info: SubmittedJobInfo, error: str | None = None, aux_logs: list[str] | None = None) -> None:
        """Report a job's end to Snakemake (success when no ``error``)."""
        self.outstanding.pop(info.aux["element"].task.name, None)
        if error is None:
            self.report_job_success(info)
        else:
            self.report_job_error(info, msg=error, aux_logs=aux_logs)

    def fail_batch(self, batch: Batch, exc: Exception) -> None:
        for job, _ in batch:
            self.report_job_error(SubmittedJobInfo(job), msg=f"{self.name}: {exc}")

    async def sleep(self) -> None:
        """Snakemake's shutdown joins the polling thread: the pause between polls ends as soon as
        it stops waiting (its own sleep made every run wait out one whole interval at the end)."""
        await polling.pause(self, float(self.workflow.remote_execution_settings.seconds_between_status_checks or 5))

    def shutdown(self) -> None:
        super().shutdown()
        self.cluster.close()
        for path in self.control_dir.iterdir() if self.control_dir.exists() else ():
            path.unlink(missing_ok=True)
        try:
            self.control_dir.rmdir()
        except OSError:
            pass


class SlurmExecutor(ClusterExecutor):
    """The array size (within MaxArraySize) and --jobs (within the submit room) come from the
    cluster's limits, read before Snakemake started (``remote_cluster/room.py``)."""

    kind = slurm.SlurmCluster

    def batch_key(self, job: JobExecutorInterface) -> tuple[str, ...]:
        return tuple(slurm.sbatch_options(dict(job.resources.items())))

    def submit_array(self, batch: Batch, key: tuple[str, ...]) -> None:
        """One rsync of the tasks' folders and the array script up, one sbatch --array."""
        tasks = [task for _, task in batch]
        try:
            array_id = self.cluster.submit(tasks, list(key), self.setup())
        except (SubmitError, transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            self.fail_batch(batch, exc)
            return
        self.submitted(tasks, array_id)
        for index, (job, task) in enumerate(batch, start=1):
            element = slurm.Element(task, array_id, index)
            self.outstanding[task.name] = element
            self.report_job_submission(SubmittedJobInfo(job, external_jobid=element.job_id, aux={"element": element}))

    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]):
        if not active_jobs:
            return
        async with self.status_rate_limiter:
            states = self.cluster.squeue()
        if states is None:
            self.logger.warning(f"{self.name}: squeue on {self.alias} did not answer; asked again next poll")
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
            element: slurm.Element = info.aux["element"]
            if element.task.marker.exists():
                self.reported(info)
                continue
            self.reported(
                info,
                self.cluster.outcome(element),
                aux_logs=[str(element.task.stderr), str(self.paths.slurm_logs_dir / f"{element.job_id}.out")],
            )

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """scancel the arrays; their folders come back with the runners' records or Slurm's verdicts."""
        elements: list[slurm.Element] = list(self.outstanding.values())
        if not elements:
            return
        why_not = self.cluster.cancel_and_pull(elements)
        if why_not is not None:
            self.logger.warning(f"{self.name}: scancel on {self.alias} failed: {why_not}")


class PbsExecutor(ClusterExecutor):
    kind = pbs.PbsCluster

    def __post_init__(self) -> None:
        super().__post_init__()
        remote_settings = self.workflow.remote_execution_settings
        self.watcher = Watcher(
            walltime_grace=PBS_WALLTIME_GRACE_S,
            qstat_failure_timeout=PBS_QSTAT_FAILURE_TIMEOUT_S,
            latency_wait=float(getattr(self.workflow.execution_settings, "latency_wait", 5) or 0),
            # Elements are seen to start and end at poll times (as hsm-pbs).
            slack_s=float(remote_settings.seconds_between_status_checks or 10) + 5,
            qdel=self.cluster.qdel,
        )

    def batch_key(self, job: JobExecutorInterface) -> tuple[str, ...]:
        # The #PBS lines but the job name (-N, first).
        return tuple(pbs_script.directives(dict(job.resources.items()), "-", threads=getattr(job, "threads", 1))[1:])

    def submit_array(self, batch: Batch, key: tuple[str, ...]) -> None:
        """One rsync of the tasks' folders and the array script up, one qsub -J/-t."""
        cluster, host = self.cluster, self.cluster.host
        tasks = [task for _, task in batch]
        resources = dict(batch[0][0].resources.items())
        name = pbs_script.job_name(self.sweep.name, f"{tasks[0].name}+{len(tasks) - 1}")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        log_bases = [f"{pbs.LOGS}/{pbs_script.job_name(self.sweep.name, task.name)}.{stamp}" for task in tasks]
        script = cluster.write_script(
            tasks,
            pbs.array_script(
                name=name,
                options=[f"-N {name}", *key],
                tasks=[(task.name, log) for task, log in zip(tasks, log_bases, strict=True)],
                remote_sweep=cluster.remote_sweep,
                project_dir=host.project_dir,
                python=list(host.python),
                alias=self.alias,
                setup=self.setup(),
            ),
        )
        runtime = resources.get("runtime")
        flavor = str(resources.get("pbs_flavor") or "torque")
        try:
            cluster.push([script], tasks)
            array_id, command = cluster.submit(script, len(tasks), flavor, f"{pbs.LOGS}/{name}.{stamp}")
        except (SubmitError, transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            self.fail_batch(batch, exc)
            return
        cluster.submitted(script, array_id, command, tasks, " ".join(key), logs=log_bases)
        self.submitted(tasks, array_id)
        for index, ((job, task), log) in enumerate(zip(batch, log_bases, strict=True), start=1):
            item = pbs.element(task, array_id, index, log, int(float(runtime) * 60) if runtime else None)
            self.outstanding[task.name] = item
            self.report_job_submission(SubmittedJobInfo(job, external_jobid=item.label, aux={"element": item}))

    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]):
        if not active_jobs:
            return
        items: list[pbs.Element] = [info.aux["element"] for info in active_jobs]
        async with self.status_rate_limiter:
            answer = self.cluster.poll(items)
        now = time.monotonic()
        if self.watcher.note(answer, now):
            self.logger.warning(f"{self.name}: qstat on {self.alias} failed ({answer.error}); asked again next poll")
        ending = [item for item in items if self.cluster.may_have_ended(item, answer)]
        pulled = self.cluster.settle(ending)
        for info, item in zip(active_jobs, items, strict=True):
            verdict = None if item in ending and not pulled else self.watcher.settle(item.track, answer, now)
            if verdict is None:
                yield info
            elif verdict.success:
                self.cluster.log(f"{item.task.name}\t{item.label}\tcompleted")
                self.reported(info)
            else:
                self.fail(info, item, verdict)

    def fail(self, info: SubmittedJobInfo, item: pbs.Element, verdict: pbs_accounting.Verdict) -> None:
        track = item.track
        if track.job_id is not None:
            state = track.last_info.state if track.last_info is not None else None
            pbs_accounting.record_verdict(item.task, track.job_id, verdict, scheduler_state=state)
        status = status_of(item.task)
        self.cluster.log(f"{item.task.name}\t{item.label}\t{status.get('status')}:{status.get('error_category')}")
        self.reported(
            info,
            f"{item.task.name} (PBS job {item.label} on {self.alias}): {verdict.summary}",
            aux_logs=[str(item.task.stderr), str(self.sweep / f"{item.log_base}.err")],
        )

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """qdel the arrays (and started elements); once they left the queue (at most
        CANCEL_WAIT_S), the folders come back and started elements whose runner could not
        record it (the wrappers' qdel kills hard) are recorded cancelled."""
        items: list[pbs.Element] = list(self.outstanding.values())
        if not items:
            return
        self.cluster.poll(items)  # the ids of elements started since the last poll
        why_not = self.cluster.cancel(items)
        if why_not is not None:
            self.logger.warning(f"{self.name}: qdel on {self.alias} failed: {why_not}")
        answer = self.cluster.wait_until_gone(items, CANCEL_WAIT_S)
        started = [item for item in items if item.track.job_id]
        if self.cluster.settle(started):
            for item in started:
                info = answer.get(item.track.job_id) if answer is not None else None
                self.cluster.record_verdict(item, info, cancelled=True)
