"""hsm-snake's Snakemake executor for PBS Pro / OpenPBS / Torque (``executor: hsm-pbs``).

Snakemake finds it through the shim package ``snakemake_executor_plugin_hsm_pbs``. Per job:

- **submit**: the job script (``scripts/job_scripts/<sweep>-<task>.pbs`` in the sweep directory,
  rendered by ``script.py`` from the task rule's resources) runs the task's set-up (hsm.yaml
  ``pbs: modules / pre_script``) and then the task runner, ``python -m hsm_snake.runner
  tasks/<task>`` (no Snakemake starts in the job; its completion marker is what the engine's
  Snakemake checks); ``qsub -V -o logs/pbs/<name>.a<attempt>.out -e ….err SCRIPT``.
  Ready tasks whose ``#PBS`` lines are the same go out together as one job array
  (``qsub -J 1-N`` on PBS Pro, ``-t 1-N`` on Torque) of at most ``--hsm-pbs-array-limit``
  elements: ``scripts/job_scripts/<sweep>-<first task>+<N-1>.pbs``, whose elements write the same
  per-task logs as single jobs.
- **status**: a task whose runner recorded its completion in this job (marker + status.yaml) is
  done at the next poll (every 0.5 s, executors/polling.py); one ``qstat`` call for all active
  jobs at most every ``seconds-between-status-checks`` (``qstat.py`` picks the richest output
  this qstat speaks: PBS Pro JSON, Torque XML, ``-f`` text or the table);
  ``watch.py`` decides when a job has left the wait (finished, gone from qstat, past its
  walltime, or qstat failing for too long): nothing leaves Snakemake waiting forever.
- **outcome**: decided by the task's completion marker and the runner's record, plus PBS's
  exit_status where it has one (``accounting.decide``: Slurm's torque wrappers show every
  finished job as C, without an exit status). Why a job was killed (timeout, cancelled) goes
  into the task's status.yaml when the runner could not record it.
- **cancel**: one ``qdel`` with all ids (an array's id for its elements).
"""

# No ``from __future__ import annotations`` here: Snakemake builds the --hsm-pbs-* options from
# the ExecutorSettings field types, which must be real types, not strings.
import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from hsm_snake.executors import jobscript, polling
from hsm_snake.executors.common import plugin_common_settings, setting
from hsm_snake.executors.pbs import accounting, script
from hsm_snake.executors.pbs.qstat import FORMATS, Qstat
from hsm_snake.executors.pbs.watch import ArrayElement, Tracking, Watcher
from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.layout.records import RecordError, read_record, write_text_atomic

QSUB_TIMEOUT_S = 120
DEFAULT_ARRAY_LIMIT = 1000


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    array_limit: int = setting(
        DEFAULT_ARRAY_LIMIT,
        "Most tasks in one job array (hsm.yaml pbs: max_array_size; the server's "
        "max_array_size on PBS Pro, max_job_array_size on Torque). 0 or 1: one job per task.",
    )
    qstat_format: str = setting(
        "auto",
        "qstat output to ask for: auto (the richest this qstat accepts), " + ", ".join(FORMATS),
    )
    walltime_grace: int = setting(
        300,
        "Seconds a job may stay running past its walltime before hsm-pbs qdel's it and "
        "records a timeout (the scheduler normally kills it first).",
    )
    qstat_failure_timeout: int = setting(
        900,
        "Seconds qstat may fail in a row before the jobs it cannot report are given up.",
    )
    no_export_env: bool = setting(
        False,
        "Do not pass the submitting environment to the jobs (by default qsub -V, as sbatch exports it by default).",
    )


