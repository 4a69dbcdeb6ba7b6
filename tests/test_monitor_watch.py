"""`hsm-snake watch` follows a real run and ends by itself when the run ends; Ctrl-C exits 0."""

from __future__ import annotations

import threading
import time

from background import kill_everything, start_run, started, wait_for
from click.testing import CliRunner
from conftest import read_status

from hsm_snake import sweeps
from hsm_snake.cli.main import cli
from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep
from hsm_snake.layout.records import write_record


def test_watch_follows_a_run_and_exits_when_it_ends(project):
    sweep = project.write_sweep({"grid": {"hold": [1], "x": [1, 2]}})
    proc = start_run(project, "run", str(sweep))
    try:
        wait_for(lambda: len(started(project)) == 2 or proc.poll() is not None, what="both held tasks to start")
        assert proc.poll() is None, proc.communicate()[0]
        (sweep_dir,) = project.sweep_dirs()
        during = CliRunner().invoke(cli, ["status", str(sweep_dir)], catch_exceptions=False).output
        assert "run in progress: pid" in during and "2 running" in during and "2 left" in during
        assert "running on local ×2" in during
        release = threading.Timer(1.0, project.release)
        release.start()
        begin = time.monotonic()
        result = CliRunner().invoke(cli, ["watch", str(sweep_dir), "--interval", "0.2"], catch_exceptions=False)
        waited = time.monotonic() - begin
        release.join()
        assert result.exit_code == 0, result.output
        assert waited >= 1.0, "watch returned before the held tasks were released"
        # watch ends when the run has released the sweep: the run process is done (or about to be).
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
    finally:
        project.release()
        if proc.poll() is None:
            kill_everything(project, proc)
    assert "2 task(s): 2 completed" in result.output
    assert "100% 2/2 completed" in result.output
    assert result.output.rstrip().endswith("no run in progress: done watching")
    assert read_status(sweep_dir / "tasks" / "task_002")["status"] == "completed"


def test_watch_of_an_idle_sweep_returns_at_once_and_ctrl_c_exits_0(project, monkeypatch):
    sweep = project.write_sweep({"grid": {"x": [1, 2]}})
    index = sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], "idle")
    result = CliRunner().invoke(cli, ["watch", "idle", "--interval", "0.1"], catch_exceptions=False)
    assert result.exit_code == 0 and "no run in progress: done watching" in result.output
    # A task Slurm still runs keeps watch going (no local run holds the sweep); Ctrl-C ends it.
    write_record(
        index.paths.task("task_001").status,
        {"status": "running", "task_id": "task_001", "attempt": 1, "backend": "slurm", "host": "node7"},
    )

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupt)
    result = CliRunner().invoke(cli, ["watch", "idle", "--interval", "0.1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "stopped watching" in result.output and "1 running" in result.output
