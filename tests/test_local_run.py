"""End to end on the local profile: real Snakemake, real runner, real scripts."""

from __future__ import annotations

import json
import shutil

from conftest import load_json, read_status

from hsm_snake.layout.paths import MARKER_NAME


def test_run_lays_out_sweep_and_completes_every_task(project):
    sweep = project.write_sweep(
        {
            "grid": {"lr": [0.1, 0.01], "model": {"depth": [2, 4]}},
            "paired": [{"size": {"width": [8, 16], "heads": [1, 2]}}],
        }
    )
    result = project.cli("run", str(sweep))
    assert "8 completed" in result.output
    (sweep_dir,) = project.sweep_dirs()
    for name in ("sweep_config.yaml", "sweep_metadata.yaml", "task_mapping.yaml", "project_config.yaml"):
        assert (sweep_dir / name).is_file(), name
    for folder in ("logs/sources", "logs/errors", "scripts/job_scripts", "scripts/setup_scripts", "reports"):
        assert (sweep_dir / folder).is_dir(), folder
    assert (sweep_dir / "sweep_config.yaml").read_bytes() == sweep.read_bytes()
    tasks = sorted((sweep_dir / "tasks").iterdir())
    assert [t.name for t in tasks] == [f"task_{i:03d}" for i in range(1, 9)]
    first = tasks[0]
    status = read_status(first)
    assert status["status"] == "completed" and status["exit_code"] == 0 and status["attempt"] == 1
    assert status["backend"] == "local" and status["command"][1].endswith("echo.py")
    for key in ("started", "finished", "duration_s", "host", "signal", "error_category", "error_summary"):
        assert key in status
    assert (first / MARKER_NAME).exists()
    assert (first / "stdout.log").read_text().strip().startswith("{")
    assert load_json(first / "metrics.json") == {"score": 4}
    assert json.loads((first / "results" / "argv.json").read_text()) == [
        "lr=0.1",
        "model.depth=2",
        "width=8",
        "heads=1",
    ]
    assert project.completions() == {t.name: 1 for t in tasks}
    sources = (sweep_dir / "logs" / "sources" / "local.log").read_text().splitlines()
    assert len(sources) == 8 and all(" completed host=" in line for line in sources)
    assert "task_001 completed" in sources[0]
    # Nothing to do the second time: no task runs again.
    again = project.cli("complete", sweep_dir.name)
    assert "8 completed" in again.output
    assert project.completions() == {t.name: 1 for t in tasks}


def test_failed_task_keeps_logs_and_complete_reruns_only_it(project):
    sweep = project.write_sweep({"grid": {"fail": [0, 3], "x": [1, 2]}})
    result = project.cli("run", str(sweep), expect=1)
    assert "2 failed" in result.output
    (sweep_dir,) = project.sweep_dirs()
    failed = sweep_dir / "tasks" / "task_003"
    status = read_status(failed)
    assert status["status"] == "failed" and status["exit_code"] == 3
    assert status["error_category"] == "nonzero_exit"
    assert "about to fail" in (failed / "stderr.log").read_text()
    assert not (failed / MARKER_NAME).exists()

    missing = json.loads(project.cli("missing", sweep_dir.name, "--json").output)
    assert [m["task"] for m in missing] == ["task_003", "task_004"]
    assert all(m["state"] == "failed" for m in missing)
    assert missing[0]["command"][-2:] == ["fail=3", "x=1"]

    # Nothing but failed tasks is missing: --no-retry-failed leaves them alone.
    project.cli("complete", sweep_dir.name, "--no-retry-failed", expect=1)
    assert project.completions() == {"task_001": 1, "task_002": 1}
    # The user fixes the project config; complete picks the change up and reruns only those.
    project.write_project({"task": {"env": {"FORCE_OK": "1"}}})
    project.cli("complete", sweep_dir.name)
    assert project.completions() == {f"task_00{i}": 1 for i in range(1, 5)}
    status = read_status(failed)
    assert status["attempt"] == 2
    assert (failed / "attempts" / "1" / "stderr.log").exists()
    starts = [line for line in project.runs() if line.endswith("start")]
    assert sorted(starts) == sorted(["task_001 start", "task_002 start"] + ["task_003 start", "task_004 start"] * 2)


def test_dry_run_writes_nothing_and_lists_commands(project):
    sweep = project.write_sweep({"grid": {"a": [1, 2, 3]}})
    result = project.cli("run", str(sweep), "--dry-run", "--json")
    tasks = json.loads(result.output)
    assert [t["task"] for t in tasks] == ["task_001", "task_002", "task_003"]
    assert tasks[2]["command"][-1] == "a=3"
    assert not (project.root / "sweeps").exists()
    table = project.cli("run", str(sweep), "--dry-run").output
    assert "task_003" in table and "a=3" in table


