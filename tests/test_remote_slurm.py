"""A Slurm cluster reached over SSH (``backend: slurm`` remote, ``run --remote ALIAS``) against the
test bed: its loopback sshd hsmtb-lo is the login node of the test bed's Slurm on this machine
(sbatch/squeue/sacct/scancel on its PATH, /etc/slurm/slurm.conf pointing at the test cluster).
The project lives in a local folder of its own; its copy on the "cluster" in another folder,
reached only through ssh and rsync.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from background import kill_everything, start_run, started, wait_for
from conftest import ARGV_APP, TESTBED_QUEUE_KEY, Project, read_status, remote_name
from test_ssh import HOSTILE

from hsm_snake.executors.remote_cluster import slurm as array

pytestmark = pytest.mark.testbed

# Fails (exit 3, a message on stderr) when fail=1, else prints its metric.
SOMETIMES_FAILS = """
import json, sys
args = dict(a.partition("=")[::2] for a in sys.argv[1:])
if args.get("fail") == "1":
    print("giving up on purpose", file=sys.stderr)
    sys.exit(3)
print(json.dumps({"x": int(args["x"])}))
"""


def cluster_project(tb, tmp_path, monkeypatch, alias: str, scheduler: str, requests: dict):
    """Yields a project in a folder with spaces and quotes, whose hsm.yaml names hsmtb-lo as the
    cluster remote ``alias`` (``backend: scheduler``, its block ``requests`` plus the test bed's
    queue); ``configure`` writes it. Its copies on the cluster are removed afterwards."""
    tb.need(scheduler)
    tb.need("hsmtb-lo")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    root = tmp_path / "lab 'proj' é"
    root.mkdir()
    project = Project(root, monkeypatch)
    remote_base = Path(tb.facts["ssh"]["hosts"]["hsmtb-lo"]["project_dir"]) / remote_name(tmp_path)
    queue = tb.facts["env"].get("HSM_TB_SLURM_PARTITION", "debug")
    requests = {TESTBED_QUEUE_KEY[scheduler]: queue, **requests}

    def configure(script: str, env: dict | None = None, pool: dict | None = None, **remote):
        """``pool``: more of ``distributed`` (local_slots, strategy, other remotes next to the cluster)."""
        pool = dict(pool or {})
        project.write_project(
            {
                "paths": {"python_interpreter": sys.executable, "train_script": script},
                "task": {"arg_style": "raw", "output_dir_arg": None, "env": env or {}},
                "distributed": {
                    **pool,
                    "remotes": {
                        **pool.pop("remotes", {}),
                        alias: {
                            "backend": scheduler,
                            "host": "hsmtb-lo",
                            "project_dir": f"{remote_base}/proj dir",
                            "workdir": f"{remote_base}/scratch runs",
                            "python_path": "python3",
                            scheduler: requests,
                            **remote,
                        },
                    },
                },
            }
        )

    project.configure = configure
    project.remote_base = remote_base
    yield project
    shutil.rmtree(remote_base, ignore_errors=True)  # the cluster's copies (the login node is this machine)


@pytest.fixture
def cluster(tb, tmp_path, monkeypatch):
    yield from cluster_project(tb, tmp_path, monkeypatch, "tbslurm", "slurm", {"mem": "200M", "walltime": "00:05:00"})


def run_hostile_values(project, alias: str, backend: str):
    """A task whose parameters are HOSTILE runs on the cluster remote ``alias`` and comes back:
    (its sweep directory, its status)."""
    (project.root / "app.py").write_text(ARGV_APP)
    # Kept to be looked at (a completed sweep's copy leaves workdir by default).
    project.configure("app.py", keep_remote_on_success=True)
    project.write_sweep({"grid": {f"v{i}": [value] for i, value in enumerate(HOSTILE)}})
    result = project.cli("run", "sweep.yaml", "--remote", alias)
    assert "1 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    task = sweep_dir / "tasks" / "task_001"
    seen = json.loads((task / "results" / "seen.json").read_text(encoding="utf-8"))
    assert seen == [f"v{i}={value}" for i, value in enumerate(HOSTILE)]
    status = read_status(task)
    assert status["backend"] == backend and status["status"] == "completed", status
    assert status["host_alias"] == alias
    assert (task / ".completed").exists()
    # The cluster copy is in workdir, the project in project_dir; nothing of the sweep went elsewhere.
    assert (project.remote_base / "scratch runs" / sweep_dir.name / "tasks" / "task_001" / "status.yaml").exists()
    assert (project.remote_base / "proj dir" / "app.py").exists()
    return sweep_dir, status


def test_hostile_values_run_on_the_cluster_and_come_back(cluster):
    sweep_dir, status = run_hostile_values(cluster, "tbslurm", "slurm")
    assert array.ELEMENT_ID.match(status["job_id"]), status
    scripts = list((sweep_dir / "scripts" / "job_scripts").glob("remote-slurm-*.sh"))
    assert len(scripts) == 1 and "sbatch" in scripts[0].read_text()


def run_one_failing_of_three(project, alias: str, backend: str):
    """Three tasks in one batch, the second fails: (sweep directory, their statuses)."""
    (project.root / "fails.py").write_text(SOMETIMES_FAILS)
    project.configure("fails.py")
    # One task fails: x=2 with fail=1.
    project.write_sweep({"paired": [{"p": {"x": [1, 2, 3], "fail": [0, 1, 0]}}]})
    result = project.cli("run", "sweep.yaml", "--remote", alias, expect=1)
    assert "2 completed" in result.output and "1 failed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    statuses = {name: read_status(sweep_dir / "tasks" / name) for name in ("task_001", "task_002", "task_003")}
    failed = statuses["task_002"]
    assert failed["status"] == "failed" and failed["backend"] == backend
    assert failed["error_category"] == "nonzero_exit" and failed["exit_code"] == 3, failed
    assert "giving up on purpose" in (sweep_dir / "tasks" / "task_002" / "stderr.log").read_text()
    assert not (sweep_dir / "tasks" / "task_002" / ".completed").exists()
    assert json.loads((sweep_dir / "tasks" / "task_003" / "metrics.json").read_text()) == {"x": 3}
    source_log = (sweep_dir / "logs" / "sources" / f"{alias}.log").read_text()
    assert "array " in source_log and "task_002" in source_log
    return sweep_dir, statuses


def test_an_array_per_batch_a_failure_keeps_its_logs_and_cause(cluster):
    _, statuses = run_one_failing_of_three(cluster, "tbslurm", "slurm")
    arrays = {status["job_id"].split("_")[0] for status in statuses.values()}
    assert len(arrays) == 1, statuses  # the three tasks went out as one sbatch --array


def test_an_unknown_remote_is_refused_with_the_known_ones(cluster):
    project = cluster
    (project.root / "fails.py").write_text(SOMETIMES_FAILS)
    project.configure("fails.py")
    project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("run", "sweep.yaml", "--remote", "tbslrum", expect=2)
    assert "did you mean 'tbslurm'" in result.output, result.output


# 300 MB touched: over the first request (200M), under the doubled one (400M).
HOG_ONCE = """
import time
block = b"x" * (300 << 20)
time.sleep(2)
print("fine")
"""


def test_out_of_memory_on_the_cluster_is_retried_with_twice_the_memory(cluster, tb):
    if tb.facts["slurm"].get("mem_enforcement") != "cgroup":
        pytest.skip("the test cluster does not enforce memory with cgroups here")
    project = cluster
    (project.root / "hog.py").write_text(HOG_ONCE)
    project.configure("hog.py")
    (project.root / "hsm.yaml").write_text((project.root / "hsm.yaml").read_text() + "retries: 1\n")
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--remote", "tbslurm")
    (sweep_dir,) = project.sweep_dirs()
    task = sweep_dir / "tasks" / "task_001"
    status = read_status(task)
    assert status["status"] == "completed" and status["attempt"] == 2, status
    first = read_status(task / "attempts" / "1")
    assert first["error_category"] == "out_of_memory" and "OUT_OF_MEMORY" in first["error_summary"], first
    assert first["job_id"] != status["job_id"]
    script = next(
        path.read_text()
        for path in (sweep_dir / "scripts" / "job_scripts").glob("remote-slurm-*.sh")
        if status["job_id"].split("_")[0] in path.read_text()
    )
    assert "--mem=400M" in script, script


SLOW_ONCE = """
import sys, time
from pathlib import Path
# The first attempt outlives its 1-minute walltime; the retry, given twice the time, finishes.
first = Path(sys.argv[0]).with_name("slow-once-ran")
if not first.exists():
    first.write_text("")
    time.sleep(400)
