"""The Slurm backend on the real single-node test cluster (tests/testbed/start.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from background import started, wait_for
from conftest import COMPLETED_TASK_FILES, HOG_700M, on_testbed, read_status, run_one_task_retried_once, task_files
from procs import ANCESTRY_SCRIPT, assert_runner_alone, run_ancestry_sweep

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def slurm_project(project, tb, monkeypatch):
    return on_testbed(project, tb, monkeypatch, "slurm", walltime="00:05:00", mem="1000M")


def array_parents(job_ids: list[str]) -> set[str]:
    return {job.split("_")[0] for job in job_ids}


def test_sweep_runs_on_slurm_as_job_arrays_with_the_local_layout(slurm_project):
    project = slurm_project
    project.write_sweep({"grid": {"x": list(range(20))}})
    result = project.cli("run", "sweep.yaml", "--profile", "slurm")
    assert "20 completed" in result.output
    (sweep_dir,) = project.sweep_dirs()
    statuses = [read_status(sweep_dir / "tasks" / f"task_{i:03d}") for i in range(1, 21)]
    assert {s["backend"] for s in statuses} == {"slurm"}
    job_ids = [s["job_id"] for s in statuses]
    assert all(job_ids) and len(set(job_ids)) == 20
    # 20 ready tasks of one rule: a few sbatch --array calls, not 20 sbatch calls.
    assert len(array_parents(job_ids)) <= 3, job_ids
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 21)}
    assert task_files(sweep_dir / "tasks" / "task_001") == COMPLETED_TASK_FILES


def test_array_elements_and_single_jobs_run_the_task_runner_alone_after_the_set_up(slurm_project):
    project = slurm_project
    sweep_dir = run_ancestry_sweep(project, "slurm")
    # What the jobs executed: the job scripts (fed to sbatch on stdin, kept) start no Snakemake either.
    calls = [path.read_text() for path in (sweep_dir / "scripts" / "job_scripts").glob("sbatch-*.sh")]
    scripts = [text.split("<<'HSM_SBATCH_STDIN'\n", 1)[1] for text in calls]
    assert scripts and all("hsm_snake.runner" in text and "snakemake" not in text.lower() for text in scripts), calls
    # A lone task goes out as a single job, the same way.
    project.write_sweep({"grid": {"x": [4]}}, "one.yaml")
    project.cli("run", "one.yaml", "--profile", "slurm", "--sweep-id", "one")
    lone = project.root / "sweeps" / "outputs" / "one" / "tasks" / "task_001"
    assert_runner_alone(lone)
    assert "_" not in read_status(lone)["job_id"], read_status(lone)


def test_plain_snakemake_with_the_slurm_profile_runs_a_sweep(slurm_project):
    project = slurm_project
    (project.root / "ancestry.py").write_text(ANCESTRY_SCRIPT)
    project.write_project({"paths": {"train_script": "ancestry.py"}})
    from hsm_snake import sweeps
    from hsm_snake.config.project import load_project
    from hsm_snake.config.sweep_file import load_sweep

    sweep = project.write_sweep({"grid": {"x": [1, 2, 3]}})
    index = sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["t"], "plain")
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm"]
        + ["--config", f"sweep_dir={index.paths.root}", "backend=slurm"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for i in (1, 2, 3):
        task = index.paths.root / "tasks" / f"task_00{i}"
        assert read_status(task)["status"] == "completed" and read_status(task)["backend"] == "slurm"
        assert_runner_alone(task)
    assert "3 completed" in project.cli("status", "plain").output


def test_started_locally_completed_on_slurm_with_identical_task_folders(slurm_project):
    project = slurm_project
    project.write_sweep({"grid": {"x": [1, 2, 3, 4]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "mixed", "--dry-run")
    from hsm_snake import sweeps
    from hsm_snake.config.project import load_project
    from hsm_snake.config.sweep_file import load_sweep

    sweeps.create(load_sweep(project.root / "sweep.yaml"), load_project(None, cwd=project.root), ["t"], "mixed")
    project.cli("complete", "mixed", "--tasks", "1-2")  # local
    project.cli("complete", "mixed", "--profile", "slurm")  # the rest on Slurm
    sweep_dir = project.root / "sweeps" / "outputs" / "mixed"
    backends = [read_status(sweep_dir / "tasks" / f"task_00{i}")["backend"] for i in range(1, 5)]
    assert backends == ["local", "local", "slurm", "slurm"]
    assert task_files(sweep_dir / "tasks" / "task_001") == task_files(sweep_dir / "tasks" / "task_004")
    assert project.completions() == {f"task_00{i}": 1 for i in range(1, 5)}
    assert json.loads(project.cli("status", "mixed", "--json").output)["counts"] == {"completed": 4}


def test_failed_slurm_task_keeps_its_cause_and_complete_reruns_only_it(slurm_project):
    project = slurm_project
    project.write_sweep({"grid": {"fail": [0, 5]}})
    project.cli("run", "sweep.yaml", "--profile", "slurm", expect=1)
    (sweep_dir,) = project.sweep_dirs()
    failed = read_status(sweep_dir / "tasks" / "task_002")
    assert failed["status"] == "failed" and failed["exit_code"] == 5 and failed["backend"] == "slurm"
    assert failed["job_id"]
    env = dict(os.environ)
    env["FORCE_OK"] = "1"
    project.write_project({"task": {"env": {"FORCE_OK": "1"}}})
    project.cli("complete", sweep_dir.name, "--profile", "slurm")
    assert project.completions() == {"task_001": 1, "task_002": 1}
    assert subprocess.run(["true"]).returncode == 0


HOG = """
import os, sys, time
if sys.argv[1] == "hog=1":
    block = b"x" * (3 << 30)   # touched memory, far over the job's request
    time.sleep(5)
