"""Apps written the way users write them, set up with `hsm-snake init` alone, run for real, and
checked from what the app itself saw: a Hydra app with a config group and nested keys, a Hydra
structured-config app, an argparse script with store_true flags and typed options, and a v1
project's key=value script. The project folder has a space and a quote in its name."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hsm_snake.cli.main import cli

HOSTILE_NAMES = ["two words", 'it\'s "quoted"', "$HOME and ${HOME}", "ünïcødé 🚀"]

HYDRA_GROUP_APP = """
    import json
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf


    @hydra.main(version_base=None, config_path="conf", config_name="config")
    def main(cfg):
        out = HydraConfig.get().runtime.output_dir
        with open(f"{out}/model.txt", "w") as f:
            f.write(cfg.run_name)
        print(json.dumps({"loss": cfg.optim.lr * cfg.db.port}))


    if __name__ == "__main__":
        main()
"""
HYDRA_CONFIG = """
    defaults:
      - db: mysql
      - _self_
    optim:
      lr: 0.01
      momentum: 0.9
    seed: 0
    run_name: baseline
"""

STRUCTURED_APP = """
    from dataclasses import dataclass, field
    import hydra
    from hydra.core.config_store import ConfigStore


    @dataclass
    class Optimizer:
        lr: float = 0.001
        betas: tuple = (0.9, 0.999)


    @dataclass
    class Config:
        optimizer: Optimizer = field(default_factory=Optimizer)
        tag: str = "default"
        epochs: int = 3
        use_amp: bool = False


    ConfigStore.instance().store(name="config", node=Config)


    @hydra.main(version_base=None, config_name="config")
    def train(cfg: Config) -> None:
        print(f"training {cfg.tag} for {cfg.epochs} epochs")


    if __name__ == "__main__":
        train()
"""

ARGPARSE_APP = """
    import argparse
    import json


    def parse():
        parser = argparse.ArgumentParser(description="train a model")
        parser.add_argument("--lr", type=float, default=0.1, help="learning rate")
        parser.add_argument("--epochs", type=int, default=2)
        parser.add_argument("--run-name", default="baseline")
        parser.add_argument("--use-amp", action="store_true", help="mixed precision")
        parser.add_argument("--no-shuffle", action="store_true")
        return parser.parse_args()


    if __name__ == "__main__":
        args = parse()
        print("arguments:", json.dumps(vars(args), ensure_ascii=False))
"""

LIST_APP = """
    import argparse
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, nargs="+", default=[32])
    parser.add_argument("--names", nargs="*", default=["unset"])
    parser.add_argument("--tag", action="append")
    args = parser.parse_args()
    print("arguments:", json.dumps(vars(args), ensure_ascii=False))
