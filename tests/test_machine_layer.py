"""The per-machine layer ~/.hsm/config.yaml (v1's), with a temporary HOME; local.sweeps_root."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hsm_snake.config.project import load_project
from hsm_snake.config.validation import config_sources


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def write_machine(home: Path, text: str) -> Path:
    path = home / ".hsm" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_machine_layer_goes_under_the_project_file_key_by_key(home, project):
    machine = write_machine(
        home,
        "local:\n  visible_gpus: [1, 2, 3]\n  gpus: 2\n  pre_script: [module load cuda/12]\n"
        "paths:\n  conda_root: ~/miniforge3\n  conda_env: machine-env\n"
        "slurm:\n  partition: gpu\n",
    )
    project.write_project({"local": {"gpus": 1}})
    loaded = load_project(None, project.root)
    local = loaded.section("local")
    # The project's own key wins; the machine fills in the others (v1: project fields win per key).
    assert local["gpus"] == 1 and local["max_parallel"] == 2
    assert local["visible_gpus"] == [1, 2, 3] and local["pre_script"] == "module load cuda/12"
    assert loaded.section("paths")["conda_root"] == "~/miniforge3"
    # As in v1, project-scope blocks are not read from the machine file, and the user is told.
    assert "conda_env" not in loaded.section("paths") and "partition" not in loaded.section("slurm")
    assert any(f"{machine}: 'slurm.partition' is ignored" in n for n in loaded.notices), loaded.notices
    assert any("'paths.conda_env' is ignored" in n for n in loaded.notices)
    assert loaded.machine_source == machine
    assert loaded.machine_keys == {"local.visible_gpus", "local.pre_script", "paths.conda_root"}


def test_show_names_the_machine_file_as_the_source_of_its_values(home, project):
    write_machine(home, "local: {visible_gpus: [1, 2], gpus: 3}\n")
    project.write_project({"local": {"gpus": 1}})
    origins = {key: origin for key, _, origin in config_sources(load_project(None, project.root))}
    assert origins["local.visible_gpus"] == "~/.hsm/config.yaml"
    assert origins["local.gpus"] == "hsm.yaml" and origins["local.tasks_per_gpu"] == "default"
    assert "~/.hsm/config.yaml" in project.cli("show").output


def test_a_bad_machine_file_is_reported_with_its_path_and_line(home, project):
    machine = write_machine(home, "local:\n  visible_gpus: [one]\n")
    result = project.cli("validate", expect=2)
    assert str(machine) in result.output and ":2" in result.output, result.output


def test_without_a_machine_file_nothing_changes(home, project):
    loaded = load_project(None, project.root)
    assert loaded.machine_source is None and not loaded.machine_keys


def test_init_machine_writes_the_layer_that_then_loads(home, project, tmp_path):
    roots = tmp_path / "big-disk"
    roots.mkdir()
    result = project.cli("init", "--machine", "--sweeps-root", str(roots), "--conda-root", "~/micromamba")
    machine = home / ".hsm" / "config.yaml"
    assert f"wrote {machine}" in result.output
    data = yaml.safe_load(machine.read_text())
    assert data["local"]["sweeps_root"] == str(roots) and data["paths"]["conda_root"] == "~/micromamba"
    loaded = load_project(None, project.root)
    assert loaded.output_dir == roots and "local.sweeps_root" in loaded.machine_keys
    again = project.cli("init", "--machine", expect=2)
    assert "--force" in again.output
    missing = project.cli("init", "--machine", "--force", "--sweeps-root", str(tmp_path / "nope"), expect=2)
    assert "does not exist" in missing.output


def test_sweeps_root_holds_the_sweep_and_sweeps_outputs_links_to_it(home, project, tmp_path):
    roots = tmp_path / "big-disk"
    roots.mkdir()
    write_machine(home, f"local: {{sweeps_root: {roots}}}\n")
    project.write_sweep({"grid": {"x": [1, 2]}})
    result = project.cli("run", "sweep.yaml")
    assert "2 completed" in result.output, result.output
    (sweep,) = [p for p in roots.iterdir()]
    link = project.root / "sweeps" / "outputs" / sweep.name
    assert link.is_symlink() and link.resolve() == sweep.resolve()
    assert (sweep / "tasks" / "task_001" / ".completed").exists()
    # Another project's sweep in the same machine-wide root is not this project's newest.
    other = roots / "sweep_29990101_000000"
    other.mkdir()
    (other / "task_mapping.yaml").write_text("{}")
    assert sweep.name in project.cli("status").output
    assert sweep.name in project.cli("status", sweep.name).output
    listed = project.cli("recent", "--json").output
    assert sweep.name in listed and other.name not in listed


def test_a_missing_sweeps_root_is_refused_not_created(home, project, tmp_path):
    machine = write_machine(home, f"local: {{sweeps_root: {tmp_path / 'unmounted'}}}\n")
    project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("run", "sweep.yaml", expect=2)
    assert "does not exist" in result.output and str(machine) in result.output, result.output
    assert not (tmp_path / "unmounted").exists()


def test_the_projects_output_dir_wins_over_the_machines_sweeps_root(home, project, tmp_path):
    write_machine(home, f"local: {{sweeps_root: {tmp_path}}}\n")
    project.write_project({"paths": {"output_dir": "elsewhere"}})
    loaded = load_project(None, project.root)
    assert loaded.output_dir == project.root / "elsewhere"
    assert any("paths.output_dir, which wins" in n for n in loaded.notices)


def test_sweeps_root_and_output_dir_in_one_project_file_is_an_error(home, project, tmp_path):
    project.write_project({"paths": {"output_dir": "x"}, "local": {"sweeps_root": str(tmp_path)}})
    result = project.cli("validate", expect=2)
    assert "keep one" in result.output


def test_init_leaves_what_the_machine_layer_sets_to_it(home, project):
    write_machine(home, "local: {visible_gpus: [1, 2, 3], max_parallel: 3}\n")
    (project.root / "hsm.yaml").unlink()
    project.cli("init")
    written = yaml.safe_load((project.root / "hsm.yaml").read_text())
    assert "visible_gpus" not in written["local"] and "max_parallel" not in written["local"]
    assert "set in ~/.hsm/config.yaml" in (project.root / "hsm.yaml").read_text()
    loaded = load_project(None, project.root)
    assert loaded.section("local")["visible_gpus"] == [1, 2, 3] and loaded.section("local")["max_parallel"] == 3


def test_cleanup_under_sweeps_root_removes_this_projects_sweeps_only(home, project, tmp_path):
    roots = tmp_path / "big-disk"
    roots.mkdir()
    write_machine(home, f"local: {{sweeps_root: {roots}}}\n")
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml")
    (sweep,) = list(roots.iterdir())
    other = roots / "sweep_20000101_000000"  # another project's sweep in the machine-wide root
    other.mkdir()
    (other / "task_mapping.yaml").write_text("{}")
    project.cli("cleanup", "-d", "0", "-y")
    assert not sweep.exists() and not (project.root / "sweeps" / "outputs" / sweep.name).is_symlink()
    assert other.is_dir()
