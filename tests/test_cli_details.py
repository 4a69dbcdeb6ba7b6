"""Small things users meet at the command line: selections that select nothing, dry-run listings,
table widths, labels and the v1 details (issues #19 and #21, "Smaller")."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta

import pytest
import yaml
from conftest import FAILING_SCRIPT

from hsm_snake.monitor.readers import format_rate

# -- complete --only-category / --no-retry-failed -------------------------------------------------


def _failed_sweep(project) -> None:
    """A real run of 5 tasks: 2 python_exception, 2 nonzero_exit, 1 completed."""
    (project.root / "fail.py").write_text(FAILING_SCRIPT)
    project.write_project({"paths": {"train_script": "fail.py"}})
    project.write_sweep({"grid": {"mode": ["exception", "exit", "ok"], "lr": [0.1, 0.2]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "cats", "--max-tasks", "5", expect=1)


def test_only_category_typo_is_refused_with_the_categories_present(project):
    _failed_sweep(project)
    result = project.cli("complete", "cats", "--only-category", "nonzero_exti", expect=2)
    assert "'nonzero_exti' is not an error category" in result.output
    assert "did you mean 'nonzero_exit'?" in result.output
    assert "python_exception (2)" in result.output and "nonzero_exit (2)" in result.output
    # A known category that no task has, and an empty name, are refused too; nothing ran.
    result = project.cli("complete", "cats", "--only-category", "timeout", expect=2)
    assert "no failed task of sweep cats has error category 'timeout'" in result.output
    assert "categories of its failed tasks" in result.output
    project.cli("complete", "cats", "--only-category", "", "--dry-run", expect=2)
    statuses = json.loads(project.cli("status", "cats", "--json").output)["tasks"]
    assert all(t["attempt"] in (1, None) for t in statuses)
    # The dry run of a real category says what it would run.
    out = project.cli("complete", "cats", "--only-category", "nonzero_exit", "--dry-run").output
    assert "5 of 6 task(s) not completed; 2 would run (the failed ones of category nonzero_exit)" in out


def test_no_retry_failed_dry_run_counts_the_failed_tasks_as_not_completed(project):
    _failed_sweep(project)
    out = project.cli("complete", "cats", "--no-retry-failed", "--dry-run").output
    assert "5 of 6 task(s) not completed; 1 would run (--no-retry-failed leaves out 4 failed)" in out
    assert "task_006" in out and "task_001" not in out


# -- run --dry-run of many tasks ------------------------------------------------------------------


def test_dry_run_of_many_tasks_shows_the_first_rows_and_the_counts(project):
    project.write_sweep({"grid": {"a": list(range(50)), "b": list(range(100))}})
    out = project.cli("run", "sweep.yaml", "--dry-run").output
    assert "5000 task(s) would run" in out
    assert "task_020" in out and "task_021" not in out
    assert "the first 20 of 5000 task(s) shown (5000 pending); --all lists every one" in out
    every = project.cli("run", "sweep.yaml", "--dry-run", "--all").output
    assert "task_5000" in every and "shown" not in every
    assert len(json.loads(project.cli("run", "sweep.yaml", "--dry-run", "--json").output)) == 5000


def test_dry_run_of_an_extended_sweep_lists_only_what_is_not_completed(project):
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s", "--max-tasks", "1")
    project.write_sweep({"grid": {"x": [1, 2, 3, 4]}})
    rows = json.loads(project.cli("run", "sweep.yaml", "--sweep-id", "s", "--dry-run", "--json").output)
    assert [(r["task"], r["state"]) for r in rows] == [
        ("task_002", "pending"),
        ("task_003", "pending"),
        ("task_004", "pending"),
    ]
    assert project.completions() == {"task_001": 1}


# -- status and report figures --------------------------------------------------------------------

METRICS_SCRIPT = """
import json, sys, time
args = dict(arg.partition("=")[::2] for arg in sys.argv[1:])
if args["opt"] == "slow":
    time.sleep(120)  # until the walltime stops it
