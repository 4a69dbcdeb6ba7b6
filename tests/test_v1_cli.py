"""v1's ``hsm`` command lines: every form runs its hsm-snake equivalent or names it (never a bare click error)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
import pytest
import yaml
from click.core import ParameterSource
from click.testing import CliRunner
from conftest import on_testbed, read_status, remote_name

from hsm_snake.cli import v1 as v1_module
from hsm_snake.cli.main import cli as hsm_snake_cli
from hsm_snake.cli.v1 import FORMS, HINT_EXIT, compat_markdown, hsm, translate, walk

DOC = Path(__file__).resolve().parent.parent / "docs" / "v1-commands.md"
ALL_FORMS = [form for path, _ in walk() for form in FORMS.get(path, [])]


def v1(*args: str, expect: int = 0):
    result = CliRunner().invoke(hsm, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def parse_hsm_snake(argv: list[str]) -> click.Context:
    """hsm-snake's own parsing of ``argv`` (options, choices, callbacks such as --set's schema check), not run."""
    command, name, args = hsm_snake_cli, "hsm-snake", list(argv)
    while True:
        ctx = command.make_context(name, args)
        if not isinstance(command, click.Group):
            return ctx
        name, command, args = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])


# -- the table: every v1 command and option ------------------------------------------------------------


def test_every_v1_command_and_option_has_a_form():
    """A new v1 command or option without a row in FORMS fails here (so the docs table stays complete)."""
    used: dict[int, set[str]] = {}
    for path, command in walk():
        assert FORMS.get(path), f"hsm {path} has no example form in FORMS"
        for form in FORMS[path]:
            words = shlex.split(form)
            sub = command.make_context(path, words[len(path.split()) :])
            given = {p.name for p in command.params if sub.get_parameter_source(p.name) == ParameterSource.COMMANDLINE}
            used.setdefault(id(command), set()).update(given)
    assert set(FORMS) == {path for path, _ in walk()}, "FORMS names a command hsm does not have"
    for path, command in walk():
        names = {p.name for p in command.params if p.name not in ("sub_verbose", "sub_quiet", "args")}
        missing = names - used[id(command)]
        assert not missing, f"hsm {path}: no form uses {sorted(missing)}"


@pytest.mark.parametrize("form", ALL_FORMS)
def test_every_v1_form_maps_onto_a_valid_hsm_snake_command(form, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "failed_tasks.txt").write_text("# from v1\n3\n5-7\n")
    translation = translate(form)  # a click usage error of the v1 form raises here
    assert translation.argv or translation.hint, form
    if translation.argv:
        parse_hsm_snake(translation.argv)  # and of the hsm-snake command it runs or names


def test_the_docs_table_is_generated_from_the_code():
    text = DOC.read_text(encoding="utf-8")
    begin, end = "<!-- BEGIN v1-commands (generated) -->\n", "<!-- END v1-commands -->"
    assert text[text.index(begin) + len(begin) : text.index(end)] == compat_markdown(), (
        "docs/v1-commands.md is stale: python -m hsm_snake.cli.v1 --write-docs docs/v1-commands.md"
    )


def test_write_docs_regenerates_the_table_between_its_markers(tmp_path):
    import subprocess
    import sys

    stale = tmp_path / "v1-commands.md"
    text = DOC.read_text(encoding="utf-8")
    begin, end = "<!-- BEGIN v1-commands (generated) -->\n", "<!-- END v1-commands -->"
    stale.write_text(text[: text.index(begin) + len(begin)] + "| old table |\n" + text[text.index(end) :])
    done = subprocess.run([sys.executable, "-m", "hsm_snake.cli.v1", "--write-docs", str(stale)], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert stale.read_text(encoding="utf-8") == text


def test_hints_exit_1_with_the_command_and_unknown_commands_get_a_pointer(project):
    out = v1("setup", "init", "-i", expect=HINT_EXIT).output
    assert "not interactive" in out and "in hsm-snake: hsm-snake init --template grid" in out
    assert "--mode remote needs --remote ALIAS" in v1("sweep", "run", "--mode", "remote", expect=2).output
    assert "nothing to collect" in v1("collect-results", "s1", expect=HINT_EXIT).output
    assert "there is no sync step" in v1("sync", "to", "box", "--delete", expect=HINT_EXIT).output
    out = v1("sweep", "frobnicate", expect=2).output
    assert "not one of v1's 'hsm sweep' commands" in out and "cleanup" in out
    assert "hsm-snake" in v1("--version").output
    assert "HPC Sweep Manager v1" in v1("--help").output


# -- real runs -------------------------------------------------------------------------------------------------


def test_v1_sweep_run_count_status_complete(project):
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    counted = v1("sweep", "run", "-c", "sweep.yaml", "--count-only")
    assert "ok: 3 task(s)" in counted.output and "hsm-snake validate sweep.yaml" in counted.output
    dry = v1("sweep", "run", "-c", "sweep.yaml", "--mode", "local", "--dry-run")
    assert "task_003" in dry.output and "hsm-snake run sweep.yaml --profile local --dry-run" in dry.output
    first = v1("sweep", "run", "-c", "sweep.yaml", "--mode", "local", "--max-runs", "2", "--sweep-id", "old")
    assert "--max-tasks 2" in first.output
    assert sorted(project.completions()) == ["task_001", "task_002"]
    status = v1("sweep", "status", "old")
    assert "2 completed" in status.output and "1 pending" in status.output
    v1("-q", "sweep", "complete", "old", "--mode", "local")
    assert sorted(project.completions()) == ["task_001", "task_002", "task_003"]
    assert json.loads(project.cli("status", "old", "--json").output)["counts"] == {"completed": 3}


def test_v1_run_options_become_recorded_settings_the_app_sees(project):
    project.write_project({"task": {"arg_style": "hydra"}})
    project.write_sweep({"grid": {"x": [1, 2]}})
    out = v1(
        "sweep",
        "run",
        "-c",
        "sweep.yaml",
        "--mode",
        "local",
        "--walltime",
        "00:10:00",
        "--group",
        "ablation",
        "--gpus",
        "cpu",
        "-p",
        "1",
        "--resources",
        "--mem=2G",
        "--no-progress",
        "--sweep-id",
        "s",
    ).output
    assert "--set local.walltime=00:10:00" in out and "-j 1" in out and "--no-progress" in out
    (sweep_dir,) = project.sweep_dirs()
    record = yaml.safe_load((sweep_dir / "project_config.yaml").read_text())
    assert record["overrides"] == {
        "local": {"walltime": "00:10:00", "mem": "2G", "gpus": 0},
        "wandb": {"group": "ablation"},
    }
    assert record["runner"]["timeout_s"]["local"] == 600
    argv = json.loads((sweep_dir / "tasks" / "task_001" / "results" / "argv.json").read_text())
    assert "wandb.group=ablation" in argv, argv
    status = read_status(sweep_dir / "tasks" / "task_001")
    assert status["status"] == "completed"


def test_v1_complete_with_task_ids_from_a_file_and_max_runs(project):
    project.write_sweep({"grid": {"x": list(range(1, 7))}})
    project.cli("run", "sweep.yaml", "--max-tasks", "1", "--sweep-id", "s")
    Path("redo.txt").write_text("# v1 task ids\n2\n4-6\n")
    out = v1("sweep", "complete", "s", "--mode", "local", "-t", "@redo.txt", "--max-runs", "2").output
    assert "--tasks @redo.txt --max-tasks 2" in out
    assert sorted(project.completions()) == ["task_001", "task_002", "task_004"]
    v1("sweep", "complete", "s", "--mode", "local", "--task-ids", "redo.txt")  # v1 also took a bare file name
    assert sorted(project.completions()) == ["task_001", "task_002", "task_004", "task_005", "task_006"]
    listed = v1("sweep", "status", "--incomplete-only").output
    assert "s" in listed and "recent --all --incomplete" in listed
    assert "hsm-snake recent --all" in v1("sweep", "status", "--all").output


def test_old_top_level_forms_run_through_the_current_ones(project):
    project.write_sweep({"grid": {"x": [1]}})
    out = v1("local", "run", "-c", "sweep.yaml", "--sweep-id", "l")
    assert "hsm-snake run sweep.yaml --profile local --sweep-id l" in out.output
    assert project.completions() == {"task_001": 1}
    assert "1 completed" in v1("monitor", "l").output


@pytest.mark.testbed
def test_v1_default_mode_is_auto_a_slurm_array_where_sbatch_is(project, tb, monkeypatch):
    on_testbed(project, tb, monkeypatch, "slurm")
    project.write_sweep({"grid": {"x": [1, 2]}})
    out = v1("sweep", "run", "-c", "sweep.yaml", "--walltime", "00:05:00", "--sweep-id", "auto").output
    assert "--profile auto --set slurm.walltime=00:05:00" in out, out
    (sweep_dir,) = project.sweep_dirs()
    statuses = [read_status(sweep_dir / "tasks" / f"task_00{i}") for i in (1, 2)]
    assert {s["backend"] for s in statuses} == {"slurm"} and {s["status"] for s in statuses} == {"completed"}
    record = yaml.safe_load((sweep_dir / "project_config.yaml").read_text())
    assert record["project"]["slurm"]["walltime"] == "00:05:00"


def test_auto_is_local_without_a_scheduler(project, monkeypatch, tmp_path):
    project.write_sweep({"grid": {"x": [1]}})
    monkeypatch.setattr(v1_module, "auto_backend", lambda: "local")
    monkeypatch.setattr("hsm_snake.engine.command.auto_backend", lambda: "local")
    assert "--profile auto" in v1("sweep", "run", "-c", "sweep.yaml").output
    assert project.completions() == {"task_001": 1}
    monkeypatch.setenv("PATH", str(tmp_path))  # array with neither sbatch nor qsub: hpc explains itself
    result = v1("sweep", "run", "-c", "sweep.yaml", "--mode", "array", expect=2)
    assert "--profile hpc" in result.output and "neither sbatch" in result.output


def test_a_v1_sweep_file_with_complete_continues_that_sweep(project):
    project.write_sweep({"grid": {"x": [1, 2]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "base")
    project.write_sweep({"complete": "base", "grid": {"x": [1, 2, 3]}}, "more.yaml")
    out = v1("sweep", "run", "-c", "more.yaml", "--mode", "local").output
    assert "continues sweep base" in out and "3 completed" in out, out
    assert project.completions() == {"task_001": 1, "task_002": 1, "task_003": 1}  # 1 and 2 not rerun
    assert [p.name for p in project.sweep_dirs()] == ["base"]
    project.write_sweep({"complete": "nope", "grid": {"x": [1]}}, "bad.yaml")
    err = project.cli("run", "bad.yaml", expect=2).output
    assert "complete: names sweep nope" in err and "hsm-snake recent" in err
    err = project.cli("run", "more.yaml", "--sweep-id", "other", expect=2).output
    assert "continues sweep base, --sweep-id names other" in err


@pytest.mark.testbed
def test_v1_remote_runs_on_that_host_alone(project, tb, monkeypatch, tmp_path):
    """--remote ALIAS narrows the pool to one host (distributed.use), a registered one or a bare ssh alias."""
    tb.need("hsmtb-h1")
    tb.need("hsmtb-lo")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    hosts = tb.facts["ssh"]["hosts"]
    remotes = {
        alias: {"project_dir": f"{hosts[alias]['project_dir']}/{remote_name(tmp_path)}", "python_path": "python3"}
        for alias in ("hsmtb-h1", "hsmtb-lo")
    }
    project.write_project({"task": {"env": {"RUN_LOG": str(project.run_log)}}, "distributed": {"remotes": remotes}})
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    out = v1("sweep", "run", "-c", "sweep.yaml", "--remote", "hsmtb-lo", "--walltime", "00:05:00", "--sweep-id", "r")
    assert "--profile ssh" in out.output and "distributed.use=" in out.output
    (sweep_dir,) = project.sweep_dirs()
    statuses = [read_status(sweep_dir / "tasks" / f"task_00{i}") for i in (1, 2, 3)]
    assert {s["status"] for s in statuses} == {"completed"} and {s["host_alias"] for s in statuses} == {"hsmtb-lo"}
    record = yaml.safe_load((sweep_dir / "project_config.yaml").read_text())
    assert record["overrides"]["distributed"]["use"] == ["hsmtb-lo"]
    assert record["runner"]["timeout_s"]["ssh"] == 300


def test_v1_options_that_cannot_apply_are_refused_or_noted(project):
    assert (
        "--project-root: nowhere is not a folder" in v1("setup", "init", "--project-root", "nowhere", expect=2).output
    )
    out = v1("sweep", "run", "-c", "sweep.yaml", "--mode", "local", "--gpus", "two", expect=2).output
    assert "use all, cpu, a count N, or device numbers such as 0,1,3" in out
    out = v1("sweep", "run", "--mode", "local", "--remote", "box", expect=2).output
    assert "--remote goes with --mode remote, not --mode local (as in v1)" in out
    for command in (["run", "-c", "sweep.yaml"], ["complete", "s"]):
        out = v1("sweep", *command, "--mode", "local", "--max-runs", "0", expect=2).output
        assert "Invalid value for --max-runs: must be at least 1" in out

    on_slurm = translate("sweep run -c sweep.yaml --mode array --gpus 0,1 -p 4 --resources '--exclusive --mem=8G'")
    assert on_slurm.argv == [
        *("run", "sweep.yaml", "--profile", "slurm"),
        *("--set", "slurm.mem=8G", "--set", 'slurm.extra_directives=["--exclusive"]'),
    ]
    assert "--gpus 0,1: v1 applied it to local and --remote runs only; ignored" in on_slurm.notes
    assert "--parallel-jobs 4: v1 used it for local runs only; ignored" in on_slurm.notes
    assert "--set" not in translate("sweep run -c sweep.yaml --mode local --gpus all").argv
