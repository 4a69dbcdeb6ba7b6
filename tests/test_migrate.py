"""A v1 sweep folder becomes a standard sweep directory; missing/complete then work on it."""

from __future__ import annotations

import json


def make_v1_sweep(root):
    v1 = root / "sweeps" / "outputs" / "sweep_20240101_120000"
    (v1 / "tasks" / "task_1").mkdir(parents=True)
    (v1 / "tasks" / "task_2").mkdir(parents=True)
    (v1 / "sweep_config.yaml").write_text("sweep:\n  grid:\n    x: [1, 2, 3]\n")
    (v1 / "tasks" / "task_1" / "task_info.txt").write_text("Task: 1\nStatus: RUNNING\nStatus: COMPLETED\n")
    (v1 / "tasks" / "task_1" / "results.csv").write_text("loss\n0.1\n")
    (v1 / "tasks" / "task_2" / "task_info.txt").write_text("Status: FAILED\n")
    (v1 / "source_mapping.yaml").write_text("task_assignments:\n  task_3: {status: PENDING}\n")
    return v1


def test_migrate_keeps_v1_files_and_complete_runs_only_the_rest(project):
    v1 = make_v1_sweep(project.root)
    result = project.cli("migrate", str(v1))
    assert "3 task(s), 1 completed, 1 failed" in result.output
    assert (v1 / "tasks" / "task_001" / "results.csv").read_text() == "loss\n0.1\n"
    assert (v1 / "tasks" / "task_001" / "task_info.txt").exists() and not (v1 / "tasks" / "task_1").exists()
    assert (v1 / "source_mapping.yaml").exists()
    missing = json.loads(project.cli("missing", v1.name, "--json").output)
    assert [(m["task"], m["state"], m["params"]) for m in missing] == [
        ("task_002", "failed", {"x": 2}),
        ("task_003", "pending", {"x": 3}),
    ]
    project.cli("complete", v1.name)
    assert project.completions() == {"task_002": 1, "task_003": 1}
    again = project.cli("migrate", str(v1), expect=2)
    assert "hsm-snake sweep already" in again.output


def test_migrate_to_a_copy_leaves_the_original_untouched(project):
    v1 = make_v1_sweep(project.root)
    before = sorted(p.relative_to(v1) for p in v1.rglob("*"))
    copy = project.root / "sweeps" / "outputs" / "migrated"
    project.cli("migrate", str(v1), "--to", str(copy))
    assert sorted(p.relative_to(v1) for p in v1.rglob("*")) == before
    assert (copy / "task_mapping.yaml").exists() and (copy / "tasks" / "task_001" / ".completed").exists()
    assert "not a v1 sweep folder" in project.cli("migrate", str(project.root), expect=2).output
