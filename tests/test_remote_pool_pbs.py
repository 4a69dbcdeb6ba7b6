"""A PBS cluster reached over SSH as a member of the SSH pool (``--profile ssh``, v1's ``--mode
distributed``) next to local slots and a Slurm cluster: both login nodes are the test bed's
loopback sshd hsmtb-lo (as in test_remote_pbs.py and test_remote_slurm.py), whose qsub/qstat/qdel
are Slurm's torque wrappers.
"""

from __future__ import annotations

import json
import re

import pytest
from background import kill_everything, lock_released, start_run, wait_for
from conftest import read_status
from test_remote_pool import RECORDING_APP, cancel_pool_run, hostile_sweep_came_back, running_on_cluster
from test_remote_slurm import cluster_project
from test_ssh import HOSTILE

from hsm_snake.executors.remote_cluster import slurm
from hsm_snake.layout import names

pytestmark = pytest.mark.testbed

REQUESTS = {"mem": "200M", "walltime": "00:05:00"}


@pytest.fixture
def pool(tb, tmp_path, monkeypatch):
    """A project (a folder with spaces and quotes) whose pool is one local slot, the PBS remote
    tbpbs and, ``with_slurm``, the Slurm remote tbslurm; ``configure`` writes its hsm.yaml."""
    made = cluster_project(tb, tmp_path, monkeypatch, "tbpbs", "pbs", REQUESTS)
    project = next(made)
    (project.root / "app.py").write_text(RECORDING_APP)
    configure = project.configure
    partition = tb.facts["env"].get("HSM_TB_SLURM_PARTITION", "debug")

    def configure_pool(local_slots: int = 1, with_slurm: bool = False, **pbs_remote):
        remotes = {}
        if with_slurm:
            remotes["tbslurm"] = {
                "backend": "slurm",
                "host": "hsmtb-lo",
                "project_dir": f"{project.remote_base}/slurm proj",
                "workdir": f"{project.remote_base}/slurm runs",
                "python_path": "python3",
                "slurm": {"partition": partition, **REQUESTS},
            }
        configure(
            "app.py",
            env={"RUN_LOG": str(project.run_log)},
            pool={"strategy": "round_robin", "local_slots": local_slots, "remotes": remotes},
            **pbs_remote,
        )

    project.configure_pool = configure_pool
    project.queue = partition
    yield project
    next(made, None)  # its cleanup


def test_one_sweep_over_local_slots_a_pbs_and_a_slurm_cluster(pool):
    project = pool
    project.configure_pool(with_slurm=True)
    project.write_sweep(
        {"grid": {"x": list(range(6)), "sleep": [3], **{f"v{i}": [value] for i, value in enumerate(HOSTILE)}}}
    )
    result = project.cli("run", "sweep.yaml", "--profile", "ssh")
    assert "6 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    where = set()
    for status in hostile_sweep_came_back(project, sweep_dir, 6, sleep=3).values():
        if status["backend"] == "pbs":
            assert status["host_alias"] == "tbpbs" and names.is_job_id(status["job_id"]), status
        elif status["backend"] == "slurm":
            assert status["host_alias"] == "tbslurm" and slurm.ELEMENT_ID.match(status["job_id"]), status
        where.add(status["backend"] if status["backend"] != "ssh" else status["job_id"])
    assert where == {"local", "pbs", "slurm"}, where
    # The PBS cluster's tasks went out as qsub arrays, its copy in its workdir; each element's log and id came back.
    assert list((sweep_dir / "scripts" / "job_scripts").glob("remote-pbs-*.sh"))
    assert (sweep_dir / ".hsm" / "remote-pbs-jobs").exists()
    assert list((sweep_dir / "logs" / "remote-pbs").glob("*.jobid"))
    log = (sweep_dir / "logs" / "sources" / "ssh.log").read_text()
    assert "host tbpbs: ok" in log and "PBS job" in log, log


def test_a_walltime_kill_on_the_pbs_cluster_is_recorded_as_timeout(pool):
    project = pool
    project.configure_pool(local_slots=0, pbs={"queue": project.queue, "mem": "200M", "walltime": "00:01:00"})
    project.write_sweep({"grid": {"x": [0], "sleep": [400]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh", expect=None)
    assert "1 failed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    status = read_status(sweep_dir / "tasks" / "task_001")
    assert status["status"] == "failed" and status["error_category"] == "timeout", status
    assert status["backend"] == "pbs" and status["host_alias"] == "tbpbs", status
    assert "walltime 00:01:00 exceeded" in status["error_summary"], status
    assert not project.completions()


def test_status_says_running_on_the_pbs_cluster_and_a_killed_run_is_adopted(pool):
    """While its elements run, `status` shows the PBS cluster's tasks running there (the local
    record written from qstat); kill -9 of the run, then `complete` waits for them, pulls their
    results back and runs each task once."""
    project = pool
    # The test bed's Slurm node has 2 CPUs: both elements run at once.
    project.configure_pool(max_parallel_jobs=2)
    project.write_sweep({"grid": {"x": list(range(4)), "sleep": [20]}})
    proc = start_run(project, "run", "sweep.yaml", "--profile", "ssh")
    try:
        sweep_dir = wait_for(lambda: project.sweep_dirs(), 120, "the sweep directory")[0]
        jobs = sweep_dir / ".hsm" / "remote-pbs-jobs"
        wait_for(jobs.exists, 300, "an array on the PBS cluster")

        def on_cluster() -> set[str]:
            return {name for line in jobs.read_text().splitlines() for name in json.loads(line)["tasks"]}

        wait_for(lambda: running_on_cluster(sweep_dir, "tbpbs") == on_cluster(), 300, "the PBS elements to run")
        shown = project.cli("status", sweep_dir.name, "--all-status").output
        assert re.search(r"tbpbs: \d+ running", shown), shown
    finally:
        kill_everything(project, proc)
    lock_released(sweep_dir)
    result = project.cli("complete", sweep_dir.name, "--profile", "ssh")
    assert "PBS job" in result.output and "on tbpbs" in result.output, result.output  # waited for
    assert "4 completed" in result.output, result.output
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 5)}
    for name in on_cluster():
        status = read_status(sweep_dir / "tasks" / name)
        assert status["backend"] == "pbs" and status["status"] == "completed", status


def test_cancel_stops_the_pbs_clusters_elements_and_records_why(pool):
    pool.configure_pool(max_parallel_jobs=2)  # its capacity: the 2 CPUs of the test bed's Slurm node
    sweep_dir, submitted = cancel_pool_run(pool, "tbpbs", "pbs")
    assert "host tbpbs: 2 slot(s)" in (sweep_dir / "logs" / "sources" / "ssh.log").read_text()
    log = (sweep_dir / "logs" / "sources" / "tbpbs.log").read_text()
    qdeleted = {word for line in log.splitlines() if "\tqdel " in line for word in line.split()}
    assert {entry["array_id"] for entry in submitted} <= qdeleted, log
