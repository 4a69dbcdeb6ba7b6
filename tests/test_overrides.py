"""``--set KEY=VALUE``: parsed as YAML, checked against the schema (errors name the --set item), laid over hsm.yaml."""

from __future__ import annotations

import pytest
import yaml

from hsm_snake.config.overrides import flatten, merge, parse
from hsm_snake.config.project import load_project
from hsm_snake.errors import ConfigError


def test_values_are_yaml_but_times_stay_text():
    assert parse(["slurm.walltime=02:00:00", "local.visible_gpus=[0, 1]", "local.max_parallel=4"]) == {
        "slurm": {"walltime": "02:00:00"},
        "local": {"visible_gpus": [0, 1], "max_parallel": 4},
    }
    assert parse(["wandb.group=ablation v2", "wandb.group=ab"]) == {"wandb": {"group": "ab"}}  # later wins
    assert flatten({"local": {"visible_gpus": [0, 1]}, "wandb": {"group": "a b"}}) == [
        "local.visible_gpus=[0, 1]",
        "wandb.group=a b",
    ]


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("slurm.walltme=1", "unknown key 'walltme'"),
        ("local.max_parallel=many", "local.max_parallel"),
        ("noequals", "is not KEY=VALUE"),
        ("slurm..mem=1G", "is not KEY=VALUE"),
    ],
)
def test_mistakes_name_the_set_item(item, says):
    with pytest.raises(ConfigError) as error:
        parse([item])
    assert says in str(error.value) and "--set" in str(error.value)


def test_overrides_go_over_the_file_and_v1_keys_are_read(tmp_path):
    (tmp_path / "hsm.yaml").write_text(yaml.safe_dump({"slurm": {"walltime": "01:00:00", "partition": "gpu"}}))
    project = load_project(None, tmp_path, overrides=parse(["slurm.walltime=04:00:00", "hpc.default_queue=long"]))
    assert project.data["slurm"]["walltime"] == "04:00:00" and project.data["slurm"]["partition"] == "gpu"
    assert project.overrides == {"slurm": {"walltime": "04:00:00"}, "hpc": {"default_queue": "long"}}
    with pytest.raises(ConfigError, match=r"^--set: local.walltime"):
        load_project(None, tmp_path, overrides={"local": {"walltime": "soon"}})
    assert merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_a_quoted_part_may_hold_dots_and_use_names_known_remotes(tmp_path):
    items = ['distributed.remotes."gpu1.lab.org"={}', 'distributed.use=["gpu1.lab.org"]']
    parsed = parse([*items, 'distributed.remotes."gpu1.lab.org".gpus=1'])
    assert parsed == {"distributed": {"remotes": {"gpu1.lab.org": {"gpus": 1}}, "use": ["gpu1.lab.org"]}}
    assert flatten({"distributed": {"remotes": {"a.b": {"gpus": 1}}}}) == ['distributed.remotes."a.b".gpus=1']
    (tmp_path / "hsm.yaml").write_text("distributed:\n  remotes:\n    box: {host: box.lab}\n")
    project = load_project(None, tmp_path, overrides=parse(items))
    remotes = project.data["distributed"]["remotes"]
    assert remotes["box"]["host"] == "box.lab" and "host" not in remotes["gpu1.lab.org"]  # a bare ssh alias
    with pytest.raises(ConfigError, match="'nope' is not one of the remotes"):
        load_project(None, tmp_path, overrides=parse(["distributed.use=[nope]"]))


def test_complete_keeps_a_sweeps_settings_when_its_project_file_is_gone_but_set_needs_it(project):
    project.write_sweep({"grid": {"x": [1, 2]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s", "--max-tasks", "1")
    project_file = project.root / "hsm.yaml"
    project_file.unlink()
    out = project.cli("complete", "s", "--set", "local.max_parallel=1", expect=2).output
    assert f"--set: the project config this sweep came from, {project_file}, is gone" in out
    assert "hint: put the file back (or an hsm.yaml here) and run again" in out
    assert project.completions() == {"task_001": 1}
    # Without --set, the settings recorded in the sweep still run it.
    assert "2 completed" in project.cli("complete", "s").output
    assert project.completions() == {"task_001": 1, "task_002": 1}
