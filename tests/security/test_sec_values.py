"""Values that cannot become argv or environment are refused at planning, with their line; a
tampered params.yaml fails its task instead of leaving it 'running'."""

from __future__ import annotations

import pytest
import yaml
from conftest import read_status


@pytest.mark.parametrize("style", ["raw", "hydra", "argparse"])
def test_a_nul_byte_in_a_parameter_value_is_refused_at_its_line(project, style):
    project.write_project({"task": {"arg_style": style}})
    (project.root / "sweep.yaml").write_text('grid:\n  x: [1, 2]\n  name: ["ok", "bad\\0value"]\n')
    assert "NUL" in project.cli("validate", "sweep.yaml", expect=None).output
    result = project.cli("run", "sweep.yaml", expect=2)
    assert "sweep.yaml:3" in result.output and "NUL" in result.output
    assert project.runs() == []


HOSTILE_PROJECT = {
    "equals_sign_in_an_env_name": ('task:\n  env:\n    "A=B": "1"\n', "hsm.yaml:3", "environment variable's name"),
    "empty_env_name": ('task:\n  env:\n    "": "1"\n', "hsm.yaml:3", "environment variable's name"),
    "nul_in_an_env_value": ('task:\n  env:\n    A: "x\\0y"\n', "hsm.yaml:3", "NUL"),
    "nul_in_extra_args": ('task:\n  extra_args: ["a\\0b"]\n', "hsm.yaml:2", "NUL"),
    "nul_in_the_interpreter": ('paths:\n  python_interpreter: "py\\0thon"\n', "hsm.yaml:2", "NUL"),
    "nul_in_a_set_up_script": ('local:\n  pre_script: "module load\\0x"\n', "hsm.yaml:2", "NUL"),
}


@pytest.mark.parametrize("case", HOSTILE_PROJECT)
def test_a_value_that_cannot_be_argv_or_environment_is_refused_in_hsm_yaml(project, case):
    text, where, says = HOSTILE_PROJECT[case]
    base = "paths: {train_script: echo.py}\n" if "paths:" not in text else ""
    (project.root / "hsm.yaml").write_text(base + text)
    project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("validate", "sweep.yaml", expect=2)
    line = int(where.split(":")[1]) + (1 if base else 0)
    assert f"hsm.yaml:{line}" in result.output and says in result.output, result.output


def test_a_nul_byte_planted_in_params_yaml_fails_the_task_instead_of_leaving_it_running(project):
    project.write_sweep({"grid": {"x": [1, 2]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s")
    task = project.root / "sweeps" / "outputs" / "s" / "tasks" / "task_002"
    (task / ".completed").unlink()
    (task / "status.yaml").unlink()
    (task / "params.yaml").write_text(yaml.safe_dump({"x": "2\0"}))
    project.cli("complete", "s", "--no-retry-failed", expect=1)
    status = read_status(task)
    assert status["status"] == "failed" and status["error_category"] == "launch_error"
    assert "null byte" in status["error_summary"]
