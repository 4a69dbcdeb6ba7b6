"""`hsm-snake status` of a 10,000-task sweep costs about what reading its status files costs.

Timing goals (0.3 s at 10,000 tasks) live in bench/run_bench.py. Here the command is compared with
a floor measured side by side in the same process (read every status.yaml), never with an absolute
time: a loaded CI machine slows both alike.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hsm_snake.cli.main import cli
from hsm_snake.monitor import scan
from hsm_snake.monitor.progress import summarize
from hsm_snake.monitor.readers import load_sweep_index

N = 10_000


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


@pytest.fixture(scope="module")
def big_sweep(tmp_path_factory) -> Path:
    """9,000 completed, 500 failed, 400 running on Slurm (no local run holds it), 100 pending.

    Written with plain open() (no fsync): the files are what the runner writes, only faster made.
    """
    root = tmp_path_factory.mktemp("big") / "big"
    tasks = {
        f"task_{i:03d}": {"hash": f"{i:016x}", "params": {"lr": 10.0 ** -(i % 4), "seed": i}} for i in range(1, N + 1)
    }
    root.mkdir()
    (root / "task_mapping.yaml").write_text("# mapping\n" + json.dumps({"sweep_id": "big", "tasks": tasks}))
    base = time.time() - 3600
    (root / "sweep_metadata.yaml").write_text(f"sweep_id: big\ncreated: '{iso(base - 60)}'\n")
    for i, name in enumerate(tasks, start=1):
        task_dir = root / "tasks" / name
        task_dir.mkdir(parents=True)
        state = "completed" if i <= 9000 else "failed" if i <= 9500 else "running" if i <= 9900 else None
        if state is None:
            continue
        started = base + i * 0.3
        record = {
            "status": state,
            "task_id": name,
            "attempt": 1,
            "started": iso(started),
            "finished": None if state == "running" else iso(started + 10),
            "duration_s": None if state == "running" else 10.0,
            "host": f"node{i % 8}",
            "backend": "slurm",
            "job_id": str(i),
            "error_category": "timeout" if state == "failed" else None,
        }
        (task_dir / "status.yaml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in record.items()))
        if state == "completed":
            (task_dir / ".completed").touch()
            os.utime(task_dir / ".completed", (started + 10, started + 10))
    return root


def best_of(runs: int, action) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def read_every_status(root: Path) -> None:
    tasks = root / "tasks"
    for name in os.listdir(tasks):
        try:
            (tasks / name / "status.yaml").read_bytes()
        except FileNotFoundError:
            pass


def test_status_of_10000_tasks_costs_no_more_than_reading_them(big_sweep):
    runner = CliRunner()

    def status() -> None:
        result = runner.invoke(cli, ["status", str(big_sweep)], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    floor = best_of(3, lambda: read_every_status(big_sweep))
    took = best_of(3, status)
    # status reads only the status files of unfinished tasks (a stat per finished one): today ~0.7x.
    assert took <= 3 * floor + 0.05, f"status {took:.3f} s vs reading every status.yaml {floor:.3f} s"
    out = runner.invoke(cli, ["status", str(big_sweep)]).output
    assert "90% 9000/10000 completed" in out
    assert "400 running" in out and "500 failed" in out and "100 pending" in out
    assert "running on slurm ×400" in out and "(+2 more)" in out
    assert "ETA" in out and "500 left" in out


def test_progress_figures_from_markers_and_a_sample(big_sweep):
    state = scan.scan(load_sweep_index(big_sweep))
    progress = summarize(state, window=50)
    # Tasks finish every 0.3 s (one every 0.3 s over the last 50 finishes): 1/0.3 per second.
    assert progress.throughput_per_s == pytest.approx(1 / 0.3, rel=0.1)
    assert progress.mean_duration_s == pytest.approx(10.0)
    assert progress.parallelism == pytest.approx(10 / 0.3, rel=0.1)
    assert progress.remaining == 500 and progress.in_progress
    assert progress.eta_s == pytest.approx(500 * 0.3, rel=0.1)
    assert progress.running_backends == {"slurm": 400}
    assert sum(progress.running_hosts.values()) == 400
    assert progress.stale == []
