"""Damaged sweep files: each detected and explained through the CLI, never a traceback, never a
finished result lost or a finished task rerun.

Decisions: the completion marker is what makes a task done, so a completed task whose status.yaml
is truncated stays completed (shown with a note where its status is read) and is not rerun; a
completed task whose marker was deleted is "interrupted" and `complete` restores the marker without
running it; a half-written metrics.json leaves the task completed, its metrics absent and the
file named; a missing task_mapping.yaml stops every command with the file's name.
"""

from __future__ import annotations

import json
import os
import subprocess

from conftest import read_status
from test_status_scan import make_sweep

from hsm_snake.engine.lock import SweepLock
from hsm_snake.monitor import scan
from hsm_snake.monitor.readers import load_sweep_index

COMMANDS = (
    ("status",),
    ("status", "--all-status"),
    ("status", "--tasks"),
    ("missing",),
    ("errors",),
    ("report",),
    ("results",),
)


def _run_all_readers(project, sweep_id: str, expect: int | None = 0) -> dict[str, str]:
    outputs = {}
    for command in COMMANDS:
        result = project.cli(*command, sweep_id, expect=expect)
        assert "Traceback" not in result.output, f"{command}: {result.output}"
        outputs[" ".join(command)] = result.output
    return outputs


def test_truncated_status_of_a_completed_task_keeps_it_completed_and_says_so(project):
    index = make_sweep(project, 3)
    project.cli("complete", "scan")
    status = index.paths.task("task_002").status
    status.write_bytes(status.read_bytes()[:25])
    # Completed tasks' records are cached by marker (monitor/status_cache.py): a status.yaml
    # damaged after its task completed is read again once the cache is gone.
    index.paths.status_cache.unlink(missing_ok=True)
    _run_all_readers(project, "scan")
    listed = json.loads(project.cli("status", "scan", "--json", "--all-status").output)
    assert listed["counts"] == {"completed": 3}
    (task,) = [t for t in listed["tasks"] if t["task"] == "task_002"]
    assert "status.yaml" in (task["note"] or ""), task
    assert json.loads(project.cli("missing", "scan", "--json").output) == []
    project.cli("complete", "scan")
    assert project.completions() == {"task_001": 1, "task_002": 1, "task_003": 1}


def test_deleted_marker_of_a_completed_task_is_restored_not_rerun(project):
    index = make_sweep(project, 2)
    project.cli("complete", "scan")
    index.paths.task("task_001").marker.unlink()
    state = json.loads(project.cli("status", "scan", "--json").output)
    assert state["counts"] == {"completed": 1, "interrupted": 1}
    (task,) = [t for t in state["tasks"] if t["task"] == "task_001"]
    assert "finished" in task["note"]
    result = project.cli("complete", "scan")
    assert "kept 1 finished result" in result.output and "task_001" in result.output
    assert project.completions() == {"task_001": 1, "task_002": 1}


def test_half_written_metrics_json_is_named_in_status_and_the_task_stays_completed(project):
    # A script that exits 0 after writing half its metrics.json (e.g. the disk filled up).
    project.write_project({"task": {"env": {"HALF_METRICS": "1"}}})
    (project.root / "echo.py").write_text(
        (project.root / "echo.py").read_text()
        + "\nif os.environ.get('HALF_METRICS'):\n    (task_dir / 'metrics.json').write_text('{\"score\": 1, \"lo')\n"
    )
    index = make_sweep(project, 2)
    project.cli("complete", "scan")
    status = read_status(index.paths.task("task_001").dir)
    assert status["status"] == "completed" and status["metrics"] is None
    assert "metrics.json is not a JSON object" in status["metrics_error"]
    _run_all_readers(project, "scan")
    assert json.loads(project.cli("status", "scan", "--json").output)["counts"] == {"completed": 2}
    project.cli("complete", "scan")
    assert project.completions() == {"task_001": 1, "task_002": 1}


def test_missing_task_mapping_stops_each_command_naming_the_file(project):
    index = make_sweep(project, 2)
    project.cli("complete", "scan")
    os.unlink(index.paths.root / "task_mapping.yaml")
    for command in (*COMMANDS, ("complete",)):
        result = project.cli(*command, "scan", expect=None)
        assert result.exit_code != 0, f"{command}: {result.output}"
        assert "Traceback" not in result.output and "task_mapping.yaml" in result.output, f"{command}: {result.output}"
    assert project.completions() == {"task_001": 1, "task_002": 1}


def test_a_finished_task_is_running_while_its_run_is_live_and_interrupted_once_it_is_gone(project):
    index = make_sweep(project, 1)
    project.cli("complete", "scan")
    index.paths.task("task_001").marker.unlink()
    ended = subprocess.Popen(["true"])
    ended.wait()
    sweep_index = load_sweep_index(index.paths.root)
    with SweepLock(index.paths) as lock:
        lock.acquire(["test"])
        lock.note_engine_pid(os.getpid())
        assert scan.scan(sweep_index).tasks[0].state == scan.RUNNING
        # Recovery runs under the lock between engines: the holder's engine is gone by then.
        lock.note_engine_pid(ended.pid)
        assert scan.scan(sweep_index).tasks[0].state == scan.INTERRUPTED
    assert scan.scan(sweep_index).tasks[0].state == scan.INTERRUPTED
