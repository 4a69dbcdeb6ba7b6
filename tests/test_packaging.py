"""The workflow runs as plain `snakemake` from the repository, and from a wheel anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from hsm_snake import sweeps
from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep

REPO = Path(__file__).resolve().parents[1]


def make_sweep(project, n: int):
    sweep = project.write_sweep({"grid": {"x": list(range(n))}})
    return sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], "plain")


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_plain_snakemake_from_the_repository(project):
    index = make_sweep(project, 3)
    dry = snakemake("-n", "--cores", "2", "--directory", str(index.paths.root), cwd=REPO)
    assert dry.returncode == 0, dry.stderr
    assert "task_003" in dry.stdout + dry.stderr
    done = snakemake("--cores", "2", "--config", f"sweep_dir={index.paths.root}", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert project.completions() == {"task_001": 1, "task_002": 1, "task_003": 1}
    # hsm-snake agrees, and has nothing left to do.
    assert "3 completed" in project.cli("complete", str(index.paths.root)).output
    assert project.completions() == {"task_001": 1, "task_002": 1, "task_003": 1}


def test_wheel_carries_workflow_and_profiles_and_runs_from_elsewhere(project, tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)], check=True, timeout=600
    )
    (wheel,) = dist.glob("hsm_snake-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "hsm_snake/_data/workflow/Snakefile",
        "hsm_snake/_data/workflow/rules/tasks.smk",
        "hsm_snake/_data/workflow/schemas/sweep.schema.json",
        "hsm_snake/_data/profiles/local/config.yaml",
        "hsm_snake/_data/profiles/default/config.yaml",
    ):
        assert needed in names, needed
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        timeout=600,
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    sweep = project.write_sweep({"grid": {"x": [1, 2]}})
    done = subprocess.run(
        [sys.executable, "-m", "hsm_snake.cli.main", "run", str(sweep)],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(site) in done.stdout.replace("\n", "")  # the packaged Snakefile was used
    assert project.completions() == {"task_001": 1, "task_002": 1}
    (sweep_dir,) = project.sweep_dirs()
    assert yaml.safe_load((sweep_dir / "tasks" / "task_002" / "status.yaml").read_text())["status"] == "completed"
