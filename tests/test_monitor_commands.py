"""errors, results, recent, status, report on a real sweep whose script fails in known ways."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FAILING_SCRIPT, Project

MODES = ["ok", "exception", "memory", "module", "sleep", "exit"]
LRS = [0.001, 0.01, 0.1]
SWEEP_ID = "mixed"


def tasks_of(mode: str) -> list[str]:
    first = MODES.index(mode) * len(LRS) + 1
    return [f"task_{n:03d}" for n in range(first, first + len(LRS))]


def ids_of(mode: str) -> str:
    first = MODES.index(mode) * len(LRS) + 1
    return f"{first}-{first + len(LRS) - 1}"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """One real run (local profile) of 18 tasks: 3 complete, 15 fail in five ways."""
    root = tmp_path_factory.mktemp("monitor")
    with pytest.MonkeyPatch.context() as mp:
        project = Project(root, mp)
        (root / "fail.py").write_text(FAILING_SCRIPT)
        project.write_project(
            {"paths": {"train_script": "fail.py"}, "local": {"walltime": "00:00:04", "max_parallel": 6}}
        )
        project.write_sweep({"grid": {"mode": MODES, "lr": LRS}})
        project.cli("run", "sweep.yaml", "--sweep-id", SWEEP_ID, expect=1)
        yield project, root / "sweeps" / "outputs" / SWEEP_ID


# -- errors ---------------------------------------------------------------------------------------


def test_errors_groups_failures_by_cause_with_suggestions(mixed):
    project, sweep = mixed
    data = json.loads(project.cli("errors", str(sweep), "--json").output)
    assert data["total"] == 18 and data["failed"] == 15
    groups = {(g["category"], g["subtype"]): g for g in data["groups"]}
    assert set(groups) == {
        ("out_of_memory", None),
        ("timeout", None),
        ("missing_module", "torch_that_is_not_installed"),
        ("python_exception", "ValueError"),
        ("nonzero_exit", None),
    }
    expected_modes = {
        "out_of_memory": "memory",
        "timeout": "sleep",
        "missing_module": "module",
        "python_exception": "exception",
        "nonzero_exit": "exit",
    }
    for (category, _), group in groups.items():
        mode = expected_modes[category]
        assert group["count"] == 3
        assert group["tasks"] == tasks_of(mode)
        assert group["task_ids"] == ids_of(mode)
        assert group["example"] == tasks_of(mode)[0]
        assert len(group["stderr_tail"]) <= 10
    # Order: fixable resource problems first, plain script errors after.
    assert [g["category"] for g in data["groups"]] == [
        "out_of_memory",
        "timeout",
        "missing_module",
        "python_exception",
        "nonzero_exit",
    ]

    oom = groups[("out_of_memory", None)]["suggestion"]
    assert "raise local.mem" in oom and "retries: 1" in oom and "retry.mem_factor" in oom
    assert f"hsm-snake complete {SWEEP_ID} --only-category out_of_memory" in oom
    timeout = groups[("timeout", None)]["suggestion"]
    assert "local.walltime (now 00:00:04)" in timeout and "retry.time_factor" in timeout
    module = groups[("missing_module", "torch_that_is_not_installed")]["suggestion"]
    assert "install torch_that_is_not_installed in the interpreter paths.python_interpreter points to" in module
    assert sys.executable in module
    bug = groups[("python_exception", "ValueError")]
    assert bug["suggestion"] == "fix the bug; retrying would fail again — see tasks/task_004/stderr.log"
    assert bug["summaries"] == {"ValueError: learning rate must be positive": 3}
    assert bug["stderr_tail"][-1] == "ValueError: learning rate must be positive"
    assert "Traceback (most recent call last):" in bug["stderr_tail"]
    assert groups[("nonzero_exit", None)]["stderr_tail"] == ["giving up with status 3"]
    assert data["questionable"] == []


def test_errors_text_output_and_written_files(mixed):
    project, sweep = mixed
    out = project.cli("errors", str(sweep)).output
    assert f"sweep {SWEEP_ID}: 15 of 18 task(s) failed or were cancelled" in out
    assert "python_exception (ValueError): 3 task(s): 4-6" in out
    assert "missing_module (torch_that_is_not_installed): 3 task(s): 10-12" in out
    assert "end of tasks/task_004/stderr.log:" in out
    assert "suggestion: fix the bug" in out

    patterns = yaml.safe_load((sweep / "logs" / "errors" / "error_patterns.yaml").read_text())
    assert [g["count"] for g in patterns["groups"]] == [3, 3, 3, 3, 3]
    failed = yaml.safe_load((sweep / "logs" / "errors" / "failed_tasks.yaml").read_text())
    by_task = {f["task"]: f for f in failed["failed"]}
    assert len(by_task) == 15
    assert by_task["task_016"]["exit_code"] == 3
    assert by_task["task_016"]["params"] == {"mode": "exit", "lr": 0.001}
    assert by_task["task_013"]["error_category"] == "timeout"
    assert by_task["task_007"]["stderr"].endswith("tasks/task_007/stderr.log")
    # Written atomically: no temporary files left behind.
    assert sorted(p.name for p in (sweep / "logs" / "errors").iterdir()) == ["error_patterns.yaml", "failed_tasks.yaml"]


# -- results --------------------------------------------------------------------------------------


def test_results_csv_has_one_row_per_task_with_params_metrics_and_timing(mixed):
    project, sweep = mixed
    out = project.cli("results", str(sweep)).output
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 18
    assert list(rows[0])[:6] == ["task", "state", "mode", "lr", "loss", "acc"]
    for column in ("duration_s", "attempt", "host", "backend", "job_id"):
        assert column in rows[0]
    by_task = {r["task"]: r for r in rows}
    ok = by_task["task_002"]
    assert ok["state"] == "completed" and ok["mode"] == "ok" and float(ok["lr"]) == 0.01
    assert float(ok["loss"]) == pytest.approx(0.1) and float(ok["acc"]) == pytest.approx(0.99)
    assert ok["attempt"] == "1" and ok["backend"] == "local" and ok["host"] and float(ok["duration_s"]) > 0
    failed = by_task["task_013"]
    assert failed["state"] == "failed" and failed["loss"] == "" and failed["error_category"] == "timeout"
    assert float(failed["duration_s"]) >= 1
    # reports/results.csv is always written, with the same content.
    assert (sweep / "reports" / "results.csv").read_text() == out


def test_results_json_and_output_file(mixed, tmp_path):
    project, sweep = mixed
    data = json.loads(project.cli("results", str(sweep), "--format", "json").output)
    assert data["columns"][:2] == ["task", "state"] and len(data["rows"]) == 18
    assert data["rows"][0]["loss"] == pytest.approx(0.01)
    target = tmp_path / "out.csv"
    result = project.cli("results", str(sweep), "--output", str(target))
    assert "18 task(s) written to" in result.output
    assert target.read_text().startswith("task,state,mode,lr,loss,acc,")


def test_results_parquet_is_explained_when_unavailable(mixed, tmp_path):
    project, sweep = mixed
    target = tmp_path / "out.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        result = project.cli("results", str(sweep), "--format", "parquet", "--output", str(target), expect=2)
        assert "pip install pyarrow" in result.output and "reports/results.csv" in result.output
        assert not target.exists()
    else:
        project.cli("results", str(sweep), "--format", "parquet", "--output", str(target))
        assert target.stat().st_size > 0


# -- status and recent ----------------------------------------------------------------------------


def test_status_shows_progress_elapsed_throughput_and_hosts(mixed):
    project, sweep = mixed
    out = project.cli("status", str(sweep)).output
    assert "17% 3/18 completed" in out
    assert re.search(r"elapsed \d", out)
    assert "throughput" in out and "task(s)/min" in out
    assert "backends seen: local" in out and "hosts seen:" in out
    assert "no run in progress" in out and "ETA" not in out
    data = json.loads(project.cli("status", str(sweep), "--json").output)
    progress = data["progress"]
    assert progress["completed"] == 3 and progress["finished"] == 18 and progress["remaining"] == 0
    assert progress["in_progress"] is False and progress["backends"] == ["local"]
    assert progress["throughput_per_s"] > 0 and progress["mean_duration_s"] > 0
    assert data["tasks"][0]["backend"] == "local"


def test_recent_lists_sweeps_newest_first(mixed):
    project, sweep = mixed
    project.write_sweep({"grid": {"mode": ["ok"], "lr": [0.5]}}, "one.yaml")
    project.cli("run", "one.yaml", "--sweep-id", "later")
    data = json.loads(project.cli("recent", "--json").output)
    assert [s["sweep_id"] for s in data][:2] == ["later", SWEEP_ID]
    mixed_row = next(s for s in data if s["sweep_id"] == SWEEP_ID)
    assert mixed_row["tasks"] == 18 and mixed_row["completed"] == 3 and mixed_row["failed"] == 15
    assert mixed_row["backends"] == ["local"] and mixed_row["in_progress"] is False
    assert mixed_row["created"]
    assert [s["sweep_id"] for s in json.loads(project.cli("recent", "--limit", "1", "--json").output)] == ["later"]
    out = project.cli("recent").output
    assert SWEEP_ID in out and "later" in out and "local" in out


# -- report ---------------------------------------------------------------------------------------


def test_report_writes_html_performance_and_errors(mixed):
    project, sweep = mixed
    out = project.cli("report", str(sweep)).output
    assert "completion_report.html" in out
    html = (sweep / "reports" / "completion_report.html").read_text()
    assert (
        "<script src" not in html
        and "<link" not in html
        and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        and "https://" not in html
    )
    task_table = html.split('<table id="tasks"', 1)[1].split("</table>", 1)[0]
    assert task_table.count("<tr>") == 1 + 18  # header + one row per task
    failures = html.split('<section id="errors">', 1)[1].split("</section>", 1)[0]
    assert failures.count("<tr>") == 1 + 5  # header + one row per cause
    assert 'id="tasks"' in html and 'data-col="loss"' in html
    # Scatter plots of each numeric metric against the swept numeric parameter (lr, log axis).
    for title in ("loss vs lr", "acc vs lr"):
        assert f"<title>{title}</title>" in html
    assert "lr (log)" in html
    # The text parameter mode gets a strip plot (a column per value) of each metric.
    for title in ("loss vs mode", "acc vs mode"):
        assert f"<title>{title}</title>" in html
    assert "histogram of duration of completed tasks (s)" in html
    assert "tasks per host over time" in html
    assert html.count("<svg") == 6
    assert "ValueError: learning rate must be positive" in html
    assert "fix the bug; retrying would fail again" in html

    perf = yaml.safe_load((sweep / "reports" / "performance_analysis.yaml").read_text())
    durations = perf["durations_completed"]
    assert durations["count"] == 3 and durations["min_s"] <= durations["median_s"] <= durations["max_s"]
    assert perf["durations_all_finished"]["count"] == 18
    assert perf["by_backend"]["local"]["tasks"] == 18 and perf["by_backend"]["local"]["tasks_per_hour"] > 0
    assert len(perf["by_host"]) == 1

    errors_html = (sweep / "reports" / "error_analysis.html").read_text()
    assert "python_exception (ValueError): 3 task(s)" in errors_html
    assert "Traceback (most recent call last):" in errors_html
    assert "install torch_that_is_not_installed" in errors_html
    assert (sweep / "reports" / "results.csv").exists()


def _chromium() -> str | None:
    path = "/usr/bin/chromium"
    if os.path.exists(path):
        return path
    if os.environ.get("CI") == "true" and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "chromium"], env=env, capture_output=True, timeout=900)
        if os.path.exists(path):
            return path
    return None


def test_report_renders_in_headless_chromium_without_js_errors(mixed, tmp_path):
    project, sweep = mixed
    project.cli("report", str(sweep))
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (/usr/bin/chromium; Debian package `chromium`)")
    page = (sweep / "reports" / "completion_report.html").resolve().as_uri()
    # #sort=duration_s&desc makes the page's own script sort the table on load.
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page + "#sort=duration_s&desc",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Uncaught" not in result.stderr, result.stderr[-2000:]
    assert 'id="tasks"' in dom and "<svg" in dom
    assert 'aria-sort="descending"' in dom
    body = dom.split('id="tasks"', 1)[1]
    order = re.findall(r"<td data-v=\"[^\"]*\">(task_\d+)</td>", body)
    assert len(order) == 18
    # The three timeouts (4 s walltime) ran longest; the table is sorted by duration, longest first.
    assert set(order[:3]) == set(tasks_of("sleep"))


# -- damaged sweep directories --------------------------------------------------------------------


def test_damaged_sweep_never_crashes_any_command(mixed):
    project, sweep = mixed
    damaged = sweep.parent / "damaged"
    shutil.copytree(sweep, damaged, symlinks=True)
    tasks = damaged / "tasks"
    (tasks / "task_004" / "status.yaml").write_bytes(b"\xff\xfe garbage: [")  # not UTF-8
    (tasks / "task_007" / "status.yaml").write_text('status: "fail')  # truncated
    (tasks / "task_010" / "status.yaml").write_text("- a list\n- not a mapping\n")
    (tasks / "task_013" / "status.yaml").write_text(
        'status: "failed"\nduration_s: "long"\nstarted: 5\nmetrics: [1, 2]\nerror_category: 7\nhost: [1]\n'
    )
    shutil.rmtree(tasks / "task_016")  # a missing task folder
    (tasks / "task_002" / "metrics.json").write_text("{not json")
    (tasks / "task_002" / "status.yaml").write_text("status: completed\nmetrics: 12\n")
    (tasks / "task_001" / "stderr.log").write_bytes(b"\x00\xff binary \xfe\n" * 3)
    (tasks / "task_005" / "stderr.log").unlink()
    (tasks / "not_a_task").mkdir()
    (tasks / "stray.txt").write_text("unknown")
    (tasks / "task_003" / "junk.tmp").write_text("an unknown extra file")
    (damaged / "sweep_metadata.yaml").write_text(": : not yaml [")
    (damaged / "project_config.yaml").write_text("runner: [oops\n")
    (damaged / "reports" / "stray").mkdir()

    for args in (
        ["status", str(damaged)],
        ["status", str(damaged), "--json"],
        ["status", str(damaged), "--tasks"],
        ["errors", str(damaged)],
        ["errors", str(damaged), "--json"],
        ["results", str(damaged)],
        ["results", str(damaged), "--format", "json"],
        ["report", str(damaged)],
        ["recent"],
        ["recent", "--json"],
        ["watch", str(damaged), "--interval", "0.1"],
    ):
        project.cli(*args)

    data = json.loads(project.cli("errors", str(damaged), "--json").output)
    unreadable = {q["task"] for q in data["questionable"]}
    assert unreadable == {"task_004", "task_007", "task_010"}
    status = json.loads(project.cli("status", str(damaged), "--json").output)
    assert status["counts"]["pending"] == 1 and status["counts"]["unreadable"] == 3
    rows = json.loads(project.cli("results", str(damaged), "--format", "json").output)["rows"]
    assert len(rows) == 18
    assert next(r for r in rows if r["task"] == "task_013")["duration_s"] is None

    # A sweep whose task mapping is garbage: `recent` lists it as unreadable, the others explain.
    broken = sweep.parent / "broken"
    broken.mkdir()
    (broken / "task_mapping.yaml").write_text("{{{ not a mapping")
    listed = {s["sweep_id"]: s for s in json.loads(project.cli("recent", "--json").output)}
    assert listed["broken"]["error"] and listed[SWEEP_ID]["tasks"] == 18
    assert "broken" in project.cli("recent").output
    for command in ("status", "errors", "results", "report", "watch"):
        result = project.cli(command, str(broken), expect=2)
        assert "task_mapping.yaml" in result.output
    shutil.rmtree(broken)
    shutil.rmtree(damaged)


def test_commands_do_not_import_snakemake_or_layout(mixed):
    project, sweep = mixed
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hsm_snake.cli.main import cli\n"
        "s = sys.argv[1]\n"
        "for args in (['status', s], ['errors', s], ['results', s], ['report', s], ['watch', s], ['recent']):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "bad = [m for m in sys.modules if m.startswith('snakemake') or m in ('hsm_snake.sweeps', 'hsm_snake.sweep.create')]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(sweep)], cwd=project.root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_report_of_a_sweep_without_finished_tasks(mixed):
    project, _ = mixed
    from hsm_snake import sweeps
    from hsm_snake.config.project import load_project
    from hsm_snake.config.sweep_file import load_sweep

    sweep_file = project.write_sweep({"grid": {"mode": ["ok"], "lr": [0.2, 0.3]}}, "fresh.yaml")
    index = sweeps.create(load_sweep(sweep_file), load_project(None, cwd=project.root), ["test"], "fresh")
    out = project.cli("report", str(index.paths.root)).output
    assert "2 task(s), 0 plot(s)" in out
    html = (index.paths.root / "reports" / "completion_report.html").read_text()
    assert "2 pending" in html and "No numeric metric" in html
    assert "no failed tasks" in project.cli("errors", str(index.paths.root)).output
    status = project.cli("status", str(index.paths.root)).output
    assert "0% 0/2 completed" in status and "elapsed" in status
    assert Path(index.paths.root / "reports" / "results.csv").read_text().count("\n") == 3
