"""`hsm-snake migrate`: turn an HPC Sweep Manager v1 sweep folder into a standard sweep directory.

v1 layout handled (v1's own completion code reads it this way):
- ``sweep_config.yaml`` — the sweep, in v1's format (loaded as any v1 sweep file);
- ``tasks/task_<n>/`` (``task_1`` or ``task_001``) — task n ran the n-th parameter set of the
  expansion (positional ids, 1-based), with ``task_info.txt`` whose last ``Status: …`` line tells
  COMPLETED/SUCCESS, FAILED, RUNNING or CANCELLED;
- ``source_mapping.yaml`` — ``task_assignments: {task_id: {status: …}}`` (used where a task folder
  has no task_info.txt).
Nothing is deleted or rewritten: v1 files stay where they are; hsm-snake's records are added
(``task_mapping.yaml``, ``project_config.yaml``, ``sweep_metadata.yaml`` if absent, and per task
``params.yaml``, ``status.yaml`` and the completion marker of completed tasks). v1 folders named
``task_1`` are renamed to ``task_001`` (the content moves whole). Afterwards ``missing`` and
``complete`` work as on any sweep.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hsm_snake.config.project import ProjectConfig
from hsm_snake.config.sweep_file import load_sweep
from hsm_snake.errors import SweepStateError
from hsm_snake.layout.index import TaskEntry, mapping_document
from hsm_snake.layout.paths import SweepPaths, task_id
from hsm_snake.layout.records import (
    PRIVATE_FILE_MODE,
    RecordError,
    read_yaml,
    write_bytes_atomic,
    write_json_document,
    write_yaml,
)
from hsm_snake.layout.status import write_status
from hsm_snake.sweep import create as layout
from hsm_snake.sweep.expand import expand, param_hash

_V1_TASK = re.compile(r"^task_(\d+)$")
_V1_STATES = {"COMPLETED": "completed", "SUCCESS": "completed", "FAILED": "failed", "CANCELLED": "cancelled"}


@dataclass
class Migration:
    paths: SweepPaths
    tasks: int = 0
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)


def migrate(v1_dir: Path, project: ProjectConfig, to: Path | None = None) -> Migration:
    source = v1_dir.resolve()
    if not (source / "sweep_config.yaml").is_file():
        raise SweepStateError(
            f"{source} has no sweep_config.yaml: not a v1 sweep folder.\n"
            "  hint: give the folder v1 created under sweeps/outputs/<sweep_id>/"
        )
    if to is not None:
        if to.exists():
            raise SweepStateError(f"{to} already exists.\n  hint: name a new folder for the migrated copy")
        shutil.copytree(source, to, symlinks=True)
        source = to.resolve()
    paths = SweepPaths(source)
    if paths.task_mapping.exists():
        raise SweepStateError(f"{source} already has a task_mapping.yaml: it is an hsm-snake sweep already")
    spec = load_sweep(paths.sweep_config)
    expanded = expand(spec)
    outcome = Migration(paths, tasks=len(expanded))
    v1_statuses = _source_mapping_statuses(source)
    tasks = {}
    for number, params in enumerate(expanded, start=1):
        name = task_id(number)
        _adopt_v1_folder(paths, number, outcome)
        task = paths.task(name)
        _refuse_link(task.dir)
        task.results.mkdir(parents=True, exist_ok=True)
        if not task.params.exists():
            write_yaml(task.params, params)
        tasks[name] = TaskEntry(name, param_hash(params), params)
        state = _v1_state(task.dir / "task_info.txt") or v1_statuses.get(name) or v1_statuses.get(f"task_{number}")
        if state in ("completed", "failed", "cancelled") and not task.status.exists():
            write_status(
                task.status,
                {
                    "status": state,
                    "task_id": name,
                    "attempt": 1,
                    "backend": "v1",
                    "error_category": None if state == "completed" else state,
                    "error_summary": "recorded by HPC Sweep Manager v1" if state != "completed" else None,
                },
            )
        if state == "completed":
            write_bytes_atomic(task.marker, b"")
            outcome.completed.append(name)
        elif state == "failed":
            outcome.failed.append(name)
    for folder in paths.layout_dirs():
        folder.mkdir(parents=True, exist_ok=True)
    write_yaml(paths.project_config, layout.project_record(project, spec), mode=PRIVATE_FILE_MODE)
    if not paths.metadata.exists():
        write_yaml(paths.metadata, {"sweep_id": paths.sweep_id, "migrated_from": "HPC Sweep Manager v1"})
    write_json_document(paths.task_mapping, mapping_document(tasks, paths.sweep_id), layout.MAPPING_HEADER)
    return outcome


def _adopt_v1_folder(paths: SweepPaths, number: int, outcome: Migration) -> None:
    """v1's ``task_7`` becomes ``task_007`` (moved whole, so nothing is lost)."""
    target = paths.task(task_id(number)).dir
    _refuse_link(paths.tasks_dir)
    if target.exists() or target.is_symlink() or not paths.tasks_dir.is_dir():
        return
    for candidate in paths.tasks_dir.iterdir():
        match = _V1_TASK.match(candidate.name)
        if match and int(match.group(1)) == number and candidate.is_dir():
            _refuse_link(candidate)
            candidate.rename(target)
            outcome.renamed.append((candidate.name, target.name))
            return


def _refuse_link(folder: Path) -> None:
    """Migrate writes into task folders: never through a symbolic link to somewhere else."""
    if folder.is_symlink():
        raise SweepStateError(
            f"{folder} is a symbolic link (to {os.readlink(folder)}): migrate never writes through links; "
            "replace it by a copy of the folder it points to, then migrate again"
        )


def _v1_state(task_info: Path) -> str | None:
    try:
        lines = task_info.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    statuses = [line.split(":", 1)[1].strip().upper() for line in lines if line.startswith("Status:")]
    if not statuses:
        return None
    return next((state for word, state in _V1_STATES.items() if word in statuses[-1]), None)


def _source_mapping_statuses(source: Path) -> dict[str, str]:
    path = source / "source_mapping.yaml"
    if not path.exists():
        return {}
    try:
        assignments = (read_yaml(path) or {}).get("task_assignments") or {}
    except (RecordError, AttributeError):  # a damaged v1 file only means "no statuses from it"
        return {}
    return {
        str(task): _V1_STATES[str(info.get("status", "")).upper()]
        for task, info in assignments.items()
        if isinstance(info, dict) and str(info.get("status", "")).upper() in _V1_STATES
    }
