"""project_config.yaml holds task.env values and tracker URIs: only its owner may read it."""

from __future__ import annotations

import os
import stat


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_sweeps_copy_of_the_project_config_is_private_after_run_complete_and_migrate(project):
    project.write_project({"task": {"env": {"API_TOKEN": "s3cr3t"}}})
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s")
    config = project.root / "sweeps" / "outputs" / "s" / "project_config.yaml"
    assert mode(config) == 0o600
    os.chmod(config, 0o644)
    project.write_project({"task": {"env": {"API_TOKEN": "n3w"}}})
    project.cli("complete", "s")  # re-reads the project settings and rewrites the copy
    assert "n3w" in config.read_text() and mode(config) == 0o600

    v1 = project.root / "sweeps" / "outputs" / "sweep_20240101_120000"
    (v1 / "tasks").mkdir(parents=True)
    (v1 / "sweep_config.yaml").write_text("sweep:\n  grid:\n    x: [1]\n")
    project.cli("migrate", str(v1))
    assert mode(v1 / "project_config.yaml") == 0o600
