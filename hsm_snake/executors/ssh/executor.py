"""hsm-snake's Snakemake executor for a pool of SSH hosts (``executor: hsm-ssh``).

Snakemake finds it through the shim package ``snakemake_executor_plugin_hsm_ssh``. It runs the
task runner itself on the hosts (no Snakemake there): see ``transfer.py`` for what goes where.

- **hosts**: ``project.distributed`` of the sweep's project_config.yaml (remotes with
  max_parallel_jobs slots each, plus ``local_slots`` on this machine). Each host is health-checked
  before use and every ``health_interval`` seconds (ssh, its Python importing yaml, rsync, the
  project_dir writable with ``min_free_gb`` free); an unhealthy host gets no new tasks until a
  later check finds it healthy again.
- **clusters**: a ``backend: slurm`` or ``pbs`` remote is a member too (v1's ``--mode
  distributed``): its slots are the jobs it may still have queued, its tasks go out as array
  elements over its login node's ssh connection (``executors/remote_cluster/pool.py``).
- **slots**: every job gets a thread that waits for a free slot and takes a host by ``strategy``
  (round_robin: the next host in turn that has room; least_loaded: the lowest running/slots);
  Snakemake sees the job as submitted meanwhile. A host with GPU slots (visible_gpus x
  tasks_per_gpu) also hands the task ``gpus`` distinct devices, passed as ``HSM_GPU_DEVICES``.
- **outcome**: success iff the task's marker exists locally after the pull. A lost connection
  (ssh or rsync exit 255) fails the job with ``error_category: host_lost`` (hsm-snake retries it
  when ``retries`` > 0) and the host is unhealthy until a health check finds it back.
- **shared_fs**: such a host sees the sweep at the same path: nothing is pushed or pulled, the
  runner (this machine's hsm_snake package) writes straight into the task folder.
- **cancel**: the remote runner runs in its own session (``setsid``), whose id it prints first;
  cancel sends SIGTERM to that process group over ssh (the runner records ``cancelled``), then
  pulls the task folder back.
- Every start and end is a line in ``logs/sources/ssh.log`` (time, task, host, result) and in
  ``logs/sources/<alias>.log`` of the host.
"""

# No ``from __future__ import annotations``: Snakemake builds CLI options from the field types.
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from hsm_snake.engine.backends import CLUSTER_SCHEDULERS
from hsm_snake.executors.common import plugin_common_settings, setting
from hsm_snake.executors.remote_cluster.pool import PooledCluster
from hsm_snake.executors.ssh import hosts as hostmod
from hsm_snake.executors.ssh import transfer
from hsm_snake.executors.ssh.hosts import Host, Ssh
from hsm_snake.layout.paths import SweepPaths, TaskPaths, map_path
from hsm_snake.layout.records import RecordError, read_record, read_yaml, write_record
from hsm_snake.layout.status import now_iso, write_status

HOST_LOST = "host_lost"
# After a lost connection, the attempt to fetch what the task left gets this long.
LOST_PULL_TIMEOUT_S = 60
KILL_REMOTE_TIMEOUT_S = 20


def pgid_of(first_line: bytes) -> int | None:
    """The remote session id the runner command prints first (``HSM_PGID <n>``)."""
    words = first_line.split()
    if len(words) == 2 and words[0] == b"HSM_PGID" and words[1].isdigit():
        return int(words[1])
    return None


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    cancel_grace: int = setting(
        15,
        "Seconds to wait after SIGTERM to a remote task before pulling its folder back.",
    )


common_settings = plugin_common_settings(passes_snakemake_args=False)


