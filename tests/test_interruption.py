"""kill -9 mid-run, a second concurrent run, Ctrl-C: nothing lost, nothing run twice."""

from __future__ import annotations

import json
import os
import signal

import pytest
from background import engine_pid, held_tasks_started, kill_9_once, start_held_run, started, wait_for
from conftest import read_status

from hsm_snake.engine.lock import lock_holder
from hsm_snake.layout.paths import SweepPaths


def test_kill_9_everything_then_complete_runs_each_task_exactly_once(project, background):
    # hold=1 tasks wait until released, so the kill lands while two of them surely run.
    # Which tasks Snakemake starts first is its choice; the test does not depend on it.
    sweep = project.write_sweep({"grid": {"hold": [0, 1], "x": [1, 2, 3]}})
    held = {"task_004", "task_005", "task_006"}
    proc = background("run", str(sweep))
    sweep_dir = kill_9_once(project, proc, lambda: len(started(project) & held) == 2, "two held tasks to start")

    status = json.loads(project.cli("status", sweep_dir.name, "--json").output)
    killed = sorted(t["task"] for t in status["tasks"] if t["state"] == "stale")
    assert len(killed) == 2 and set(killed) <= held, status["counts"]
    assert status["counts"].get("completed", 0) == len(project.completions())
    assert status["running_by"] is None

    project.release()
    result = project.cli("complete", sweep_dir.name)
    assert "6 completed" in result.output
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 7)}
    starts = [line.split()[0] for line in project.runs() if line.endswith("start")]
    assert sorted(starts) == sorted([f"task_{i:03d}" for i in range(1, 7)] + killed)
    assert read_status(sweep_dir / "tasks" / killed[0])["attempt"] == 2


def test_second_run_on_same_sweep_is_refused_naming_the_holder(project, background):
    sweep = project.write_sweep({"grid": {"hold": [1], "x": [1]}})
    proc = background("run", str(sweep))
    try:
        wait_for(held_tasks_started(project, 1), what="the held task to start")
        (sweep_dir,) = project.sweep_dirs()
        refused = project.cli("complete", sweep_dir.name, expect=2)
        assert "already being run by pid" in refused.output
        assert f"pid {proc.pid}" in refused.output
        assert "hsm-snake cancel" in refused.output
    finally:
        project.release()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert project.completions() == {"task_001": 1}


def test_ctrl_c_stops_tasks_marks_them_cancelled_and_complete_resumes(project, background):
    proc, sweep_dir = start_held_run(project, background)
    engine = engine_pid(sweep_dir)
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "hsm-snake complete" in out
    with pytest.raises(ProcessLookupError):
        os.killpg(engine, 0)
    for task in ("task_001", "task_002"):
        status = read_status(sweep_dir / "tasks" / task)
        assert status["status"] == "cancelled" and status["error_category"] == "cancelled"
    project.release()
    project.cli("complete", sweep_dir.name)
    assert project.completions() == {"task_001": 1, "task_002": 1}


def test_sigterm_stops_a_run_started_in_the_background_with_sigint_ignored(project, background):
    # The engine is stopped with SIGINT; a run started by `nohup` or `&` in a script inherits
    # SIGINT ignored, and its engine must stop all the same.
    proc, sweep_dir = start_held_run(project, background, sigint_ignored=True)
    engine = engine_pid(sweep_dir)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert "hsm-snake complete" in out, out
    with pytest.raises(ProcessLookupError):
        os.killpg(engine, 0)
    for task in ("task_001", "task_002"):
        assert read_status(sweep_dir / "tasks" / task)["status"] == "cancelled"
    project.release()
    project.cli("complete", sweep_dir.name)
    assert project.completions() == {"task_001": 1, "task_002": 1}


def test_cancel_stops_a_running_sweep_and_complete_resumes(project, background):
    proc, sweep_dir = start_held_run(project, background)
    result = project.cli("cancel", sweep_dir.name)
    assert "stopped the run" in result.output and "2 cancelled" in result.output
    proc.communicate(timeout=60)
    assert lock_holder(SweepPaths(sweep_dir)) is None
    assert "nothing to cancel" in project.cli("cancel", sweep_dir.name).output
    project.release()
    project.cli("complete", sweep_dir.name)
    assert project.completions() == {"task_001": 1, "task_002": 1}


def test_cancel_of_a_run_held_on_another_host_says_where_to_cancel_it(project):
    """A sweep folder on a shared file system, run from another login node: nothing here is signalled."""
    import fcntl

    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s")
    paths = SweepPaths(project.root / "sweeps" / "outputs" / "s")
    record = {"pid": 4242, "host": "login2", "since": "2026-12-06T10:00:00+00:00", "snakemake_pid": 4250}
    fd = os.open(paths.lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        out = project.cli("cancel", "s", expect=1).output
        status = project.cli("status", "s").output
    finally:
        os.close(fd)
    assert "sweep s is run by pid 4242 on login2: cancel it there" in out
    assert "pid 4242 on login2" in status
