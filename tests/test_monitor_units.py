"""Helpers of the monitoring commands, and the causes a local run cannot produce (Slurm verdicts)."""

from __future__ import annotations

import json

import pytest
import yaml

from hsm_snake import sweeps
from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep
from hsm_snake.layout.index import format_task_selection
from hsm_snake.layout.records import write_record
from hsm_snake.monitor.readers import compress_tasks, format_duration, format_rate, tail_lines
from hsm_snake.monitor.svgplot import histogram, nice_ticks, scatter, timeline, wants_log
from hsm_snake.monitor.triage import ADVICE, exception_type, missing_module
from hsm_snake.runner import failures


@pytest.mark.parametrize(
    "numbers, text",
    [([], ""), ([7], "7"), ([1, 2, 3, 7], "1-3,7"), ([9, 1, 2, 2, 10, 4], "1-2,4,9-10"), ([5, 6], "5-6")],
)
def test_format_task_selection(numbers, text):
    assert format_task_selection(numbers) == text


def test_compress_tasks_ignores_non_task_names():
    assert compress_tasks(["task_003", "task_001", "task_002", "junk", "task_1000"]) == "1-3,1000"


@pytest.mark.parametrize(
    "summary, kind, module",
    [
        ("ValueError: lr must be positive", "ValueError", None),
        ("torch.OutOfMemoryError: CUDA out of memory", "torch.OutOfMemoryError", None),
        ("ModuleNotFoundError: No module named 'torch'", "ModuleNotFoundError", "torch"),
        ("ModuleNotFoundError: No module named 'sklearn.linear_model'", "ModuleNotFoundError", "sklearn"),
        ("ImportError: cannot import name 'soft_max' from 'mylib'", "ImportError", "soft_max"),
        (None, None, None),
        ("exited with status 3", None, None),
    ],
)
def test_exception_type_and_missing_module(summary, kind, module):
    assert exception_type(summary) == kind
    assert missing_module(summary) == module


def test_formats():
    assert format_duration(None) == "-" and format_duration(4.25) == "4.2s" and format_duration(42) == "42s"
    assert format_duration(3725) == "1:02:05" and format_duration(90000) == "1d 1:00:00"
    assert format_rate(None) == "-" and format_rate(0.5) == "30.0 task(s)/min"
    assert format_rate(17) == "1,020 task(s)/min" and format_rate(1 / 3600) == "1 task(s)/h"


