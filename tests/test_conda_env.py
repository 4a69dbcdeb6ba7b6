"""paths.conda_env activates where tasks run with no conda on PATH: local, Slurm, an SSH host.

No conda or micromamba can be installed here (neither PyPI nor Debian has one), so the package
manager is a stand-in: ``bin/micromamba`` implementing ``micromamba run [-r ROOT] -n ENV CMD...``
as micromamba does (the env's bin/ first on PATH, CONDA_PREFIX set), over a real environment
``ROOT/envs/ENV`` (a venv of the system Python, with a conda-meta/ folder as conda envs have).
What is under test is hsm-snake finding it: conda_root, CONDA_EXE, the usual install folders.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import read_status, remote_name

from hsm_snake.runner import conda

MICROMAMBA = """#!/bin/sh
# Stand-in for micromamba's `run` subcommand.
[ "$1" = run ] || { echo "stand-in micromamba: only 'run' is implemented" >&2; exit 2; }
shift
root=${MAMBA_ROOT_PREFIX:-$HOME/micromamba}
prefix=
while [ $# -gt 0 ]; do
  case $1 in
    -r|--root-prefix) root=$2; shift 2 ;;
    -n|--name) prefix=$root/envs/$2; shift 2 ;;
    -p|--prefix) prefix=$2; shift 2 ;;
    *) break ;;
  esac
done
[ -d "$prefix/conda-meta" ] || { echo "critical libmamba The given prefix does not exist: $prefix" >&2; exit 1; }
echo "$0 run $prefix" >> "$root/calls.log"
CONDA_PREFIX=$prefix PATH=$prefix/bin:$PATH exec "$@"
"""

SEE_ENV = """
import json, os, sys
with open(os.path.join(os.environ["HSM_RESULTS_DIR"], "env.json"), "w", encoding="utf-8") as f:
    json.dump({"prefix": sys.prefix, "conda_prefix": os.environ.get("CONDA_PREFIX"), "argv": sys.argv[1:]}, f)
