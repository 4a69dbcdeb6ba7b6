"""hsm-snake's Snakemake executor for PBS Pro / OpenPBS / Torque (``executor: hsm-pbs``).

Snakemake finds it through the shim package ``snakemake_executor_plugin_hsm_pbs``. Per job:

- **submit**: the job script (``scripts/job_scripts/<sweep>-<task>.pbs`` in the sweep directory,
  rendered by ``script.py`` from the task rule's resources) runs the task's set-up (hsm.yaml
  ``pbs: modules / pre_script``) and then the Snakemake job command the interface gives
  (``format_job_exec``); ``qsub -V -o logs/pbs/<name>.a<attempt>.out -e ….err SCRIPT``.
- **status**: one ``qstat`` call per poll cycle for all active jobs (``qstat.py`` picks the
  richest output this qstat speaks: PBS Pro JSON, Torque XML, ``-f`` text or the table);
  ``watch.py`` decides when a job has left the wait (finished, gone from qstat, past its
  walltime, or qstat failing for too long): nothing leaves Snakemake waiting forever.
- **outcome**: decided by the task's completion marker and the runner's record, plus PBS's
  exit_status where it has one (``accounting.decide``: Slurm's torque wrappers show every
  finished job as C, without an exit status). Why a job was killed (timeout, cancelled) goes
  into the task's status.yaml when the runner could not record it.
- **cancel**: one ``qdel`` with all ids.
"""

# No ``from __future__ import annotations`` here: Snakemake builds the --hsm-pbs-* options from
# the ExecutorSettings field types, which must be real types, not strings.
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

from hsm_snake.paths import SweepPaths, TaskPaths
from hsm_snake.pbs import accounting, script
from hsm_snake.pbs.qstat import FORMATS, Qstat
from hsm_snake.pbs.watch import Tracking, Watcher
from hsm_snake.records import RecordError, read_record, read_yaml, write_text_atomic

