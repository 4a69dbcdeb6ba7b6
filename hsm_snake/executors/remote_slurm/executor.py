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
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

from hsm_snake.engine.backends import remote_backend, slurm_remotes
from hsm_snake.executors.common import run_bounded, setting
from hsm_snake.executors.remote_slurm import array
from hsm_snake.executors.slurm import accounting
from hsm_snake.executors.ssh import hosts as hostmod
from hsm_snake.executors.ssh import transfer
from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.layout.records import RecordError, read_record, read_yaml, write_text_atomic
from hsm_snake.layout.status import now_iso, write_status
from hsm_snake.runner import failures

SSH_TIMEOUT_S = 120
DEFAULT_ARRAY_LIMIT = 500
# Scheduler tools the login node must have.
SLURM_TOOLS = ("sbatch", "squeue", "sacct", "scancel")


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    alias: str = setting("", "The backend: slurm remote of hsm.yaml distributed.remotes to run on.")
    array_limit: int = setting(DEFAULT_ARRAY_LIMIT, "Most tasks in one sbatch --array (slurm: max_array_size).")


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_default_storage_provider_args=False,
    pass_default_resources_args=False,
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=1,
)


@dataclass
class Element:
    """One task as one array element (kept in SubmittedJobInfo.aux)."""

    task: TaskPaths
    array_id: str
    index: int

    @property
    def job_id(self) -> str:
        return f"{self.array_id}_{self.index}"


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
        self.ssh = hostmod.Ssh(self.control_dir)
        self.host = hostmod.host_from_remote(self.alias, remotes[self.alias])
        self.check_login_node()
        self.remote_sweep = transfer.remote_sweep_dir(self.host, self.sweep.name)
        transfer.push_setup(self.ssh, self.host, self.record, self.sweep.name, self.control_dir)
        self.log(f"set up on {self.alias}: sweep copy {self.remote_sweep}, project {self.host.project_dir}")

    # -- set-up ----------------------------------------------------------------------------
    def check_login_node(self) -> None:
        """ssh, Python + PyYAML, rsync, tar and a writable project_dir (the SSH hosts' probe), the
        Slurm tools, and the absolute workdir; WorkflowError naming what is missing."""
        hostmod.check(self.ssh, self.host)
        if not self.host.healthy:
            raise WorkflowError(f"hsm-remote-slurm: {self.alias} is not usable: {self.host.reason}")
        if self.host.workdir:
            found = hostmod.probe(self.ssh, self.host, self.host.workdir)
            problems = found.problems(self.host.min_free_gb)
            if problems:
                raise WorkflowError(f"hsm-remote-slurm: workdir on {self.alias}: {'; '.join(problems)}")
            self.host.workdir = found.directory
        done = self.remote(f"for c in {' '.join(SLURM_TOOLS)}; do command -v $c >/dev/null || echo $c; done")
        if done is None or done.returncode != 0 or done.stdout.strip():
            missing = done.stdout.split() if done is not None and done.returncode == 0 else None
            raise WorkflowError(
                f"hsm-remote-slurm: {self.alias} lacks the Slurm commands {', '.join(missing)} on its PATH"
                if missing
                else f"hsm-remote-slurm: could not ask {self.alias} for its Slurm commands: {self.failure(done)}"
            )

    def remote(self, command: str, timeout_s: float = SSH_TIMEOUT_S) -> subprocess.CompletedProcess | None:
        return run_bounded(self.ssh.command(self.host, command), timeout_s)

    @staticmethod
    def failure(done: subprocess.CompletedProcess | None) -> str:
        if done is None:
            return f"no answer within {SSH_TIMEOUT_S} s"
        return hostmod.explain_ssh_failure(done.stderr, done.returncode)

    def log(self, text: str) -> None:
        path = self.paths.source_log(self.alias)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{now_iso()}\t{text}\n")

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
        for options, batch in batches.items():
            batch.sort(key=lambda item: (len(item[1].name), item[1].name))
            for start in range(0, len(batch), self.array_limit):
                self.submit_array(batch[start : start + self.array_limit], list(options))

    def run_job(self, job: JobExecutorInterface) -> None:
        self.run_jobs([job])

    def submit_array(self, batch: list[tuple[JobExecutorInterface, TaskPaths]], options: list[str]) -> None:
        tasks = [task for _, task in batch]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        script = self.paths.job_scripts_dir / f"remote-slurm-{stamp}-{tasks[0].name}+{len(tasks) - 1}.sh"
        script.parent.mkdir(parents=True, exist_ok=True)
        runner = self.record.get("runner") or {}
        write_text_atomic(
            script,
            array.array_script(
                comment=f"{len(tasks)} task(s) of sweep {self.sweep.name} on {self.alias}, one per element",
                tasks=[task.name for task in tasks],
                remote_sweep=self.remote_sweep,
                workdir=self.host.project_dir,
                runner_path=f"{self.host.project_dir}/.hsm-runner",
                python=list(self.host.python),
                alias=self.alias,
                setup=(runner.get("pre_scripts") or {}).get(remote_backend(self.alias)),
            ),
        )
        relative_script = script.relative_to(self.sweep).as_posix()
        try:
            transfer.rsync(
                self.ssh,
                self.host,
                [f"{self.sweep}/./{relative_script}", *(f"{self.sweep}/./tasks/{task.name}" for task in tasks)],
                self.remote_sweep + "/",
                "--relative",
                "--exclude=.completed",
            )
            command = array.sbatch_command(
                self.remote_sweep, relative_script, len(tasks), options, job_name=f"hsm-{self.sweep.name}"
            )
            done = self.remote(command)
            if done is None or done.returncode != 0:
                why = self.failure(done) if done is None or done.returncode == 255 else done.stderr.strip()[-800:]
                raise array.SubmitError(f"sbatch on {self.alias} failed: {why}")
            array_id = array.parse_sbatch(done.stdout)
        except (array.SubmitError, transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            for job, _ in batch:
                self.report_job_error(SubmittedJobInfo(job), msg=f"hsm-remote-slurm: {exc}")
            return
        self.note_submitted(array_id)
        with open(script, "a", encoding="utf-8") as out:
            out.write(f"# submitted on {self.alias} as job {array_id}: {command}\n")
        self.log(f"array {array_id}: {len(tasks)} task(s) {tasks[0].name}..{tasks[-1].name} ({shlex.join(options)})")
        for index, (job, task) in enumerate(batch, start=1):
            element = Element(task, array_id, index)
            self.report_job_submission(SubmittedJobInfo(job, external_jobid=element.job_id, aux={"element": element}))
        self.logger.info(f"hsm-remote-slurm: {len(tasks)} task(s) submitted on {self.alias} as array {array_id}")

    def note_submitted(self, array_id: str) -> None:
        """Every array id with its remote, so that `cancel` and a later `complete` find the jobs."""
        record = self.paths.submitted_jobs("remote-slurm")
        record.parent.mkdir(parents=True, exist_ok=True)
        with open(record, "a", encoding="utf-8") as out:
            out.write(f"{self.alias} {array_id}\n")

    # -- status ----------------------------------------------------------------------------
    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]):
        if not active_jobs:
            return
        async with self.status_rate_limiter:
            done = self.remote(shlex.join(array.SQUEUE_ARGV))
        if done is None or done.returncode != 0:
            self.logger.warning(f"hsm-remote-slurm: squeue on {self.alias} failed ({self.failure(done)}); asked again")
            for info in active_jobs:
                yield info
            return
        queued = array.parse_squeue(done.stdout)
        ended = []
        for info in active_jobs:
            element: Element = info.aux["element"]
            if queued.get(element.job_id) in array.ACTIVE_STATES or queued.get(element.array_id) in array.ACTIVE_STATES:
                yield info
            else:
                ended.append(info)
        if not ended:
            return
        if not self.settle([info.aux["element"] for info in ended]):
            for info in ended:
                yield info
            return
        for info in ended:
            element = info.aux["element"]
            status = status_of(element.task)
            if element.task.marker.exists():
                self.report_job_success(info)
            else:
                self.report_job_error(
                    info,
                    msg=f"{element.task.name} (Slurm job {element.job_id} on {self.alias}): "
                    f"{status.get('status', 'failed')}: {status.get('error_category')}: {status.get('error_summary')}",
                    aux_logs=[str(element.task.stderr), str(self.paths.slurm_logs_dir / f"{element.job_id}.out")],
                )

    def settle(self, elements: list[Element]) -> bool:
        """Pull the folders of ended elements (one rsync), mark the completed ones, record Slurm's
        verdict on the others (one sacct). False: the pull failed, ask again next poll."""
        sources = [f"{self.remote_sweep}/./tasks/{element.task.name}" for element in elements]
        sources += [f"{self.remote_sweep}/./logs/slurm/{element.job_id}.out" for element in elements]
        try:
            transfer.rsync(
                self.ssh,
                self.host,
                sources,
                str(self.sweep) + "/",
                "--relative",
                "--ignore-missing-args",
                # The marker is made here once the status is in place (a reader never sees it first).
                "--exclude=.completed",
                pull=True,
                timeout=transfer.RSYNC_TIMEOUT_S,
            )
        except (transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            self.logger.warning(f"hsm-remote-slurm: pulling task folders from {self.alias} failed ({exc}); retried")
            return False
        unexplained = []
        for element in elements:
            status = status_of(element.task)
            if status.get("job_id") == element.job_id and status.get("status") == "completed":
                element.task.marker.touch()
                self.log(f"{element.task.name}\t{element.job_id}\tcompleted")
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
        if unexplained:
            self.record_verdicts(unexplained)
        return True

    def record_verdicts(self, elements: list[Element]) -> None:
        """Slurm's word (one sacct) on elements whose runner did not record why they ended."""
        ids = array.checked_job_ids([element.job_id for element in elements])
        done = self.remote(shlex.join(accounting.sacct_argv(ids)))
        verdicts = accounting.parse_sacct(done.stdout) if done is not None and done.returncode == 0 else {}
        for element in elements:
            status = status_of(element.task)
            ran = status.get("job_id") == element.job_id
            record = (
                status
                if ran
                else {
                    "task_id": element.task.name,
                    "status": "failed",
                    "attempt": int(status.get("attempt") or 0) + 1,
                    "host": None,
                    "host_alias": self.alias,
                    "backend": "slurm",
                    "job_id": element.job_id,
                }
            )
            found = verdicts.get(element.job_id)
            if found and found[0] in accounting.SLURM_STATES:
                accounting.record_verdict(element.task.status, record, element.job_id, found)
            elif not ran or record.get("status") == "running":
                state = f"{found[0]} (exit {found[1]})" if found else "no sacct record"
                what = "without running the task runner" if not ran else "while its task ran"
                record.update(
                    status="failed",
                    error_category="launch_error" if not ran else failures.KILLED,
                    error_summary=f"Slurm job {element.job_id} on {self.alias} ended {what} ({state}); "
                    f"the element's output: {self.paths.slurm_logs_dir / (element.job_id + '.out')}",
                    finished=now_iso(),
                )
                write_status(element.task.status, record)
            self.log(f"{element.task.name}\t{element.job_id}\t{found[0] if found else 'ended'}")

    # -- cancel ----------------------------------------------------------------------------
    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        elements = [info.aux["element"] for info in active_jobs if "element" in (info.aux or {})]
        if not elements:
            return
        arrays = array.checked_job_ids(sorted({element.array_id for element in elements}))
        done = self.remote(shlex.join(["scancel", "--", *arrays]))
        self.log(
            f"scancel {' '.join(arrays)}: {'sent' if done is not None and done.returncode == 0 else self.failure(done)}"
        )
        # The runners record cancelled when the signal reaches them; give them a moment, then the
        # folders come back and Slurm's verdict covers the rest (queued elements never ran).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            queue = self.remote(shlex.join(array.SQUEUE_ARGV), timeout_s=30)
            if queue is None or queue.returncode != 0:
                break
            states = array.parse_squeue(queue.stdout)
            if not any(element.job_id in states or element.array_id in states for element in elements):
                break
            time.sleep(1)
        self.settle(elements)

    def shutdown(self) -> None:
        super().shutdown()
        try:
            self.ssh.close(self.host)
        except (subprocess.TimeoutExpired, OSError):
            pass
        for path in self.control_dir.iterdir() if self.control_dir.exists() else ():
            path.unlink(missing_ok=True)
        try:
            self.control_dir.rmdir()
        except OSError:
            pass


def status_of(task: TaskPaths) -> dict[str, Any]:
    try:
        return read_record(task.status)
    except (FileNotFoundError, RecordError):
        return {}
