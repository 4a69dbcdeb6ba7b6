"""Project folders whose names hold ':' or '$' work like any other."""

from __future__ import annotations

import shutil
import sys

import pytest


@pytest.mark.parametrize("folder", ["proj:1", "run$HOME", "a:b $PATH x", "p${IFS}q"])
def test_a_project_found_from_the_sweep_file_is_used_as_named(project, tmp_path, monkeypatch, folder):
    root = tmp_path / folder
    root.mkdir()
    shutil.copy(project.root / "echo.py", root / "echo.py")
    (root / "hsm.yaml").write_text(
        f"paths: {{python_interpreter: {sys.executable}, train_script: echo.py, output_dir: out}}\n"
        "task: {arg_style: raw, output_dir_arg: null}\n"
    )
    (root / "sweep.yaml").write_text("grid:\n  x: [1, 2]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    project.cli("run", str(root / "sweep.yaml"), "--sweep-id", "s")
    assert (root / "out" / "s" / "tasks" / "task_002" / ".completed").exists()
    assert project.completions() == {"task_001": 1, "task_002": 1}
