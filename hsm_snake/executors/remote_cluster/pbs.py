"""The PBS part of a cluster remote (``backend: pbs``, executor ``hsm-remote-pbs``): the qsub call and
job-array script, and the cluster's qstat/qdel calls, over the cluster's ssh connection.

What an on-cluster PBS run does is reused as it is (``executors/pbs/``): the ``#PBS`` lines
(``script.directives``), the array script (``script.render_array``: each element finds its index,
writes its task's logs and its own job id to ``<log>.jobid``), qstat's formats and their parsing
(``qstat.Qstat``, here with its command run over ssh), when a job has left the wait
(``watch.Watcher``) and the verdicts (``accounting.decide``/``record_verdict``).

What differs is where the files are. qsub prints only the array's id and an element's own id is
known once it has started (under Slurm's torque wrappers it cannot be derived from the array's),
so each poll is **one ssh call**: it prints the ``.jobid`` files of elements not started at the
last poll, then runs one qstat of the started elements' ids and the arrays of the others. Ids read
from those files are checked before any of them reaches a remote shell. The folders of elements
that may have ended come back in one rsync (without the marker, made here once the pulled
status says completed for that very job).
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hsm_snake.executors.pbs import accounting, script
from hsm_snake.executors.pbs.qstat import Qstat, QstatAnswer
from hsm_snake.executors.pbs.watch import ArrayElement, Tracking, Watcher
from hsm_snake.executors.remote_cluster.cluster import (
    CANCEL_WAIT_S,
    DEFAULT_ARRAY_LIMIT,
    Cluster,
    SubmitError,
    pending_elements,
    started_after,
    status_of,
    submissions,
)
from hsm_snake.layout import names
from hsm_snake.layout.paths import SweepPaths, TaskPaths

# Separates the .jobid files a poll printed from qstat's answer.
QSTAT_MARK = "#hsm-qstat"
# The elements' logs and job ids, in the sweep copy and pulled back into the sweep: not logs/pbs/,
# whose .jobid files name jobs of this machine's PBS (leftovers.py asks the local qstat about them).
LOGS = "logs/remote-pbs"
# hsm-pbs's defaults for when a job leaves the wait (see executors/pbs/watch.py).
WALLTIME_GRACE_S = 300
QSTAT_FAILURE_TIMEOUT_S = 900


def checked_job_ids(ids: list[str]) -> list[str]:
    """Job ids about to reach a remote shell: what PBS and its wrappers print, nothing else."""
    for job in ids:
        if not names.is_job_id(job):
            raise SubmitError(f"{job!r} is not a PBS job id")
    return ids


def array_script(
    *,
    name: str,
    options: list[str],
    tasks: list[tuple[str, str]],
    remote_sweep: str,
    project_dir: str,
    python: list[str],
    alias: str,
    setup: str | None,
) -> str:
    """The job script of one array: element i runs the i-th of ``tasks`` ((task name, log base
    relative to the sweep copy)) with the runner, after the set-up of ``pbs@<alias>``."""
    env = shlex.join([f"PYTHONPATH={project_dir}/.hsm-runner", f"HSM_HOST_ALIAS={alias}", "HSM_SETUP_DONE=pbs"])
    runner = shlex.join([*python, "-m", "hsm_snake.runner"])
    elements = [
        script.Element(
            index,
            f"{remote_sweep}/{log_base}",
            f"export {env}; exec {runner} {shlex.quote(f'{remote_sweep}/tasks/{task}')}",
        )
        for index, (task, log_base) in enumerate(tasks, start=1)
    ]
    return script.render_array(
        name=name,
        options=options,
        workdir=project_dir,
        elements=elements,
        setup=setup,
        comment=f"{len(tasks)} task(s) on {alias} (hsm-remote-pbs), one per array element",
    )


def qsub_command(remote_sweep: str, job_script: str, count: int, flavor: str, array_log: str) -> str:
    """The remote shell command that submits ``job_script`` (relative to the sweep copy) as an
    array of ``count`` elements; every word quoted. The array's logs are named relative to the
    sweep copy, qsub's working directory: Slurm's torque wrappers split a path with spaces."""
    argv = script.qsub_command(
        job_script, f"{array_log}.out", f"{array_log}.err", array=script.array_option(flavor, count)
    )
    return f"cd {shlex.quote(remote_sweep)} && mkdir -p {LOGS} && {shlex.join(argv)}"


def parse_qsub(stdout: str) -> str:
    job = script.parse_qsub_output(stdout)
    if job is None:
        raise SubmitError(f"qsub answered {stdout.strip()[-300:]!r}, not a job id")
    return job


@dataclass(eq=False)
class Element:
    """One task as one array element; ``track`` is what hsm-pbs's Watcher knows of it, its
    ``element.id_file`` relative to the sweep copy."""

    task: TaskPaths
    track: Tracking

    @property
    def array_id(self) -> str:
        return self.track.element.array_id

    @property
    def label(self) -> str:
        return self.track.job_id or self.track.label

    @property
    def log_base(self) -> str:
        return str(self.track.element.id_file)[: -len(script.JOB_ID_SUFFIX)]


def element(task: TaskPaths, array_id: str, index: int, log_base: str, walltime_s: int | None) -> Element:
    track = Tracking(
        task=task,
        script="",
        stdout=f"{log_base}.out",
        stderr=f"{log_base}.err",
        walltime_s=walltime_s,
        element=ArrayElement(array_id, index, Path(script.id_file(log_base))),
    )
    return Element(task, track)


class PbsCluster(Cluster):
    scheduler = "pbs"
    title = "PBS"
    tools = ("qsub", "qstat", "qdel")
    queue_tool = "qstat"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.qstat = Qstat(run=self._qstat_there)
        self._probe = ""
        self._printed: dict[str, str] = {}
        # A cancel (Snakemake's main thread) may poll while a status check (its own thread) does.
        self._polling = threading.Lock()
        self.watch(poll_s=10, latency_wait_s=5)

    def watch(self, poll_s: float, latency_wait_s: float) -> None:
        """Decide when elements left the wait as hsm-pbs does, for polls every ``poll_s``."""
        self.watcher = Watcher(
            walltime_grace=WALLTIME_GRACE_S,
            qstat_failure_timeout=QSTAT_FAILURE_TIMEOUT_S,
            latency_wait=latency_wait_s,
            # Elements are seen to start and end at poll times (as hsm-pbs).
            slack_s=poll_s + 5,
            qdel=self.qdel,
        )

    # -- submission ------------------------------------------------------------------------
    def limits(self, section: dict[str, Any], query: Any = None) -> tuple[None, int, list[str]]:
        """PBS's queue limits are not read: no room of ours (the remote's max_parallel_jobs bounds
        the pool); arrays of ``pbs.max_array_size``."""
        size = max(1, int(section.get("max_array_size") or DEFAULT_ARRAY_LIMIT))
        return None, size, []

    def options(self, resources: dict[str, Any], threads: int = 1) -> tuple[str, ...]:
        # The #PBS lines but the job name (-N, first).
        return tuple(script.directives(resources, "-", threads=threads)[1:])

    def submit_array(
        self, tasks: list[TaskPaths], options: list[str], resources: dict[str, Any], setup: str | None
    ) -> list[Element]:
        """One rsync of the tasks' folders and the array script up, one qsub -J/-t, recorded with
        each element's log base; the elements know their walltime (``resources``' runtime)."""
        sweep_id = self.paths.sweep_id
        name = script.job_name(sweep_id, f"{tasks[0].name}+{len(tasks) - 1}")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        log_bases = [f"{LOGS}/{script.job_name(sweep_id, task.name)}.{stamp}" for task in tasks]
        job_script = self.write_script(
            tasks,
            array_script(
                name=name,
                options=[f"-N {name}", *options],
                tasks=[(task.name, log) for task, log in zip(tasks, log_bases, strict=True)],
                remote_sweep=self.remote_sweep,
                project_dir=self.host.project_dir,
                python=list(self.host.python),
                alias=self.alias,
                setup=setup,
            ),
        )
        self.push([job_script], tasks)
        flavor = str(resources.get("pbs_flavor") or "torque")
        command = qsub_command(self.remote_sweep, job_script, len(tasks), flavor, f"{LOGS}/{name}.{stamp}")
        answer = f"{self.remote_sweep}/{job_script}.submission"
        array_id = checked_job_ids([parse_qsub(self.submit_command(command, "qsub", answer))])[0]
        self.submitted(job_script, array_id, command, tasks, " ".join(options), logs=log_bases)
        runtime = resources.get("runtime")
        walltime_s = int(float(runtime) * 60) if runtime else None
        return [
            element(task, array_id, index, log, walltime_s)
            for index, (task, log) in enumerate(zip(tasks, log_bases, strict=True), start=1)
        ]

    # -- queue -----------------------------------------------------------------------------
    def poll(self, elements: list[Element]) -> QstatAnswer:
        """One ssh call: the job ids of elements that have started since (their .jobid files),
        then one qstat of what to ask about (see the module's docstring)."""
        with self._polling:
            return self._poll(elements)

    def _poll(self, elements: list[Element]) -> QstatAnswer:
        unstarted = {str(e.track.element.id_file): e for e in elements if e.track.job_id is None}
        self._probe = ""
        if unstarted:
            files = " ".join(shlex.quote(path) for path in unstarted)
            self._probe = (
                f"cd {shlex.quote(self.remote_sweep)} && for f in {files}; do "
                'test -s "$f" && printf \'%s %s\\n\' "$f" "$(head -n 1 "$f")"; done; '
            )
        self._printed = {}
        ids = checked_job_ids(list(dict.fromkeys(e.track.qstat_id() for e in elements)))
        answer = self.qstat.query(ids)
        for path, job in self._printed.items():
            if path in unstarted and names.is_job_id(job):
                unstarted[path].track.job_id = job
                unstarted[path].track.missing_polls = 0
        return answer

    def _qstat_there(self, argv: list[str]) -> subprocess.CompletedProcess | None:
        done = self.remote(f"{self._probe}printf '%s\\n' {shlex.quote(QSTAT_MARK)}; {shlex.join(argv)}")
        if done is None:
            return None
        printed, marked, answer = done.stdout.partition(QSTAT_MARK + "\n")
        if not marked:  # ssh failed before the remote shell printed anything
            return subprocess.CompletedProcess(argv, done.returncode, done.stdout, done.stderr)
        for line in printed.splitlines():
            path, _, job = line.partition(" ")
            self._printed[path] = job.strip()
        return subprocess.CompletedProcess(argv, done.returncode, answer, done.stderr)

    def qdel(self, ids: list[str]) -> str | None:
        """qdel the jobs (an array's id: all its elements, queued ones too); None when sent, else why not."""
        ids = checked_job_ids(list(dict.fromkeys(ids)))
        done = self.remote(shlex.join(["qdel", *ids]))
        self.log(f"qdel {' '.join(ids)}")
        # qdel complains about ids that have finished meanwhile: only a failed ssh is a failure.
        return None if done is not None and done.returncode != 255 else self.failure(done)

    @staticmethod
    def runs(item: Element, answer: QstatAnswer) -> bool:
        """qstat says the started element runs."""
        info = answer.get(item.track.job_id) if answer.ok and item.track.job_id is not None else None
        return info is not None and info.running

    @staticmethod
    def may_have_ended(item: Element, answer: QstatAnswer) -> bool:
        """qstat no longer shows the started element as queued or running (its folder is worth pulling)."""
        if not answer.ok or item.track.job_id is None:
            return False
        info = answer.get(item.track.job_id)
        return info is None or info.finished

    def poll_ended(self, elements: list[Element], warn: Any) -> tuple[bool, list[tuple[Element, str | None]]]:
        """One poll; the folders of elements that may have ended back in one rsync, then the
        Watcher's verdict on each, recorded where the runner could not record it."""
        answer = self.poll(elements)
        now = time.monotonic()
        if self.watcher.note(answer, now):
            warn(f"qstat on {self.alias} failed ({answer.error}); asked again next poll")
        self.note_running([item for item in elements if self.runs(item, answer)])
        ending = [item for item in elements if self.may_have_ended(item, answer)]
        pulled = self.settle(ending)
        ended: list[tuple[Element, str | None]] = []
        for item in elements:
            verdict = None if item in ending and not pulled else self.watcher.settle(item.track, answer, now)
            if verdict is None:
                continue
            if verdict.success:
                self.log(f"{item.task.name}\t{item.label}\tcompleted")
                ended.append((item, None))
                continue
            track = item.track
            if track.job_id is not None:
                state = track.last_info.state if track.last_info is not None else None
                accounting.record_verdict(item.task, track.job_id, verdict, scheduler_state=state)
            status = status_of(item.task)
            self.log(f"{item.task.name}\t{item.label}\t{status.get('status')}:{status.get('error_category')}")
            ended.append((item, f"{item.task.name} (PBS job {item.label} on {self.alias}): {verdict.summary}"))
        return answer.ok, ended

    def logs_of(self, element: Element) -> list[str]:
        return [str(element.task.stderr), str(self.paths.root / f"{element.log_base}.err")]

    # -- results ---------------------------------------------------------------------------
    def settle(self, elements: list[Element]) -> bool:
        """Pull the folders and logs of ``elements`` (one rsync), mark those whose pulled status
        says completed in that very job. False: the pull failed; ask again later."""
        if not elements:
            return True
        logs = [f"{e.log_base}{suffix}" for e in elements for suffix in (".out", ".err", script.JOB_ID_SUFFIX)]
        if not self.pull(elements, logs):
            return False
        for item in elements:
            status = status_of(item.task)
            if status.get("status") == "completed" and accounting.same_job(status.get("job_id"), item.track.job_id):
                item.task.marker.touch()
        return True

    # -- what earlier runs left ------------------------------------------------------------
    @classmethod
    def recorded(cls, paths: SweepPaths) -> list[dict[str, Any]]:
        return submissions(paths, cls.record_name(), names.is_job_id)

    @staticmethod
    def came_back(status: dict[str, Any], entry: dict[str, Any], index: int) -> bool:
        """The task's final status was written on this remote's PBS after this submission."""
        return (
            status.get("host_alias") == entry["alias"]
            and status.get("backend") == "pbs"
            and status.get("status") in accounting.FINAL_STATUSES
            and started_after(status, entry)
        )

    def live_elements(self, entries: list[dict[str, Any]], notify: Any) -> list[tuple[Element, str]]:
        """Elements of ``entries`` still queued or running (with their state); those that ended are
        pulled back and PBS's verdict recorded where the runner could not."""
        items = [
            element(task, str(entry["array_id"]), index, str((entry.get("logs") or [])[index - 1]), None)
            for group in pending_elements(self.paths, entries, self.came_back).values()
            for entry, index, task in group
            if len(entry.get("logs") or []) >= index
        ]
        if not items:
            return []
        answer = self.poll(items)
        if answer.ok and any(item.track.job_id for item in items):
            answer = self.poll(items)  # ask about the ids the elements wrote
        if not answer.ok:
            notify(f"could not ask {self.alias} about this sweep's earlier jobs (qstat over ssh: {answer.error})")
            return []
        live, ended = [], []
        for item in items:
            info = answer.get(item.track.qstat_id())
            if info is not None and not info.finished:
                live.append((item, info.state))
            else:
                ended.append((item, info))
        started = [(item, info) for item, info in ended if item.track.job_id]
        if not self.settle([item for item, _ in started]):
            notify(f"could not pull the finished tasks back from {self.alias}; they run again")
            return live
        for item, info in started:
            self.record_verdict(item, info)
        return live

    def record_verdict(self, item: Element, info: Any, cancelled: bool = False) -> None:
        """PBS's word on an ended element whose runner did not record how it ended."""
        job_id = str(item.track.job_id)
        verdict = accounting.decide(
            job_id,
            info if info is not None and info.finished else None,
            marker_exists=item.task.marker.exists(),
            record=accounting.task_record(item.task, job_id),
            walltime_s=item.track.walltime_s,
            elapsed_s=None,
            slack_s=0,
            cancelled_by_us=cancelled,
        )
        accounting.record_verdict(item.task, job_id, verdict, scheduler_state=info.state if info else None)
        self.log(f"{item.task.name}\t{job_id}\t{'completed' if verdict.success else verdict.category or 'ended'}")

    def cancel(self, elements: list[Element]) -> str | None:
        started = [str(item.track.job_id) for item in elements if item.track.job_id]
        return self.qdel([item.array_id for item in elements] + started)

    def cancel_and_pull(self, elements: list[Element]) -> str | None:
        """qdel the arrays (and started elements); once they left the queue (at most
        CANCEL_WAIT_S), the folders come back and started elements whose runner could not
        record it (the wrappers' qdel kills hard) are recorded cancelled."""
        self.poll(elements)  # the ids of elements started since the last poll
        why_not = self.cancel(elements)
        answer = self.wait_until_gone(elements, CANCEL_WAIT_S)
        started = [item for item in elements if item.track.job_id]
        if self.settle(started):
            for item in started:
                info = answer.get(item.track.job_id) if answer is not None else None
                self.record_verdict(item, info, cancelled=True)
        return why_not

    @staticmethod
    def job_id(element: Element) -> str:
        return element.label

    def wait_until_gone(self, elements: list[Element], timeout_s: float) -> QstatAnswer | None:
        """After a qdel: poll until no element is queued or running (at most ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        answer = None
        while time.monotonic() < deadline:
            answer = self.poll(elements)
            if not answer.ok or not any(self._active(item, answer) for item in elements):
                break
            time.sleep(1)
        return answer

    @staticmethod
    def _active(item: Element, answer: QstatAnswer) -> bool:
        info = answer.get(item.track.qstat_id())
        return info is not None and not info.finished