print("fine")
"""


def memory_hog_project(project, tb, script: str, mem: str | None = "1000M"):
    """The project running `script` as hog.py, on a test cluster that enforces memory; each task
    asks for `mem` (None: the cluster's default, 500M per CPU on the test bed)."""
    if tb.facts["slurm"].get("mem_enforcement") != "cgroup":
        pytest.skip("the test cluster does not enforce memory with cgroups here")
    (project.root / "hog.py").write_text(script)
    slurm = {"partition": os.environ.get("HSM_TB_SLURM_PARTITION", "debug"), "walltime": "00:05:00"}
    project.write_project({"paths": {"train_script": "hog.py"}, "slurm": {**slurm, **({"mem": mem} if mem else {})}})
    return project


def test_task_over_its_memory_is_recorded_out_of_memory_from_slurm(slurm_project, tb):
    project = memory_hog_project(slurm_project, tb, HOG)
    project.write_sweep({"grid": {"hog": [0, 1]}})
    project.cli("run", "sweep.yaml", "--profile", "slurm", expect=1)
    (sweep_dir,) = project.sweep_dirs()
    hog = read_status(sweep_dir / "tasks" / "task_002")
    assert hog["status"] == "failed"
    assert hog["error_category"] == "out_of_memory", hog
    assert "OUT_OF_MEMORY" in hog["error_summary"] and hog["job_id"] in hog["error_summary"]
    assert read_status(sweep_dir / "tasks" / "task_001")["status"] == "completed"


def start_cancel_sweep(project, background):
    """The sweep of the cancel tests, run in the background: tasks 3-4 hold on Slurm until released;
    the run and its sweep directory once they run. Tasks 1-2 may not have run yet: the array's
    element order is Snakemake's and the test node has 2 CPUs."""
    project.write_sweep({"grid": {"hold": [0, 1], "x": [1, 2]}})
    proc = background("run", "sweep.yaml", "--profile", "slurm")
    wait_for(lambda: {"task_003", "task_004"} <= started(project), 180, "the held tasks to start on Slurm")
    (sweep_dir,) = project.sweep_dirs()
    return proc, sweep_dir


def test_cancel_stops_slurm_jobs_and_complete_reruns_only_them(slurm_project, background):
    project = slurm_project
    proc, sweep_dir = start_cancel_sweep(project, background)
    result = project.cli("cancel", sweep_dir.name)
    assert "stopped the run" in result.output
    proc.communicate(timeout=120)
    for name in ("task_003", "task_004"):
        status = read_status(sweep_dir / "tasks" / name)
        assert status["status"] == "cancelled", status
    project.release()
    project.cli("complete", sweep_dir.name, "--profile", "slurm")
    assert project.completions() == {f"task_00{i}": 1 for i in range(1, 5)}


HOG_ONCE = """
import time
block = b"x" * (1500 << 20)   # 1.5 GB touched: over 1000M, under 2000M
time.sleep(2)
print("fine")
"""


def test_out_of_memory_is_retried_with_twice_the_memory(slurm_project, tb):
    project = memory_hog_project(slurm_project, tb, HOG_ONCE)
    (project.root / "hsm.yaml").write_text((project.root / "hsm.yaml").read_text() + "retries: 1\n")
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--profile", "slurm")
    (sweep_dir,) = project.sweep_dirs()
    status = read_status(sweep_dir / "tasks" / "task_001")
    assert status["status"] == "completed" and status["attempt"] == 2
    first = read_status(sweep_dir / "tasks" / "task_001" / "attempts" / "1")
    assert first["error_category"] == "out_of_memory"
    assert requested_memory([status["job_id"]]) == ["2000M"]


def test_without_a_memory_request_out_of_memory_grows_the_clusters_default(slurm_project, tb):
    project = memory_hog_project(slurm_project, tb, HOG_700M, mem=None)
    first, status = run_one_task_retried_once(project, "slurm")
    assert first["error_category"] == "out_of_memory" and first["mem_request_mb"] == 500, first
    assert status["status"] == "completed" and status["attempt"] == 2
    assert requested_memory([first["job_id"], status["job_id"]]) == ["500M", "1000M"]


def requested_memory(job_ids: list[str]) -> list[str]:
    """sacct's ReqMem of the jobs, once slurmdbd has their whole record (a loaded one first
    answers a placeholder such as ``16?`` for a job that just ended)."""
    for _ in range(60):
        answer = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-o", "ReqMem", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if len(answer) == len(job_ids) and all(value[-1:] in "KMGT" and value[:-1].isdigit() for value in answer):
            return answer
        time.sleep(2)
    raise AssertionError(f"sacct's ReqMem of {job_ids} never settled: {answer}")
