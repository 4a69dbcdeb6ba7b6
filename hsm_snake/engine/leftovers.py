"""Jobs and remote task processes that outlived the run that started them.

A kill -9 of a run (hsm-snake and its Snakemake) does not stop the work it handed out: Slurm and
PBS jobs stay queued or running, and a task started on an SSH host runs on in a session of its
own. Each still records its task when it ends. Rerunning their tasks at once would run them
twice, so `run`/`complete` first waits for them (under the sweep lock: no live run owns them),
then pulls back what SSH hosts finished; recovery then keeps every finished result.

Found by what the sweep recorded, never by a guess: Slurm job ids from the sbatch records in
``scripts/job_scripts/``, PBS job ids from ``.hsm/pbs-jobs`` plus the ids array elements wrote
under ``logs/pbs/``, SSH process groups from ``.hsm/remote/<task>.yaml``, arrays on cluster remotes
from ``.hsm/remote-slurm-jobs`` and ``.hsm/remote-pbs-jobs`` (``executors/remote_cluster/``). Every scheduler and ssh
call is bounded by a timeout; a scheduler or host that does not answer is reported and not
waited for.
"""

from __future__ import annotations

import getpass
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from hsm_snake.executors.common import run_bounded
from hsm_snake.layout import names
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import RecordError, read_record, read_yaml

if TYPE_CHECKING:
    from hsm_snake.executors.ssh.hosts import Ssh

QUERY_TIMEOUT_S = 30
POLL_S = 10.0
SLURM_FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "SPECIAL_EXIT",
        "REVOKED",
    }
)
_SBATCH_ANSWER = re.compile(r"^# sbatch answered \(exit 0\): (\d+)", re.MULTILINE)
# The remote runner is the leader of its process group, its command line names its task folder:
# a reused process group id is not mistaken for the task.
_ALIVE_CHECK = 'tr "\\0" " " < /proc/{pgid}/cmdline 2>/dev/null | grep -qF -- {task}'


@dataclass(frozen=True)
class Leftover:
    what: str  # "Slurm job 1838_4 (RUNNING)", "task_004 on hsmtb-h1 (process group 4242)"
    job_id: str | None = None  # a scheduler's id, for scancel/qdel


def wait_for_leftovers(paths: SweepPaths, notify: Callable[[str], None], poll_s: float = POLL_S) -> None:
    """Return once no job or remote process of an earlier run of this sweep is alive; tasks that
    ran on SSH hosts meanwhile have their folders pulled back."""
    said = None
    with _ssh_pool(paths) as pool, _cluster_remotes(paths) as clusters:
        while True:
            live = [
                *live_slurm_jobs(paths, notify),
                *live_pbs_jobs(paths, notify),
                *pool.live_tasks(notify),
                *live_remote_cluster_jobs(clusters, notify),
            ]
            if not live:
                if said is not None:
                    notify("the killed run's jobs have ended; what they finished is kept")
                return
            message = waiting_message(paths, live)
            if message != said:
                notify(message)
                said = message
            time.sleep(poll_s)


def cancel_leftovers(paths: SweepPaths, notify: Callable[[str], None]) -> list[str]:
    """scancel/qdel the sweep's live jobs, SIGTERM its tasks still running on SSH hosts; what was
    stopped. Only ids this sweep recorded are touched, never another job of the user."""
    slurm = [job.job_id for job in live_slurm_jobs(paths, notify) if job.job_id]
    if slurm:
        _query(["scancel", *slurm], notify)
    pbs = [job.job_id for job in live_pbs_jobs(paths, notify) if job.job_id]
    if pbs:
        from hsm_snake.executors.pbs import accounting

        accounting.qdel(pbs)
    remote = []
    with _cluster_remotes(paths) as clusters:
        if clusters is not None:
            remote = clusters.cancel(notify)
    with _ssh_pool(paths) as pool:
        return [*slurm, *pbs, *remote, *pool.stop_tasks(notify)]


def waiting_message(paths: SweepPaths, live: list[Leftover]) -> str:
    shown = ", ".join(item.what for item in live[:6]) + (f" and {len(live) - 6} more" if len(live) > 6 else "")
    return (
        f"waiting for {len(live)} job(s)/process(es) of an earlier, killed run of this sweep that are still "
        f"queued or running ({shown}): running their tasks again now would run them twice; their results "
        f"are kept when they end (Ctrl-C stops waiting; then `hsm-snake cancel {paths.sweep_id}` stops them)"
    )