def test_times_and_numbers_as_status_files_hold_them():
    from datetime import UTC, datetime

    from hsm_snake.monitor.readers import format_time, number, parse_time, text

    # Unquoted, YAML reads a timestamp as a datetime (a hand-edited or migrated status.yaml).
    loaded = yaml.safe_load("started: 2026-01-02 03:04:05+00:00\n")["started"]
    assert parse_time(loaded) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert parse_time("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5).astimezone().timestamp()  # local time
    assert parse_time("yesterday") is None and parse_time(5) is None and parse_time("") is None
    assert format_time(None) == "-" and format_time(parse_time("2026-01-02T03:04:05+00:00")).startswith("2026-01-0")

    class Score(float):  # a float subclass, as a library caller may pass (numpy.float64 is one)
        pass

    assert number(Score(0.5)) == 0.5 and number(Score("inf")) is None and number(True) is None
    assert text(None) == "" and text({"a": [1]}) == '{"a": [1]}' and text({1, 2}) in ("{1, 2}", "{2, 1}")


def test_tail_lines_of_big_binary_and_missing_logs(tmp_path):
    log = tmp_path / "stderr.log"
    log.write_bytes(b"x" * 50000 + b"\n" + b"".join(f"line {i}\n".encode() for i in range(30)) + b"\xff\xfe end")
    assert tail_lines(log, 3) == ["line 28", "line 29", "\ufffd\ufffd end"]
    assert tail_lines(tmp_path / "absent.log") == []


def test_svg_helpers_are_well_formed():
    import xml.etree.ElementTree as ET

    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert wants_log([0.001, 0.01, 0.1]) and not wants_log([1, 2, 3]) and not wants_log([-1, 100])
    plots = [
        scatter([(0.001, 1.0, "a <b>", "completed"), (0.1, 2.0, "c & d", "failed")], x_label="lr", y_label="loss"),
        scatter([(1, 5, "same", "completed")], x_label="x", y_label="y"),
        histogram([1.0, 1.0, 2.5, 9.0], label="duration"),
        histogram([], label="nothing"),
        timeline([("vm", 0, 5, "t1", "completed"), ("vm", 1, 3, "t2", "failed"), ("node<1>", 2, 9, "t3", "x")]),
        timeline([]),
    ]
    for svg in plots:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
    assert "a &lt;b&gt;" in plots[0] and "lr (log)" in plots[0]


def test_scheduler_verdicts_and_other_causes_get_their_suggestions(project):
    sweep = project.write_sweep({"grid": {"x": list(range(9))}})
    project.write_project({"slurm": {"mem": "4G", "walltime": "01:00:00"}})
    index = sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], "verdicts")
    causes = [
        ("failed", "out_of_memory", "slurm", "Slurm: OUT_OF_MEMORY"),
        ("failed", "timeout", "slurm", "Slurm: TIMEOUT"),
        ("failed", "node_fail", "slurm", "Slurm: NODE_FAIL"),
        ("failed", "preempted", "slurm", "Slurm: PREEMPTED"),
        ("failed", "cuda_out_of_memory", "local", "torch.OutOfMemoryError: CUDA out of memory"),
        ("failed", "killed", "local", "killed by SIGKILL"),
        ("cancelled", "cancelled", "local", "stopped by SIGINT"),
        ("failed", "launch_error", "local", "could not start '/nope/python': [Errno 2]"),
        ("failed", None, "local", None),
    ]
    for number, (status, category, backend, summary) in enumerate(causes, start=1):
        write_record(
            index.paths.task(f"task_{number:03d}").status,
            {"status": status, "attempt": 1, "backend": backend, "error_category": category, "error_summary": summary},
        )
    data = json.loads(project.cli("errors", "verdicts", "--json").output)
    suggestion = {g["category"]: g["suggestion"] for g in data["groups"]}
    assert data["failed"] == 9
    assert "raise slurm.mem (now 4G) in hsm.yaml (or local.mem)" in suggestion["out_of_memory"]
    assert "raise slurm.walltime (now 01:00:00)" in suggestion["timeout"]
    assert "the node failed, not your code" in suggestion["node_fail"]
    assert "slurm.qos" in suggestion["preempted"]
    assert "lower the batch or model size" in suggestion["cuda_out_of_memory"]
    assert "out-of-memory killer" in suggestion["killed"]
    assert "hsm-snake complete verdicts --only-category cancelled" in suggestion["cancelled"]
    assert "paths.python_interpreter" in suggestion["launch_error"]
    assert "records no error category" in suggestion["unknown"]
    assert [g["category"] for g in data["groups"]][-2:] == ["cancelled", "unknown"]


def test_results_columns_never_collide_and_report_open_uses_a_browser(project, monkeypatch):
    sweep = project.write_sweep({"grid": {"host": ["a", "b"], "loss": [1]}})
    index = sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], "clash")
    status = {"status": "completed", "attempt": 1, "host": "vm", "backend": "local", "metrics": {"loss": 0.5}}
    write_record(index.paths.task("task_001").status, status)
    (index.paths.task("task_001").marker).touch()
    data = json.loads(project.cli("results", "clash", "--format", "json").output)
    assert data["columns"][:5] == ["task", "state", "param.host", "loss", "metric.loss"]
    first = data["rows"][0]
    assert first["param.host"] == "a" and first["host"] == "vm" and first["loss"] == 1 and first["metric.loss"] == 0.5

    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    project.cli("report", "clash", "--open")
    assert opened == [(index.paths.reports_dir / "completion_report.html").resolve().as_uri()]
    monkeypatch.setattr(webbrowser, "open", lambda url: False)  # a machine without a browser
    assert "no web browser found here: open the file above yourself" in project.cli("report", "clash", "--open").output


def test_stale_tasks_are_flagged_by_status_and_errors(project):
    sweep = project.write_sweep({"grid": {"x": [1, 2, 3]}})
    index = sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], "stale")
    for name in ("task_002", "task_003"):
        write_record(
            index.paths.task(name).status,
            {
                "status": "running",
                "attempt": 1,
                "backend": "local",
                "host": "vm",
                "started": "2026-01-01T00:00:00+00:00",
            },
        )
    out = project.cli("status", "stale").output
    assert "2 stale" in out and "stale: 2 task(s) (2-3) say running, but no run holds the sweep" in out
    assert "`hsm-snake complete stale` reruns them" in out
    data = json.loads(project.cli("errors", "stale", "--json").output)
    assert data["failed"] == 0 and [q["task"] for q in data["questionable"]] == ["task_002", "task_003"]
    assert {q["state"] for q in data["questionable"]} == {"stale"}
    assert "cannot be trusted" in project.cli("errors", "stale").output


