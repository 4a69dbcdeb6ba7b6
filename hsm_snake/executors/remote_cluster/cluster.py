"""One cluster remote of a sweep (a Slurm or PBS login node), reached over ssh: what the executor
and a later `run`/`complete` or `cancel` (leftovers.py) do there alike, whatever the scheduler.

Every call goes through one ssh master connection (``executors/ssh/hosts.py``); every call is
bounded by a timeout and a failing one decides nothing (the caller asks again). What a run
submitted is recorded in ``.hsm/remote-<scheduler>-jobs``, one JSON line per array (remote, array
id, the sweep's copy there, its tasks in element order), so that the jobs of a killed run are
found, waited for, pulled back and cancelled by what the sweep wrote, never by a guess.

The scheduler's part (submit, poll, cancel, verdicts) is a subclass: ``slurm.SlurmCluster``,
``pbs.PbsCluster``.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from hsm_snake.errors import HsmError
from hsm_snake.executors.common import run_bounded
from hsm_snake.executors.remote_cluster import submission
from hsm_snake.executors.ssh import hosts as hostmod
from hsm_snake.executors.ssh import transfer
from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.layout.records import RecordError, read_record, write_text_atomic
from hsm_snake.layout.status import now_iso, write_status
from hsm_snake.runner import failures

SSH_TIMEOUT_S = 120
# How long a cancel waits for cancelled elements to leave the queue before pulling them back.
CANCEL_WAIT_S = 30
# How long a submission whose ssh call failed is asked after (the login node may come back), how
# often, and how long each question may take.
ANSWER_WAIT_S = 120
ANSWER_POLL_S = 2
ANSWER_QUESTION_TIMEOUT_S = 30
# Tasks in one array unless the remote's max_array_size says otherwise.
DEFAULT_ARRAY_LIMIT = 500


def arrays(by_options: dict[Any, list[Any]], task_of: Any, limit: int) -> Iterator[tuple[Any, list[Any]]]:
    """(options, items) per array: each group of the same scheduler options in task order
    (``task_of(item)``: task_999 before task_1000), cut into arrays of at most ``limit``."""
    for options, items in by_options.items():
        items.sort(key=lambda item: (len(task_of(item).name), task_of(item).name))
        for start in range(0, len(items), limit):
            yield options, items[start : start + limit]


def tools_problem(
    ssh: hostmod.Ssh, host: hostmod.Host, scheduler: str, tools: tuple[str, ...], timeout_s: float
) -> str | None:
    """What keeps the scheduler's commands (and ``setsid``, which submissions run under:
    ``submission.py``) from working in a non-interactive ssh session there, or None."""
    probe = f"for c in {' '.join(tools)} setsid; do command -v $c >/dev/null || echo $c; done"
    done = run_bounded(ssh.command(host, probe), timeout_s)
    if done is None or done.returncode != 0:
        why = (
            f"no answer within {timeout_s:g} s"
            if done is None
            else hostmod.explain_ssh_failure(done.stderr, done.returncode)
        )
        return f"could not ask {host.alias} for its {scheduler} commands: {why}"
    missing = done.stdout.split()
    if missing == ["setsid"]:
        return (
            f"{host.alias} lacks setsid (util-linux) on the PATH of an ssh session: submissions run under it "
            "so that their answer outlives a dropped connection"
        )
    if missing:
        return (
            f"{host.alias} lacks {', '.join(missing)} on the PATH of an ssh session: load {scheduler} in "
            "the shell's start-up there (e.g. ~/.bashrc, before any 'return' for non-interactive shells)"
        )
    return None


class ClusterError(HsmError):
    """The login node cannot be used (ssh, Python, rsync, scheduler tools, workdir)."""


class SubmitError(HsmError):
    """The scheduler refused an array or answered something that is not a job id, or whether it
    was submitted could not be learnt."""


class NotSubmitted(HsmError):
    """The submission certainly never ran (the connection failed before it started)."""


# What a failed submission raises (``Cluster.submit_array``). All but SubmitError: the array
# never reached the scheduler, its tasks may go elsewhere.
SUBMIT_FAILURES = (SubmitError, NotSubmitted, transfer.TransferError, subprocess.TimeoutExpired, OSError)


class Cluster:
    """The ssh side of a cluster remote; subclasses add their scheduler. ``host``: an SSH pool's
    host when the cluster is one of its members (``ssh`` its connection), else made from ``remote``."""

    scheduler = ""  # slurm, pbs: the remote's backend
    title = ""  # Slurm, PBS: its name in messages
    tools: tuple[str, ...] = ()  # the scheduler commands the login node must have
    queue_tool = ""  # squeue, qstat: what a poll asks
    query_timeout_s: float = SSH_TIMEOUT_S  # how long a read-only query there may take

    def __init__(
        self,
        paths: SweepPaths,
        alias: str,
        remote: dict[str, Any],
        ssh: hostmod.Ssh,
        host: hostmod.Host | None = None,
    ) -> None:
        self.paths = paths
        self.alias = alias
        self.ssh = ssh
        self.host = host or hostmod.host_from_remote(alias, remote)
        self.remote_sweep = transfer.remote_sweep_dir(self.host, paths.sweep_id)

    @classmethod
    def record_name(cls) -> str:
        return f"remote-{cls.scheduler}"

    # -- connection ------------------------------------------------------------------------
    @classmethod
    def check_login_node(cls, ssh: hostmod.Ssh, host: hostmod.Host) -> None:
        """ssh, Python + PyYAML, rsync, tar and a writable project_dir (the SSH hosts' probe), the
        scheduler's tools, and the absolute workdir (``host.workdir`` resolved there); ClusterError
        naming what is missing."""
        hostmod.check(ssh, host)
        if not host.healthy:
            raise ClusterError(f"{host.alias} is not usable: {host.reason}")
        if host.workdir:
            found = hostmod.probe(ssh, host, host.workdir)
            problems = found.problems(host.min_free_gb)
            if problems:
                raise ClusterError(f"workdir {host.workdir} on {host.alias}: {'; '.join(problems)}")
            host.workdir = found.directory
        problem = tools_problem(ssh, host, cls.scheduler, cls.tools, SSH_TIMEOUT_S)
        if problem:
            raise ClusterError(problem)

    def check(self) -> None:
        """The login node is usable (``check_login_node``); the sweep's copy goes into its workdir."""
        self.check_login_node(self.ssh, self.host)
        self.remote_sweep = transfer.remote_sweep_dir(self.host, self.paths.sweep_id)

    def remote(self, command: str, timeout_s: float = SSH_TIMEOUT_S) -> subprocess.CompletedProcess | None:
        return run_bounded(self.ssh.command(self.host, command), timeout_s)

    def query(self, argv: list[str]) -> str | None:
        """A scheduler tool's output there (a ``slurm/limits.Query``): stdout, or None when it
        failed or hung."""
        done = self.remote(shlex.join(argv), self.query_timeout_s)
        return done.stdout if done is not None and done.returncode == 0 else None

    def submit_command(self, command: str, what: str, answer: str, timeout_s: float = SSH_TIMEOUT_S) -> str:
        """Run a submission ``command`` there, its answer kept under ``answer`` (``submission.py``);
        its stdout, SubmitError when the scheduler refused or it is unknown whether it submitted,
        NotSubmitted when it certainly did not."""
        done = self.remote(submission.detached(command, answer, timeout_s), timeout_s)
        found = submission.read(done)
        if not isinstance(found, submission.Answer):
            self.log(f"{what}: {self.failure(done, timeout_s)}; asking whether it was submitted")
            found = self.answer_of(what, answer)
        if found.returncode != 0:
            said = (found.stderr.strip() or found.stdout.strip())[-800:]
            raise SubmitError(f"{what} on {self.alias} failed: exit {found.returncode}: {said}")
        return found.stdout

    def answer_of(self, what: str, answer: str) -> submission.Answer:
        """The answer of a submission whose ssh call failed, asked for until ANSWER_WAIT_S passed;
        NotSubmitted when it never ran (and now never will), SubmitError when it stays unknown."""
        deadline = time.monotonic() + ANSWER_WAIT_S
        while True:
            found = submission.read(self.remote(submission.question(answer), ANSWER_QUESTION_TIMEOUT_S))
            if isinstance(found, submission.Answer):
                self.log(f"{what}: its answer read back (exit {found.returncode})")
                return found
            if found == submission.NEVER:
                raise NotSubmitted(f"{what} on {self.alias} did not run: the connection failed before it started")
            if time.monotonic() >= deadline:
                raise SubmitError(
                    f"{what} on {self.alias}: the connection failed and {self.alias} did not say within "
                    f"{ANSWER_WAIT_S} s whether the array was submitted; its answer will be in {answer}.out "
                    f"there: a job it lists is this sweep's (cancel it, or it runs besides a retry)"
                )
            time.sleep(ANSWER_POLL_S)

    @staticmethod
    def failure(done: subprocess.CompletedProcess | None, timeout_s: float = SSH_TIMEOUT_S) -> str:
        if done is None:
            return f"no answer within {timeout_s:g} s"
        return hostmod.explain_ssh_failure(done.stderr, done.returncode)

    def close(self) -> None:
        try:
            self.ssh.close(self.host)
        except (subprocess.TimeoutExpired, OSError):
            pass

    @classmethod
    @contextmanager
    def connected(cls, paths: SweepPaths, alias: str, remote: dict[str, Any]) -> Iterator[Cluster]:
        """The cluster remote ``alias`` on an ssh connection of its own, closed (and its control
        folder removed) after."""
        with hostmod.Ssh.private("hsm-rcluster-") as ssh:
            cluster = cls(paths, alias, remote, ssh)
            try:
                yield cluster
            finally:
                cluster.close()

    def log(self, text: str) -> None:
        """logs/sources/<alias>.log: the cluster's arrays and how each task ended."""
        path = self.paths.source_log(self.alias)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{now_iso()}\t{text}\n")

    # -- files -----------------------------------------------------------------------------
    def push(self, files: list[str], tasks: list[TaskPaths]) -> None:
        """One rsync up: ``files`` (relative to the sweep) and the tasks' folders, without markers."""
        transfer.rsync(
            self.ssh,
            self.host,
            [
                *(f"{self.paths.root}/./{name}" for name in files),
                *(f"{self.paths.root}/./tasks/{t.name}" for t in tasks),
            ],
            self.remote_sweep + "/",
            "--relative",
            "--exclude=.completed",
        )

    def pull(self, elements: list[Any], logs: list[str]) -> bool:
        """One rsync of the ended elements' task folders and the scheduler's ``logs`` (relative to
        the sweep copy) back, without the markers; False (logged) when it failed: ask again later.
        When the sweep's copy there is gone, no pull can ever bring them back: they are recorded
        lost (``record_lost``) and True is returned."""
        sources = [f"{self.remote_sweep}/./tasks/{element.task.name}" for element in elements]
        sources += [f"{self.remote_sweep}/./{log}" for log in logs]
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
        return True

    def copy_gone(self) -> bool:
        """The sweep's copy on the login node is not there (removed, a scratch purge): no pull can
        ever bring its tasks back. A failed ssh says nothing (False: asked again next poll)."""
        done = self.remote(f"test -d {shlex.quote(self.remote_sweep)}")
        return done is not None and done.returncode == 1

    def record_lost(self, elements: list[Any]) -> None:
        """Ended elements whose folders went with the sweep's copy: failed, so the run ends and a
        retry or ``complete`` runs them again (the next run pushes a new copy)."""
        self.log(f"the sweep's copy {self.remote_sweep} is gone: {len(elements)} ended task(s) lost")
        for element in elements:
            record = self.element_record(element, status_of(element.task))
            record.update(
                status="failed",
                error_category=failures.HOST_LOST,
                error_summary=f"{self.title} job {self.job_id(element)} ended on {self.alias} but the sweep's copy "
                f"{self.remote_sweep} is gone (removed or purged): its result is lost",
                finished=now_iso(),
            )
            write_status(element.task.status, record)

    def element_record(self, element: Any, status: dict[str, Any]) -> dict[str, Any]:
        """The task's record to write a verdict into: the runner's when it is of this element,
        else a new attempt's (the element never got as far as the runner's first write)."""
        job_id = self.job_id(element)
        if status.get("job_id") == job_id:
            return dict(status)
        return {
            "task_id": element.task.name,
            "status": "failed",
            "attempt": int(status.get("attempt") or 0) + 1,
            "host": None,
            "host_alias": self.alias,
            "backend": self.scheduler,
            "job_id": job_id,
        }

    def note_running(self, elements: list[Any]) -> None:
        """Elements the scheduler says run get a local status.yaml saying so (the runner's own comes
        back with the folder when the element ends), so that ``status`` shows where a task runs.
        Only over a status of an earlier job (the run holds the sweep: nothing else writes it
        meanwhile), never over this job's own; the earlier attempt's record is kept in
        attempts/<n>/ first, as the runner keeps it there."""
        for element in elements:
            job_id = self.job_id(element)
            status = status_of(element.task)
            if status.get("job_id") == job_id:
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
                    "backend": self.scheduler,
                    "job_id": job_id,
                },
                durable=False,
            )

    def outcome(self, element: Any) -> str:
        """How an ended element's task went, from its status.yaml (for a failed task's report)."""
        status = status_of(element.task)
        return (
            f"{element.task.name} ({self.title} job {self.job_id(element)} on {self.alias}): "
            f"{status.get('status', 'failed')}: {status.get('error_category')}: {status.get('error_summary')}"
        )

    def write_script(self, tasks: list[TaskPaths], text: str) -> str:
        """An array's job script, kept in scripts/job_scripts/ (its path relative to the sweep)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.paths.job_scripts_dir / f"{self.record_name()}-{stamp}-{tasks[0].name}+{len(tasks) - 1}.sh"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
        return path.relative_to(self.paths.root).as_posix()

    def submitted(
        self, script: str, array_id: str, command: str, tasks: list[TaskPaths], what: str, **more: Any
    ) -> None:
        """An array went out: recorded (``note_submitted``, ``more`` with it), its id and command at
        the end of its ``script``, a line in the cluster's log (``what``: its options)."""
        self.note_submitted(array_id, tasks, **more)
        with open(self.paths.root / script, "a", encoding="utf-8") as out:
            out.write(f"# submitted on {self.alias} as job {array_id}: {command}\n")
        self.log(f"array {array_id}: {len(tasks)} task(s) {tasks[0].name}..{tasks[-1].name} ({what})")

    def note_submitted(self, array_id: str, tasks: list[TaskPaths], **more: Any) -> None:
        """The array, where its tasks' copies are and which task each element runs
        (``.hsm/remote-<scheduler>-jobs``), and what else the scheduler needs to find them again."""
        record = self.paths.submitted_jobs(self.record_name())
        record.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "alias": self.alias,
            "array_id": array_id,
            "remote_sweep": self.remote_sweep,
            "submitted": now_iso(),
            "tasks": [task.name for task in tasks],
            **more,
        }
        with open(record, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    # -- a run's scheduler part (the --remote executor and the SSH pool alike) -----------------
    def limits(self, section: dict[str, Any], query: Any = None) -> tuple[Any, int, list[str]]:
        """(room: how many more jobs it may have queued, with ``free``, or None when unknown;
        tasks per array; lines for the log) from the remote's ``section`` and the cluster's limits,
        asked through ``query`` (``self.query`` unless given: ``room.RoomWatch`` batches them)."""
        raise NotImplementedError

    def options(self, resources: dict[str, Any], threads: int = 1) -> tuple[str, ...]:
        """The scheduler options of a task from its rule ``resources``: tasks with the same share an array."""
        raise NotImplementedError

    def submit_array(
        self, tasks: list[TaskPaths], options: list[str], resources: dict[str, Any], setup: str | None
    ) -> list[Any]:
        """One rsync up of the tasks' folders and their array script, one submission of the array
        (``resources``: the first task's, ``setup``: the backend's modules + pre_script), recorded;
        its elements in task order. SUBMIT_FAILURES: nothing was submitted."""
        raise NotImplementedError

    def poll_ended(self, elements: list[Any], warn: Any) -> tuple[bool, list[tuple[Any, str | None]]]:
        """One poll of ``elements``: whether the queue answered, and those that ended, their folders
        back and the scheduler's verdict recorded where the runner could not, each with None
        (completed) or why it failed. Nothing is decided on a failed answer (``warn`` is told): the
        elements are asked about again."""
        raise NotImplementedError

    def cancel_and_pull(self, elements: list[Any]) -> str | None:
        """Cancel the elements' arrays; once they left the queue (at most CANCEL_WAIT_S) their folders
        come back with the runners' records or the scheduler's verdicts. None when the cancel was
        sent, else why not."""
        raise NotImplementedError

    def logs_of(self, element: Any) -> list[str]:
        """The local files that tell why the element's task failed."""
        raise NotImplementedError

    # -- what earlier runs left ------------------------------------------------------------
    @classmethod
    def recorded(cls, paths: SweepPaths) -> list[dict[str, Any]]:
        """The arrays recorded for the sweep on clusters of this scheduler, oldest first."""
        raise NotImplementedError

    @staticmethod
    def came_back(status: dict[str, Any], entry: dict[str, Any], index: int) -> bool:
        """The task's ``status`` is the result of element ``index`` of the recorded array ``entry``."""
        raise NotImplementedError

    def live_elements(self, entries: list[dict[str, Any]], notify: Any) -> list[tuple[Any, str]]:
        """Elements of the recorded arrays ``entries`` still queued or running (with their state);
        those that ended are pulled back with the scheduler's verdicts. The scheduler's part."""
        raise NotImplementedError

    def cancel(self, elements: list[Any]) -> str | None:
        """Cancel the elements' arrays (queued elements too); None when sent, else why not."""
        raise NotImplementedError

    @staticmethod
    def job_id(element: Any) -> str:
        """The element's job id (or what stands for it until the scheduler names it)."""
        raise NotImplementedError

    def leftovers(self, entries: list[dict[str, Any]], notify: Any) -> list[tuple[str, str]]:
        """(job label, state) of the elements of ``entries`` still queued or running."""
        return [
            (f"{self.title} job {self.job_id(element)}", state)
            for element, state in self.live_elements(entries, notify)
        ]

    def cancel_leftovers(self, entries: list[dict[str, Any]], notify: Any) -> list[str]:
        """Cancel the elements of ``entries`` still queued or running; ``<job>@<alias>`` of each."""
        elements = [element for element, _ in self.live_elements(entries, notify)]
        if not elements:
            return []
        why_not = self.cancel(elements)
        if why_not is not None:
            notify(f"could not cancel the jobs on {self.alias}: {why_not}")
            return []
        return [f"{self.job_id(element)}@{self.alias}" for element in elements]


def status_of(task: TaskPaths) -> dict[str, Any]:
    try:
        return read_record(task.status)
    except (FileNotFoundError, RecordError):
        return {}


def submissions(paths: SweepPaths, record_name: str, checked_id: Any) -> list[dict[str, Any]]:
    """The arrays recorded for the sweep, oldest first; lines that do not parse or whose array id
    ``checked_id`` refuses are skipped."""
    try:
        text = paths.submitted_jobs(record_name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            if not checked_id(str(entry["array_id"])):
                continue
        except (ValueError, KeyError, TypeError):
            continue
        found.append(entry)
    return found


def pending_elements(paths: SweepPaths, entries: list[dict[str, Any]], back: Any) -> dict[tuple[str, str], list]:
    """(alias, sweep copy) -> each task's latest (entry, index, task) whose result is not back yet:
    the task has no marker, ``back(status, entry, index)`` is false, nor did a run elsewhere write
    its status after this submission."""
    latest: dict[str, tuple[dict[str, Any], int]] = {}
    for entry in entries:
        for index, name in enumerate(entry.get("tasks") or [], start=1):
            latest[str(name)] = (entry, index)
    grouped: dict[tuple[str, str], list] = {}
    for name, (entry, index) in latest.items():
        task = paths.task(name)
        if task.marker.exists():
            continue
        status = status_of(task)
        if back(status, entry, index) or _later(status, entry):
            continue
        grouped.setdefault((str(entry["alias"]), str(entry["remote_sweep"])), []).append((entry, index, task))
    return grouped


def _later(status: dict[str, Any], entry: dict[str, Any]) -> bool:
    """The task's status was written by a run elsewhere after this submission."""
    if not status or status.get("host_alias") == entry["alias"]:
        return False
    return started_after(status, entry)


def started_after(status: dict[str, Any], entry: dict[str, Any]) -> bool:
    try:
        return datetime.fromisoformat(str(status.get("started"))) > datetime.fromisoformat(str(entry.get("submitted")))
    except (TypeError, ValueError):
        return False


class Leftovers:
    """The cluster remotes' jobs an earlier (killed) run of the sweep left, for leftovers.py."""

    def __init__(self, paths: SweepPaths, remotes: dict[str, dict[str, Any]], kinds: dict[str, type[Cluster]]) -> None:
        self.paths = paths
        self.remotes = remotes
        self.kinds = kinds  # scheduler -> its Cluster class
        self.ssh = hostmod.Ssh.private("hsm-rcluster-")
        self.clusters: dict[str, Cluster] = {}

    def by_cluster(self, notify: Any) -> list[tuple[Cluster, list[dict[str, Any]]]]:
        """The recorded arrays, by the cluster (set to the sweep copy they ran in) they went to."""
        found = []
        for scheduler, kind in self.kinds.items():
            groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for entry in kind.recorded(self.paths):
                groups.setdefault((str(entry["alias"]), str(entry["remote_sweep"])), []).append(entry)
            for (alias, remote_sweep), entries in groups.items():
                remote = self.remotes.get(alias)
                if remote is None or remote.get("backend") != scheduler:
                    notify(f"arrays were submitted on {alias}, which is no {scheduler} remote any more")
                    continue
                if alias not in self.clusters:
                    self.clusters[alias] = kind(self.paths, alias, remote, self.ssh)
                cluster = self.clusters[alias]
                cluster.remote_sweep = remote_sweep
                found.append((cluster, entries))
        return found

    def live(self, notify: Any) -> list[tuple[Cluster, str, str]]:
        """(cluster, job label, state) of elements still queued or running; the folders of those
        that ended are pulled back and their verdicts recorded."""
        return [
            (cluster, label, state)
            for cluster, entries in self.by_cluster(notify)
            for label, state in cluster.leftovers(entries, notify)
        ]

    def cancel(self, notify: Any) -> list[str]:
        return [
            label for cluster, entries in self.by_cluster(notify) for label in cluster.cancel_leftovers(entries, notify)
        ]

    def close(self) -> None:
        for cluster in self.clusters.values():
            cluster.close()
        self.ssh.discard()
