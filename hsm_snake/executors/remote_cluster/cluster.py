"""One Slurm remote of a sweep, reached over ssh: what the executor and a later `run`/`complete`
or `cancel` (leftovers.py) do there alike.

Every call goes through one ssh master connection (``executors/ssh/hosts.py``); every call is
bounded by a timeout and a failing one decides nothing (the caller asks again). What a run
submitted is recorded in ``.hsm/remote-slurm-jobs``, one JSON line per array (remote, array id,
the sweep's copy there, its tasks in element order), so that the jobs of a killed run are found,
waited for, pulled back and cancelled by what the sweep wrote, never by a guess.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hsm_snake.errors import HsmError
from hsm_snake.executors.common import run_bounded
from hsm_snake.executors.remote_cluster import slurm as array
from hsm_snake.executors.slurm import accounting, limits
from hsm_snake.executors.ssh import hosts as hostmod
from hsm_snake.executors.ssh import transfer
from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.layout.records import RecordError, read_record, write_text_atomic
from hsm_snake.layout.status import now_iso, write_status
from hsm_snake.runner import failures

SSH_TIMEOUT_S = 120
# Scheduler tools the login node must have.
SLURM_TOOLS = ("sbatch", "squeue", "sacct", "scancel")
RECORD_NAME = "remote-slurm"
# Waits before asking sacct again about jobs it has no scheduler verdict for yet (seconds).
SACCT_SETTLE_DELAYS_S = (1, 2, 4)
# How long a cancel waits for scancelled elements to leave the queue before pulling them back.
CANCEL_WAIT_S = 30


def slurm_tools_problem(ssh: hostmod.Ssh, host: hostmod.Host, timeout_s: float) -> str | None:
    """What keeps the Slurm commands from working in a non-interactive ssh session there, or None."""
    probe = f"for c in {' '.join(SLURM_TOOLS)}; do command -v $c >/dev/null || echo $c; done"
    done = run_bounded(ssh.command(host, probe), timeout_s)
    if done is None or done.returncode != 0:
        why = (
            f"no answer within {timeout_s:g} s"
            if done is None
            else hostmod.explain_ssh_failure(done.stderr, done.returncode)
        )
        return f"could not ask {host.alias} for its Slurm commands: {why}"
    if done.stdout.split():
        return (
            f"{host.alias} lacks {', '.join(done.stdout.split())} on the PATH of an ssh session: load Slurm in "
            "the shell's start-up there (e.g. ~/.bashrc, before any 'return' for non-interactive shells)"
        )
    return None


class ClusterError(HsmError):
    """The login node cannot be used (ssh, Python, rsync, Slurm tools, workdir)."""


@dataclass(frozen=True)
class Element:
    """One task as one array element."""

    task: TaskPaths
    array_id: str
    index: int

    @property
    def job_id(self) -> str:
        return f"{self.array_id}_{self.index}"


def arrays(by_options: dict[Any, list[Any]], task_of: Any, limit: int) -> Iterator[tuple[Any, list[Any]]]:
    """(options, items) per sbatch --array: each group of the same options in task order
    (``task_of(item)``: task_999 before task_1000), cut into arrays of at most ``limit``."""
    for options, items in by_options.items():
        items.sort(key=lambda item: (len(task_of(item).name), task_of(item).name))
        for start in range(0, len(items), limit):
            yield options, items[start : start + limit]


def check_login_node(ssh: hostmod.Ssh, host: hostmod.Host) -> None:
    """ssh, Python + PyYAML, rsync, tar and a writable project_dir (the SSH hosts' probe), the
    Slurm tools, and the absolute workdir (``host.workdir`` resolved there); ClusterError naming
    what is missing."""
    hostmod.check(ssh, host)
    if not host.healthy:
        raise ClusterError(f"{host.alias} is not usable: {host.reason}")
    if host.workdir:
        found = hostmod.probe(ssh, host, host.workdir)
        problems = found.problems(host.min_free_gb)
        if problems:
            raise ClusterError(f"workdir {host.workdir} on {host.alias}: {'; '.join(problems)}")
        host.workdir = found.directory
    problem = slurm_tools_problem(ssh, host, SSH_TIMEOUT_S)
    if problem:
        raise ClusterError(problem)


class Cluster:
    """``ssh``/``host``: an SSH pool's connection and host when the cluster is one of its members."""

    def __init__(
        self,
        paths: SweepPaths,
        alias: str,
        remote: dict[str, Any],
        control_dir: Path,
        ssh: hostmod.Ssh | None = None,
        host: hostmod.Host | None = None,
    ) -> None:
        self.paths = paths
        self.alias = alias
        self.ssh = ssh or hostmod.Ssh(control_dir)
        self.host = host or hostmod.host_from_remote(alias, remote)
        self.remote_sweep = transfer.remote_sweep_dir(self.host, paths.sweep_id)
        self.user: str | None = None

    # -- connection ------------------------------------------------------------------------
    def check(self) -> None:
        """The login node is usable (``check_login_node``); the sweep's copy goes into its workdir."""
        check_login_node(self.ssh, self.host)
        self.remote_sweep = transfer.remote_sweep_dir(self.host, self.paths.sweep_id)

    def remote(self, command: str, timeout_s: float = SSH_TIMEOUT_S) -> subprocess.CompletedProcess | None:
        return run_bounded(self.ssh.command(self.host, command), timeout_s)

    def query(self, argv: list[str]) -> str | None:
        """A Slurm tool's output there (limits.Query): stdout, or None when it failed or hung."""
        done = self.remote(shlex.join(argv), limits.QUERY_TIMEOUT_S)
        return done.stdout if done is not None and done.returncode == 0 else None

    def limits(self, slurm: dict[str, Any]) -> tuple[limits.SubmitRoom | None, int, list[str]]:
        """The cluster's room under MaxSubmitJobs/MaxJobCount (its user's jobs queued there
        counted), the tasks per array (``slurm.max_array_size`` within its MaxArraySize), and
        lines for the log; what it cannot tell bounds nothing."""
        if self.user is None:
            self.user = (self.query(["id", "-un"]) or "").strip() or None
        config = limits.cluster_config(self.query)
        size, why = limits.array_limit(slurm, config)
        notes = [why] if why else []
        index = limits.max_array_index(config)
        if index is not None and index < size:
            size = index
            notes.append(f"MaxArraySize is {index + 1} on {self.alias}: arrays of at most {size} tasks")
        room = limits.tightest_room(slurm, config, self.user, self.query) if self.user else None
        if room is not None:
            notes.append(f"{room.source} on {self.alias} is {room.limit}, {room.queued} job(s) queued there")
        return room, size, notes

    @staticmethod
    def failure(done: subprocess.CompletedProcess | None) -> str:
        if done is None:
            return f"no answer within {SSH_TIMEOUT_S} s"
        return hostmod.explain_ssh_failure(done.stderr, done.returncode)

    def close(self) -> None:
        try:
            self.ssh.close(self.host)
        except (subprocess.TimeoutExpired, OSError):
            pass

    def log(self, text: str) -> None:
        """logs/sources/<alias>.log: the cluster's arrays and how each task ended."""
        path = self.paths.source_log(self.alias)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{now_iso()}\t{text}\n")

    # -- queue -----------------------------------------------------------------------------
    def squeue(self) -> dict[str, str] | None:
        """{element or job id: state} of the user's jobs there; None when squeue did not answer."""
        done = self.remote(shlex.join(array.SQUEUE_ARGV))
        if done is None or done.returncode != 0:
            return None
        return array.parse_squeue(done.stdout)

    @staticmethod
    def queued(element: Element, states: dict[str, str]) -> bool:
        return states.get(element.job_id) in array.ACTIVE_STATES or states.get(element.array_id) in array.ACTIVE_STATES

    def scancel(self, array_ids: list[str]) -> str | None:
        """scancel the arrays (all their elements, queued ones too); None when sent, else why not."""
        ids = array.checked_job_ids(sorted(set(array_ids)))
        done = self.remote(shlex.join(["scancel", "--", *ids]))
        self.log(f"scancel {' '.join(ids)}")
        return None if done is not None and done.returncode == 0 else self.failure(done)

    def cancel(self, elements: list[Element]) -> str | None:
        """scancel the elements' arrays; once they left the queue (at most CANCEL_WAIT_S) their
        folders come back with the runners' records or Slurm's verdicts (queued ones never ran).
        None when scancel was sent, else why not."""
        why_not = self.scancel([element.array_id for element in elements])
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            states = self.squeue()
            if states is None or not any(self.queued(element, states) for element in elements):
                break
            time.sleep(1)
        self.settle(elements)
        return why_not

    def submit(self, tasks: list[TaskPaths], options: list[str], setup: str | None) -> str:
        """One rsync of the tasks' folders (without markers) and their array script up, one
        ``sbatch --array`` (``setup``: the backend's modules + pre_script); the array's id,
        recorded. SubmitError, TransferError, TimeoutExpired or OSError: nothing was submitted."""
        sweep = self.paths.root
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        script = self.paths.job_scripts_dir / f"remote-slurm-{stamp}-{tasks[0].name}+{len(tasks) - 1}.sh"
        script.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            script,
            array.array_script(
                comment=f"{len(tasks)} task(s) of sweep {self.paths.sweep_id} on {self.alias}, one per element",
                tasks=[task.name for task in tasks],
                remote_sweep=self.remote_sweep,
                workdir=self.host.project_dir,
                runner_path=f"{self.host.project_dir}/.hsm-runner",
                python=list(self.host.python),
                alias=self.alias,
                setup=setup,
            ),
        )
        relative_script = script.relative_to(sweep).as_posix()
        command = array.sbatch_command(
            self.remote_sweep, relative_script, len(tasks), options, job_name=f"hsm-{self.paths.sweep_id}"
        )
        transfer.rsync(
            self.ssh,
            self.host,
            [f"{sweep}/./{relative_script}", *(f"{sweep}/./tasks/{task.name}" for task in tasks)],
            self.remote_sweep + "/",
            "--relative",
            "--exclude=.completed",
        )
        done = self.remote(command)
        if done is None or done.returncode != 0:
            why = self.failure(done) if done is None or done.returncode == 255 else done.stderr.strip()[-800:]
            raise array.SubmitError(f"sbatch on {self.alias} failed: {why}")
        array_id = array.parse_sbatch(done.stdout)
        self.note_submitted(array_id, tasks)
        with open(script, "a", encoding="utf-8") as out:
            out.write(f"# submitted on {self.alias} as job {array_id}: {command}\n")
        self.log(f"array {array_id}: {len(tasks)} task(s) {tasks[0].name}..{tasks[-1].name} ({shlex.join(options)})")
        return array_id

    def note_running(self, elements: list[Element], states: dict[str, str]) -> None:
        """Elements squeue says run get a local status.yaml saying so (the runner's own comes back
        with the folder when the element ends), so that ``status`` shows where a task runs. Only
        over a status of an earlier job (the run holds the sweep: nothing else writes it
        meanwhile), never over this job's own; the earlier attempt's record is kept in
        attempts/<n>/ first, as the runner keeps it there."""
        for element in elements:
            if states.get(element.job_id) != "RUNNING":
                continue
            status = status_of(element.task)
            if status.get("job_id") == element.job_id:
                continue
            attempt = int(status.get("attempt") or 0)
            if status:
                kept = element.task.attempt_status(attempt)
                if not kept.exists():
                    kept.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(element.task.status, kept)
            write_status(
                element.task.status,
                {
                    "task_id": element.task.name,
                    "status": "running",
                    "attempt": attempt + 1,
                    "started": now_iso(),
                    "host": None,
                    "host_alias": self.alias,
                    "backend": "slurm",
                    "job_id": element.job_id,
                },
                durable=False,
            )

    def note_submitted(self, array_id: str, tasks: list[TaskPaths]) -> None:
        """The array, where its tasks' copies are and which task each element runs (``.hsm/remote-slurm-jobs``)."""
        record = self.paths.submitted_jobs(RECORD_NAME)
        record.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "alias": self.alias,
            "array_id": array_id,
            "remote_sweep": self.remote_sweep,
            "submitted": now_iso(),
            "tasks": [task.name for task in tasks],
        }
        with open(record, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    def sacct(self, job_ids: list[str]) -> dict[str, tuple[str, str, str]]:
        """Slurm's accounting of ``job_ids`` (one sacct over ssh); {} when it did not answer."""
        done = self.remote(shlex.join(accounting.sacct_argv(job_ids)))
        return accounting.parse_sacct(done.stdout) if done is not None and done.returncode == 0 else {}

    # -- results ---------------------------------------------------------------------------
    def settle(self, elements: list[Element]) -> bool:
        """Pull the folders of ended elements (one rsync), mark the completed ones, record Slurm's
        verdict on the others (one sacct). False: the pull failed; ask again later."""
        if not elements:
            return True
        sources = [f"{self.remote_sweep}/./tasks/{element.task.name}" for element in elements]
        sources += [f"{self.remote_sweep}/./logs/slurm/{element.job_id}.out" for element in elements]
        try:
            transfer.rsync(
                self.ssh,
                self.host,
                sources,
                str(self.paths.root) + "/",
                "--relative",
                "--ignore-missing-args",
                # The marker is made here once the status is in place (a reader never sees it first).
                "--exclude=.completed",
                pull=True,
            )
        except (transfer.TransferError, subprocess.TimeoutExpired, OSError) as exc:
            if self.copy_gone():
                self.record_lost(elements)
                return True
            self.log(f"pulling task folders failed ({exc}); asked again")
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

    def copy_gone(self) -> bool:
        """The sweep's copy on the login node is not there (removed, a scratch purge): no pull can
        ever bring its tasks back. A failed ssh says nothing (False: asked again next poll)."""
        done = self.remote(f"test -d {shlex.quote(self.remote_sweep)}")
        return done is not None and done.returncode == 1

    def record_lost(self, elements: list[Element]) -> None:
        """Ended elements whose folders went with the sweep's copy: failed, so the run ends and a
        retry or ``complete`` runs them again (the next run pushes a new copy)."""
        self.log(f"the sweep's copy {self.remote_sweep} is gone: {len(elements)} ended task(s) lost")
        for element in elements:
            record = self.element_record(element, status_of(element.task))
            record.update(
                status="failed",
                error_category=failures.HOST_LOST,
                error_summary=f"Slurm job {element.job_id} ended on {self.alias} but the sweep's copy "
                f"{self.remote_sweep} is gone (removed or purged): its result is lost",
                finished=now_iso(),
            )
            write_status(element.task.status, record)

    def element_record(self, element: Element, status: dict[str, Any]) -> dict[str, Any]:
        """The task's record to write a verdict into: the runner's when it is of this element,
        else a new attempt's (the element never got as far as the runner's first write)."""
        if status.get("job_id") == element.job_id:
            return dict(status)
        return {
            "task_id": element.task.name,
            "status": "failed",
            "attempt": int(status.get("attempt") or 0) + 1,
            "host": None,
            "host_alias": self.alias,
            "backend": "slurm",
            "job_id": element.job_id,
        }

    def outcome(self, element: Element) -> str:
        """How an ended element's task went, from its status.yaml (for a failed task's report)."""
        status = status_of(element.task)
        return (
            f"{element.task.name} (Slurm job {element.job_id} on {self.alias}): "
            f"{status.get('status', 'failed')}: {status.get('error_category')}: {status.get('error_summary')}"
        )

    def record_verdicts(self, elements: list[Element]) -> None:
        """Slurm's word (one sacct) on elements whose runner did not record why they ended."""
        ids = array.checked_job_ids([element.job_id for element in elements])
        verdicts = self.sacct(ids)
        # slurmdbd may not hold a step's final state (OUT_OF_MEMORY) the moment a job leaves the queue.
        for delay in SACCT_SETTLE_DELAYS_S:
            unsettled = [job for job in ids if (verdicts.get(job) or ("",))[0] not in accounting.SLURM_STATES]
            if not unsettled:
                break
            time.sleep(delay)
            verdicts.update(self.sacct(unsettled))
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


def status_of(task: TaskPaths) -> dict[str, Any]:
    try:
        return read_record(task.status)
    except (FileNotFoundError, RecordError):
        return {}


# -- what earlier runs left ------------------------------------------------------------------------
def submissions(paths: SweepPaths) -> list[dict[str, Any]]:
    """The arrays recorded for the sweep, oldest first (lines that do not parse are skipped)."""
    try:
        text = paths.submitted_jobs(RECORD_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            array.checked_job_ids([str(entry["array_id"])])
        except (ValueError, KeyError, TypeError, array.SubmitError):
            continue
        found.append(entry)
    return found


def latest_elements(paths: SweepPaths) -> dict[tuple[str, str], list[Element]]:
    """(alias, sweep copy) -> each task's latest element there whose result is not back yet: the
    task has no marker and its status names no other job of that remote."""
    latest: dict[str, tuple[dict[str, Any], Element]] = {}
    for entry in submissions(paths):
        for index, name in enumerate(entry.get("tasks") or [], start=1):
            latest[name] = (entry, Element(paths.task(str(name)), str(entry["array_id"]), index))
    grouped: dict[tuple[str, str], list[Element]] = {}
    for entry, element in latest.values():
        if element.task.marker.exists():
            continue
        status = status_of(element.task)
        back = status.get("job_id") == element.job_id and status.get("status") != "running"
        if back or _later(status, entry):
            continue  # back already, or run since elsewhere
        grouped.setdefault((str(entry["alias"]), str(entry["remote_sweep"])), []).append(element)
    return grouped


def _later(status: dict[str, Any], entry: dict[str, Any]) -> bool:
    """The task's status was written by a run elsewhere after this submission."""
    if not status or status.get("host_alias") == entry["alias"]:
        return False
    try:
        return datetime.fromisoformat(str(status.get("started"))) > datetime.fromisoformat(str(entry.get("submitted")))
    except (TypeError, ValueError):
        return False


class Leftovers:
    """The Slurm remotes' jobs an earlier (killed) run of the sweep left, for leftovers.py."""

    def __init__(self, paths: SweepPaths, remotes: dict[str, dict[str, Any]]) -> None:
        self.paths = paths
        self.remotes = remotes
        self.control_dir = Path(tempfile.mkdtemp(prefix="hsm-rslurm-"))
        os.chmod(self.control_dir, 0o700)
        self.clusters: dict[str, Cluster] = {}

    def cluster(self, alias: str, remote_sweep: str) -> Cluster | None:
        if alias not in self.remotes:
            return None
        if alias not in self.clusters:
            self.clusters[alias] = Cluster(self.paths, alias, self.remotes[alias], self.control_dir)
        cluster = self.clusters[alias]
        cluster.remote_sweep = remote_sweep
        return cluster

    def live(self, notify: Any) -> list[tuple[Cluster, Element, str]]:
        """Elements still queued or running (cluster, element, state); the folders of those that
        ended are pulled back and their verdicts recorded."""
        live = []
        for (alias, remote_sweep), elements in latest_elements(self.paths).items():
            cluster = self.cluster(alias, remote_sweep)
            if cluster is None:
                notify(f"{len(elements)} task(s) were submitted on {alias}, which is no Slurm remote any more")
                continue
            states = cluster.squeue()
            if states is None:
                notify(f"could not ask {alias} about this sweep's earlier jobs (squeue over ssh); not waiting")
                continue
            ended = []
            for element in elements:
                if cluster.queued(element, states):
                    live.append((cluster, element, states.get(element.job_id) or states.get(element.array_id, "")))
                else:
                    ended.append(element)
            if not cluster.settle(ended):
                notify(f"could not pull the finished tasks back from {alias}; they run again")
        return live

    def close(self) -> None:
        for cluster in self.clusters.values():
            cluster.close()
        for path in self.control_dir.iterdir():
            path.unlink(missing_ok=True)
        try:
            self.control_dir.rmdir()
        except OSError:
            pass
