"""Hand a task over to the user's experiment tracker, without importing any tracker library.

The runner passes environment variables the trackers read themselves (W&B: ``WANDB_*``; MLflow:
``MLFLOW_EXPERIMENT_NAME``, ``MLFLOW_TRACKING_URI``) and, afterwards, finds the run's URL in the
lines the tracker printed (``View run ... at https://...``).

Standard library only (runs on compute nodes and remote hosts).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# W&B: "wandb: 🚀 View run lr-0.1 at: https://wandb.ai/team/proj/runs/abc" (older: "View run at https://...");
# MLflow: "🏃 View run lr-0.1 at: http://127.0.0.1:5000/#/experiments/1/runs/abc".
_RUN_URL = re.compile(r"View run\b.*?\bat:?\s+(https?://\S+)")


def run_name(sweep_id: str, task_id: str) -> str:
    return f"{sweep_id}/{task_id}"


def tracker_env(settings: dict[str, Any], sweep_id: str, task_id: str, task_dir: Path) -> dict[str, str]:
    """The tracker variables of one task: W&B's when ``wandb:`` is configured, MLflow's when ``mlflow:`` is."""
    env = {"HSM_RUN_NAME": run_name(sweep_id, task_id)}
    wandb = settings.get("wandb")
    if wandb is not None:
        env.update(
            WANDB_RUN_GROUP=sweep_id,
            WANDB_NAME=run_name(sweep_id, task_id),
            WANDB_DIR=str(task_dir / "wandb"),
        )
        if wandb.get("project"):
            env["WANDB_PROJECT"] = str(wandb["project"])
        if wandb.get("entity"):
            env["WANDB_ENTITY"] = str(wandb["entity"])
    mlflow = settings.get("mlflow")
    if mlflow is not None:
        env["MLFLOW_EXPERIMENT_NAME"] = str(mlflow.get("experiment_name") or sweep_id)
        if mlflow.get("tracking_uri"):
            env["MLFLOW_TRACKING_URI"] = str(mlflow["tracking_uri"])
    return env


def find_run_url(*texts: str) -> str | None:
    """The last run URL a tracker printed in any of ``texts`` (stdout, stderr)."""
    found = None
    for text in texts:
        for match in _RUN_URL.finditer(_ANSI.sub("", text)):
            found = match.group(1)
    return found
