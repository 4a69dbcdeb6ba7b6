"""Results and reports made from what tasks wrote: no spreadsheet formula runs, no script link."""

from __future__ import annotations

import csv
import io
import textwrap

import yaml

from hsm_snake.layout.paths import SweepPaths

# Prints a metrics line whose values and a parameter are spreadsheet formulas.
FORMULA_SCRIPT = textwrap.dedent(
    """
    import json, sys
    print(json.dumps({"loss": -0.5, "note": "=HYPERLINK(\\"http://evil.example\\",\\"x\\")", "cmd": "@SUM(1+1)"}))
    """
)


def test_results_csv_shows_formulas_as_text_and_keeps_negative_numbers(project):
    (project.root / "f.py").write_text(FORMULA_SCRIPT)
    project.write_project({"paths": {"train_script": "f.py"}})
    project.write_sweep({"grid": {"label": ["=1+2", "+cmd|' /C calc'!A0", "-2", "plain"]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s")
    out = project.cli("results", "s", "--format", "csv").output
    rows = list(csv.DictReader(io.StringIO(out)))
    labels = sorted(row["label"] for row in rows)
    assert labels == sorted(["'=1+2", "'+cmd|' /C calc'!A0", "-2", "plain"])
    assert {row["note"] for row in rows} == {'\'=HYPERLINK("http://evil.example","x")'}
    assert {row["cmd"] for row in rows} == {"'@SUM(1+1)"}
    assert {row["loss"] for row in rows} == {"-0.5"}
    csv_file = project.root / "sweeps" / "outputs" / "s" / "reports" / "results.csv"
    assert csv_file.read_text() == out


def set_tracker_url(task_dir, url: str) -> None:
    status_file = task_dir / "status.yaml"
    status = yaml.safe_load(status_file.read_text())
    status["tracker_url"] = url
    status_file.write_text(yaml.safe_dump(status))


def test_the_report_links_file_and_web_tracker_addresses_and_nothing_else(project):
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s")
    tasks = project.root / "sweeps" / "outputs" / "s" / "tasks"
    set_tracker_url(tasks / "task_001", "file:///home/me/mlruns/1/abc")
    set_tracker_url(tasks / "task_002", "https://wandb.ai/me/p/runs/abc")
    set_tracker_url(tasks / "task_003", "javascript:alert(document.domain)")
    SweepPaths(tasks.parent).status_cache.unlink(missing_ok=True)  # completed tasks' records, cached
    project.cli("report", "s")
    html = (project.root / "sweeps" / "outputs" / "s" / "reports" / "completion_report.html").read_text()
    assert '<a href="file:///home/me/mlruns/1/abc">' in html
    assert '<a href="https://wandb.ai/me/p/runs/abc">' in html
    assert 'href="javascript:' not in html
