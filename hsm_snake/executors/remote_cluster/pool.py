"""A cluster reached over SSH (a Slurm or PBS login node) as one member of the SSH pool
(``--profile ssh``, v1's ``--mode distributed``): the hsm-ssh executor hands it tasks next to SSH
hosts and local slots.

Its slots are how many jobs it may still have queued: the room under the scheduler's limits
(Slurm: MaxSubmitJobs and MaxJobCount minus its user's jobs queued there, read on the login node
(``SlurmCluster.limits``); PBS: not read), at most the remote's ``max_parallel_jobs`` when set;
without either, no cap of ours (as v1). The room is read again every ``room.ROOM_EVERY_S`` in one
ssh call (``room.RoomWatch``): the slots grow when the user's other jobs there leave the queue and
shrink when more arrive. The pool's own queued elements are not counted in that read: the slots
hold them already.

A task that got a slot waits here for its element's end. One thread per cluster does the rest
with the ``--remote`` executor's calls (``Cluster.submit_array``, ``poll_ended``,
``cancel_and_pull`` of ``slurm.py``/``pbs.py``): the tasks handed over within ``GATHER_S`` of each
other go out as arrays (one rsync + one sbatch/qsub per batch of the same scheduler options), one
poll (squeue, or one ssh call with qstat) for all of them, one rsync pull of the ended ones'
folders (markers made locally) and the scheduler's verdicts for those the runner could not
explain. Each array is recorded (``.hsm/remote-<scheduler>-jobs``), so a killed run's elements
are adopted by the next ``complete`` as for ``--remote``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from hsm_snake.engine.backends import cluster_remotes, remote_backend, remote_cluster_section
from hsm_snake.executors.remote_cluster.cluster import SUBMIT_FAILURES, ClusterError, SubmitError, arrays
from hsm_snake.executors.remote_cluster.room import ROOM_EVERY_S, RoomWatch
from hsm_snake.executors.remote_cluster.schedulers import BY_SCHEDULER
from hsm_snake.executors.ssh import transfer
from hsm_snake.executors.ssh.hosts import Host, Ssh
from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.runner.escalation import rule_resources

# Tasks handed over within this long of the first one go out in the same array.
GATHER_S = 0.5
POLL_S = 5.0
# No room known, no max_parallel_jobs: the scheduler's own queue decides (v1 put no cap either).
UNBOUNDED_SLOTS = 10_000


def cluster_slots(room: Any, asked: int) -> int:
    """Jobs the cluster may have queued for the pool: its room under the scheduler's limits
    (``room.free``; None: unknown), at most the remote's max_parallel_jobs (0: unset)."""
    bounds = ([room.free] if room is not None else []) + ([asked] if asked > 0 else [])
    return min(bounds) if bounds else UNBOUNDED_SLOTS


@dataclass
class Submission:
    """One task handed to the cluster, until its element ended and its folder is back."""

    task: TaskPaths
    resources: dict[str, Any]
    element: Any = None
    done: threading.Event = field(default_factory=threading.Event)
    message: str = ""
    # Its folder never reached the login node (nothing was submitted): it may run elsewhere.
    unsent: bool = False

    @property
    def success(self) -> bool:
        return self.task.marker.exists()


