"""v1's `hsm sweep ...` commands run through hsm-snake and name their new equivalent."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hsm_snake.cli.v1 import hsm


def v1(*args: str, expect: int = 0):
    result = CliRunner().invoke(hsm, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def test_v1_sweep_run_count_status_complete(project):
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    counted = v1("sweep", "run", "-c", "sweep.yaml", "--count-only")
    assert "ok: 3 task(s)" in counted.output and "hsm-snake validate sweep.yaml" in counted.output
    dry = v1("sweep", "run", "-c", "sweep.yaml", "--dry-run")
    assert "task_003" in dry.output and "hsm-snake run sweep.yaml --profile local --dry-run" in dry.output
    first = v1("sweep", "run", "-c", "sweep.yaml", "--max-runs", "2", "--sweep-id", "old")
    assert "--max-tasks 2" in first.output
    assert sorted(project.completions()) == ["task_001", "task_002"]
    status = v1("sweep", "status", "old")
    assert "2 completed" in status.output and "1 pending" in status.output
    v1("sweep", "complete", "old")
    assert sorted(project.completions()) == ["task_001", "task_002", "task_003"]
    assert json.loads(project.cli("status", "old", "--json").output)["counts"] == {"completed": 3}


def test_v1_cluster_modes_map_to_profiles(project, monkeypatch, tmp_path):
    project.write_sweep({"grid": {"x": [1]}})
    monkeypatch.setenv("PATH", str(tmp_path))  # neither sbatch nor qsub: hpc explains itself
    result = v1("sweep", "run", "-c", "sweep.yaml", "--mode", "array", expect=2)
    assert "--profile hpc" in result.output and "neither sbatch" in result.output