common_settings = plugin_common_settings(passes_snakemake_args=True)


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
        # The sweep directory, where the runner finds tasks/<task>: with `--config sweep_dir=` it is
        # not the directory Snakemake started in (workdir_init).
        self.workdir = str(self.sweep_dir())
        self.array_limit = int(settings.array_limit or 0)
        self.active_count = 0  # jobs at the last check: spaces the checks out (polling.poll_interval)
        self.qstat_pace = polling.SchedulerPace(
            float(self.workflow.remote_execution_settings.seconds_between_status_checks or 10)
        )

    # -- submission ------------------------------------------------------------------------
    def sweep_dir(self) -> Path:
        # Snakemake's working directory is the sweep directory (--directory, or sweep_dir=).
        return Path.cwd()

    def task_setup(self) -> str | None:
        return jobscript.recorded_setup(self.sweep_dir(), "pbs")

    def job_command(self, job: "Prepared") -> str:
        """What the job runs: the task runner for a task (no Snakemake in the job), else the
        Snakemake job command the interface gives."""
        if job.task is None:
            return self.format_job_exec(job.job)
        return jobscript.runner_command(self.get_python_executable(), shlex.quote(f"tasks/{job.task.name}"))

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

    def prepare(self, job: JobExecutorInterface) -> "Prepared":
        """Names, logs and ``#PBS`` lines of one job, before it goes out alone or in an array."""
        task = self.job_task(job)
        what = task.name if task is not None else f"{job.name}-{job.jobid}"
        resources = dict(job.resources.items())
        name = script.job_name(self.sweep_dir().name, what)
        runtime = resources.get("runtime")
        return Prepared(
            job=job,
            task=task,
            what=what,
            name=name,
            log_base=str(self.logs_dir() / f"{name}.a{self.next_attempt(task)}"),
            options=script.directives(resources, name, threads=getattr(job, "threads", 1)),
            flavor=str(resources.get("pbs_flavor") or "torque"),
            walltime_s=int(float(runtime) * 60) if runtime else None,
        )

    def logs_dir(self) -> Path:
        path = self.sweep_dir() / "logs" / "pbs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_script(self, name: str, text: str) -> str:
        scripts_dir = self.sweep_dir() / "scripts" / "job_scripts"
        scripts_dir.mkdir(parents=True, exist_ok=True)
        job_script = scripts_dir / f"{name}.pbs"
        write_text_atomic(job_script, text)
        os.chmod(job_script, 0o755)
        return str(job_script)

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        """All jobs Snakemake has ready: those with the same ``#PBS`` lines go out as arrays."""
        prepared = []
        for job in jobs:
            self.run_job_pre(job)
            if job.is_group() or self.array_limit <= 1:
                self.run_job(job)
            else:
                prepared.append(self.prepare(job))
        for batch in array_batches(prepared, self.array_limit):
            if len(batch) == 1:
                self.submit_single(batch[0])
            else:
                self.submit_array(batch)

    def run_job(self, job: JobExecutorInterface) -> None:
        self.submit_single(self.prepare(job))

    def submit_single(self, job: "Prepared") -> None:
        stdout, stderr = f"{job.log_base}.out", f"{job.log_base}.err"
        text = script.render(
            name=job.name,
            options=job.options,
            workdir=self.workdir,
            exec_job=self.job_command(job),
            setup=self.task_setup(),
            comment=f"{job.what} of sweep {self.sweep_dir().name}",
        )
        job_script = self.write_script(job.name, text)
        tracking = Tracking(task=job.task, script=job_script, stdout=stdout, stderr=stderr, walltime_s=job.walltime_s)
        job_id, failure = self.qsub(script.qsub_command(job_script, stdout, stderr, export_env=self.export_env))
        if job_id is None:
            self.report_job_error(SubmittedJobInfo(job.job, aux={"pbs": tracking}), msg=failure)
            return
        tracking.job_id = job_id
        self.logger.info(f"Job {job.job.jobid} ({job.what}) submitted as PBS job {job_id} (log: {stdout}).")
        self.report_job_submission(SubmittedJobInfo(job.job, external_jobid=job_id, aux={"pbs": tracking}))

    def submit_array(self, jobs: Sequence["Prepared"]) -> None:
        sweep = self.sweep_dir().name
        first = jobs[0]
        what = f"{first.what}+{len(jobs) - 1}"
        name = script.job_name(sweep, what)
        elements = [
            script.Element(index, job.log_base, self.job_command(job)) for index, job in enumerate(jobs, start=1)
        ]
        text = script.render_array(
            name=name,
            options=[f"-N {name}", *first.shared_options],
            workdir=self.workdir,
            elements=elements,
            setup=self.task_setup(),
            comment=f"{len(jobs)} tasks of sweep {sweep} ({first.what} …), one per array element",
        )
        job_script = self.write_script(name, text)
        for job in jobs:
            # Left by an element of an earlier array whose task never started (same attempt number):
            # it would be taken for this element's id.
            Path(script.id_file(job.log_base)).unlink(missing_ok=True)
        array_log = str(self.logs_dir() / name)
        command = script.qsub_command(
            job_script,
            f"{array_log}.out",
            f"{array_log}.err",
            export_env=self.export_env,
            array=script.array_option(first.flavor, len(jobs)),
        )
        array_id, failure = self.qsub(command)
        for element, job in zip(elements, jobs, strict=True):
            tracking = Tracking(
                task=job.task,
                script=job_script,
                stdout=f"{job.log_base}.out",
                stderr=f"{job.log_base}.err",
                walltime_s=job.walltime_s,
            )
            if array_id is None:
                self.report_job_error(SubmittedJobInfo(job.job, aux={"pbs": tracking}), msg=failure)
                continue
            tracking.element = ArrayElement(array_id, element.index, Path(script.id_file(job.log_base)))
            self.report_job_submission(SubmittedJobInfo(job.job, external_jobid=tracking.label, aux={"pbs": tracking}))
        if array_id is not None:
            self.logger.info(
                f"Jobs {', '.join(str(job.job.jobid) for job in jobs)} submitted as PBS job array "
                f"{array_id} (elements 1-{len(jobs)}; script: {job_script})."
            )

    def qsub(self, command: list[str]) -> tuple[str | None, str]:
        """(the job id qsub printed, or None and why not)."""
        try:
            # A job that runs a Snakemake (not a task) must run its one job, not read this profile.
            env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=QSUB_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"qsub could not run: {exc}"
        job_id = script.parse_qsub_output(done.stdout) if done.returncode == 0 else None
        if job_id is None:
            return None, (
                f"qsub failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[:1000]}"
                f"\n    command: {' '.join(command)}"
            )
        self.note_submitted(job_id)
        return job_id, ""

    def note_submitted(self, job_id: str) -> None:
        """Every job id, so that a later `complete` finds the jobs of a run that was killed."""
        record = SweepPaths(self.sweep_dir()).submitted_jobs("pbs")
        record.parent.mkdir(parents=True, exist_ok=True)
        with open(record, "a", encoding="utf-8") as out:
            out.write(job_id + "\n")

    # -- status ----------------------------------------------------------------------------
    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]):
        self.active_count = len(active_jobs)
        if not active_jobs:
            return
        tracks = [info.aux["pbs"] for info in active_jobs]
        for track in tracks:
            track.learn_job_id()
        if not self.qstat_pace.due():
            # Between qstat calls (executors/polling.py): tasks whose runner recorded completion.
            for job_info, track in zip(active_jobs, tracks, strict=True):
                if polling.recorded_done(track.task, track.job_id, accounting.same_job):
                    self.report_job_success(job_info)
                else:
                    yield job_info
            return
        async with self.status_rate_limiter:
            answer = self.qstat.query(list(dict.fromkeys(track.qstat_id() for track in tracks)))
        now = time.monotonic()
        if self.watcher.note(answer, now):
            self.logger.warning(f"qstat failed ({answer.error}); jobs are checked again next cycle")
        for job_info, track in zip(active_jobs, tracks, strict=True):
            verdict = self.watcher.settle(track, answer, now)
            if verdict is None:
                yield job_info
            elif verdict.success:
                self.report_job_success(job_info)
            else:
                state = track.last_info.state if track.last_info is not None else None
                if track.task is not None and track.job_id is not None:
                    accounting.record_verdict(track.task, track.job_id, verdict, scheduler_state=state)
                self.report_job_error(
                    job_info,
                    msg=f"{verdict.summary}. PBS logs: {track.stdout} {track.stderr}. ",
                    aux_logs=[track.stdout, track.stderr],
                )

    async def sleep(self) -> None:
        await polling.pause(self, polling.poll_interval(self.active_count))

    # -- cancel ----------------------------------------------------------------------------
    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        tracks: list[Tracking] = [info.aux["pbs"] for info in active_jobs]
        for track in tracks:
            track.learn_job_id()
        # An array's id deletes all its elements, also those still queued.
        ids = list(
            dict.fromkeys(
                track.element.array_id if track.element is not None else track.job_id
                for track in tracks
                if track.element is not None or track.job_id
            )
        )
        if not ids:
            return
        done = accounting.qdel(ids)
        if done is not None and done.returncode != 0:
            self.logger.info(f"qdel exit {done.returncode}: {(done.stderr or done.stdout).strip()[:500]}")
        # The runners in these jobs record cancelled themselves when SIGTERM reaches the script
        # in time; a job killed harder (or still starting) is recorded here.
        accounting.record_cancelled(
            [(track.task, track.job_id) for track in tracks if track.job_id and track.task is not None]
        )


@dataclass(frozen=True)
class Prepared:
    """One Snakemake job, ready to be written into a job script."""

    job: JobExecutorInterface
    task: TaskPaths | None
    what: str  # the task's name (or rule and job number)
    name: str  # its PBS job name
    log_base: str  # its logs: <log_base>.out / .err
    options: list[str]  # its #PBS lines, -N first
    flavor: str
    walltime_s: int | None

    @property
    def shared_options(self) -> tuple[str, ...]:
        """The #PBS lines but the job name: jobs with the same ones can share an array."""
        return tuple(option for option in self.options if not option.startswith("-N "))


def array_batches(jobs: list[Prepared], limit: int) -> list[list[Prepared]]:
    """Jobs with the same ``#PBS`` lines, in task order (element i runs the i-th task: easy to
    follow), cut into arrays of at most ``limit``; a batch of one goes out as a single job."""
    same: dict[tuple[str, ...], list[Prepared]] = {}
    for job in jobs:
        same.setdefault(job.shared_options, []).append(job)
    batches = []
    for group in same.values():
        group.sort(key=lambda job: (len(job.what), job.what))  # task_999 before task_1000
        batches += [group[start : start + limit] for start in range(0, len(group), max(1, limit))]
    return batches