# -- Slurm ---------------------------------------------------------------------------------------
def slurm_job_ids(paths: SweepPaths) -> set[str]:
    """The job ids sbatch answered for this sweep (an array's id stands for all its elements)."""
    ids = set()
    for record in paths.job_scripts_dir.glob("sbatch-*.sh"):
        with open(record, encoding="utf-8", errors="replace") as handle:
            ids.update(_SBATCH_ANSWER.findall(handle.read(2048)))
    return ids


def live_slurm_jobs(paths: SweepPaths, notify: Callable[[str], None]) -> list[Leftover]:
    ids = slurm_job_ids(paths)
    if not ids:
        return []
    # The user's own jobs, matched here: squeue -j fails as a whole on one id it forgot.
    command = ["squeue", "-h", "-u", getpass.getuser(), "-o", "%A|%F|%K|%T"]
    answer = _query(command, notify)
    live = []
    for line in answer.splitlines():
        job, array, index, state = (line.split("|") + ["", "", "", ""])[:4]
        if (job in ids or array in ids) and state not in SLURM_FINAL_STATES:
            label = slurm_label(job, array, index)
            live.append(Leftover(f"Slurm job {label} ({state})", label))
    return live


def slurm_label(job: str, array: str, index: str) -> str:
    """How scancel names it: ``1838``, an element ``1838_4``, queued elements ``1838_[5-6]``."""
    index = index.split("%")[0]  # "5-6%2": a throttled array
    if not index or index == "N/A":
        return job
    return f"{array}_{index}" if index.isdigit() else f"{array}_[{index}]"


# -- PBS -----------------------------------------------------------------------------------------
def pbs_job_ids(paths: SweepPaths) -> list[str]:
    """qsub's answers (arrays included) and the ids array elements wrote once they started."""
    ids = dict.fromkeys(_lines(paths.submitted_jobs("pbs")))
    for id_file in (paths.logs_dir / "pbs").glob("*.jobid"):
        ids.update(dict.fromkeys(_lines(id_file)))
    return [job for job in ids if names.is_job_id(job)]


def live_pbs_jobs(paths: SweepPaths, notify: Callable[[str], None]) -> list[Leftover]:
    ids = pbs_job_ids(paths)
    if not ids:
        return []
    from hsm_snake.executors.pbs.qstat import Qstat

    answer = Qstat(timeout_s=QUERY_TIMEOUT_S).query(ids)
    if not answer.ok:
        notify(f"could not ask PBS about this sweep's earlier jobs ({answer.error}); not waiting for them")
        return []
    return [
        Leftover(f"PBS job {info.job_id} ({info.state})", info.job_id)
        for info in answer.jobs.values()
        if not info.finished
    ]


# -- clusters over SSH ---------------------------------------------------------------------------
def live_remote_cluster_jobs(clusters, notify: Callable[[str], None]) -> list[Leftover]:
    """Elements of the sweep's arrays on cluster remotes still queued or running; the folders of
    those that ended are pulled back and the scheduler's verdicts recorded."""
    if clusters is None:
        return []
    return [Leftover(f"{label} on {cluster.alias} ({state})") for cluster, label, state in clusters.live(notify)]


@contextmanager
def _cluster_remotes(paths: SweepPaths) -> Iterator:
    """The sweep's cluster remotes (cluster.Leftovers), or None when it never submitted to one."""
    from hsm_snake.engine.backends import CLUSTER_SCHEDULERS

    if not any(paths.submitted_jobs(f"remote-{scheduler}").exists() for scheduler in CLUSTER_SCHEDULERS):
        yield None
        return
    from hsm_snake.engine.backends import cluster_remotes
    from hsm_snake.executors.remote_cluster.cluster import Leftovers
    from hsm_snake.executors.remote_cluster.schedulers import BY_SCHEDULER

    record = read_yaml(paths.project_config) or {}
    clusters = Leftovers(paths, cluster_remotes(record.get("project") or {}), BY_SCHEDULER)
    try:
        yield clusters
    finally:
        clusters.close()