def test_task_selection_runs_only_named_tasks(project):
    sweep = project.write_sweep({"grid": {"a": list(range(6))}})
    project.cli("run", str(sweep), "--dry-run")
    sweep_id = "sel"
    project.cli("run", str(sweep), "--sweep-id", sweep_id, "--dry-run")
    # Create the sweep and run only some tasks via complete --tasks.
    from hsm_snake import sweeps
    from hsm_snake.config.project import load_project
    from hsm_snake.config.sweep_file import load_sweep

    sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], sweep_id)
    project.cli("complete", sweep_id, "--tasks", "2,4-5")
    assert sorted(project.completions()) == ["task_002", "task_004", "task_005"]
    project.cli("complete", sweep_id, "--tasks", "6")  # Snakemake reads a lone number as an int
    assert sorted(project.completions()) == ["task_002", "task_004", "task_005", "task_006"]
    status = json.loads(project.cli("status", sweep_id, "--json").output)
    assert status["counts"] == {"completed": 4, "pending": 2}


def test_a_finished_task_whose_marker_was_removed_is_kept_not_rerun(project):
    # Snakemake removes the marker of a job it believes failed (the slurm plugin's arrays do
    # this to innocent tasks); the runner's completed status is the truth.
    sweep = project.write_sweep({"grid": {"x": [1, 2]}})
    project.cli("run", str(sweep))
    (sweep_dir,) = project.sweep_dirs()
    (sweep_dir / "tasks" / "task_002" / MARKER_NAME).unlink()
    result = project.cli("complete", sweep_dir.name)
    assert "kept 1 finished result" in result.output and "task_002" in result.output
    assert project.completions() == {"task_001": 1, "task_002": 1}
    assert (sweep_dir / "tasks" / "task_002" / MARKER_NAME).exists()


def test_params_lost_in_a_machine_crash_are_rewritten_before_the_next_run(project):
    # params.yaml is written without an fsync (task_mapping.yaml, fsynced after it, is the
    # record): a crash can leave it empty or, for a deleted folder, missing.
    sweep = project.write_sweep({"grid": {"x": [1, 2, 3]}})
    project.cli("run", str(sweep))
    (sweep_dir,) = project.sweep_dirs()
    crashed = sweep_dir / "tasks" / "task_002"
    for name in ("params.yaml", "status.yaml", MARKER_NAME):
        (crashed / name).write_bytes(b"")
    (crashed / MARKER_NAME).unlink()
    shutil.rmtree(sweep_dir / "tasks" / "task_003")
    project.cli("complete", sweep_dir.name)
    assert project.completions() == {"task_001": 1, "task_002": 2, "task_003": 2}
    for number, x in ((2, 2), (3, 3)):
        task = sweep_dir / "tasks" / f"task_00{number}"
        assert json.loads((task / "results" / "argv.json").read_text()) == [f"x={x}"]


def test_the_runner_refuses_an_empty_params_file_with_the_way_out(project):
    from hsm_snake.runner.task import TaskFailed, run_task

    sweep = project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", str(sweep))
    (sweep_dir,) = project.sweep_dirs()
    task = sweep_dir / "tasks" / "task_001"
    (task / "params.yaml").write_bytes(b"")
    try:
        run_task(task)
    except TaskFailed as failed:
        status = failed.status
    else:
        raise AssertionError("an empty params.yaml must not run the script with no parameters")
    assert status["error_category"] == "launch_error"
    assert "params.yaml is empty" in status["error_summary"] and "hsm-snake complete" in status["error_summary"]
    assert project.completions() == {"task_001": 1}


def test_metrics_regex_reads_a_script_that_prints_no_json(project):
    (project.root / "plain.py").write_text(
        "import sys\n"
        "lr = sys.argv[1].partition('=')[2]\n"
        "print('epoch 1 loss=0.90 acc=0.5 best=none')\n"
        "print(f'epoch 2 loss=0.45 acc=0.75 steps=12 best=epoch2 lr={lr}')\n"
    )
    regexes = {"loss": r"loss=([0-9.]+)", "steps": r"steps=(\d+)", "best": r"best=(\w+)", "f1": r"f1=([0-9.]+)"}
    project.write_project({"paths": {"train_script": "plain.py"}, "task": {"metrics_regex": regexes}})
    project.write_sweep({"grid": {"lr": [0.1]}})
    project.cli("run", "sweep.yaml")
    (sweep_dir,) = project.sweep_dirs()
    task = sweep_dir / "tasks" / "task_001"
    # The last match of each pattern, numbers as numbers; a pattern that never matched is left out.
    expected = {"loss": 0.45, "steps": 12, "best": "epoch2"}
    assert load_json(task / "metrics.json") == expected
    assert read_status(task)["metrics"] == expected
    csv = project.cli("results").output.splitlines()
    row = dict(zip(csv[0].split(","), csv[1].split(","), strict=True))
    assert row["loss"] == "0.45" and row["best"] == "epoch2"


def test_the_runner_entry_point_of_cluster_jobs_reports_by_exit_status(project):
    import subprocess
    import sys

    sweep = project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", str(sweep))
    (sweep_dir,) = project.sweep_dirs()
    task = sweep_dir / "tasks" / "task_001"
    runner = [sys.executable, "-m", "hsm_snake.runner"]
    usage = subprocess.run(runner, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: python -m hsm_snake.runner TASK_DIR" in usage.stderr
    (task / "params.yaml").write_bytes(b"")
    failed = subprocess.run([*runner, str(task)], capture_output=True, text=True)
    assert failed.returncode == 1
    assert failed.stderr.startswith("task_001 failed: launch_error:") and "params.yaml is empty" in failed.stderr
    assert project.completions() == {"task_001": 1}