@dataclass
class Run:
    """One job's life in the pool (kept in SubmittedJobInfo.aux)."""

    task: TaskPaths | None
    host: Host | None = None
    remote_task: str | None = None
    pgid: int | None = None
    process: subprocess.Popen | None = None
    done: threading.Event = field(default_factory=threading.Event)
    success: bool = False
    message: str = ""
    cancelled: bool = False
    pulled: bool = False
    gpu_devices: list[str] = field(default_factory=list)


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        self.sweep = Path.cwd()
        self.paths = SweepPaths(self.sweep)
        self.cancel_grace = int(getattr(self.workflow.executor_settings, "cancel_grace", 15) or 0)
        self.log_path = self.sweep / "logs" / "sources" / "ssh.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_lock = threading.Lock()
        self.cond = threading.Condition()
        self.setup_locks: dict[str, threading.Lock] = {}
        self.set_up: set[str] = set()
        # Hosts where some task ran, and where some task did not succeed (their copies stay).
        self.ran_on: set[str] = set()
        self.failed_on: set[str] = set()
        self.ssh = Ssh.private()
        self.record = read_yaml(self.sweep / "project_config.yaml") or {}
        self.sweep_id = self.sweep.name
        self.pool = hostmod.pool_from_record(self.record, [sys.executable], clusters=True)
        self.clusters = {
            host.alias: PooledCluster(self.paths, host, self.ssh, self.record)
            for host in self.pool
            if host.backend in CLUSTER_SCHEDULERS
        }
        if not self.pool:
            raise WorkflowError(
                "hsm-ssh: no hosts: set distributed.remotes (and/or distributed.local_slots) in hsm.yaml"
            )
        self.strategy = hostmod.strategy_of(self.record)
        self.health_interval = hostmod.health_interval_of(self.record)
        self.next_turn = 0
        self.stopping = threading.Event()
        threads = [threading.Thread(target=self.check_host, args=(host,)) for host in self.pool]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for host in self.pool:
            self.setup_locks[host.alias] = threading.Lock()
            if host.alias in self.clusters and host.healthy:
                for note in self.clusters[host.alias].start():
                    self.log(f"host {host.alias}: {note}")
            if host.is_local:
                line = f"host {host.alias}: this machine, {host.slots} slot(s)"
            elif host.healthy:
                line = f"host {host.alias}: ok ({host.reason}), {host.slots} slot(s), project_dir {host.project_dir}"
            else:
                line = f"host {host.alias}: UNUSABLE, gets no tasks: {host.reason}"
            self.log(line)
            (self.logger.info if host.healthy else self.logger.warning)(f"hsm-ssh: {line}")
        self.log(f"ssh control dir {self.ssh.control_dir}" + (f", ssh -F {self.ssh.config}" if self.ssh.config else ""))
        if not any(host.healthy for host in self.pool):
            raise WorkflowError(
                "hsm-ssh: no usable host: " + "; ".join(f"{host.alias}: {host.reason}" for host in self.pool)
            )
        self.log(f"strategy {self.strategy}, health checks every {self.health_interval:g} s")
        threading.Thread(target=self.watch_health, daemon=True, name="hsm-ssh-health").start()

    # -- health ----------------------------------------------------------------------------
    def check_host(self, host: Host) -> None:
        if host.backend in CLUSTER_SCHEDULERS:
            PooledCluster.check(self.ssh, host)
        else:
            hostmod.check(self.ssh, host, shared_dir=map_path(str(self.sweep), host.path_map))

    def watch_health(self) -> None:
        """Re-check every remote host periodically: a failing one gets no new tasks, a recovered one
        (lost or unhealthy before) gets tasks again."""
        while not self.stopping.wait(self.health_interval):
            for host in self.pool:
                if host.is_local or self.stopping.is_set():
                    continue
                was_healthy = host.healthy
                probe = Host(**{**host.__dict__, "gpu_free": {}})
                self.check_host(probe)
                with self.cond:
                    host.reason = probe.reason
                    if probe.healthy and not was_healthy and not host.healthy:
                        host.healthy, host.project_dir, host.workdir = True, probe.project_dir, probe.workdir
                        if host.detect_gpus and not host.gpu_free:
                            host.gpu_free, host.slots = probe.gpu_free, probe.slots
                        # Its files may be gone (a rebuilt host): set it up again before its next task.
                        self.set_up.discard(host.alias)
                        self.log(f"host {host.alias}: BACK, gets tasks again ({probe.reason})")
                        self.logger.info(f"hsm-ssh: host {host.alias} is back")
                    elif not probe.healthy and host.healthy:
                        host.healthy = False
                        self.log(f"host {host.alias}: UNHEALTHY, gets no new tasks: {probe.reason}")
                        self.logger.warning(f"hsm-ssh: host {host.alias} unhealthy: {probe.reason}")
                    self.cond.notify_all()

    # -- bookkeeping -----------------------------------------------------------------------
    def log(self, text: str) -> None:
        stamp = now_iso()
        with self.log_lock, open(self.log_path, "a", encoding="utf-8") as out:
            out.write(f"{stamp}\t{text}\n")

    def log_task(self, task: TaskPaths, host: Host, event: str) -> None:
        """A task's start/end: in ssh.log and in the host's own logs/sources/<alias>.log."""
        self.log(f"{task.name}\t{host.alias}\t{event}")
        stamp = now_iso()
        with self.log_lock, open(self.log_path.parent / f"{host.alias}.log", "a", encoding="utf-8") as out:
            out.write(f"{stamp}\t{task.name}\t{event}\n")

    def job_task(self, job: JobExecutorInterface) -> TaskPaths | None:
        return self.paths.task_of_outputs(job.output)

    # -- slots -----------------------------------------------------------------------------
    def acquire(self, run: Run) -> Host | None:
        with self.cond:
            while True:
                if run.cancelled:
                    return None
                usable = [h for h in self.pool if h.healthy]
                if not usable:
                    return None
                host = self.pick([h for h in usable if h.has_room()])
                if host is not None:
                    host.running += 1
                    run.gpu_devices = host.take_gpus()
                    return host
                self.cond.wait(1.0)

    def pick(self, free: list[Host]) -> Host | None:
        if not free:
            return None
        if self.strategy == "least_loaded":
            return min(free, key=lambda h: (h.load(), h.is_local))
        order = self.pool[self.next_turn :] + self.pool[: self.next_turn]
        host = next(h for h in order if h in free)
        self.next_turn = (self.pool.index(host) + 1) % len(self.pool)
        return host

    def release(self, host: Host, run: Run) -> None:
        with self.cond:
            host.running -= 1
            host.give_back_gpus(run.gpu_devices)
            run.gpu_devices = []
            self.cond.notify_all()

    def lose(self, host: Host, why: str) -> None:
        with self.cond:
            if host.healthy:
                host.healthy, host.reason = False, why
                self.log(f"host {host.alias}: LOST, gets no tasks until a health check finds it back: {why}")
                self.logger.warning(f"hsm-ssh: host {host.alias} lost: {why}")
            self.cond.notify_all()

    # -- submission ------------------------------------------------------------------------
    def run_job(self, job: JobExecutorInterface) -> None:
        run = Run(task=self.job_task(job))
        info = SubmittedJobInfo(job, external_jobid=f"ssh-{job.jobid}", aux={"ssh": run})
        if run.task is None:
            run.message = f"hsm-ssh runs task jobs only (job {job.name} has no tasks/<task>/ output)"
            run.done.set()
        else:
            threading.Thread(
                target=self.drive, args=(run, run.task), daemon=True, name=f"hsm-ssh-{run.task.name}"
            ).start()
        self.report_job_submission(info)

    def drive(self, run: Run, task: TaskPaths) -> None:
        try:
            while not run.done.is_set():
                host = self.acquire(run)
                if host is None:
                    run.message = (
                        "cancelled"
                        if run.cancelled
                        else "no usable SSH host left: " + "; ".join(f"{h.alias}: {h.reason}" for h in self.pool)
                    )
                    if not run.cancelled:
                        self.mark_host_lost(task, run.message)
                    break
                run.host = host
                try:
                    if self.attempt(run, task, host):
                        break
                finally:
                    self.release(host, run)
        except Exception as exc:  # noqa: BLE001 - a job thread must always report
            run.message = f"hsm-ssh internal error: {exc!r}"
        finally:
            run.done.set()

    def ensure_setup(self, host: Host) -> None:
        if host.is_local or host.shared_fs:
            return
        with self.setup_locks[host.alias]:
            if host.alias in self.set_up:
                return
            transfer.push_setup(self.ssh, host, self.record, self.sweep_id, self.ssh.control_dir)
            if host.alias in self.clusters:
                for note in self.clusters[host.alias].start():
                    self.log(f"host {host.alias}: {note}")
            self.set_up.add(host.alias)

    def attempt(self, run: Run, task: TaskPaths, host: Host) -> bool:
        """One try on one host; False = not started there (host unusable): try another."""
        try:
            self.ensure_setup(host)
        except (transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            self.lose(host, f"setup failed: {exc}")
            return False
        self.log_task(task, host, "start" + (f" gpus {','.join(run.gpu_devices)}" if run.gpu_devices else ""))
        if host.alias in self.clusters:
            return self.run_on_cluster(run, task, host)
        if host.is_local:
            returncode, err = self.run_local(run, host)
        else:
            try:
                returncode, err = self.run_remote(run, host)
            except transfer.TransferError as exc:
                self.forget_where_it_ran(task)
                self.lose(host, f"push failed: {exc}")
                return False
        return self.settle(run, host, returncode, err)

    def run_on_cluster(self, run: Run, task: TaskPaths, host: Host) -> bool:
        """The task as an element of an array on the cluster; its slot is held until the element
        left the queue and the folder is back. False: its folder could not be pushed there (the
        login node away): the cluster is lost until a health check finds it back, the task goes
        to another host, as after a failed push to an SSH host."""
        cluster = self.clusters[host.alias]
        submission = cluster.run(task)
        if submission.unsent:
            self.lose(host, submission.message)
            return False
        run.success = submission.success
        run.message = submission.message
        outcome = "completed" if run.success else f"{self.status_of(task).get('status', 'failed')}"
        self.log_task(task, host, f"{outcome} ({cluster.job_label(submission)})" if submission.element else outcome)
        return True

    def run_local(self, run: Run, host: Host) -> tuple[int, str]:
        argv, env = transfer.local_runner_argv(host.python, run.task.dir)
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        run.process, run.pgid = process, process.pid
        self.note_where_it_runs(run, host)
        _, err = process.communicate()
        return process.returncode, err

    def run_remote(self, run: Run, host: Host) -> tuple[int, str]:
        """The task in one ssh session; in push/pull mode its folder goes there on stdin and comes
        back on stdout (``run.pulled``). TransferError: it never started (the push failed)."""
        task = run.task
        if host.shared_fs:
            run.remote_task = map_path(str(task.dir.resolve()), host.path_map)
        else:
            run.remote_task = transfer.remote_task_dir(host, self.sweep_id, task.dir)
        workdir = (self.record.get("runner") or {}).get("workdir")
        command = self.ssh.command(
            host, transfer.runner_command(host, run.remote_task, host.alias, run.gpu_devices, workdir)
        )
        with tempfile.TemporaryFile() as archive:
            if not host.shared_fs:
                transfer.pack_task(task.dir, archive)
            self.note_where_it_runs(run, host)
            process = subprocess.Popen(
                command, stdin=archive, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
            )
        run.process = process
        stderr: list[bytes] = []
        reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)
        reader.start()
        run.pgid = pgid_of(process.stdout.readline())
        if run.pgid is not None:
            self.note_where_it_runs(run, host)
        if run.pgid is not None and not host.shared_fs:
            try:
                transfer.unpack_task(process.stdout, task.dir, self.paths.incoming_dir)
                run.pulled = True
            except transfer.TransferError as exc:
                run.message = str(exc)
        process.stdout.read()
        returncode = process.wait()
        reader.join()
        err = b"".join(stderr).decode(errors="replace")
        if run.pgid is None and not host.shared_fs:
            raise transfer.TransferError(f"exit {returncode}: {err.strip()[-500:]}", returncode)
        return returncode, err

    def settle(self, run: Run, host: Host, returncode: int, err: str) -> bool:
        """Pull back what the session did not bring, record a lost host, report the outcome."""
        task = run.task
        lost = None
        if not host.is_local and returncode == 255:
            lost = hostmod.explain_ssh_failure(err, returncode)
            # Only the connection may have died: stop the task there if the host still answers,
            # so that no orphan runs on while the task is retried elsewhere.
            self.kill_remote(host, run.pgid)
        if not host.is_local and not host.shared_fs and not run.pulled:
            try:
                transfer.pull_task(
                    self.ssh,
                    host,
                    task.dir,
                    run.remote_task,
                    timeout=LOST_PULL_TIMEOUT_S if lost else transfer.RSYNC_TIMEOUT_S,
                )
            except (transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
                lost = lost or f"pull failed: {exc}"
        self.forget_where_it_ran(task)
        self.ran_on.add(host.alias)
        if not task.marker.exists():
            self.failed_on.add(host.alias)
        if task.marker.exists():
            run.success = True
            self.log_task(task, host, "completed")
            return True
        if lost and not run.cancelled:
            self.lose(host, lost)
            self.mark_host_lost(task, f"connection to {host.alias} lost: {lost}", host.alias)
            run.message = f"{task.name} on {host.alias}: host lost: {lost}"
            self.log_task(task, host, "host_lost")
            return True
        status = self.status_of(task)
        run.message = (
            f"{task.name} on {host.alias}: {status.get('status', 'failed')}: "
            f"{status.get('error_category')}: {status.get('error_summary')}"
            + (f" (runner exit {returncode}: {err.strip()[-500:]})" if err.strip() else "")
        )
        self.log_task(task, host, f"{status.get('status', 'failed')}:{status.get('error_category')}")
        return True

    def note_where_it_runs(self, run: Run, host: Host) -> None:
        """Record the task as handed to ``host`` until its folder is back (written again once its
        process group is known). ``status`` shows it running there while this engine lives and
        the record's attempt is newer than the task's status.yaml (push/pull: that comes back at
        the end); if this run is killed, the next ``complete`` finds the remote process by it,
        waits for it and pulls its result (leftovers.py)."""
        task = run.task
        record = {
            "task_id": task.name,
            "host_alias": host.alias,
            "attempt": int(self.status_of(task).get("attempt") or 0) + 1,
            "dispatched": now_iso(),
            "engine_pid": os.getpid(),
            "remote_task": run.remote_task or str(task.dir),
            "pgid": run.pgid,
        }
        path = self.paths.remote_task(task.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_record(
            path, record, "hsm-snake: a task handed to an SSH host (written by the hsm-ssh executor)", durable=False
        )

    def forget_where_it_ran(self, task: TaskPaths) -> None:
        self.paths.remote_task(task.name).unlink(missing_ok=True)

    @staticmethod
    def status_of(task: TaskPaths) -> dict[str, Any]:
        try:
            return read_record(task.status)
        except (FileNotFoundError, RecordError):
            return {}

    def mark_host_lost(self, task: TaskPaths, summary: str, alias: str | None = None) -> None:
        """status.yaml says host_lost unless the pulled record has a final outcome of the runner's."""
        status = self.status_of(task)
        if status and status.get("status") not in (None, "running", "pending", "cancelled"):
            return
        status.update(
            {
                "status": "failed",
                "task_id": task.name,
                "backend": "ssh",
                "job_id": alias,
                "error_category": HOST_LOST,
                "error_summary": summary[:1000],
            }
        )
        status.setdefault("host", alias)
        status.setdefault("attempt", 1)
        write_status(task.status, status)

    # -- status ----------------------------------------------------------------------------
    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]):
        for job_info in active_jobs:
            run: Run = job_info.aux["ssh"]
            if not run.done.is_set():
                yield job_info
            elif run.success:
                self.report_job_success(job_info)
            else:
                self.report_job_error(job_info, msg=run.message or "failed")

    # -- cancel ----------------------------------------------------------------------------
    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        runs = [info.aux["ssh"] for info in active_jobs]
        with self.cond:
            for run in runs:
                run.cancelled = True
            self.cond.notify_all()
        for alias in {run.host.alias for run in runs if run.host is not None and not run.done.is_set()}:
            if alias in self.clusters:
                self.clusters[alias].cancel()
        for run in runs:
            if run.done.is_set() or run.host is None or run.pgid is None:
                continue
            self.kill_remote(run.host, run.pgid)
            self.log(f"{run.task.name if run.task else '?'}\t{run.host.alias}\tcancel sent (pgid {run.pgid})")
        deadline = time.monotonic() + self.cancel_grace
        for run in runs:
            run.done.wait(max(0.0, deadline - time.monotonic()))
            if not run.done.is_set() and run.process is not None:
                run.process.kill()

    def kill_remote(self, host: Host, pgid: int | None) -> None:
        """SIGTERM to the task's process group (runner + script); the runner records cancelled."""
        if pgid is not None and pgid > 1:
            self.ssh.stop_group(host, pgid, KILL_REMOTE_TIMEOUT_S)

    def remove_copies(self) -> None:
        """Delete each host's copy of the sweep where every task that ran there succeeded (v1's
        default; keep_remote_on_success: true keeps it). A failure, a cancel or a task still
        there keeps the copy for inspection and recovery."""
        for host in self.pool:
            if host.is_local or host.shared_fs or host.keep_remote_on_success or host.running:
                continue
            if host.alias in self.clusters:  # a cluster's copy is its storage tiers' (storage.finish)
                continue
            if host.alias not in self.ran_on or host.alias in self.failed_on:
                continue
            why = transfer.remove_remote_sweep(self.ssh, host, self.sweep_id, KILL_REMOTE_TIMEOUT_S)
            where = transfer.remote_sweep_dir(host, self.sweep_id)
            self.log(
                f"host {host.alias}: " + (f"removed {where}" if why is None else f"could not remove {where}: {why}")
            )

    def shutdown(self) -> None:
        self.stopping.set()
        for cluster in self.clusters.values():
            cluster.stop()
        super().shutdown()
        self.remove_copies()
        for host in self.pool:
            if not host.is_local:
                try:
                    self.ssh.close(host)
                except (subprocess.TimeoutExpired, OSError):
                    pass
        self.ssh.discard()