class PooledCluster:
    def __init__(self, paths: SweepPaths, host: Host, ssh: Ssh, record: dict[str, Any]) -> None:
        self.paths = paths
        self.host = host
        kind = BY_SCHEDULER[host.backend]
        self.cluster = kind(paths, host.alias, {}, ssh, host=host)
        project = record.get("project") or {}
        self.remote = cluster_remotes(project, kind.scheduler).get(host.alias) or {}
        self.section = remote_cluster_section(project, record.get("sweep_resources") or {}, host.alias)
        backend = remote_backend(host.alias, kind.scheduler)
        self.resources = rule_resources(
            (record.get("resources") or {}).get(backend) or {}, record.get("retry") or {}, paths
        )
        self.setup = ((record.get("runner") or {}).get("pre_scripts") or {}).get(backend)
        self.array_limit = 1
        self.room = RoomWatch(self.cluster, self.section)
        self.room_read = 0.0  # time.monotonic() of the last read of the room
        self.lock = threading.Condition()
        self.waiting: list[Submission] = []  # handed over, not submitted yet
        self.queued: list[Submission] = []  # submitted, not back yet
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.answering = True  # the queue (squeue, qstat) answered at the last poll

    # -- set-up ----------------------------------------------------------------------------
    @staticmethod
    def check(ssh: Ssh, host: Host) -> None:
        """A health check of the login node (the pool's, for a cluster): unhealthy with the reason."""
        try:
            BY_SCHEDULER[host.backend].check_login_node(ssh, host)
        except ClusterError as exc:
            host.healthy, host.reason = False, str(exc)

    def start(self) -> list[str]:
        """After a good health check: the sweep's copy in the resolved workdir, the cluster's
        limits as slots and array size; lines for the log. Once: a cluster that comes back keeps them."""
        if self.thread is not None:
            return []
        self.cluster.remote_sweep = transfer.remote_sweep_dir(self.host, self.paths.sweep_id)
        room, self.array_limit, notes = self.room.first()
        self.room_read = time.monotonic()
        self.host.slots = cluster_slots(room, int(self.remote.get("max_parallel_jobs") or 0))
        notes.append(f"{self.host.slots} slot(s) (jobs it may have queued), arrays of at most {self.array_limit}")
        name = f"hsm-ssh-{self.cluster.scheduler}-{self.host.alias}"
        self.thread = threading.Thread(target=self.drive, daemon=True, name=name)
        self.thread.start()
        return notes

    # -- a task's side ---------------------------------------------------------------------
    def run(self, task: TaskPaths) -> Submission:
        """Hand the task over and wait until its element ended and its folder is back (or it
        could not be submitted)."""
        wildcards = SimpleNamespace(task=task.name)
        # The remote's requests, memory/time grown by the task's history.
        resources = {name: value(wildcards) if callable(value) else value for name, value in self.resources.items()}
        submission = Submission(task, resources)
        with self.lock:
            self.waiting.append(submission)
            self.lock.notify_all()
        submission.done.wait()
        return submission

    def job_label(self, submission: Submission) -> str:
        """``<Scheduler> job <id>`` of a submitted task, for the pool's log."""
        return f"{self.cluster.title} job {self.cluster.job_id(submission.element)}"

    # -- the cluster's thread --------------------------------------------------------------
    def drive(self) -> None:
        last_poll = 0.0
        while not self.stopping.is_set():
            with self.lock:
                if not self.waiting:
                    self.lock.wait(1.0)
            if self.waiting:
                time.sleep(GATHER_S)
                with self.lock:
                    batch, self.waiting = self.waiting, []
                try:
                    self.submit(batch)
                except Exception as exc:  # noqa: BLE001 - every task handed over must get an answer
                    for each in batch:
                        if each.element is None:
                            each.message = f"{each.task.name} on {self.host.alias}: not submitted: {exc!r}"
                            each.done.set()
            if self.queued and time.monotonic() - last_poll >= POLL_S:
                last_poll = time.monotonic()
                try:
                    self.poll()
                except Exception as exc:  # noqa: BLE001 - submitted tasks are asked about again
                    self.cluster.log(f"poll failed ({exc!r}); asked again")
            if time.monotonic() - self.room_read >= ROOM_EVERY_S:
                self.read_room()

    def submit(self, batch: list[Submission]) -> None:
        by_options: dict[tuple[str, ...], list[Submission]] = {}
        for submission in batch:
            by_options.setdefault(self.cluster.options(submission.resources), []).append(submission)
        for options, chunk in arrays(by_options, lambda each: each.task, self.array_limit):
            try:
                elements = self.cluster.submit_array(
                    [each.task for each in chunk], list(options), chunk[0].resources, self.setup
                )
            except SUBMIT_FAILURES as exc:
                self.not_submitted(chunk, exc)
                continue
            for each, element in zip(chunk, elements, strict=True):
                each.element = element
            self.queued += chunk

    def read_room(self) -> None:
        """The slots from the room now: the user's jobs there that are not the pool's own (those
        hold slots already) leave the rest; no answer changes nothing."""
        self.room_read = time.monotonic()
        room = self.room.again({self.cluster.job_id(each.element) for each in self.queued if each.element is not None})
        if room is None:
            return
        slots = cluster_slots(room, int(self.remote.get("max_parallel_jobs") or 0))
        if slots != self.host.slots:
            self.cluster.log(
                f"room re-read: {room.source} is {room.limit}, {room.queued} job(s) not the pool's count "
                f"against it: {slots} slot(s), were {self.host.slots}"
            )
            self.host.slots = slots

    def not_submitted(self, chunk: list[Submission], exc: Exception) -> None:
        """Each task's answer when its array was not submitted: unsent when the push failed (the
        login node away: sbatch/qsub never ran), else the scheduler's refusal."""
        for each in chunk:
            each.unsent = not isinstance(exc, SubmitError)
            each.message = f"{each.task.name} on {self.host.alias}: not submitted: {exc}"
            each.done.set()

    def poll(self) -> None:
        """One poll; the ended elements' folders back in one rsync, their verdicts recorded (a
        failure: asked again)."""
        # A failed answer is logged once by note_answer, not at every poll.
        answered, ended = self.cluster.poll_ended([each.element for each in self.queued], lambda _: None)
        self.note_answer(answered)
        why = {id(element): message for element, message in ended}
        for each in [each for each in self.queued if id(each.element) in why]:
            self.finish(each, why[id(each.element)])

    def note_answer(self, answered: bool) -> None:
        """The cluster's log says when its queue stops answering (its login node away) and when it
        answers again, once each, not at every poll."""
        if answered != self.answering:
            self.answering = answered
            tool = self.cluster.queue_tool
            self.cluster.log(
                f"{tool} answers again" if answered else f"{tool} did not answer; asked again every {POLL_S:g} s"
            )

    def finish(self, submission: Submission, why: str | None) -> None:
        """The task's element ended and its folder is back (``why``: how it failed)."""
        self.queued.remove(submission)
        submission.message = "" if submission.success else why or self.cluster.outcome(submission.element)
        submission.done.set()

    # -- cancel / end ----------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel the arrays of every task still queued there (``Cluster.cancel_and_pull``: their
        folders come back with the runners' records or the scheduler's verdicts)."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
        with self.lock:
            never, self.waiting = self.waiting, []
        for each in never:
            each.message = "cancelled before it was submitted"
            each.done.set()
        if not self.queued:
            return
        why_not = self.cluster.cancel_and_pull([each.element for each in self.queued])
        if why_not is not None:
            self.cluster.log(f"cancelling failed: {why_not}")
        for each in list(self.queued):
            self.finish(each, None)

    def stop(self) -> None:
        self.stopping.set()