"""

SYSTEM_PYTHON = "/usr/bin/python3"


def install_stand_in(root: Path, env: str = "ml") -> Path:
    """A 'micromamba installation' at ``root`` with one environment ``env``; returns the env."""
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "micromamba"
    exe.write_text(MICROMAMBA)
    exe.chmod(0o755)
    prefix = root / "envs" / env
    subprocess.run(
        [SYSTEM_PYTHON, "-m", "venv", "--without-pip", "--system-site-packages", str(prefix)], check=True, timeout=120
    )
    (prefix / "conda-meta").mkdir()
    return prefix


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    for name in ("CONDA_EXE", "MAMBA_EXE", "MAMBA_ROOT_PREFIX", "CONDA_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    assert not any(shutil.which(name) for name in ("conda", "mamba", "micromamba")), "a real conda is on PATH"
    return folder


@pytest.fixture
def env_project(project, home):
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip("no system Python to build an environment from")
    (project.root / "see_env.py").write_text(SEE_ENV)
    config = yaml.safe_load((project.root / "hsm.yaml").read_text())
    config["paths"] = {"train_script": "see_env.py", "conda_env": "ml"}
    (project.root / "hsm.yaml").write_text(yaml.safe_dump(config))
    return project


def seen(sweep_dir: Path, task: str = "task_001") -> dict:
    return json.loads((sweep_dir / "tasks" / task / "results" / "env.json").read_text())


def test_the_finder_says_what_it_searched_when_nothing_is_there(home, tmp_path):
    done = subprocess.run(
        [*conda.run_prefix("ml", str(tmp_path / "nowhere")), "python", "-c", "pass"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 127
    message = done.stderr.strip()
    assert message.startswith(conda.MISSING_MARK + " 'ml'"), message
    for place in (f"{tmp_path}/nowhere/bin/conda", f"{home}/miniforge3/bin/conda", "/opt/conda/bin/conda", "on PATH"):
        assert place in message, (place, message)


def test_a_conda_root_from_the_machine_layer_activates_the_env_locally(env_project, home, tmp_path):
    project = env_project
    prefix = install_stand_in(tmp_path / "mm")
    (home / ".hsm").mkdir()
    (home / ".hsm" / "config.yaml").write_text(f"paths: {{conda_root: {tmp_path / 'mm'}}}\n")
    values = ["two words", "$HOME", "`id`", "é 🚀", "it's"]
    project.write_sweep({"grid": {"v": values}})
    result = project.cli("run", "sweep.yaml")
    assert f"{len(values)} completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    for number, value in enumerate(values, 1):
        found = seen(sweep_dir, f"task_{number:03d}")
        assert found["prefix"] == str(prefix) and found["conda_prefix"] == str(prefix)
        assert found["argv"] == [f"v={value}"]


def test_the_usual_install_folder_is_found_without_configuration(env_project, home):
    prefix = install_stand_in(home / "micromamba")
    env_project.write_sweep({"grid": {"v": [1]}})
    assert "1 completed" in env_project.cli("run", "sweep.yaml").output
    (sweep_dir,) = env_project.sweep_dirs()
    assert seen(sweep_dir)["prefix"] == str(prefix)


def test_conda_exe_is_followed(env_project, home, tmp_path, monkeypatch):
    prefix = install_stand_in(tmp_path / "elsewhere")
    monkeypatch.setenv("CONDA_EXE", str(tmp_path / "elsewhere" / "bin" / "micromamba"))
    monkeypatch.setenv("MAMBA_ROOT_PREFIX", str(tmp_path / "elsewhere"))
    env_project.write_sweep({"grid": {"v": [1]}})
    assert "1 completed" in env_project.cli("run", "sweep.yaml").output
    (sweep_dir,) = env_project.sweep_dirs()
    assert seen(sweep_dir)["prefix"] == str(prefix)


def test_no_conda_anywhere_fails_the_task_naming_the_places_searched(env_project, home):
    env_project.write_sweep({"grid": {"v": [1]}})
    result = env_project.cli("run", "sweep.yaml", expect=None)
    assert result.exit_code != 0
    (sweep_dir,) = env_project.sweep_dirs()
    status = read_status(sweep_dir / "tasks" / "task_001")
    assert status["error_category"] == "missing_environment", status
    assert "no conda, mamba or micromamba found" in status["error_summary"]
    assert f"{home}/miniconda3/bin/conda" in status["error_summary"]
    errors = env_project.cli("errors", str(sweep_dir), expect=None).output
    assert "conda_root" in errors, errors


@pytest.mark.testbed
def test_a_remote_inherits_conda_env_and_activates_it_with_its_own_conda_root(env_project, tb, monkeypatch, tmp_path):
    tb.need("hsmtb-h1")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    base = tb.facts["ssh"]["hosts"]["hsmtb-h1"]["project_dir"]
    # The test bed's hosts share this file system: the 'installation' is at the same path there.
    prefix = install_stand_in(tmp_path / "remote-mm")
    config = yaml.safe_load((env_project.root / "hsm.yaml").read_text())
    config["distributed"] = {
        "remotes": {
            "hsmtb-h1": {
                "project_dir": f"{base}/{remote_name(tmp_path)}",
                "max_parallel_jobs": 2,
                "conda_root": str(prefix.parent.parent),
            },
        }
    }
    (env_project.root / "hsm.yaml").write_text(yaml.safe_dump(config))
    env_project.write_sweep({"grid": {"v": ["a b", "$(id)"]}})
    result = env_project.cli("run", "sweep.yaml", "--profile", "ssh")
    assert "2 completed" in result.output, result.output
    (sweep_dir,) = env_project.sweep_dirs()
    remote_prefix = str(prefix)
    assert {seen(sweep_dir, t)["prefix"] for t in ("task_001", "task_002")} == {remote_prefix}
    assert seen(sweep_dir, "task_002")["argv"] == ["v=$(id)"]
    # The host ran it (its own sshd), not this process: the stand-in logged each activation.
    assert (prefix.parent.parent / "calls.log").read_text().count("run ") >= 3  # health probe + 2 tasks
    status = read_status(sweep_dir / "tasks" / "task_001")
    assert status["backend"] == "ssh" and status["job_id"] == "hsmtb-h1"


@pytest.mark.testbed
def test_a_remote_without_conda_is_unusable_with_the_places_searched(env_project, tb, monkeypatch, tmp_path):
    tb.need("hsmtb-h1")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    base = tb.facts["ssh"]["hosts"]["hsmtb-h1"]["project_dir"]
    config = yaml.safe_load((env_project.root / "hsm.yaml").read_text())
    config["distributed"] = {"remotes": {"hsmtb-h1": {"project_dir": f"{base}/{remote_name(tmp_path)}"}}}
    (env_project.root / "hsm.yaml").write_text(yaml.safe_dump(config))
    env_project.write_sweep({"grid": {"v": [1]}})
    result = env_project.cli("run", "sweep.yaml", "--profile", "ssh", expect=None)
    assert result.exit_code != 0
    (sweep_dir,) = env_project.sweep_dirs()
    log = (sweep_dir / "logs" / "sources" / "ssh.log").read_text()
    assert "UNUSABLE" in log and conda.MISSING_MARK in log and "miniforge3/bin/conda" in log, log


@pytest.mark.testbed
@pytest.mark.parametrize("backend", ["slurm", "pbs"])
def test_cluster_tasks_activate_the_env(env_project, home, tb, monkeypatch, tmp_path, backend):
    from conftest import on_testbed

    prefix = install_stand_in(tmp_path / "mm")
    on_testbed(env_project, tb, monkeypatch, backend)
    config = yaml.safe_load((env_project.root / "hsm.yaml").read_text())
    config["paths"] = {"train_script": "see_env.py", "conda_env": "ml", "conda_root": str(tmp_path / "mm")}
    (env_project.root / "hsm.yaml").write_text(yaml.safe_dump(config))
    env_project.write_sweep({"grid": {"v": ["x y"]}})
    result = env_project.cli("run", "sweep.yaml", "--profile", backend)
    assert "1 completed" in result.output, result.output
    (sweep_dir,) = env_project.sweep_dirs()
    assert seen(sweep_dir)["prefix"] == str(prefix) and seen(sweep_dir)["argv"] == ["v=x y"]
    assert read_status(sweep_dir / "tasks" / "task_001")["backend"] == backend


def test_validate_warns_when_this_machine_has_no_conda(env_project, home, tmp_path):
    env_project.write_sweep({"grid": {"v": [1]}})
    result = env_project.cli("validate", "sweep.yaml", "--strict", expect=1)
    assert "paths.conda_env" in result.output and "no conda, mamba or micromamba found" in result.output
    install_stand_in(home / "micromamba")
    assert "0 warning(s)" in env_project.cli("validate", "sweep.yaml", "--strict").output


def test_a_dry_run_shows_the_conda_run_the_prefix_amounts_to(env_project, monkeypatch):
    project = env_project
    monkeypatch.setenv("COLUMNS", "300")  # one table row a line
    project.write_sweep({"grid": {"v": [1]}})
    (row,) = json.loads(project.cli("run", "sweep.yaml", "--dry-run", "--json").output)
    assert row["command"][:2] == ["sh", "-c"]  # what runs: the finder of conda/mamba/micromamba
    assert "conda run -n ml python " in project.cli("run", "sweep.yaml", "--dry-run").output  # what it amounts to
    config = yaml.safe_load((project.root / "hsm.yaml").read_text())
    config["paths"]["conda_env"] = "/opt/envs/ml"  # a path: conda run -p
    (project.root / "hsm.yaml").write_text(yaml.safe_dump(config))
    assert "conda run -p /opt/envs/ml python " in project.cli("run", "sweep.yaml", "--dry-run").output