loss = {"nan": float("nan"), "inf": float("inf")}.get(args["lr"]) or float(args["lr"]) / 3
print(json.dumps({"loss": loss, "acc": 1 / 3}))
"""


def _metrics_sweep(project) -> None:
    """A real run: opt=adam/sgd complete (lr=nan and lr=inf give a NaN/inf loss), opt=slow times out
    (8 s: the others must finish within it on a loaded machine)."""
    (project.root / "metrics.py").write_text(METRICS_SCRIPT)
    project.write_project(
        {"paths": {"train_script": "metrics.py"}, "local": {"walltime": "00:00:08", "max_parallel": 4}}
    )
    project.write_sweep({"grid": {"opt": ["adam", "sgd", "slow"], "lr": [0.1, 0.2, "nan", "inf"]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "figs", expect=1)


def test_status_mean_and_parallelism_count_failed_tasks_and_report_has_one_throughput(project):
    _metrics_sweep(project)
    data = json.loads(project.cli("status", "figs", "--json").output)
    durations = [t["duration_s"] for t in data["tasks"]]
    assert data["counts"] == {"completed": 8, "failed": 4}
    # The four timeouts ran about eight seconds each (a loaded machine may take seconds to start one): the mean is over all twelve finished tasks.
    assert data["progress"]["mean_duration_s"] == pytest.approx(sum(durations) / len(durations))

    project.cli("report", "figs")
    reports = project.root / "sweeps" / "outputs" / "figs" / "reports"
    html = (reports / "completion_report.html").read_text()
    perf = yaml.safe_load((reports / "performance_analysis.yaml").read_text())
    per_hour = perf["overall"]["tasks_per_hour"]
    assert per_hour == float(f"{per_hour:.3g}")  # three significant digits
    # One throughput in the report, the same as performance_analysis.yaml's.
    assert html.count("<dt>throughput</dt>") == 1
    assert f"<dt>throughput</dt><dd>{format_rate(per_hour / 3600)} (12 finished task(s)" in html
    # Metric cells show six significant digits; the sort value keeps every digit.
    assert '<td data-v="0.3333333333333333">0.333333</td>' in html


def test_report_plots_text_parameters_and_leaves_out_nan_and_inf_points(project):
    _metrics_sweep(project)
    project.cli("report", "figs")
    html = (project.root / "sweeps" / "outputs" / "figs" / "reports" / "completion_report.html").read_text()
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    # opt is a text parameter: a strip plot per metric; lr (numbers and two non-numbers) too.
    assert "loss vs opt (4 NaN/inf value(s) left out)" in captions
    assert "acc vs opt" in captions
    assert "loss vs lr (4 NaN/inf value(s) left out)" in captions
    strip = html.split("<title>loss vs opt</title>", 1)[1].split("</svg>", 1)[0]
    assert ">adam</text>" in strip and ">sgd</text>" in strip and ">slow</text>" in strip
    assert strip.count("<circle") == 4  # the finite losses of adam and sgd
    assert "nan" not in strip.lower().replace("nan/inf", "")


# -- errors --pattern, recent -d and at 80 columns ------------------------------------------------


def test_errors_pattern_filters_by_category_summary_or_stderr(project):
    _failed_sweep(project)
    errors_dir = project.root / "sweeps" / "outputs" / "cats" / "logs" / "errors"
    project.cli("errors", "cats")
    before = (errors_dir / "failed_tasks.yaml").read_text()
    # "giving up with status 3" is only in the nonzero_exit tasks' stderr.log; matched ignoring case.
    data = json.loads(project.cli("errors", "cats", "--pattern", "GIVING UP", "--json").output)
    assert [g["category"] for g in data["groups"]] == ["nonzero_exit"]
    assert data["failed"] == 2 and data["failed_before_pattern"] == 4 and data["pattern"] == "GIVING UP"
    out = project.cli("errors", "cats", "--pattern", r"ValueError|status \d").output
    assert "4 of 4 failed or cancelled task(s) match" in out
    out = project.cli("errors", "cats", "--pattern", "CUDA").output
    assert "0 of 4 failed or cancelled task(s) match 'CUDA'" in out
    # The error files keep listing every failed task.
    assert (errors_dir / "failed_tasks.yaml").read_text() == before
    result = project.cli("errors", "cats", "--pattern", "oom (", expect=2)
    assert "--pattern: 'oom (' is not a regular expression" in result.output and "Traceback" not in result.output


def _created_days_ago(project, sweep_id: str, days: float) -> None:
    metadata = project.root / "sweeps" / "outputs" / sweep_id / "sweep_metadata.yaml"
    data = yaml.safe_load(metadata.read_text())
    moment = datetime.now().astimezone() - timedelta(days=days)
    data["created"] = moment.isoformat(timespec="seconds")
    metadata.write_text(yaml.safe_dump(data))


def test_recent_days_and_a_table_that_fits_80_columns(project, monkeypatch):
    project.write_sweep({"grid": {"a": [1, 2]}})
    for sweep_id in ("an_old_sweep_with_a_rather_long_name_2026", "last_week", "today"):
        project.cli("run", "sweep.yaml", "--sweep-id", sweep_id)
    _created_days_ago(project, "an_old_sweep_with_a_rather_long_name_2026", 40)
    _created_days_ago(project, "last_week", 6)
    ids = [s["sweep_id"] for s in json.loads(project.cli("recent", "-d", "7", "--json").output)]
    assert ids == ["today", "last_week"]
    ids = [s["sweep_id"] for s in json.loads(project.cli("recent", "--days", "0.5", "--json").output)]
    assert ids == ["today"]

    for width in (80, 60):
        monkeypatch.setenv("COLUMNS", str(width))
        out = project.cli("recent").output
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= width, out
        header = next(line for line in lines if "sweep" in line and "tasks" in line)
        # Every column shown has its whole name: nothing squeezed to one character.
        cells = [c.strip() for c in header.strip("┃").split("┃")]
        assert all(len(c) >= 4 for c in cells), header
        assert "an_old_sweep" in out and "today" in out
    assert "too narrow for backends" in out  # at 60 columns


def test_recent_dates_a_sweep_without_metadata_by_its_task_mapping(project):
    import os
    import time

    project.write_sweep({"grid": {"a": [1]}})
    for sweep_id in ("older", "newer"):
        project.cli("run", "sweep.yaml", "--sweep-id", sweep_id)
    older = project.root / "sweeps" / "outputs" / "older"
    (older / "sweep_metadata.yaml").unlink()
    os.utime(older / "task_mapping.yaml", (time.time() - 3 * 86400,) * 2)
    assert [s["sweep_id"] for s in json.loads(project.cli("recent", "--json").output)] == ["newer", "older"]
    assert [s["sweep_id"] for s in json.loads(project.cli("recent", "-d", "1", "--json").output)] == ["newer"]


# -- v1 sweep folders, v1 configs -----------------------------------------------------------------


def test_a_v1_sweep_folder_points_at_migrate(project):
    from test_migrate import make_v1_sweep

    v1 = make_v1_sweep(project.root)
    for args in (["status", v1.name], ["status", str(v1)], ["missing", v1.name], ["complete", v1.name]):
        result = project.cli(*args, expect=2)
        assert "is a sweep folder of HPC Sweep Manager v1" in result.output
        assert f"hsm-snake migrate {v1}" in result.output and "task_mapping.yaml is missing" not in result.output
    result = project.cli("status", expect=2)
    assert f"1 HPC Sweep Manager v1 sweep folder(s) there ({v1.name})" in result.output
    project.cli("migrate", str(v1))
    assert "1/3 completed" in project.cli("status", v1.name).output


def _v1_config(project, extra: str = "") -> None:
    """A v1 project: sweeps/hsm_config.yaml as v1 wrote it (no hsm.yaml)."""
    (project.root / "hsm.yaml").unlink()
    (project.root / "sweeps").mkdir(exist_ok=True)
    (project.root / "sweeps" / "hsm_config.yaml").write_text(
        f"project:\n  name: demo\npaths:\n  python_interpreter: {sys.executable}\n  train_script: echo.py\n" + extra
    )


def test_show_names_the_v1_keys_values_came_from(project, monkeypatch):
    _v1_config(
        project,
        "hpc:\n  system: slurm\n  default_walltime: '04:00:00'\n  default_queue: gpu\n"
        "  default_resources: --cpus-per-task=4 --mem=16G\n  max_array_size: 500\n"
        "distributed:\n  strategy: round_robin\n",
    )
    project.write_sweep({"grid": {"a": [1, 2]}})
    monkeypatch.setenv("COLUMNS", "250")
    rows = {}
    for line in project.cli("show", "sweep.yaml").output.splitlines():
        cells = [c.strip() for c in line.strip("│").split("│")]
        if len(cells) == 3:
            rows[cells[0]] = (cells[1], cells[2])
    assert rows["slurm.walltime"] == ('"04:00:00"', "hsm_config.yaml: hpc.default_walltime")
    assert rows["slurm.partition"] == ('"gpu"', "hsm_config.yaml: hpc.default_queue")
    assert rows["slurm.cpus_per_task"] == ("4", "hsm_config.yaml: hpc.default_resources")
    assert rows["slurm.mem"] == ('"16G"', "hsm_config.yaml: hpc.default_resources")
    assert rows["slurm.max_array_size"] == ("500", "hsm_config.yaml: hpc.max_array_size")
    assert rows["distributed.strategy"] == ('"round_robin"', "hsm_config.yaml")
    # v1's pool had one slot on this machine unless local_max_jobs said otherwise.
    assert rows["distributed.local_slots"] == ("1", "v1 default (local_max_jobs: 1)")
    assert rows["task.workdir"][1] == "default"


def test_v1_local_max_jobs_and_hsm_yaml_keep_their_values(project, monkeypatch):
    from hsm_snake.config.project import load_project

    _v1_config(project, "distributed:\n  local_max_jobs: 0\n")
    loaded = load_project(None, cwd=project.root)
    assert loaded.data["distributed"]["local_slots"] == 0
    assert loaded.origins["distributed.local_slots"] == "distributed.local_max_jobs"
    # hsm-snake's own format keeps its default: no task slot on this machine unless asked.
    project.write_project({"distributed": {"strategy": "round_robin"}})
    assert "local_slots" not in load_project(project.root / "hsm.yaml", cwd=project.root).data["distributed"]


def test_v1_config_passes_wandb_group_without_a_wandb_block(project):
    _v1_config(project)
    project.write_sweep({"grid": {"a": [1]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "v1group")
    argv = json.loads(
        (project.root / "sweeps" / "outputs" / "v1group" / "tasks" / "task_001" / "results" / "argv.json").read_text()
    )
    assert "wandb.group=v1group" in argv and "a=1" in argv
    # hsm-snake's format: only with a wandb: block.
    project.write_project({})
    project.cli("run", "sweep.yaml", "--sweep-id", "plain")
    argv = json.loads(
        (project.root / "sweeps" / "outputs" / "plain" / "tasks" / "task_001" / "results" / "argv.json").read_text()
    )
    assert not any(a.startswith("wandb.group") for a in argv)


def test_status_counts_the_earlier_attempts_of_retried_tasks(project):
    (project.root / "metrics.py").write_text(METRICS_SCRIPT)
    project.write_project(
        {
            "paths": {"train_script": "metrics.py"},
            "local": {"walltime": "00:00:06", "max_parallel": 2},
            "retry": {"on": ["timeout"], "time_factor": 1},
        }
    )
    (project.root / "hsm.yaml").write_text((project.root / "hsm.yaml").read_text() + "retries: 1\n")
    project.write_sweep({"grid": {"opt": ["adam", "slow"], "lr": [0.1]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "again", expect=1)
    task = project.root / "sweeps" / "outputs" / "again" / "tasks" / "task_002"
    first = yaml.safe_load((task / "attempts" / "1" / "status.yaml").read_text())
    data = json.loads(project.cli("status", "again", "--json").output)
    durations = [t["duration_s"] for t in data["tasks"]]
    assert data["tasks"][1]["attempt"] == 2 and first["error_category"] == "timeout"
    # Three attempts finished: task_001's, and both of task_002's.
    expected = (sum(durations) + first["duration_s"]) / 3
    assert data["progress"]["mean_duration_s"] == pytest.approx(expected)


# -- options refused before anything is written ---------------------------------------------------


def test_refused_options_name_the_problem_and_write_no_sweep(project):
    project.write_sweep({"grid": {"x": [1, 2]}})
    out = project.cli("run", "sweep.yaml", "--set", "walltime", expect=2).output
    assert "--set: 'walltime' is not KEY=VALUE" in out and "--set slurm.walltime=02:00:00" in out
    out = project.cli("run", "sweep.yaml", "--remote", "gpu1", "--profile", "slurm", expect=2).output
    assert "--remote gpu1 and --profile slurm both say where to run: give one" in out
    assert project.sweep_dirs() == []

    project.cli("run", "sweep.yaml", "--sweep-id", "s", "--max-tasks", "1")
    out = project.cli("complete", "s", "--tasks", "@numbers.txt", expect=2).output
    assert "Invalid value for '--tasks'" in out and "cannot read task list numbers.txt" in out
    out = project.cli("complete", "s", "--remote", "gpu1", "--profile", "pbs", expect=2).output
    assert "--remote gpu1 and --profile pbs both say where to run" in out
    out = project.cli("results", "s", "--format", "parquet", expect=2).output
    assert "--format parquet writes a binary file: name it with --output FILE.parquet" in out
    out = project.cli("init", "--sweeps-root", str(project.root), expect=2).output
    assert "--sweeps-root and --conda-root go with --machine" in out
    assert not project.runs() or project.completions() == {"task_001": 1}


def test_show_names_a_missing_project_file(project):
    project.write_sweep({"grid": {"x": [1]}})
    out = project.cli("show", "sweep.yaml", "-p", "other.yaml", expect=2).output
    assert "other.yaml: file not found" in out and "hint: give an existing file" in out


def test_recent_and_cleanup_with_no_sweeps_say_so(project):
    out = project.cli("recent").output
    assert "no sweeps under" in out
    out = project.cli("recent", "--days", "2").output
    assert "no sweeps created in the last 2 day(s) under" in out
    out = project.cli("cleanup", "-d", "7", "-y").output
    assert "no sweeps older than 7 day(s) to delete under" in out


def test_the_progress_bar_on_a_terminal_ends_on_the_final_counts(project, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws for a terminal
    project.write_sweep({"grid": {"x": [1, 2], "sleep": [0.5]}})
    out = project.cli("run", "sweep.yaml").output
    frames = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame) for frame in out.split("\r")]
    last = [frame for frame in frames if frame.startswith("tasks ")][-1].split("\n")[0]
    # What stays on the screen is how the run ended, not the last poll while the tasks ran.
    assert " 2/2 " in last and "running" not in last, last
    assert "2 completed" in out
