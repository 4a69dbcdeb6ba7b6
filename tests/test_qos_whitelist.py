"""v1's ``qos_whitelist``: a QOS the run asks for outside the list is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep
from hsm_snake.config.validation import qos_errors
from hsm_snake.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HSM = """\
paths: {train_script: train.py}
slurm:
  qos: QOS
  qos_whitelist: [normal, medium, long]
"""


def errors(tmp_path: Path, qos: str, overrides: dict | None = None, sweep: str | None = None) -> list[ConfigError]:
    path = write(tmp_path / "hsm.yaml", HSM.replace("QOS", qos))
    spec = load_sweep(write(tmp_path / "sweep.yaml", sweep)) if sweep else None
    return qos_errors(load_project(path, cwd=tmp_path, overrides=overrides), spec)


def test_a_listed_qos_passes_and_a_typo_is_named_with_the_list_and_a_guess(tmp_path):
    assert errors(tmp_path, "medium") == []
    [error] = errors(tmp_path, "nromal")
    assert error.file == str(tmp_path / "hsm.yaml") and error.key == "slurm.qos" and error.line == 3
    assert "'nromal' is not in slurm.qos_whitelist (normal, medium, long)" in error.message
    assert "did you mean 'normal'?" in error.hint


def test_the_qos_of_set_and_of_the_sweep_file_is_checked_where_it_was_given(tmp_path):
    [error] = errors(tmp_path, "normal", overrides={"slurm": {"qos": "lng"}})
    assert (error.file, error.key, error.line) == ("--set", "slurm.qos", None) and "'long'" in error.hint
    assert errors(tmp_path, "nromal", overrides={"slurm": {"qos": "long"}}) == []
    [error] = errors(tmp_path, "normal", sweep="grid: {lr: [1]}\nresources:\n  slurm: {qos: gpu}\n")
    assert error.file == str(tmp_path / "sweep.yaml") and error.key == "resources.slurm.qos" and error.line == 3
    assert "did you mean" not in error.hint and "normal, medium, long" in error.hint


@pytest.mark.parametrize("whitelist", ["[]", "null"])
def test_an_empty_list_guards_nothing_and_no_qos_is_never_refused(tmp_path, whitelist):
    path = write(tmp_path / "hsm.yaml", f"slurm: {{qos: anything, qos_whitelist: {whitelist}}}\n")
    assert qos_errors(load_project(path, cwd=tmp_path), None) == []
    path = write(tmp_path / "hsm.yaml", "slurm: {qos_whitelist: [normal]}\n")
    assert qos_errors(load_project(path, cwd=tmp_path), None) == []


def test_a_whitelist_must_be_a_list_of_names(tmp_path):
    path = write(tmp_path / "hsm.yaml", "slurm: {qos_whitelist: normal}\n")
    with pytest.raises(ConfigError) as error:
        load_project(path, cwd=tmp_path)
    assert error.value.key == "slurm.qos_whitelist" and error.value.line == 1


def test_a_slurm_remote_is_checked_against_its_own_v1_list_only(tmp_path):
    path = write(
        tmp_path / ".hsm" / "config.yaml",
        """\
slurm: {qos: normal, qos_whitelist: [normal]}
distributed:
  remotes:
    box: {host: box, qos_whitelist: [normal]}
    cluster:
      backend: slurm
      host: cluster
      qos_whitelist: [short, medium]
      spec: {qos: meduim}
    other: {backend: slurm, host: other, slurm: {qos: gpu}}
""",
    )
    project = load_project(path, cwd=tmp_path)
    remotes = project.section("distributed")["remotes"]
    assert remotes["cluster"]["slurm"]["qos_whitelist"] == ["short", "medium"] and "qos_whitelist" not in remotes["box"]
    notices = "\n".join(project.notices)
    assert "'distributed.remotes.box.qos_whitelist' is ignored: an SSH host has no scheduler" in notices
    # 'other' asks for gpu: the top-level list is not applied to a remote (as in v1).
    [error] = qos_errors(project, None)
    assert error.key == "distributed.remotes.cluster.spec.qos" and error.line == 9
    assert "not in distributed.remotes.cluster.slurm.qos_whitelist (short, medium)" in error.message
    assert "did you mean 'medium'?" in error.hint
    fixed = load_project(
        path, cwd=tmp_path, overrides={"distributed": {"remotes": {"cluster": {"slurm": {"qos": "short"}}}}}
    )
    assert qos_errors(fixed, None) == []


def test_run_and_validate_refuse_it_with_exit_2_and_write_nothing(project):
    project.write_project({"slurm": {"qos": "normal", "qos_whitelist": ["normal", "long"]}})
    sweep = project.write_sweep({"grid": {"lr": [1, 2]}})
    project.cli("validate", str(sweep))
    refused = project.cli("run", str(sweep), "--dry-run", "--set", "slurm.qos=lnog", expect=2)
    assert "--set: slurm.qos: QOS 'lnog' is not in slurm.qos_whitelist (normal, long)" in refused.output
    assert "did you mean 'long'?" in refused.output and "Traceback" not in refused.output
    project.write_project({"slurm": {"qos": "debug", "qos_whitelist": ["normal", "long"]}})
    refused = project.cli("validate", str(sweep), expect=2)
    assert "slurm.qos: QOS 'debug' is not in slurm.qos_whitelist" in refused.output
    project.cli("run", str(sweep), expect=2)
    assert project.sweep_dirs() == [] and not project.run_log.exists()