# -- SSH -----------------------------------------------------------------------------------------
class _Pool:
    """The sweep's SSH hosts, for checking on (and pulling back) tasks a killed run left there."""

    def __init__(self, paths: SweepPaths, ssh: Ssh) -> None:
        self.paths = paths
        self.ssh = ssh
        self.contacted: set[str] = set()

    @cached_property
    def hosts(self) -> dict:
        """Read only when a task record is there: most runs have none."""
        from hsm_snake.executors.ssh import hosts

        record = read_yaml(self.paths.project_config) or {}
        return {host.alias: host for host in hosts.pool_from_record(record, [sys.executable])}

    def live_tasks(self, notify: Callable[[str], None]) -> list[Leftover]:
        """Tasks still running on a host; those that ended are pulled back and forgotten."""
        live = []
        for record_path, task, where, host in self._records():
            if host is not None and self._alive(host, where, task, notify):
                live.append(Leftover(f"{task} on {host.alias} (process group {where['pgid']})"))
                continue
            if host is not None and not (host.is_local or host.shared_fs):
                self._pull(host, where, task, notify)
            record_path.unlink(missing_ok=True)
        return live

    def stop_tasks(self, notify: Callable[[str], None]) -> list[str]:
        """SIGTERM to the process group of every task still running on a host (its runner records
        ``cancelled``); the next `complete` pulls the folders back."""
        stopped = []
        for _, task, where, host in self._records():
            if host is None or not self._alive(host, where, task, notify):
                continue
            why_not = self.ssh.stop_group(host, int(where["pgid"]), QUERY_TIMEOUT_S)
            if why_not is not None:
                notify(f"{task}: could not stop it on {host.alias}: {why_not}")
                continue
            stopped.append(f"{task}@{host.alias}")
        return stopped

    def _records(self) -> Iterator[tuple[Path, str, dict, object]]:
        for record_path in sorted(self.paths.remote_tasks_dir.glob("*.yaml")):
            if not names.is_task_name(record_path.stem):  # not a record the executor wrote
                continue
            try:
                where = read_record(record_path)
            except (OSError, RecordError):
                continue
            yield record_path, record_path.stem, where, self.hosts.get(where.get("host_alias"))

    def _alive(self, host, where: dict, task: str, notify: Callable[[str], None]) -> bool:
        if not where.get("pgid"):
            return False
        check = _ALIVE_CHECK.format(pgid=int(where["pgid"]), task=shlex.quote(where["remote_task"]))
        command = self.ssh.on(host, check)
        self.contacted.add(host.alias)
        done = run_bounded(command, QUERY_TIMEOUT_S)
        if done is None:
            notify(
                f"{task}: could not reach {host.alias} to check on its earlier run ({command[0]} did not start "
                f"or answer within {QUERY_TIMEOUT_S} s); not waiting for it"
            )
            return False
        if done.returncode == 255 and not host.is_local:
            notify(f"{task}: could not reach {host.alias} to check on its earlier run; not waiting for it")
            return False
        return done.returncode == 0

    def _pull(self, host, where: dict, task: str, notify: Callable[[str], None]) -> None:
        from hsm_snake.executors.ssh import transfer

        try:
            transfer.pull_task(
                self.ssh, host, self.paths.task(task).dir, where["remote_task"], timeout=QUERY_TIMEOUT_S * 4
            )
        except (transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            notify(f"{task}: could not pull its folder back from {host.alias} ({exc}); it runs again")

    def close(self) -> None:
        for alias in self.contacted:
            if not self.hosts[alias].is_local:
                try:
                    self.ssh.close(self.hosts[alias])
                except (subprocess.TimeoutExpired, OSError):
                    pass


@contextmanager
def _ssh_pool(paths: SweepPaths) -> Iterator[_Pool]:
    from hsm_snake.executors.ssh import hosts

    with hosts.Ssh.private() as ssh:
        pool = _Pool(paths, ssh)
        try:
            yield pool
        finally:
            pool.close()


# -- helpers -------------------------------------------------------------------------------------
def _query(command: list[str], notify: Callable[[str], None]) -> str:
    done = run_bounded(command, QUERY_TIMEOUT_S)
    if done is None:
        notify(
            f"could not ask the scheduler about this sweep's earlier jobs ({command[0]} did not start or "
            f"answer within {QUERY_TIMEOUT_S} s); not waiting for them"
        )
        return ""
    if done.returncode != 0:
        notify(
            f"{command[0]} failed (exit {done.returncode}: {done.stderr.strip()[:300]}); not waiting for "
            "this sweep's earlier jobs"
        )
        return ""
    return done.stdout


def _lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []
