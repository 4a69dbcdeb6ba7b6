"""Sweep directory layout: ids that never collide, task numbers that never shift."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from hsm_snake import sweeps
from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep
from hsm_snake.errors import ConfigError
from hsm_snake.layout.index import format_task_selection, load_index, parse_task_selection
from hsm_snake.layout.records import read_json_document
from hsm_snake.sweep import create as layout


def create(project, data, sweep_id="s"):
    sweep = project.write_sweep(data)
    return sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], sweep_id)


def test_two_sweeps_in_the_same_second_get_distinct_ids(tmp_path):
    ids = {layout.allocate_sweep_dir(tmp_path, None).sweep_id for _ in range(5)}
    assert len(ids) == 5
    stamp = datetime.now().strftime("sweep_%Y%m%d_")
    assert all(i.startswith(stamp) for i in ids)


def test_reexpanding_an_edited_sweep_keeps_numbers_and_appends(project):
    first = create(project, {"grid": {"lr": [0.1, 0.2], "bs": [8, 16]}})
    numbers = {json.dumps(t.params, sort_keys=True): t.name for t in first.active()}
    params_mtime = (first.paths.task("task_001").params).stat().st_mtime_ns
    # Insert a value in the middle of one axis and drop another: v1's positional ids would shift.
    second = create(project, {"grid": {"lr": [0.05, 0.1, 0.2], "bs": [16]}})
    for entry in second.active():
        key = json.dumps(entry.params, sort_keys=True)
        if key in numbers:
            assert entry.name == numbers[key]
    assert [t.name for t in second.active()] == ["task_002", "task_004", "task_005"]
    new = second.tasks["task_005"]
    assert new.params == {"lr": 0.05, "bs": 16}
    retired = {name for name, t in second.tasks.items() if t.retired}
    assert retired == {"task_001", "task_003"}
    assert (first.paths.task("task_001").params).stat().st_mtime_ns == params_mtime
    mapping = read_json_document(second.paths.task_mapping)
    assert mapping["tasks"]["task_001"]["retired"] is True
    # Bringing a value back revives its old number.
    third = create(project, {"grid": {"lr": [0.1], "bs": [8]}})
    assert [t.name for t in third.active()] == ["task_001"]


def test_task_mapping_is_valid_yaml_and_round_trips(project):
    import yaml

    index = create(project, {"grid": {"name": ["it's", "é"], "x": [[1, 2]]}})
    as_yaml = yaml.safe_load(index.paths.task_mapping.read_text())
    assert as_yaml["tasks"]["task_001"]["params"] == {"name": "it's", "x": [1, 2]}
    assert load_index(index.paths.root).tasks["task_002"].params == {"name": "é", "x": [1, 2]}


def test_metadata_records_command_versions_and_git(project):
    import subprocess

    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    subprocess.run(
        ["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x"],
        cwd=project.root,
        check=True,
    )
    (project.root / "dirty.txt").write_text("uncommitted")
    subprocess.run(["git", "add", "dirty.txt"], cwd=project.root, check=True)
    index = create(project, {"grid": {"a": [1]}})
    import yaml

    meta = yaml.safe_load(index.paths.metadata.read_text())
    assert meta["command"] == ["test"]
    assert meta["versions"]["snakemake"].startswith("9.")
    assert meta["git"]["dirty"] is True and len(meta["git"]["commit"]) == 40
    assert "uncommitted" in (index.paths.root / meta["git"]["diff"]).read_text()


@pytest.mark.parametrize("text, expected", [("1,5,10-12", {1, 5, 10, 11, 12}), (" 3 ", {3}), ("2-2", {2})])
def test_task_selection(text, expected):
    assert parse_task_selection(text) == expected


@pytest.mark.parametrize("text, fix", [("1,a", "e.g. 1,5,10-20"), ("5-2", "write it as 2-5"), ("", "e.g.")])
def test_bad_task_selection(text, fix):
    with pytest.raises(ConfigError) as err:
        parse_task_selection(text)
    assert fix in str(err.value)


def test_compress_selection():
    assert format_task_selection([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8"
    assert parse_task_selection(format_task_selection(list(range(1, 10001, 2)))) == set(range(1, 10001, 2))


def test_value_the_script_cannot_receive_is_refused_before_anything_is_written(project):
    project.write_project({"task": {"arg_style": "hydra"}})
    sweep = project.write_sweep({"grid": {"name": ["ok", "???"]}})
    result = project.cli("run", str(sweep), expect=2)
    assert "task_002" in result.output and "name" in result.output and "arg_style" in result.output
    assert "Traceback" not in result.output
    assert not (project.root / "sweeps").exists()


def test_profile_hpc_picks_the_scheduler_on_path(tmp_path, monkeypatch):
    from hsm_snake.engine.command import resolve_profile

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ConfigError) as err:
        resolve_profile("hpc")
    assert "neither sbatch" in str(err.value)
    (bin_dir / "qsub").write_text("#!/bin/sh\n")
    (bin_dir / "qsub").chmod(0o755)
    assert resolve_profile("hpc").name == "pbs"
    (bin_dir / "sbatch").write_text("#!/bin/sh\n")
    (bin_dir / "sbatch").chmod(0o755)
    assert resolve_profile("hpc").name == "slurm"


def test_unknown_profile_suggests_the_close_one():
    from hsm_snake.engine.command import resolve_profile

    with pytest.raises(ConfigError) as err:
        resolve_profile("slrum")
    assert "did you mean 'slurm'" in str(err.value)


def test_task_files_name_what_task_paths_name(tmp_path):
    """The strings for loops over a whole sweep are the same files as the Path API's."""
    from pathlib import Path

    from hsm_snake.layout.paths import SweepPaths

    paths = SweepPaths(tmp_path / "my sweep")
    files = paths.task_files
    task = paths.task("task_042")
    assert files.dir("task_042") == str(task.dir)
    assert files.status("task_042") == str(task.status)
    assert files.marker("task_042") == str(task.marker)
    assert files.metrics("task_042") == str(task.metrics)
    assert files.attempt_status("task_042", 2) == str(task.attempt_status(2))
    assert Path(files.attempt_status("task_042", 2)).relative_to(task.attempts) == Path("2/status.yaml")


