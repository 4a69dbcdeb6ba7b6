"""Hostile parameter values reach the user's script byte for byte, through the whole pipeline:
sweep.yaml → task_mapping/params.yaml → runner → argv (no shell) → the script's own parser."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml
from conftest import ARGV_APP, QUOTING_HOSTILE

HOSTILE = [*QUOTING_HOSTILE, "line\nbreak", "null", "1.5", "[1,2]", "a=b"]
LIST_VALUE = [64, "a b", "it's"]

HYDRA_APP = """
    import json, os
    import hydra
    from omegaconf import OmegaConf

    @hydra.main(version_base=None, config_path=".", config_name="app_config")
    def main(cfg):
        values = OmegaConf.to_container(cfg, resolve=True)
        out = os.path.join(values["output"]["dir"], "results", "seen.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(values["p"], f, ensure_ascii=False)

    main()
"""


def write_sweep(project, params: dict) -> None:
    # Each value is its own single-element grid axis: one task carries them all.
    project.write_sweep({"grid": {key: [value] for key, value in params.items()}})


def only_task_result(project):
    (sweep_dir,) = project.sweep_dirs()
    return json.loads((sweep_dir / "tasks" / "task_001" / "results" / "seen.json").read_text(encoding="utf-8"))


def test_hydra_app_receives_every_value_exactly(project):
    (project.root / "app.py").write_text(textwrap.dedent(HYDRA_APP))
    params = {f"p.v{i}": value for i, value in enumerate(HOSTILE)}
    params["p.listy"] = LIST_VALUE
    config = {"p": {key.split(".")[1]: None for key in params}, "output": {"dir": None}}
    (project.root / "app_config.yaml").write_text(yaml.safe_dump(config))
    project.write_project(
        {
            "paths": {"train_script": "app.py"},
            "task": {
                "arg_style": "hydra",
                "output_dir_arg": "output.dir",
                "extra_args": [
                    "hydra.run.dir=.",
                    "hydra.output_subdir=null",
                    "hydra/job_logging=disabled",
                    "hydra/hydra_logging=disabled",
                ],
            },
        }
    )
    write_sweep(project, params)
    project.cli("run", "sweep.yaml")
    seen = only_task_result(project)
    assert seen == {key.split(".")[1]: value for key, value in params.items()}


@pytest.mark.parametrize(
    "style, expected",
    [
        ("raw", [f"v{i}={value}" for i, value in enumerate(HOSTILE)] + ["listy=[64, 'a b', \"it's\"]"]),
        (
            "argparse",
            [item for i, value in enumerate(HOSTILE) for item in (f"--v{i}", value)] + ["--listy", "64", "a b", "it's"],
        ),
    ],
)
def test_argv_styles_arrive_byte_for_byte(project, style, expected):
    (project.root / "app.py").write_text(ARGV_APP)
    project.write_project({"paths": {"train_script": "app.py"}, "task": {"arg_style": style}})
    params = {f"v{i}": value for i, value in enumerate(HOSTILE)}
    params["listy"] = LIST_VALUE
    write_sweep(project, params)
    project.cli("run", "sweep.yaml")
    assert only_task_result(project) == expected


def test_pre_script_never_sees_parameter_values(project):
    (project.root / "app.py").write_text(ARGV_APP)
    project.write_project(
        {
            "paths": {"train_script": "app.py"},
            "task": {"arg_style": "raw"},
            "local": {"pre_script": 'export MARK=set; test "$#" -gt 0'},
        }
    )
    write_sweep(project, {"v": "$(touch pwned) `touch pwned2` ; exit 7"})
    project.cli("run", "sweep.yaml")
    assert only_task_result(project) == ["v=$(touch pwned) `touch pwned2` ; exit 7"]
    assert not (project.root / "pwned").exists() and not (project.root / "pwned2").exists()
