"""The Snakemake entry point hsm-snake starts: Snakemake's own CLI, minus start-up delays."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hsm_snake.engine.snakemake_cli import executor_of
from hsm_snake.package_data import profiles_dir, workflow_dir

HEAVY_IMPORTS = ("smart_open", "boto3", "pandas", "snakemake_executor_plugin_slurm")

# Snakemake's main exits the interpreter; the modules it loaded are listed at exit.
LIST_HEAVY_IMPORTS_AT_EXIT = f"""
import atexit, json, sys
atexit.register(lambda: print("IMPORTED", json.dumps([m for m in {HEAVY_IMPORTS!r} if m in sys.modules])))
from hsm_snake.engine.snakemake_cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--executor", "slurm"], "slurm"),
        (["--executor=hsm-ssh", "--cores", "1"], "hsm-ssh"),
        (["-e", "local"], "local"),
        (["--profile", str(profiles_dir() / "slurm")], "hsm-slurm"),
        (["--profile", str(profiles_dir() / "local")], "local"),
        (["--profile", "/no/such/profile"], None),
        (["--cores", "2"], None),
    ],
)
def test_the_executor_is_read_from_the_command_line_or_its_profile(args, expected):
    assert executor_of(args) == expected


def test_a_local_run_reads_its_workflow_without_smart_open_boto3_pandas_or_the_slurm_plugin(project):
    sweep = project.write_sweep({"grid": {"x": [1, 2, 3]}})
    project.cli("run", str(sweep))
    (sweep_dir,) = project.sweep_dirs()
    (sweep_dir / "tasks" / "task_003" / ".completed").unlink()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LIST_HEAVY_IMPORTS_AT_EXIT,
            "--snakefile",
            str(workflow_dir() / "Snakefile"),
            "--directory",
            str(sweep_dir),
            "--workflow-profile",
            str(profiles_dir() / "default"),
            "--profile",
            str(profiles_dir() / "local"),
            "--cores",
            "1",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The Snakefile and its rule files were read and parsed: one job is missing.
    assert "output: tasks/task_003/.completed" in done.stdout
    assert "output: tasks/task_001/.completed" not in done.stdout
    (imported,) = [line for line in done.stdout.splitlines() if line.startswith("IMPORTED ")]
    assert json.loads(imported.split(" ", 1)[1]) == []