def test_a_profile_folder_of_the_users_own_runs_the_sweep(project):
    from hsm_snake.engine.command import resolve_profile

    own = project.root / "my profiles" / "laptop"
    own.mkdir(parents=True)
    (own / "config.yaml").write_text("executor: local\nlatency-wait: 0\nprintshellcmds: true\n")
    assert resolve_profile(str(own)) == own.resolve()
    assert resolve_profile(str(own / "config.yaml")) == own.resolve()
    with pytest.raises(ConfigError, match="no profile named"):
        resolve_profile(str(project.root / "my profiles"))  # a folder without config.yaml

    project.write_sweep({"grid": {"x": [1, 2]}})
    project.cli("run", "sweep.yaml", "--profile", "my profiles/laptop/config.yaml", "--sweep-id", "s")
    assert project.completions() == {"task_001": 1, "task_002": 1}
    assert (
        "with profile my profiles/laptop/config.yaml" in (project.root / "sweeps/outputs/s/logs/sweep.log").read_text()
    )


def test_task_lists_from_a_file_are_checked_line_by_line(project):
    project.write_sweep({"grid": {"x": list(range(1, 7))}})
    project.cli("run", "sweep.yaml", "--max-tasks", "1", "--sweep-id", "s")
    (project.root / "redo.txt").write_text("# redo these\n2\n\n3-4, 6  # and six\n")
    out = project.cli("complete", "s", "--tasks", "@redo.txt", "--dry-run").output
    assert all(f"task_00{n}" in out for n in (2, 3, 4, 6)) and "task_005" not in out
    (project.root / "bad.txt").write_text("2\n4-x\n")
    out = project.cli("complete", "s", "--tasks", "@bad.txt", expect=2).output
    assert "bad.txt:2: tasks: cannot read task selection part '4-x'" in out and "e.g. 1,5,10-20" in out
    (project.root / "empty.txt").write_text("# nothing yet\n\n")
    out = project.cli("complete", "s", "--tasks", "@empty.txt", expect=2).output
    assert "lists no task numbers" in out and "one number or range (10-20) a line" in out
    out = project.cli("complete", "s", "--tasks", "5,9-12", expect=2).output
    assert "no such task number(s) in sweep s: 9, 10, 11, 12" in out
    assert "task numbers of this sweep run from 1 to 6" in out
    assert project.completions() == {"task_001": 1}


@pytest.mark.parametrize(
    "mapping, project_config, problem",
    [
        ("{}", None, "task_mapping.yaml is damaged: missing 'tasks'"),
        ('{"tasks": {"task_001": {}}}', None, "task_mapping.yaml is damaged: missing 'hash'"),
        ('{"tasks": {"../x": {"hash": "h"}}}', None, "'../x' is not a task name"),
        ('{"tasks": {}}', "[1, 2]\n", "project_config.yaml is damaged: not a mapping"),
        ('{"tasks": {}}', "a: [1\n", "cannot read"),
    ],
)
def test_a_damaged_sweep_folder_is_named_not_a_traceback(tmp_path, mapping, project_config, problem):
    from hsm_snake.errors import SweepStateError

    (tmp_path / "task_mapping.yaml").write_text(mapping)
    if project_config is not None:
        (tmp_path / "project_config.yaml").write_text(project_config)
    with pytest.raises(SweepStateError) as err:
        load_index(tmp_path)
    assert problem in str(err.value)
    with pytest.raises(SweepStateError, match="has no task_mapping.yaml"):
        load_index(tmp_path / "elsewhere")
