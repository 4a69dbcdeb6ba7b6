"""status and missing read the sweep directory alone and survive damaged files."""

from __future__ import annotations

import json

from hsm_snake import sweeps
from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep


def make_sweep(project, n=4):
    sweep = project.write_sweep({"grid": {"x": list(range(n))}})
    return sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], "scan")


def test_garbage_or_truncated_status_is_reported_not_fatal(project):
    index = make_sweep(project)
    project.cli("complete", "scan")
    tasks = index.paths.tasks_dir
    (tasks / "task_001" / ".completed").unlink()
    (tasks / "task_001" / "status.yaml").write_bytes(b'status: "runn')  # truncated mid-write
    (tasks / "task_002" / ".completed").unlink()
    (tasks / "task_002" / "status.yaml").write_bytes(b"\xff\xfe garbage: [")
    (tasks / "task_003" / "junk.tmp").write_text("an unknown extra file")
    status = json.loads(project.cli("status", "scan", "--json").output)
    assert status["counts"] == {"unreadable": 2, "completed": 2}
    notes = {t["task"]: t["note"] for t in status["tasks"]}
    assert "status.yaml" in notes["task_001"] and "status.yaml" in notes["task_002"]
    missing = json.loads(project.cli("missing", "scan", "--json").output)
    assert [m["task"] for m in missing] == ["task_001", "task_002"]
    project.cli("complete", "scan")
    assert json.loads(project.cli("status", "scan", "--json").output)["counts"] == {"completed": 4}


def test_missing_task_folder_is_pending_and_reruns(project):
    import shutil

    index = make_sweep(project, 2)
    shutil.rmtree(index.paths.task("task_002").dir)
    (index.paths.task("task_001").params).unlink()
    status = json.loads(project.cli("status", "scan", "--json").output)
    assert status["counts"] == {"pending": 2}
    project.cli("complete", "scan")
    assert project.completions() == {"task_001": 1, "task_002": 1}


def test_sweep_found_by_id_path_or_newest_and_unknown_id_explained(project):
    index = make_sweep(project, 1)
    assert json.loads(project.cli("status", "--json").output)["sweep_id"] == "scan"
    assert json.loads(project.cli("status", str(index.paths.root), "--json").output)["sweep_id"] == "scan"
    result = project.cli("status", "nope", expect=2)
    assert "no sweep 'nope'" in result.output and "scan" in result.output


def test_bad_sweep_id_is_refused(project):
    sweep = project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("run", str(sweep), "--sweep-id", "../escape", expect=2)
    assert "not a usable sweep id" in result.output