def test_report_cells_of_mixed_columns_are_each_formatted_as_alone():
    """Cells formatted once per distinct value print exactly as one by one: equal values of other
    classes (1, 1.0, True), zeros of both signs, NaN, lists and markup included."""
    from hsm_snake.monitor.report import _cell_html, _column_cells

    nan = float("nan")
    columns = {
        "mixed": [1, 1.0, True, 0.0, -0.0, nan, float("nan"), [1], {"a": 1}, None, "1", 1, "x<y"],
        "floats": [0.5, 0.5, 1e-9, None, 2.0],
        "floats_with_zero": [0.0, -0.0, 0.5],
        "floats_with_nan": [nan, 0.5, nan],
        "text_and_ints": ["a", 3, "a", None, 3, "=cmd"],
        "state": ["completed", "failed", "completed"],
        "tracker_url": ["https://x/run", "javascript:alert(1)", None],
        "duration_s": [3725.0, 42.5, 3725.0],
    }
    for column, values in columns.items():
        assert _column_cells(values, column) == [_cell_html(column, value) for value in values], column


def test_results_csv_cells_guard_formulas_in_any_column():
    from hsm_snake.monitor.results import ResultTable, to_csv

    rows = [
        {"task": "task_001", "state": "completed", "p": "=SUM(A1)", "m": 1.5, "flag": True, "opts": [1, 2]},
        {"task": "task_002", "state": "completed", "p": "-3", "m": None, "flag": False, "opts": {"a": "b"}},
        {"task": "task_003", "state": "completed", "p": "+x", "m": 2, "flag": None, "opts": None},
    ]
    table = ResultTable("s", ["p", "flag", "opts"], ["m"], rows)
    lines = to_csv(table).splitlines()
    assert lines[1].startswith('task_001,completed,\'=SUM(A1),true,"[1, 2]",1.5,')
    assert lines[2].startswith('task_002,completed,-3,false,"{""a"": ""b""}",,')
    assert lines[3].startswith("task_003,completed,'+x,,,2,")


def test_gc_paused_restores_collection_and_nests():
    import gc

    from hsm_snake.monitor.readers import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_scatter_of_many_tasks_draws_a_sample_that_keeps_the_extremes():
    from hsm_snake.monitor.report import MAX_SCATTER_POINTS, scatter_plots
    from hsm_snake.monitor.results import ResultTable

    count = MAX_SCATTER_POINTS + 500
    rows = [
        {"task": f"task_{i:05d}", "state": "completed", "lr": i / count, "loss": (i * 7919) % count / 10}
        for i in range(1, count + 1)
    ]
    lowest = min(rows, key=lambda r: r["loss"])["task"]
    highest = max(rows, key=lambda r: r["loss"])["task"]
    (plot,), left_out = scatter_plots(ResultTable("big", ["lr"], ["loss"], rows))
    assert left_out == 0
    assert plot["title"] == f"loss vs lr ({MAX_SCATTER_POINTS:,} of {count:,} tasks drawn)"
    assert plot["svg"].count("<circle") == MAX_SCATTER_POINTS
    assert f"{lowest}:" in plot["svg"] and f"{highest}:" in plot["svg"]


def test_every_failure_category_has_a_suggestion_of_its_own():
    """The advice table ends each category the runner records at a row that needs no pattern;
    only a task without a category gets the generic suggestion."""
    fallbacks = {category for advice in ADVICE if advice.when is None for category in advice.categories}
    assert fallbacks == set(failures.CATEGORIES) - {failures.UNKNOWN}


def test_advice_about_the_output_argument_matches_it_exactly_and_needs_one():
    (advice,) = [advice for advice in ADVICE if advice.when and "{output_arg}" in advice.when]
    refused = "train.py: error: unrecognized arguments: --out.dir /t/task_001"
    assert advice.match(refused, {"output_arg": "out.dir"}) == {}
    assert advice.match(refused.replace("out.dir", "out_dir"), {"output_arg": "out.dir"}) is None
    assert advice.match(refused, {"output_arg": "out"}) is None
    assert advice.match(refused, {"output_arg": ""}) is None
    assert advice.match(None, {"output_arg": "out.dir"}) is None