"""

V1_SCRIPT = """
    # A script in v1's contract: key=value arguments, its outputs in output.dir.
    import json
    import sys
    from pathlib import Path

    params = dict(arg.split("=", 1) for arg in sys.argv[1:])
    out = Path(params["output.dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "seen.json").write_text(json.dumps(sys.argv[1:], ensure_ascii=False), encoding="utf-8")
"""
V1_CONFIG = """
    project:
      name: legacy
    paths:
      python_interpreter: {python}
      train_script: scripts/train.py
      output_dir: outputs
    local:
      max_parallel: 2
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder whose path has a space and a quote."""
    root = tmp_path / "lab's projects" / "my app"
    root.mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def hsm(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, f"exit {result.exit_code}\n{result.output}"
    return result


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_dir()}


def run_sweep(root: Path, grid: dict) -> Path:
    """Replace the grid of init's sweep.yaml, run it, and return the one sweep directory; assert
    that nothing else was written in the project."""
    sweep = yaml.safe_load((root / "sweep.yaml").read_text(encoding="utf-8"))
    sweep["grid"] = grid
    (root / "sweep.yaml").write_text(yaml.safe_dump(sweep, allow_unicode=True, sort_keys=False), encoding="utf-8")
    before = files_under(root)
    hsm("run", "sweep.yaml")
    new = files_under(root) - before
    (sweep_dir,) = {p for p in new if p.parent.name == "outputs" and p.name.startswith("sweep_")}
    outside = sorted(str(p) for p in new if sweep_dir not in (p, *p.parents) and p not in sweep_dir.parents)
    assert not outside, f"written outside the sweep directory: {outside}"
    return sweep_dir


def hydra_record(task: Path, name: str) -> dict:
    """The app's own record .hydra/<name>.yaml, as the app reads it (OmegaConf, resolved)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(task / ".hydra" / f"{name}.yaml"), resolve=name == "config")


def task_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((sweep_dir / "tasks").iterdir())


def test_hydra_app_with_a_config_group_and_nested_keys(folder):
    write(folder / "my_app.py", HYDRA_GROUP_APP)
    write(folder / "conf" / "config.yaml", HYDRA_CONFIG)
    write(folder / "conf" / "db" / "mysql.yaml", "driver: mysql\nport: 3306\n")
    write(folder / "conf" / "db" / "postgresql.yaml", "driver: postgresql\nport: 5432\n")
    hsm("init")
    written = (folder / "sweep.yaml").read_text(encoding="utf-8")
    assert "db: [mysql, postgresql]" in written and "optim.lr: [0.001, 0.01, 0.1]" in written
    assert "# optim.momentum: [0.9]" in written and "run_name" in written
    assert "config_dir: conf" in (folder / "hsm.yaml").read_text(encoding="utf-8")

    sweep_dir = run_sweep(folder, {"db": ["mysql", "postgresql"], "optim.lr": [0.5], "run_name": HOSTILE_NAMES})
    seen = []
    for task in task_dirs(sweep_dir):
        # What the app composed, in its own record inside the task folder.
        config = hydra_record(task, "config")
        hydra = hydra_record(task, "hydra")["hydra"]
        assert hydra["run"]["dir"] == str(task) and hydra["runtime"]["output_dir"] == str(task)
        assert (task / "model.txt").read_text(encoding="utf-8") == config["run_name"]
        assert (task / "my_app.log").exists() and "output" not in config
        assert config["db"]["port"] == {"mysql": 3306, "postgresql": 5432}[config["db"]["driver"]]
        assert config["optim"] == {"lr": 0.5, "momentum": 0.9}
        seen.append((hydra["runtime"]["choices"]["db"], config["run_name"]))
    assert sorted(seen) == sorted((db, name) for db in ("mysql", "postgresql") for name in HOSTILE_NAMES)
    assert not (folder / "outputs").exists()


def test_hydra_structured_config_app(folder):
    write(folder / "app.py", STRUCTURED_APP)
    hsm("init")
    written = (folder / "sweep.yaml").read_text(encoding="utf-8")
    assert "optimizer.lr: [0.0001, 0.001, 0.01]" in written and "# epochs: [3]" in written
    assert "# arg_style: hydra" in (folder / "hsm.yaml").read_text(encoding="utf-8")
    hsm("validate", "sweep.yaml", "--deep")

    sweep_dir = run_sweep(folder, {"tag": HOSTILE_NAMES, "optimizer.lr": [0.02], "use_amp": [True]})
    tags = []
    for task in task_dirs(sweep_dir):
        config = hydra_record(task, "config")
        assert config["optimizer"]["lr"] == 0.02 and config["use_amp"] is True and config["epochs"] == 3
        assert (task / "stdout.log").read_text(encoding="utf-8") == f"training {config['tag']} for 3 epochs\n"
        tags.append(config["tag"])
    assert sorted(tags) == sorted(HOSTILE_NAMES)


def test_argparse_script_with_flags_and_typed_options(folder):
    write(folder / "train.py", ARGPARSE_APP)
    hsm("init")
    written = (folder / "sweep.yaml").read_text(encoding="utf-8")
    assert "lr: [0.01, 0.1, 1.0]" in written and "use-amp: [false, true]" in written
    assert "# run-name: [baseline]" in written and "# no-shuffle: [false]" in written

    sweep_dir = run_sweep(folder, {"run-name": HOSTILE_NAMES[:2], "use-amp": [True, False], "epochs": [5]})
    seen = []
    for task in task_dirs(sweep_dir):
        line = (task / "stdout.log").read_text(encoding="utf-8").strip()
        args = json.loads(line.removeprefix("arguments: "))
        assert args["epochs"] == 5 and args["lr"] == 0.1 and args["no_shuffle"] is False
        seen.append((args["run_name"], args["use_amp"]))
    assert sorted(seen) == sorted((name, amp) for name in HOSTILE_NAMES[:2] for amp in (True, False))


def test_v1_project_keeps_its_config_and_gets_v1_arguments(folder):
    write(folder / "scripts" / "train.py", V1_SCRIPT)
    write(folder / "sweeps" / "hsm_config.yaml", V1_CONFIG.format(python=sys.executable))
    result = hsm("init")
    assert "sweeps/hsm_config.yaml is this project's config (v1)" in result.output
    assert not (folder / "hsm.yaml").exists()

    sweep_dir = run_sweep(folder, {"name": HOSTILE_NAMES, "lr": [0.1]})
    names = []
    for task in task_dirs(sweep_dir):
        params = yaml.safe_load((task / "params.yaml").read_text(encoding="utf-8"))
        seen = json.loads((task / "seen.json").read_text(encoding="utf-8"))
        # v1's command line: parameters, wandb.group=<sweep id>, output.dir=<task folder>.
        assert seen == [f"name={params['name']}", "lr=0.1", f"wandb.group={sweep_dir.name}", f"output.dir={task}"]
        names.append(params["name"])
    assert sorted(names) == sorted(HOSTILE_NAMES)
    assert "'" in str(sweep_dir) and " " in str(sweep_dir)  # the path went through unquoted


def test_task_workdir_keeps_relative_outputs_of_parallel_tasks_apart(folder):
    write(folder / "train.py", 'import sys\nopen("model.pt", "w").write(" ".join(sys.argv[1:]))\n')
    hsm("init")
    config = (folder / "hsm.yaml").read_text(encoding="utf-8")
    (folder / "hsm.yaml").write_text(config.replace("workdir: project", "workdir: task"), encoding="utf-8")
    sweep_dir = run_sweep(folder, {"seed": [1, 2]})
    assert [(t / "model.pt").read_text() for t in task_dirs(sweep_dir)] == [
        f"seed={seed} output.dir={t}" for seed, t in zip((1, 2), task_dirs(sweep_dir), strict=True)
    ]


def test_init_asks_for_the_script_when_several_could_be_it(folder):
    write(folder / "pretrain.py", ARGPARSE_APP)
    write(folder / "finetune.py", ARGPARSE_APP)
    write(folder / "utils.py", "def helper():\n    return 1\n")
    refused = hsm("init", expect=2)
    assert "finetune.py, pretrain.py" in refused.output and "--script" in refused.output
    assert not (folder / "hsm.yaml").exists()
    hsm("init", "--script", "finetune.py")
    assert "train_script: finetune.py" in (folder / "hsm.yaml").read_text(encoding="utf-8")


def test_init_in_a_terminal_asks_which_script_and_takes_the_answer(folder):
    """At a terminal, init asks (a real pseudo-terminal: the prompt needs one) instead of refusing."""
    import os
    import pty
    import select

    def read_until(terminal: int, seen: bytes, done) -> bytes:
        while not done(seen):
            ready, _, _ = select.select([terminal], [], [], 120)
            try:
                chunk = os.read(terminal, 1024) if ready else b""
            except OSError:  # Linux: reading a terminal whose other side closed
                chunk = b""
            if not chunk:  # the child closed the terminal, or no word from it in two minutes
                return seen
            seen += chunk
        return seen

    write(folder / "pretrain.py", ARGPARSE_APP)
    write(folder / "finetune.py", ARGPARSE_APP)
    pid, terminal = pty.fork()
    if pid == 0:  # the child: hsm-snake init with the pseudo-terminal as its stdin/stdout
        os.execv(sys.executable, [sys.executable, "-c", "from hsm_snake.cli.main import cli; cli(['init'])"])
    prompt = b"which script is swept?"
    seen = read_until(terminal, b"", lambda seen: prompt in seen)
    os.write(terminal, b"pretraim.py\r")  # not one of the choices: asked again
    seen = read_until(terminal, seen, lambda seen: seen.count(prompt) >= 2)
    os.write(terminal, b"pretrain.py\r")
    seen = read_until(terminal, seen, lambda seen: False)
    _, status = os.waitpid(pid, 0)
    text = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "finetune.py, pretrain.py" in text and "not one of" in text and "wrote" in text
    assert "train_script: pretrain.py" in (folder / "hsm.yaml").read_text(encoding="utf-8")


# --- refused before anything runs -------------------------------------------------------------


def test_a_misspelled_script_is_refused_naming_the_sweep_key(folder):
    write(folder / "train.py", ARGPARSE_APP)
    hsm("init")
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text(encoding="utf-8"))
    (folder / "typo.yaml").write_text(
        yaml.safe_dump({"script": "trian.py", **sweep}, sort_keys=False), encoding="utf-8"
    )
    for command in (["run", "typo.yaml"], ["validate", "typo.yaml"], ["run", "typo.yaml", "--dry-run"]):
        refused = hsm(*command, expect=2)
        assert "typo.yaml:1: script: the script" in refused.output and "trian.py does not exist" in refused.output
        assert "did you mean 'train.py'" in refused.output
    assert not (folder / "sweeps").exists()


def test_no_script_and_a_missing_interpreter_are_refused(folder):
    (folder / "sweep.yaml").write_text("grid: {lr: [0.1]}\n")
    (folder / "hsm.yaml").write_text("local: {max_parallel: 1}\n")
    refused = hsm("run", "sweep.yaml", expect=2)
    assert "paths.train_script: no script to run" in refused.output
    (folder / "train.py").write_text("print(1)\n")
    (folder / "hsm.yaml").write_text("paths: {train_script: train.py, python_interpreter: venv/bin/python}\n")
    refused = hsm("run", "sweep.yaml", expect=2)
    assert "hsm.yaml:1: paths.python_interpreter:" in refused.output and "venv/bin/python" in refused.output
    assert not (folder / "sweeps").exists()


def test_validate_deep_lets_the_hydra_app_refuse_a_key(folder):
    write(folder / "app.py", STRUCTURED_APP)
    hsm("init")
    (folder / "bad.yaml").write_text("grid: {optimizer.lrr: [0.1]}\n")
    refused = hsm("validate", "bad.yaml", "--deep", expect=2)
    assert "Could not override 'optimizer.lrr'" in refused.output and "+key" in refused.output
    hsm("validate", "bad.yaml")  # without --deep the app is not asked
    assert not (folder / "sweeps").exists() and not (folder / "outputs").exists()


# --- triage points at the setting -------------------------------------------------------------


def run_and_triage(folder: Path, sweep_file: str) -> str:
    """Run a sweep whose tasks all fail; `hsm-snake errors` of that sweep."""
    before = set((folder / "sweeps" / "outputs").glob("sweep_*"))
    hsm("run", sweep_file, expect=1)
    (sweep_dir,) = set((folder / "sweeps" / "outputs").glob("sweep_*")) - before
    return hsm("errors", str(sweep_dir)).output


def test_an_output_dir_argument_the_app_lacks_is_triaged_to_the_setting(folder):
    write(folder / "train.py", ARGPARSE_APP)
    write(folder / "app.py", STRUCTURED_APP)
    hsm("init", "--script", "train.py")
    config = (folder / "hsm.yaml").read_text(encoding="utf-8")
    config = config.replace("# output_dir_arg: output.dir", "output_dir_arg: output.dir")
    (folder / "hsm.yaml").write_text(config, encoding="utf-8")
    (folder / "sweep.yaml").write_text("grid: {lr: [0.1]}\n")
    report = run_and_triage(folder, "sweep.yaml")
    assert "unrecognized arguments: --output.dir" in report and "task.output_dir_arg: null" in report

    (folder / "hydra.yaml").write_text("script: app.py\ngrid: {optimizer.lr: [0.1]}\n")
    report = run_and_triage(folder, "hydra.yaml")
    assert "Could not override 'output.dir'" in report and "task.output_dir_arg: null" in report
    assert "hydra.run.dir=<task folder>" in report


def test_python_can_t_open_file_is_a_missing_file_naming_the_path(tmp_path):
    from hsm_snake.runner import failures

    missing = tmp_path / "lab's dir" / "trian.py"
    done = subprocess.run([sys.executable, str(missing)], capture_output=True, text=True, check=False)
    failure = failures.classify(done.returncode, timed_out=False, timeout_s=None, stderr_tail=done.stderr)
    assert failure.category == failures.MISSING_FILE and str(missing) in failure.summary


def test_bool_style_value_keeps_flag_values(folder):
    write(
        folder / "train.py", 'import sys\nprint(" ".join(sys.argv[1:]))\nimport argparse\nargparse.ArgumentParser()\n'
    )
    hsm("init")
    (folder / "hsm.yaml").write_text(
        (folder / "hsm.yaml")
        .read_text(encoding="utf-8")
        .replace("workdir: project", "workdir: project\n  bool_style: value")
    )
    sweep_dir = run_sweep(folder, {"fast": [True, False]})
    assert [(t / "stdout.log").read_text().strip() for t in task_dirs(sweep_dir)] == ["--fast true", "--fast false"]


def parsed_arguments(sweep_dir: Path) -> list[dict]:
    return [
        json.loads((task / "stdout.log").read_text(encoding="utf-8").strip().removeprefix("arguments: "))
        for task in task_dirs(sweep_dir)
    ]


def test_argparse_lists_reach_nargs_and_append_options(folder):
    write(folder / "train.py", LIST_APP)
    hsm("init")
    names = [*HOSTILE_NAMES, "", "true"]
    sweep_dir = run_sweep(folder, {"layers": [[64, 128], [256]], "names": [names, []]})
    seen = [(args["layers"], args["names"], args["tag"]) for args in parsed_arguments(sweep_dir)]
    assert sorted(map(repr, seen)) == sorted(
        repr((layers, chosen, None)) for layers in ([64, 128], [256]) for chosen in (names, [])
    )

    (folder / "hsm.yaml").write_text(
        (folder / "hsm.yaml")
        .read_text(encoding="utf-8")
        .replace("workdir: project", "workdir: project\n  list_style: append")
    )
    sweep_dir = run_sweep(folder, {"tag": [[*HOSTILE_NAMES, "-x", True], []]})
    seen = [(args["layers"], args["names"], args["tag"]) for args in parsed_arguments(sweep_dir)]
    assert sorted(map(repr, seen)) == sorted(
        repr(([32], ["unset"], tag)) for tag in ([*HOSTILE_NAMES, "-x", "true"], None)
    )
