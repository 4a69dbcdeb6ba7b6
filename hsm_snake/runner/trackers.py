"""Hand a task over to the user's experiment tracker, without importing any tracker library.

The runner passes environment variables the trackers read themselves (W&B: ``WANDB_*``; MLflow:
``MLFLOW_EXPERIMENT_NAME``, ``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_CONTEXT``) and, afterwards, finds
the run's URL in the lines the tracker printed (``View run ... at https://...``) or, when it
printed none, in the few small files the tracker left (W&B's run folder under the task's
``WANDB_DIR``, MLflow's file store).

Standard library and PyYAML only (runs on compute nodes and remote hosts).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import yaml

from hsm_snake.layout.records import tail

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# W&B: "wandb: 🚀 View run lr-0.1 at: https://wandb.ai/team/proj/runs/abc" (older: "View run at https://...");
# MLflow: "🏃 View run lr-0.1 at: http://127.0.0.1:5000/#/experiments/1/runs/abc".
_RUN_URL = re.compile(r"View run\b.*?\bat:?\s+(https?://\S+)")


def run_name(sweep_id: str, task_id: str) -> str:
    return f"{sweep_id}/{task_id}"


def wandb_group(settings: dict[str, Any], sweep_id: str) -> str:
    """The W&B group of a sweep's tasks: ``wandb.group`` when set (v1's --group), else the sweep id."""
    return str((settings.get("wandb") or {}).get("group") or sweep_id)


def tracker_env(settings: dict[str, Any], sweep_id: str, task_id: str, task_dir: Path) -> dict[str, str]:
    """The tracker variables of one task: W&B's when ``wandb:`` is configured, MLflow's when ``mlflow:`` is."""
    env = {"HSM_RUN_NAME": run_name(sweep_id, task_id)}
    wandb = settings.get("wandb")
    if wandb is not None:
        env.update(
            WANDB_RUN_GROUP=wandb_group(settings, sweep_id),
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
        # mlflow.start_run() reads no run-name variable, but puts the tags of this JSON on every
        # new run, and a run started without run_name takes its name from the mlflow.runName tag.
        env["MLFLOW_RUN_CONTEXT"] = json.dumps(
            {"mlflow.runName": run_name(sweep_id, task_id), "hsm.sweep_id": sweep_id, "hsm.task_id": task_id}
        )
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


# Files read here are small; a damaged or huge one is cut, never read whole.
_READ_LIMIT = 65536
# At most this many entries of one folder are looked at (an MLflow experiment holds one per run).
_LISTING_LIMIT = 10000
# A shared file system's clock may be behind this host's: runs changed a little earlier count too.
_CLOCK_SLACK_S = 60.0
WANDB_DEFAULT_APP_URL = "https://wandb.ai"
# W&B names a run's folder "run-<YYYYMMDD_HHMMSS>-<run id>" ("offline-run-..." has no page).
_WANDB_RUN_DIR = re.compile(r"run-\d{8}_\d{6}-(?P<run_id>.+)")
# W&B's per-run debug.log: "... finishing run <entity>/<project>/<run id>" when the script finishes the run.
_WANDB_FINISHING = re.compile(r"finishing run (?P<path>[^/\s]+/[^/\s]+/[^/\s]+)\s*$", re.MULTILINE)


def find_run_url_in_files(task_dir: Path, env: Mapping[str, str], cwd: str, since: float) -> str | None:
    """The run URL from the files the task's tracker left, for a script that printed none.

    ``env``/``cwd``: the script's environment and working directory; ``since``: when it started
    (an MLflow store is shared: only runs written to after that are looked at).
    """
    return wandb_run_url(task_dir / "wandb", env) or mlflow_run_url(env, cwd, since)


def wandb_run_url(wandb_dir: Path, env: Mapping[str, str]) -> str | None:
    """The page of the W&B run under ``wandb_dir`` (the task's WANDB_DIR): its run folder gives the
    run id, its debug.log entity/project/run id; else entity and project come from the environment."""
    run_dir = _wandb_run_dir(wandb_dir / "wandb")
    if run_dir is None:
        return None
    finished = _WANDB_FINISHING.findall(_read_small(run_dir / "logs" / "debug.log"))
    if finished:
        entity, project, run_id = finished[-1].split("/")
    else:
        entity, project = env.get("WANDB_ENTITY"), env.get("WANDB_PROJECT")
        run_id = _WANDB_RUN_DIR.fullmatch(run_dir.name).group("run_id")
        if not entity or not project:
            return None
    return f"{wandb_app_url(env)}/{quote(entity)}/{quote(project)}/runs/{quote(run_id, safe='=+&$@')}"


def _wandb_run_dir(runs: Path) -> Path | None:
    """The task's latest online W&B run folder: where ``latest-run`` points, else the newest ``run-*``."""
    latest = runs / "latest-run"
    if latest.is_dir():
        run_dir = latest.resolve()
        return run_dir if _WANDB_RUN_DIR.fullmatch(run_dir.name) else None
    names = sorted(entry.name for entry in _listing(runs) if _WANDB_RUN_DIR.fullmatch(entry.name))
    return runs / names[-1] if names else None


def wandb_app_url(env: Mapping[str, str]) -> str:
    """W&B's web address: WANDB_APP_URL, else the one of WANDB_BASE_URL (W&B's api_to_app_url)."""
    if env.get("WANDB_APP_URL"):
        return env["WANDB_APP_URL"].rstrip("/")
    base = env.get("WANDB_BASE_URL", "").rstrip("/")
    if not base:
        return WANDB_DEFAULT_APP_URL
    if "://api.wandb." in base and "://api.wandb.test" not in base:
        return base.replace("://api.", "://")
    return base.replace("://api.", "://app.")


def mlflow_run_url(env: Mapping[str, str], cwd: str, since: float) -> str | None:
    """``file://`` address of the task's run in an MLflow file store: the run of the task's
    experiment named ``<sweep_id>/<task_id>`` (MLFLOW_RUN_CONTEXT) among those written since ``since``.

    A tracking server (http) keeps nothing here, and MLflow prints its run page itself.
    """
    store = _mlflow_file_store(env, cwd)
    name = _mlflow_context_run_name(env.get("MLFLOW_RUN_CONTEXT"))
    if store is None or name is None:
        return None
    experiment = _mlflow_experiment_dir(store, env.get("MLFLOW_EXPERIMENT_NAME"))
    if experiment is None:
        return None
    for run_dir in _changed_since(experiment, since - _CLOCK_SLACK_S):
        if _read_small(run_dir / "tags" / "mlflow.runName") == name:
            return run_dir.as_uri()
    return None


def _mlflow_context_run_name(context: str | None) -> str | None:
    try:
        tags = json.loads(context or "")
    except ValueError:
        return None
    return tags.get("mlflow.runName") if isinstance(tags, dict) else None


def _mlflow_file_store(env: Mapping[str, str], cwd: str) -> Path | None:
    """The folder of the script's MLflow file store; None for any other kind of store."""
    uri = env.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return Path(cwd, env.get("MLFLOW_TRACKING_DIR") or "mlruns")
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme:
        return None
    return Path(cwd, uri)


def _mlflow_experiment_dir(store: Path, name: str | None) -> Path | None:
    """The folder of the experiment called ``name`` (its meta.yaml says so); unnamed: the default, 0."""
    if not name:
        return store / "0" if (store / "0").is_dir() else None
    for entry in _listing(store):
        meta = _read_small_yaml(Path(entry.path, "meta.yaml"))
        if isinstance(meta, dict) and meta.get("name") == name:
            return Path(entry.path)
    return None


def _changed_since(folder: Path, since: float) -> list[Path]:
    """The sub-folders of ``folder`` changed since ``since`` (MLflow rewrites a run's meta.yaml at its end)."""
    changed = []
    for entry in _listing(folder):
        try:
            if entry.is_dir() and entry.stat().st_mtime >= since:
                changed.append(Path(entry.path))
        except OSError:
            continue
    return changed


def _listing(folder: Path) -> list[os.DirEntry]:
    """At most _LISTING_LIMIT entries of ``folder``; none when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return list(itertools.islice(entries, _LISTING_LIMIT))
    except OSError:
        return []


def _read_small(path: Path) -> str:
    return tail(path, _READ_LIMIT).strip()


def _read_small_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(_read_small(path))
    except yaml.YAMLError:
        return None
