"""Undo what a killed run or Snakemake's own failure handling did to finished tasks.

The runner's records are the truth about a task: it writes ``status: completed`` only after
the script exited 0, and the completion marker right after. Two things can separate them:
- kill -9 between the runner's last write and Snakemake noting the job: the marker stays
  flagged incomplete in ``.snakemake/incomplete/``;
- Snakemake deleting the marker of a job it *believes* failed. snakemake-executor-plugin-slurm
  2.8 does this with job arrays: the outer Snakemake of a failing array element thinks it runs
  the array's first task and deletes that task's marker (seen on the test cluster).
Both would make a finished task run again. Called under the sweep lock, before and after every run.
"""

from __future__ import annotations

import base64
import os

from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import write_bytes_atomic
from hsm_snake.monitor import scan


def clear_snakemake_locks(paths: SweepPaths) -> None:
    """Snakemake's locks outlive a kill -9; with the sweep lock held, no live run owns them."""
    for name in _listdir(paths.snakemake_locks_dir):
        (paths.snakemake_locks_dir / name).unlink(missing_ok=True)


def keep_finished_results(state: scan.SweepState) -> list[str]:
    """Restore the marker of every task the runner finished; return their names."""
    paths = state.index.paths
    kept = []
    for task in state.tasks:
        if task.state != scan.INTERRUPTED:
            continue
        target = paths.marker_target(task.task.name)
        flag = paths.snakemake_incomplete_dir / base64.urlsafe_b64encode(target.encode()).decode()
        flag.unlink(missing_ok=True)
        marker = paths.task(task.task.name).marker
        if not marker.exists():
            write_bytes_atomic(marker, b"")
        kept.append(task.task.name)
    return kept


def _listdir(folder) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []
