"""The submit room of a Slurm cluster reached over SSH (``remote_cluster/room.py``): ``--remote``
caps its ``--jobs`` by it before Snakemake starts; a cluster in the SSH pool reads it again during
the run (one ssh call), its own queued elements left out. The test bed's QOS ``hsmtb_small`` has
MaxSubmitJobsPerUser=3 (tests/testbed/start.sh; recorded, not enforced by the test Slurm: what
the queue holds is watched here instead).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from background import wait_for
from conftest import read_status
from test_remote_pool import RECORDING_APP
from test_remote_slurm import cluster  # noqa: F401  (the fixture this module's builds on)

from hsm_snake.executors.remote_cluster import pool as poolmod
from hsm_snake.executors.remote_cluster.room import (
    RoomWatch,
    batch_command,
    caps_within,
    split_batch,
    without_jobs,
)
from hsm_snake.executors.remote_cluster.slurm import Element, SlurmCluster
from hsm_snake.executors.slurm.limits import SubmitRoom, cap_message
from hsm_snake.layout.paths import SweepPaths

SMALL_QOS = "hsmtb_small"


# -- pure logic -----------------------------------------------------------------------------
def test_a_batch_of_queries_answers_each_byte_for_byte_in_one_shell_call():
    queries = [
        ("printf", "1_1\n1_2\n"),
        ("printf", "no newline at the end"),
        ("sh", "-c", "echo partial; exit 3"),
        ("printf", ""),
        ("printf", 'it\'s "quoted" $HOME `x`\n\n'),
    ]
    token = "hsm-room-abc123"
    done = subprocess.run(["sh", "-c", batch_command(queries, token)], capture_output=True, text=True, check=True)
    assert split_batch(done.stdout, token, queries) == {
        queries[0]: "1_1\n1_2\n",
        queries[1]: "no newline at the end",
        queries[2]: None,  # failed: unknown, never a partial answer
        queries[3]: "",
        queries[4]: 'it\'s "quoted" $HOME `x`\n\n',
    }
    assert split_batch(done.stdout[:-20], token, queries) == {}  # cut short: nothing is taken from it


def test_the_pools_own_elements_are_left_out_of_a_listing():
    assert without_jobs("7_1\n7_2\n8\n9_3\n", {"7_2", "9_3"}) == "7_1\n8\n"
    assert without_jobs("7_1\n", set()) == "7_1\n" and without_jobs(None, {"7_1"}) is None


def test_a_remote_run_is_capped_to_its_room_only_when_the_profile_asks_for_more():
    room = SubmitRoom(3, 1, "MaxSubmitJobsPerUser of QOS small")
    assert caps_within(None, 1000, 500) == ["--hsm-remote-slurm-array-limit", "500"]
    assert caps_within(room, 1000, 500) == ["--hsm-remote-slurm-array-limit", "2", "--jobs", "2"]
    assert caps_within(room, 2, 500) == ["--hsm-remote-slurm-array-limit", "500"]
    assert caps_within(SubmitRoom(3, 5, "x"), None, 500)[-2:] == ["--jobs", "1"]  # full: one at a time
    assert cap_message(room, " on lab") == (
        "Slurm's MaxSubmitJobsPerUser of QOS small on lab is 3 and 1 job(s) count against it: "
        "at most 2 task(s) in the queue at once"
    )


ANA_ASSOC = ("sacctmgr", "-nP", "show", "assoc", "where", "user=ana", "format=Account,MaxSubmit,DefaultQOS")
ANA = {
    ("id", "-un"): "ana\n",
    ("scontrol", "show", "config"): "MaxJobCount = 100\n",
    ANA_ASSOC: "lab|10|gpu\n",
    ("sacctmgr", "-nP", "show", "qos", "gpu", "format=MaxSubmitPU"): "4\n",
    ("squeue", "-h", "-r", "-u", "ana", "-o", "%i"): "1_1\n1_2\n2\n",
    ("squeue", "-h", "-r", "-u", "ana", "-q", "gpu", "-o", "%i"): "1_1\n",
    ("squeue", "-h", "-r", "-t", "all", "-o", "%i"): "1_1\n1_2\n2\n3\n",
}


class AnsweringLogin(SlurmCluster):
    """A login node that answers the Slurm queries from ``answers`` (a shell runs each batch)."""

    def __init__(self, tmp_path: Path, answers: dict) -> None:
        super().__init__(SweepPaths(tmp_path / "sweep"), "lab", {"host": "lab"}, tmp_path)
        self.answers = answers
        self.calls: list[str] = []

    def answer(self, argv) -> str | None:
        return self.answers.get(tuple(argv))

    def query(self, argv: list[str]) -> str | None:
        self.calls.append(shlex.join(argv))
        return self.answer(argv)

    def remote(self, command: str, timeout_s: float = 0) -> subprocess.CompletedProcess | None:
        self.calls.append(command)
        if self.answers is None:
            return None
        # Each query of the batch becomes a printf of its answer (exit 1 when it has none).
        for argv, out in self.answers.items():
            command = command.replace(shlex.join(argv), f"printf %s {shlex.quote(out)}" if out is not None else "false")
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True)


def test_a_room_read_again_is_one_call_without_the_pools_own_elements(tmp_path):
    login = AnsweringLogin(tmp_path, dict(ANA))
    watch = RoomWatch(login, {})
    assert watch.again(set()) is None  # nothing read yet: nothing to read again
    room, _, _ = watch.first()
    assert (room.limit, room.queued, "QOS gpu" in room.source) == (4, 1, True)
    login.calls.clear()
    again = watch.again({"1_1"})
    assert len(login.calls) == 1 and again.queued == 0 and again.free == 4  # 1_1 is the pool's own
    login.answers[("squeue", "-h", "-r", "-u", "ana", "-q", "gpu", "-o", "%i")] = "1_1\n5\n6\n7\n"
    assert watch.again({"1_1"}).free == 1  # three jobs of the user's arrived
    # The default QOS changed: the new QOS's query is asked on its own, then batched with the rest.
    login.answers[ANA_ASSOC] = "lab|10|big\n"
    login.answers[("sacctmgr", "-nP", "show", "qos", "big", "format=MaxSubmitPU")] = "2\n"
    login.answers[("squeue", "-h", "-r", "-u", "ana", "-q", "big", "-o", "%i")] = ""
    login.calls.clear()
    assert watch.again(set()).limit == 2 and len(login.calls) == 3
    login.calls.clear()
    assert watch.again(set()).limit == 2 and len(login.calls) == 1
    login.answers = None  # the login node does not answer: nothing is known
    assert watch.again(set()) is None


# -- the test bed ---------------------------------------------------------------------------
def jobs_in_small_qos(name: str) -> int:
    """The queue's jobs (array elements one each) named ``name`` under SMALL_QOS. Its QOS too: a
    sweep of another test session started in the same second has the same id, hence job name (a
    rehearsal run beside other test-bed tests counted 5)."""
    argv = ["squeue", "-h", "-r", "-n", name, "-q", SMALL_QOS, "-o", "%i"]
    return len(subprocess.run(argv, capture_output=True, text=True).stdout.split())


@pytest.mark.testbed
def test_a_remote_run_never_has_more_jobs_queued_than_its_qos_lets_it(cluster, tb):  # noqa: F811
    project = cluster
    (project.root / "app.py").write_text(RECORDING_APP)
    partition = tb.facts["env"].get("HSM_TB_SLURM_PARTITION", "debug")
    project.configure(
        "app.py",
        env={"RUN_LOG": str(project.run_log)},
        slurm={"partition": partition, "mem": "200M", "walltime": "00:05:00", "qos": SMALL_QOS},
    )
    project.write_sweep({"grid": {"x": list(range(8)), "sleep": [3]}})
    seen, done = [], threading.Event()

    def watch_queue() -> None:
        while not done.is_set():
            for sweep_dir in project.sweep_dirs():
                seen.append(jobs_in_small_qos(f"hsm-{sweep_dir.name}"))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch_queue, daemon=True)
    watcher.start()
    try:
        result = project.cli("run", "sweep.yaml", "--remote", "tbslurm")
    finally:
        done.set()
        watcher.join()
    assert "8 completed" in result.output, result.output
    assert f"MaxSubmitJobsPerUser of QOS {SMALL_QOS} on tbslurm is 3" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    assert f"QOS {SMALL_QOS} on tbslurm is 3" in (sweep_dir / "logs" / "sweep.log").read_text()
    jobs = re.findall(r"--jobs (\d+)", (sweep_dir / "logs" / "engine.log").read_text())
    assert jobs and 1 <= int(jobs[-1]) <= 3, jobs
    assert seen and max(seen) <= 3 and max(seen) >= 1, seen
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 9)}
    for i in range(1, 9):
        assert read_status(sweep_dir / "tasks" / f"task_{i:03d}")["backend"] == "slurm"


def held_jobs(count: int, partition: str) -> str:
    """An array of ``count`` held jobs of the small QOS in the local queue (the login node's Slurm)."""
    done = subprocess.run(
        ["sbatch", "--parsable", "--hold", "--qos", SMALL_QOS, "-p", partition, f"--array=1-{count}", "--wrap", "true"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().split(";")[0]


@pytest.mark.testbed
def test_a_pooled_clusters_slots_follow_its_room_without_counting_its_own_elements(cluster, tb, monkeypatch):  # noqa: F811
    from hsm_snake.executors.ssh.hosts import Ssh, host_from_remote

    project = cluster
    partition = tb.facts["env"].get("HSM_TB_SLURM_PARTITION", "debug")
    remote = {"backend": "slurm", "host": "hsmtb-lo", "slurm": {"partition": partition, "qos": SMALL_QOS}}
    record = {"project": {"distributed": {"remotes": {"tbslurm": remote}}}}
    control_dir = Path(tempfile.mkdtemp(prefix="hsm-t-"))  # a socket path under the 108-byte limit
    paths = SweepPaths(project.root / "sweep")
    pooled = poolmod.PooledCluster(paths, host_from_remote("tbslurm", remote), Ssh(control_dir), record)
    calls = []
    ssh_call = pooled.cluster.remote
    monkeypatch.setattr(pooled.cluster, "remote", lambda *args: calls.append(args) or ssh_call(*args))
    array_id = None
    try:
        notes = pooled.start()
        pooled.stop()
        pooled.thread.join()
        before = pooled.host.slots
        assert 1 <= before <= 3 and f"{before} slot(s)" in notes[-1], notes
        array_id = held_jobs(2, partition)
        calls.clear()
        pooled.read_room()
        assert len(calls) == 1, calls  # the whole room in one ssh call
        assert pooled.host.slots == max(1, before - 2), (before, pooled.host.slots)
        # The same jobs as the pool's own elements: they hold slots already, the room counts them not.
        pooled.queued = [
            poolmod.Submission(paths.task(f"task_00{i}"), {}, Element(paths.task(f"task_00{i}"), array_id, i))
            for i in (1, 2)
        ]
        pooled.read_room()
        assert pooled.host.slots == before
        pooled.queued = []
        subprocess.run(["scancel", array_id], check=True)
        array_id = None
        wait_for(lambda: pooled.read_room() or pooled.host.slots == before, 60, "the room back after scancel")
        assert "room re-read" in paths.source_log("tbslurm").read_text()
    finally:
        if array_id:
            subprocess.run(["scancel", array_id], check=False)
        pooled.cluster.close()
        shutil.rmtree(control_dir, ignore_errors=True)


@pytest.mark.testbed
def test_the_pools_thread_reads_the_room_again_every_period(cluster, monkeypatch):  # noqa: F811
    from hsm_snake.executors.ssh.hosts import Ssh, host_from_remote

    project = cluster
    monkeypatch.setattr(poolmod, "ROOM_EVERY_S", 0.2)
    remote = {"backend": "slurm", "host": "hsmtb-lo", "slurm": {"qos": SMALL_QOS}}
    record = {"project": {"distributed": {"remotes": {"tbslurm": remote}}}}
    control_dir = Path(tempfile.mkdtemp(prefix="hsm-t-"))
    pooled = poolmod.PooledCluster(
        SweepPaths(project.root / "sweep"), host_from_remote("tbslurm", remote), Ssh(control_dir), record
    )
    try:
        pooled.start()
        first = pooled.room_read
        wait_for(lambda: pooled.room_read > first, 60, "a second read of the room")
    finally:
        pooled.stop()
        if pooled.thread is not None:
            pooled.thread.join()
        pooled.cluster.close()
        shutil.rmtree(control_dir, ignore_errors=True)
