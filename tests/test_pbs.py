"""The PBS backend (executor hsm-pbs) through the real qsub/qstat/qdel of the test bed.

The test bed's PBS front end is Slurm's torque wrappers (slurm-wlm-torque): every finished job
shows state C with no exit status, so these tests exercise the marker-based success decision,
the timeout verdict from the walltime and the qdel path for real. A logging shim in front of
qsub/qstat/qdel counts the calls.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from background import wait_for
from conftest import COMPLETED_TASK_FILES, HOG_700M, on_testbed, read_status, run_one_task_retried_once, task_files
from procs import run_ancestry_sweep

pytestmark = pytest.mark.testbed

SHIM = """#!/bin/sh
printf '%s\\n' "$*" >> {log}/{name}.calls
exec {real} "$@"
"""


@pytest.fixture
def pbs_project(project, tb, monkeypatch, tmp_path_factory):
    on_testbed(project, tb, monkeypatch, "pbs", walltime="00:05:00", mem="500M")
    shims = tmp_path_factory.mktemp("pbs-shims")
    for name in ("qsub", "qstat", "qdel"):
        real = shutil.which(name)
        assert real, f"{name} not on PATH"
        (shims / name).write_text(SHIM.format(log=shims, name=name, real=real))
        (shims / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    project.shims = shims
    return project


def calls(project, name: str) -> list[list[str]]:
    path = project.shims / f"{name}.calls"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_sweep_runs_on_pbs_as_job_arrays_with_the_local_layout(pbs_project):
    project = pbs_project
    project.write_sweep({"grid": {"x": list(range(20))}})
    started = time.monotonic()
    result = project.cli("run", "sweep.yaml", "--profile", "pbs")
    took = time.monotonic() - started
    assert "20 completed" in result.output
    (sweep_dir,) = project.sweep_dirs()
    statuses = [read_status(sweep_dir / "tasks" / f"task_{i:03d}") for i in range(1, 21)]
    # The wrapper jobs are Slurm jobs underneath (SLURM_JOB_ID is set): still recorded as pbs.
    assert {s["backend"] for s in statuses} == {"pbs"}
    job_ids = [s["job_id"] for s in statuses]
    assert all(job_ids) and len(set(job_ids)) == 20
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 21)}
    assert task_files(sweep_dir / "tasks" / "task_001") == COMPLETED_TASK_FILES
    # 20 ready tasks with the same request: one or two qsub -t arrays (flavor torque), each with
    # its job script in scripts/job_scripts/; every element writes its task's logs in logs/pbs/.
    qsubs = calls(project, "qsub")
    sizes = [int(c[c.index("-t") + 1].removeprefix("1-")) for c in qsubs]
    assert 1 <= len(qsubs) <= 2 and sum(sizes) == 20, qsubs
    scripts = sorted(p.name for p in (sweep_dir / "scripts" / "job_scripts").iterdir())
    assert len(scripts) == len(qsubs) and scripts[0] == f"{sweep_dir.name}-task_001+{sizes[0] - 1}.pbs", scripts
    text = (sweep_dir / "scripts" / "job_scripts" / scripts[0]).read_text()
    assert "#PBS -l walltime=00:05:00" in text and "#PBS -l mem=500mb" in text and "x=0" not in text
    logs = sweep_dir / "logs" / "pbs"
    for i in range(1, 21):
        base = f"{logs}/{sweep_dir.name}-task_{i:03d}.a1"
        assert Path(f"{base}.out").exists() and Path(f"{base}.err").exists()
        # The element's own job id, as qstat knows it and status.yaml records it.
        assert Path(f"{base}.jobid").read_text().strip() == str(job_ids[i - 1])
    # Status: one qstat call per poll cycle for all active jobs, not one per job.
    qstats = calls(project, "qstat")
    assert max(len([a for a in c if a.isdigit()]) for c in qstats) > 1, qstats
    assert len(qstats) <= took / 5 + 5, (len(qstats), took)


def status_of(sweep_dir: Path, name: str) -> dict:
    try:
        return read_status(sweep_dir / "tasks" / name)
    except (FileNotFoundError, AttributeError, TypeError):
        return {}


def test_array_elements_run_the_task_runner_alone_after_the_set_up(pbs_project):
    sweep_dir = run_ancestry_sweep(pbs_project, "pbs")
    for i in (1, 2, 3):
        assert read_status(sweep_dir / "tasks" / f"task_00{i}")["backend"] == "pbs"
    scripts = [path.read_text() for path in (sweep_dir / "scripts" / "job_scripts").glob("*.pbs")]
    assert scripts and all("hsm_snake.runner" in text and "snakemake" not in text.lower() for text in scripts)


def test_walltime_kill_is_timeout_qdel_is_cancelled_and_complete_reruns_only_them(pbs_project, background):
    """task_001 holds (the echo script waits for a release file) past its 1-minute walltime:
    Slurm kills it, recorded timeout. `complete` reruns only it, with the walltime doubled by the
    timeout; `hsm-snake cancel` qdel's that job: recorded cancelled. After the release, `complete`
    runs it a third time; task_002 ran once."""
    project = pbs_project
    project.write_project({"pbs": {"walltime": "00:01:00"}})
    project.write_sweep({"paired": [{"cases": {"hold": [1, 0], "x": [1, 2]}}]})
    project.cli("run", "sweep.yaml", "--profile", "pbs", expect=1)
    (sweep_dir,) = project.sweep_dirs()
    timed_out = status_of(sweep_dir, "task_001")
    assert timed_out["status"] == "failed" and timed_out["error_category"] == "timeout", timed_out
    assert timed_out["backend"] == "pbs" and timed_out["job_id"] in timed_out["error_summary"]
    assert "walltime 00:01:00 exceeded" in timed_out["error_summary"], timed_out
    assert status_of(sweep_dir, "task_002")["status"] == "completed"

    proc = background("complete", sweep_dir.name, "--profile", "pbs")
    wait_for(
        # The script itself started (its run log line), not only the runner: a cancel between the
        # two would leave the script's second start out of the count below.
        lambda: (
            status_of(sweep_dir, "task_001").get("attempt") == 2
            and status_of(sweep_dir, "task_001").get("status") == "running"
            and project.runs().count("task_001 start") == 2
        ),
        120,
        "task_001's script running again",
    )
    script = (sweep_dir / "scripts" / "job_scripts" / f"{sweep_dir.name}-task_001.pbs").read_text()
    assert "#PBS -l walltime=00:02:00" in script  # one timeout before: twice the walltime
    result = project.cli("cancel", sweep_dir.name)
    assert "stopped the run" in result.output
    proc.communicate(timeout=120)
    cancelled = status_of(sweep_dir, "task_001")
    assert cancelled["status"] == "cancelled" and cancelled["error_category"] == "cancelled", cancelled
    assert cancelled["backend"] == "pbs" and cancelled["job_id"] != timed_out["job_id"]
    qdels = calls(project, "qdel")
    assert qdels and cancelled["job_id"] in qdels[0], qdels  # one qdel with the active jobs' ids
    assert status_of(sweep_dir, "task_002")["status"] == "completed"

    project.release()
    project.cli("complete", sweep_dir.name, "--profile", "pbs")
    assert project.completions() == {"task_001": 1, "task_002": 1}
    runs = project.runs()
    assert runs.count("task_001 start") == 3 and runs.count("task_002 start") == 1, runs
    final = status_of(sweep_dir, "task_001")
    assert final["status"] == "completed" and final["attempt"] == 3
    history = [read_status(sweep_dir / "tasks" / "task_001" / "attempts" / str(n))["error_category"] for n in (1, 2)]
    assert history == ["timeout", "cancelled"]


def element_job_id(sweep_dir: Path, task: str, attempt: int = 1) -> str:
    """The job id an array element wrote next to its logs (its own, as qstat knows it)."""
    return (sweep_dir / "logs" / "pbs" / f"{sweep_dir.name}-{task}.a{attempt}.jobid").read_text().strip()


def test_a_failing_array_element_is_recorded_with_its_cause_and_job_id(pbs_project):
    """Flavor pro: the array goes out with qsub -J (the wrappers take -J and -t alike)."""
    project = pbs_project
    project.write_project(
        {"pbs": {"flavor": "pro", "queue": os.environ["HSM_TB_SLURM_PARTITION"], "walltime": "00:05:00", "mem": "500M"}}
    )
    project.write_sweep({"paired": [{"cases": {"fail": [0, 5, 0], "x": [1, 2, 3]}}]})
    project.cli("run", "sweep.yaml", "--profile", "pbs", expect=1)
    (sweep_dir,) = project.sweep_dirs()
    (qsub,) = calls(project, "qsub")  # the three tasks: one array
    assert qsub[qsub.index("-J") + 1] == "1-3", qsub
    failed = status_of(sweep_dir, "task_002")
    assert failed["status"] == "failed" and failed["exit_code"] == 5 and failed["error_category"], failed
    assert failed["backend"] == "pbs" and failed["job_id"] == element_job_id(sweep_dir, "task_002")
    assert project.completions() == {"task_001": 1, "task_003": 1}
    ids = {status_of(sweep_dir, f"task_00{i}")["job_id"] for i in (1, 2, 3)}
    assert len(ids) == 3


def test_cancel_of_a_running_array_qdels_it_and_records_the_started_elements(pbs_project, background):
    """Three held tasks in one array on a 2-CPU node: two run, one waits in the queue. `hsm-snake
    cancel` stops the run, whose executor qdel's the array: nothing of it is left in the queue."""
    project = pbs_project
    project.write_sweep({"grid": {"hold": [1, 2, 3]}})
    proc = background("run", "sweep.yaml", "--profile", "pbs")
    sweep_dir = wait_for(lambda: (project.sweep_dirs() or [None])[0], 60, "the sweep directory")
    wait_for(
        lambda: sum(status_of(sweep_dir, f"task_00{i}").get("status") == "running" for i in (1, 2, 3)) >= 2,
        300,
        "two elements running",
    )
    result = project.cli("cancel", sweep_dir.name)
    assert "stopped the run" in result.output
    proc.communicate(timeout=120)
    (qsub,) = calls(project, "qsub")
    assert qsub[qsub.index("-t") + 1] == "1-3"
    started = [f"task_00{i}" for i in (1, 2, 3) if status_of(sweep_dir, f"task_00{i}")]
    assert len(started) >= 2
    for task in started:
        record = status_of(sweep_dir, task)
        assert (record["status"], record["error_category"]) == ("cancelled", "cancelled"), (task, record)
        assert record["job_id"] == element_job_id(sweep_dir, task)
    assert calls(project, "qdel"), "no qdel"
    # Nothing of the array is left waiting or running (a cancelled element may still be COMPLETING:
    # Slurm cleaning up after it).
    array_name = f"{sweep_dir.name}-task_001+2"
    squeue = subprocess.run(
        ["squeue", "-h", "-n", array_name, "-t", "PENDING,CONFIGURING,RUNNING,SUSPENDED", "-o", "%i %T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert not squeue.strip(), squeue


def test_without_a_memory_request_out_of_memory_grows_the_jobs_memory_limit(project, tb, monkeypatch):
    """No ``pbs.mem``: the job gets the cluster's default (500M on the test bed, enforced by the
    job's cgroup). The runner records that limit and the out-of-memory kill; the retry asks for
    twice the limit."""
    if tb.facts["slurm"].get("mem_enforcement") != "cgroup":
        pytest.skip("the test cluster does not enforce memory with cgroups here")
    on_testbed(project, tb, monkeypatch, "pbs", walltime="00:05:00")
    project.write_project({"paths": {"train_script": "hog.py"}})
    (project.root / "hog.py").write_text(HOG_700M)
    first, status = run_one_task_retried_once(project, "pbs")
    assert first["error_category"] == "out_of_memory" and first["mem_limit_mb"] == 500, first
    assert "500 MB" in first["error_summary"]
    assert status["status"] == "completed" and status["attempt"] == 2 and status["mem_limit_mb"] == 1000
    # The task's job script, written again for the retry.
    (sweep_dir,) = project.sweep_dirs()
    (script,) = (sweep_dir / "scripts" / "job_scripts").glob("*task_001*.pbs")
    assert "#PBS -l mem=1000mb" in script.read_text()
