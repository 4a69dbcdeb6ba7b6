"""SIGTERM/SIGINT to `hsm-snake run`, two concurrent `complete`, and readers during a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from background import held_tasks_started, wait_for
from conftest import read_status
from procs import children_by_name, sweep_processes

from hsm_snake.engine.lock import lock_holder
from hsm_snake.layout.paths import SweepPaths


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_stops_cleanly_leaves_no_process_and_complete_resumes(project, background, signum):
    sweep = project.write_sweep({"grid": {"hold": [1], "x": [1, 2, 3]}})
    proc = background("run", str(sweep))
    wait_for(held_tasks_started(project, 2), what="two held tasks to start")
    (sweep_dir,) = project.sweep_dirs()
    tree = children_by_name(proc.pid)
    assert any("echo.py" in cmd for cmd in tree.values()), tree
    os.kill(proc.pid, signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert f"hsm-snake complete {sweep_dir.name}" in out
    # Nothing of the run survives it: not Snakemake, not a runner, not a script.
    assert not sweep_processes(str(project.run_log)), out
    assert lock_holder(SweepPaths(sweep_dir)) is None
    state = json.loads(project.cli("status", sweep_dir.name, "--json").output)
    assert state["counts"].get("running", 0) == 0 and state["counts"].get("stale", 0) == 0, state["counts"]
    assert state["counts"]["cancelled"] == 2, state["counts"]
    project.release()
    project.cli("complete", sweep_dir.name)
    assert project.completions() == {"task_001": 1, "task_002": 1, "task_003": 1}


@pytest.mark.slow
def test_two_concurrent_completes_one_runs_the_other_is_refused(project, background):
    sweep = project.write_sweep({"grid": {"hold": [1], "x": [1, 2]}})
    first = background("run", str(sweep), "--max-tasks", "1")
    wait_for(held_tasks_started(project, 1), what="the first task to start")
    project.release()
    first.communicate(timeout=120)
    (sweep_dir,) = project.sweep_dirs()
    os.unlink(str(project.run_log) + ".release")
    # Two `complete` started together: exactly one gets the sweep, the other says who has it.
    procs = [background("complete", sweep_dir.name) for _ in range(2)]
    # The held task keeps the winner running until the loser has been turned away.
    wait_for(
        lambda: held_tasks_started(project, 2)() and any(p.poll() is not None for p in procs),
        what="one complete to start the task and the other to be refused",
    )
    project.release()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outputs
    assert any("already being run by pid" in out for out in outputs), outputs
    assert project.completions() == {"task_001": 1, "task_002": 1}


@pytest.mark.slow
def test_status_watch_and_report_read_a_sweep_while_it_runs(project, background):
    sweep = project.write_sweep({"grid": {"x": list(range(1, 9)), "sleep": [0.3]}})
    proc = background("run", str(sweep))
    wait_for(lambda: project.sweep_dirs() and (project.sweep_dirs()[0] / "task_mapping.yaml").exists(), what="sweep")
    (sweep_dir,) = project.sweep_dirs()
    watch = subprocess.Popen(
        [sys.executable, "-m", "hsm_snake.cli.main", "watch", sweep_dir.name, "--interval", "0.1"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = set()
    while proc.poll() is None:
        state = json.loads(project.cli("status", sweep_dir.name, "--json").output)
        seen.update(state["counts"])
        assert not {"unreadable", "stale", "interrupted"} & set(state["counts"]), state["counts"]
        report = project.cli("report", sweep_dir.name, expect=None)
        assert report.exit_code == 0, report.output
    assert proc.returncode == 0, proc.communicate()[0]
    out, _ = watch.communicate(timeout=60)
    assert watch.returncode == 0 and "Traceback" not in out, out
    assert "completed" in seen
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 9)}
    assert read_status(sweep_dir / "tasks" / "task_008")["status"] == "completed"