print("fine")
"""


def walltime_kill_retried_with_more_time(project, alias: str, scheduler: str, grown: str) -> None:
    """A task killed at its walltime on the cluster remote ``alias`` is recorded ``timeout`` and
    retried with twice the time in the same run (``grown``: the retry's request in its job script)."""
    (project.root / "slow.py").write_text(SLOW_ONCE)
    project.configure("slow.py", **{scheduler: {"mem": "200M", "walltime": "00:01:00"}})
    (project.root / "hsm.yaml").write_text((project.root / "hsm.yaml").read_text() + "retries: 1\n")
    project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("run", "sweep.yaml", "--remote", alias)
    assert "1 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    task = sweep_dir / "tasks" / "task_001"
    status, first = read_status(task), read_status(task / "attempts" / "1")
    assert status["status"] == "completed" and status["attempt"] == 2 and status["backend"] == scheduler, status
    assert first["error_category"] == "timeout" and first["job_id"] != status["job_id"], first
    scripts = [path.read_text() for path in (sweep_dir / "scripts" / "job_scripts").glob(f"remote-{scheduler}-*.sh")]
    assert len(scripts) == 2 and sum(grown in script for script in scripts) == 1, scripts


def test_a_walltime_kill_on_the_cluster_is_retried_with_twice_the_time(cluster):
    walltime_kill_retried_with_more_time(cluster, "tbslurm", "slurm", "--time=2")


def cancel_held_then_complete(project, alias: str, backend: str) -> dict:
    """`cancel` while two held tasks run on the cluster: both are recorded cancelled there; then
    `complete` runs each task once in all. The cancelled tasks' statuses."""
    # The script finds the run log through the task's environment (ssh passes none).
    project.configure("echo.py", env={"RUN_LOG": str(project.run_log)})
    project.write_sweep({"grid": {"hold": [0, 1], "x": [1, 2]}})
    proc = start_run(project, "run", "sweep.yaml", "--remote", alias)
    try:
        wait_for(lambda: {"task_003", "task_004"} <= started(project), 300, "the held tasks to start on the cluster")
        (sweep_dir,) = project.sweep_dirs()
        result = project.cli("cancel", sweep_dir.name)
        assert "stopped the run" in result.output, result.output
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            kill_everything(project, proc)
    statuses = {name: read_status(sweep_dir / "tasks" / name) for name in ("task_003", "task_004")}
    for status in statuses.values():
        assert status["status"] == "cancelled" and status["backend"] == backend, status
    project.release()
    project.cli("complete", sweep_dir.name, "--remote", alias)
    assert project.completions() == {f"task_00{i}": 1 for i in range(1, 5)}
    return statuses


def test_cancel_stops_the_cluster_jobs_and_complete_reruns_only_them(cluster):
    statuses = cancel_held_then_complete(cluster, "tbslurm", "slurm")
    assert all(array.ELEMENT_ID.match(status["job_id"]) for status in statuses.values()), statuses
    cancelled_array = statuses["task_003"]["job_id"].split("_")[0]
    assert not any(
        state in array.ACTIVE_STATES
        for job, state in array.parse_squeue(
            subprocess.run(array.SQUEUE_ARGV, capture_output=True, text=True, check=True).stdout
        ).items()
        if job.split("_")[0] == cancelled_array
    )


def test_remote_test_checks_the_slurm_commands_of_a_slurm_remote(cluster):
    project = cluster
    project.configure("app.py")
    result = project.cli("remote", "test", "tbslurm")
    assert "slurm" in result.output and "sbatch, squeue, sacct, scancel" in result.output, result.output
    assert "tbslurm is ready" in result.output
    assert "backend slurm" in project.cli("remote", "list").output


def test_a_sweep_started_here_is_completed_on_the_cluster(cluster):
    project = cluster
    (project.root / "fails.py").write_text(SOMETIMES_FAILS)
    project.configure("fails.py")
    project.write_sweep({"grid": {"x": [1, 2, 3, 4]}})
    project.cli("run", "sweep.yaml", "--max-tasks", "2")
    (sweep_dir,) = project.sweep_dirs()
    project.cli("complete", sweep_dir.name, "--remote", "tbslurm")
    statuses = {i: read_status(sweep_dir / "tasks" / f"task_00{i}") for i in range(1, 5)}
    assert [statuses[i]["backend"] for i in range(1, 5)] == ["local", "local", "slurm", "slurm"], statuses
    assert all(status["status"] == "completed" and status["attempt"] == 1 for status in statuses.values())
    csv = project.cli("results", sweep_dir.name, "--format", "csv").output
    rows = [line.split(",") for line in csv.splitlines()]
    header = rows[0]
    assert sorted(row[header.index("x")] for row in rows[1:]) == ["1", "2", "3", "4"], csv
    assert "4 completed" in project.cli("status", sweep_dir.name).output


def test_a_sweep_copy_purged_from_the_cluster_fails_its_ended_tasks_and_complete_reruns_them(cluster):
    """A scratch purge (the sweep's copy on the cluster removed while its jobs wait in the queue)
    must not leave the run polling for folders that will never come back."""
    project = cluster
    project.configure("echo.py", env={"RUN_LOG": str(project.run_log)}, slurm={"extra_directives": ["--begin=now+15"]})
    project.write_sweep({"grid": {"x": [1, 2]}})
    proc = start_run(project, "run", "sweep.yaml", "--remote", "tbslurm")
    try:
        wait_for(lambda: project.sweep_dirs(), 60, "the sweep to be created")
        (sweep_dir,) = project.sweep_dirs()
        source_log = sweep_dir / "logs" / "sources" / "tbslurm.log"
        wait_for(lambda: source_log.exists() and "array " in source_log.read_text(), 120, "the array's submission")
        shutil.rmtree(project.remote_base / "scratch runs" / sweep_dir.name)
        proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            kill_everything(project, proc)
    assert proc.returncode == 1
    for name in ("task_001", "task_002"):
        status = read_status(sweep_dir / "tasks" / name)
        assert status["status"] == "failed" and status["error_category"] == "host_lost", status
        assert "is gone" in status["error_summary"] and array.ELEMENT_ID.match(status["job_id"]), status
    assert "is gone" in source_log.read_text()
    project.configure("echo.py", env={"RUN_LOG": str(project.run_log)})
    project.cli("complete", sweep_dir.name, "--remote", "tbslurm")
    assert all(read_status(sweep_dir / "tasks" / name)["status"] == "completed" for name in ("task_001", "task_002"))
