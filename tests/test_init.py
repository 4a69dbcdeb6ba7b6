"""init → validate → run on a fresh project, in-process and as real commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TRAIN = """
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float); p.add_argument("--seed", type=int)
p.add_argument("--model.width", type=int); p.add_argument("--model.depth", type=int)
p.add_argument("--output.dir")
a = p.parse_args()
print(json.dumps({"score": a.lr * a.seed}))
"""


@pytest.mark.parametrize("template, tasks", [("grid", 6), ("paired", 6), ("slurm-gpu", 6), ("ssh", 6)])
def test_init_writes_configs_that_validate(tmp_path, monkeypatch, template, tasks):
    from click.testing import CliRunner

    from hsm_snake.cli.main import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(TRAIN)
    result = CliRunner().invoke(cli, ["init", "--template", template])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "hsm.yaml").read_text())
    assert config["paths"]["train_script"] == "train.py"
    checked = CliRunner().invoke(cli, ["validate", "sweep.yaml", "--strict"])
    assert checked.exit_code == 0 and f"ok: {tasks} task(s)" in checked.output, checked.output
    again = CliRunner().invoke(cli, ["init"])
    assert again.exit_code == 2 and "--force" in again.output


def test_init_validate_run_as_commands(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    hsm = [sys.executable, "-m", "hsm_snake.cli.main"]
    env = dict(os.environ)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*hsm, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    assert run("init").returncode == 0
    assert run("validate", "sweep.yaml").returncode == 0
    done = run("run", "sweep.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(run("status", "--json").stdout)
    assert status["counts"] == {"completed": 6}
    assert Path(status["path"]).parent == tmp_path / "sweeps" / "outputs"


def test_init_lists_the_gpus_nvidia_smi_finds(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hsm_snake.cli.main import cli
    from hsm_snake.runner import gpu_slots

    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA A100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA A100 (UUID: GPU-b)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(TRAIN)
    gpu_slots.detect_devices.cache_clear()  # asked once per process; this test changes the answer
    try:
        result = CliRunner().invoke(cli, ["init"])
    finally:
        gpu_slots.detect_devices.cache_clear()
    assert result.exit_code == 0, result.output
    local = yaml.safe_load((tmp_path / "hsm.yaml").read_text())["local"]
    assert local["visible_gpus"] == [0, 1] and local["gpus"] == 1 and local["tasks_per_gpu"] == 1


HYDRA_APP = """
import hydra
{problem}
@hydra.main(version_base=None, config_path=None, config_name=None)
def main(cfg):
    print(cfg)
if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    "problem, said",
    [
        (
            "import torch_that_is_not_installed",
            "failed: ModuleNotFoundError: No module named 'torch_that_is_not_installed'",
        ),
        ('print("{{ not yaml")', "printed no YAML: while parsing a flow mapping"),
    ],
)
def test_init_over_a_hydra_app_that_cannot_say_its_keys_writes_an_example_grid(tmp_path, monkeypatch, problem, said):
    from click.testing import CliRunner

    from hsm_snake.cli.main import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(HYDRA_APP.format(problem=problem))
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    assert f"note: `app.py --cfg job` {said}" in result.output
    assert "sweep.yaml has an example grid instead" in result.output
    assert yaml.safe_load((tmp_path / "sweep.yaml").read_text())["grid"] == {"lr": [0.001, 0.01, 0.1], "seed": [1, 2]}
    assert (
        "How parameters reach the script, unless set here: hydra (app.py calls hydra.main)"
        in (tmp_path / "hsm.yaml").read_text()
    )
    refused = CliRunner().invoke(cli, ["init", "--force", "--script", "train.py"])
    assert refused.exit_code == 2 and f"--script train.py: {tmp_path / 'train.py'} does not exist" in refused.output


def test_init_sweeps_an_argparse_scripts_options_not_its_positionals_or_help_actions(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hsm_snake.cli.main import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(
        "import argparse\n"
        "p = argparse.ArgumentParser()\n"
        'p.add_argument("data")\n'
        'p.add_argument("-v", "--verbose", action="count", default=0)\n'
        'p.add_argument("--version", action="version", version="1")\n'
        'p.add_argument("--lr", type=float, default=0.1)\n'
        'p.add_argument("--fast", action="store_true")\n'
    )
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    assert yaml.safe_load((tmp_path / "sweep.yaml").read_text())["grid"] == {
        "lr": [0.01, 0.1, 1.0],
        "fast": [False, True],
    }
    # A script that does not parse yet: found by its import, an example grid, and validate does not trip on it.
    (tmp_path / "train.py").write_text('import argparse\np = argparse.ArgumentParser()\np.add_argument("--lr"\n')
    assert CliRunner().invoke(cli, ["init", "--force"]).exit_code == 0
    assert yaml.safe_load((tmp_path / "sweep.yaml").read_text())["grid"] == {"lr": [0.001, 0.01, 0.1], "seed": [1, 2]}
    checked = CliRunner().invoke(cli, ["validate", "sweep.yaml", "--strict"])
    assert checked.exit_code == 0 and "ok: 6 task(s)" in checked.output, checked.output
