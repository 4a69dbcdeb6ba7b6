"""Pure logic of a remote's own settings: v1's spec:, conda inheritance, GPUs to detect, excludes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep
from hsm_snake.errors import ConfigError
from hsm_snake.executors.ssh import hosts, transfer
from hsm_snake.runner import conda
from hsm_snake.sweep.create import runner_settings


def load_sweep_text(tmp_path: Path):
    (tmp_path / "sweep.yaml").write_text("grid: {x: [1]}\n")
    return load_sweep(tmp_path / "sweep.yaml")


def project_with(tmp_path: Path, text: str):
    (tmp_path / "hsm.yaml").write_text(text)
    return load_project(None, tmp_path)


def test_v1_spec_becomes_the_remotes_own_keys_and_the_remotes_own_win(tmp_path):
    project = project_with(
        tmp_path,
        "distributed:\n  remotes:\n    box:\n      pre_script: own\n      spec:\n"
        "        pre_script: [a, b]\n        modules: cuda/12\n        walltime: '01:00:00'\n"
        "        cpus_per_task: 4\n        mem: 16G\n        gpus: 1\n        gpu_type: h100\n",
    )
    box = project.section("distributed")["remotes"]["box"]
    assert box["pre_script"] == "own" and box["modules"] == ["cuda/12"] and box["walltime"] == "01:00:00"
    assert box["cpus_per_task"] == 4 and box["mem"] == "16G" and box["gpus"] == 1
    assert any("gpu_type ignored" in note for note in project.notices)


@pytest.mark.parametrize(
    "spec, message",
    [("{walltime: '1:30'}", "ambiguous"), ("{cpus_per_task: four}", "not a whole number"), ("{mem: lots}", "memory")],
)
def test_a_bad_spec_value_is_an_error_at_its_line(tmp_path, spec, message):
    with pytest.raises(ConfigError) as error:
        project_with(tmp_path, f"distributed:\n  remotes:\n    box:\n      spec: {spec}\n")
    assert message in str(error.value) and "hsm.yaml:4" in str(error.value), str(error.value)


def test_a_remote_inherits_the_projects_conda_env_unless_it_names_a_python():
    project = {"paths": {"conda_env": "ml", "conda_root": "/here/only"}}
    inherited = hosts.host_from_remote("a", {"conda_root": "~/mf"}, project)
    assert inherited.python == [*conda.run_prefix("ml", "~/mf"), "python"]
    assert hosts.python_name(inherited) == "conda_env ml (conda_root ~/mf): python"
    assert hosts.host_from_remote("b", {"python_path": "/opt/py"}, project).python == ["/opt/py"]
    assert hosts.host_from_remote("c", {"conda_env": "other"}, project).python[4] == "other"
    assert hosts.host_from_remote("d", {}, {}).python == ["python3"]


def test_gpus_per_task_without_visible_gpus_waits_for_the_hosts_list():
    box = hosts.host_from_remote("g", {"gpus": 1, "max_parallel_jobs": 4})
    assert box.detect_gpus and box.gpu_free == {} and box.gpus_per_task == 1 and not box.has_room()
    listed = hosts.host_from_remote("h", {"gpus": 1, "visible_gpus": [2, 3]})
    assert not listed.detect_gpus and listed.gpu_free == {"2": 1, "3": 1} and listed.slots == 2


def test_host_settings_carry_the_set_up_time_limit_and_threads(tmp_path):
    project = project_with(
        tmp_path,
        "distributed:\n  walltime: 1h\n  remotes:\n"
        "    g: {modules: [cuda/12], pre_script: export A=1, walltime: 2m, cpus_per_task: 2}\n    h: {}\n",
    )
    record = {"project": project.data, "runner": runner_settings(project, load_sweep_text(tmp_path))}
    box, other = hosts.pool_from_record(record, [])
    assert other.walltime_s is None and record["runner"]["timeout_s"]["ssh"] == 3600
    settings = transfer.host_settings(box)
    assert settings["pre_script"] == "module load cuda/12\nexport A=1" and settings["timeout_s"] == 120
    assert settings["env"]["OMP_NUM_THREADS"] == "2"


def test_excludes_take_what_git_ignores_but_never_the_script(tmp_path):
    root = tmp_path / "proj"
    (root / "secrets").mkdir(parents=True)
    for name in ("train.py", "keep.py", ".env", "secrets/k", "odd[1].log"):
        (root / name).write_text("x")
    (root / ".gitignore").write_text(".env\nsecrets/\n*.log\ntrain.py\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    patterns = transfer.upload_excludes(root, ["data/raw/"], str(root / "train.py"))
    assert patterns[: len(transfer.DEFAULT_EXCLUDES)] == list(transfer.DEFAULT_EXCLUDES)
    assert "data/raw/" in patterns and "/.env" in patterns and "/secrets/" in patterns
    assert "/odd\\[1].log" in patterns and "/train.py" not in patterns
    assert transfer.upload_excludes(tmp_path / "nowhere", [], None) == list(transfer.DEFAULT_EXCLUDES)