QSUB_TIMEOUT_S = 120


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    qstat_format: str = field(
        default="auto",
        metadata={
            "help": "qstat output to ask for: auto (the richest this qstat accepts), "
            + ", ".join(FORMATS),
            "env_var": False,
            "required": False,
        },
    )
    walltime_grace: int = field(
        default=300,
        metadata={
            "help": "Seconds a job may stay running past its walltime before hsm-pbs qdel's it and "
            "records a timeout (the scheduler normally kills it first).",
            "env_var": False,
            "required": False,
        },
    )
    qstat_failure_timeout: int = field(
        default=900,
        metadata={
            "help": "Seconds qstat may fail in a row before the jobs it cannot report are given up.",
            "env_var": False,
            "required": False,
        },
    )
    no_export_env: bool = field(
        default=False,
        metadata={
            "help": "Do not pass the submitting environment to the jobs (by default qsub -V, as sbatch "
            "exports it by default).",
            "env_var": False,
            "required": False,
        },
    )


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    pass_envvar_declarations_to_cmd=True,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=1,
)


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        settings = self.workflow.executor_settings
        try:
            self.qstat = Qstat(settings.qstat_format)
        except ValueError as exc:
            raise WorkflowError(str(exc)) from None
        self.export_env = not settings.no_export_env
        self.watcher = Watcher(
            walltime_grace=int(settings.walltime_grace),
            qstat_failure_timeout=int(settings.qstat_failure_timeout),
            latency_wait=float(getattr(self.workflow.execution_settings, "latency_wait", 5) or 0),
            # hsm-pbs sees a job start and end at poll times: the run time it observes may fall
            # short of the real one by about one poll interval.
            slack_s=float(self.workflow.remote_execution_settings.seconds_between_status_checks or 10) + 5,
        )
        self.workdir = str(self.workflow.workdir_init)
        self._setup_cache: tuple[float, str | None] | None = None

    # -- submission ------------------------------------------------------------------------
    def sweep_dir(self) -> Path:
        # Snakemake's working directory is the sweep directory (--directory, or sweep_dir=).
        return Path.cwd()

    def task_setup(self) -> str | None:
        """modules + pre_script of hsm.yaml pbs:, as recorded in the sweep's project_config.yaml."""
        path = self.sweep_dir() / "project_config.yaml"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if self._setup_cache is None or self._setup_cache[0] != mtime:
            record = read_yaml(path) or {}
            setup = ((record.get("runner") or {}).get("pre_scripts") or {}).get("pbs")
            self._setup_cache = (mtime, setup)
        return self._setup_cache[1]

    def job_task(self, job: JobExecutorInterface) -> TaskPaths | None:
        """The task folder a job runs (its output is ``tasks/<task>/.completed``)."""
        return SweepPaths(self.sweep_dir()).task_of_outputs(job.output)

    @staticmethod
    def next_attempt(task: TaskPaths | None) -> int:
        if task is None:
            return 1
        try:
            return int(read_record(task.status).get("attempt") or 0) + 1
        except (FileNotFoundError, RecordError, ValueError, TypeError):
            return 1

    def run_job(self, job: JobExecutorInterface) -> None:
        sweep = self.sweep_dir()
        task = self.job_task(job)
        what = task.name if task is not None else f"{job.name}-{job.jobid}"
        name = script.job_name(sweep.name, what)
        scripts_dir = sweep / "scripts" / "job_scripts"
        logs_dir = sweep / "logs" / "pbs"
        scripts_dir.mkdir(parents=True, exist_ok=True)
        logs_dir.mkdir(parents=True, exist_ok=True)
        job_script = scripts_dir / f"{name}.pbs"
        log_base = logs_dir / f"{name}.a{self.next_attempt(task)}"
        stdout, stderr = f"{log_base}.out", f"{log_base}.err"
        resources = dict(job.resources.items())
        options = script.directives(resources, name, threads=getattr(job, "threads", 1))
        text = script.render(
            name=name,
            options=options,
            workdir=self.workdir,
            exec_job=self.format_job_exec(job),
            setup=self.task_setup(),
            comment=f"{what} of sweep {sweep.name}",
        )
        write_text_atomic(job_script, text)
        os.chmod(job_script, 0o755)
        command = script.qsub_command(str(job_script), stdout, stderr, export_env=self.export_env)
        runtime = resources.get("runtime")
        tracking = Tracking(
            task=task,
            script=str(job_script),
            stdout=stdout,
            stderr=stderr,
            walltime_s=int(float(runtime) * 60) if runtime else None,
        )
        failure = None
        try:
            # The job's Snakemake must run its one job here, not read this run's profile again.
            env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
            done = subprocess.run(command, capture_output=True, text=True, timeout=QSUB_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, check=False, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = f"qsub could not run: {exc}"
        else:
            job_id = script.parse_qsub_output(done.stdout) if done.returncode == 0 else None
            if job_id is None:
                failure = (f"qsub failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[:1000]}"
                           f"\n    command: {' '.join(command)}")
        if failure is not None:
            self.report_job_error(SubmittedJobInfo(job, aux={"pbs": tracking}), msg=failure)
            return
        self.logger.info(f"Job {job.jobid} ({what}) submitted as PBS job {job_id} (log: {stdout}).")
        self.report_job_submission(SubmittedJobInfo(job, external_jobid=job_id, aux={"pbs": tracking}))

    # -- status ----------------------------------------------------------------------------
    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]):
        if not active_jobs:
            return
        async with self.status_rate_limiter:
            answer = self.qstat.query([info.external_jobid for info in active_jobs])
        now = time.monotonic()
        if self.watcher.note(answer, now):
            self.logger.warning(f"qstat failed ({answer.error}); jobs are checked again next cycle")
        for job_info in active_jobs:
            track: Tracking = job_info.aux["pbs"]
            verdict = self.watcher.settle(job_info.external_jobid, track, answer, now)
            if verdict is None:
                yield job_info
            elif verdict.success:
                self.report_job_success(job_info)
            else:
                state = track.last_info.state if track.last_info is not None else None
                if track.task is not None:
                    accounting.record_verdict(track.task, job_info.external_jobid, verdict, scheduler_state=state)
                self.report_job_error(job_info, msg=f"{verdict.summary}. PBS logs: {track.stdout} {track.stderr}. ",
                                      aux_logs=[track.stdout, track.stderr])

    # -- cancel ----------------------------------------------------------------------------
    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        ids = [info.external_jobid for info in active_jobs if info.external_jobid]
        if not ids:
            return
        done = accounting.qdel(ids)
        if done is not None and done.returncode != 0:
            self.logger.info(f"qdel exit {done.returncode}: {(done.stderr or done.stdout).strip()[:500]}")
        # The runners in these jobs record cancelled themselves when SIGTERM reaches the script
        # in time; a job killed harder (or still starting) is recorded here.
        accounting.record_cancelled([(info.aux["pbs"].task, info.external_jobid) for info in active_jobs
                                     if info.external_jobid and info.aux["pbs"].task is not None])
