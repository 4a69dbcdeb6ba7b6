"""Names every file of a sweep directory. Nobody else builds paths inside a sweep.

Imported by the task runner on compute nodes: standard library only.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from hsm_snake.errors import InvalidValueError
from hsm_snake.layout import names

TASK_PREFIX = "task_"
TASK_DIGITS = 3
MARKER_NAME = ".completed"
STATUS_NAME = "status.yaml"
METRICS_NAME = "metrics.json"
ATTEMPTS_NAME = "attempts"


def task_id(number: int) -> str:
    """``task_001`` … ``task_999``, ``task_1000`` …: at least three digits, never reused."""
    return f"{TASK_PREFIX}{number:0{TASK_DIGITS}d}"


def map_path(path: str, path_map: dict[str, str]) -> str:
    """``path`` as a host with ``path_map`` (local prefix -> its prefix) sees it: the longest
    matching prefix is replaced; a path under no prefix is the same there."""
    matching = [p for p in path_map if path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/")]
    if not matching:
        return path
    prefix = max(matching, key=lambda p: len(p.rstrip("/")))
    return (path_map[prefix].rstrip("/") + path[len(prefix.rstrip("/")) :]) or "/"


def task_number(name: str) -> int:
    """The number of a task id such as ``task_007``; InvalidValueError for anything else."""
    if not names.is_task_name(name):
        raise InvalidValueError(f"not a task id: {name!r}")
    return int(name[len(TASK_PREFIX) :])


@dataclass(frozen=True)
class TaskPaths:
    """The files of one task folder ``tasks/task_NNN/``."""

    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def params(self) -> Path:
        return self.dir / "params.yaml"

    @property
    def status(self) -> Path:
        return self.dir / STATUS_NAME

    @property
    def stdout(self) -> Path:
        return self.dir / "stdout.log"

    @property
    def stderr(self) -> Path:
        return self.dir / "stderr.log"

    @property
    def results(self) -> Path:
        return self.dir / "results"

    @property
    def metrics(self) -> Path:
        return self.dir / METRICS_NAME

    @property
    def marker(self) -> Path:
        """The Snakemake target: exists only after a clean exit of the task."""
        return self.dir / MARKER_NAME

    @property
    def attempts(self) -> Path:
        """Logs of earlier attempts, kept when a task runs again."""
        return self.dir / ATTEMPTS_NAME

    def attempt_status(self, attempt: int | str) -> Path:
        """status.yaml of an earlier attempt (its number, or the name of a folder in attempts/),
        as the runner keeps it."""
        return self.attempts / str(attempt) / STATUS_NAME


class TaskFiles:
    """The files of many task folders as plain strings, for loops over every task of a sweep: a
    pathlib join per task costs more than the stat or open it is for (10,000 tasks). The names
    come from the sweep's index, which checked them when it was loaded, so they are not checked
    again here; :meth:`SweepPaths.task` is for names from anywhere else."""

    __slots__ = ("_prefix",)

    def __init__(self, tasks_dir: Path) -> None:
        self._prefix = f"{tasks_dir}/"

    def dir(self, name: str) -> str:
        return self._prefix + name

    def status(self, name: str) -> str:
        return f"{self._prefix}{name}/{STATUS_NAME}"

    def marker(self, name: str) -> str:
        return f"{self._prefix}{name}/{MARKER_NAME}"

    def metrics(self, name: str) -> str:
        return f"{self._prefix}{name}/{METRICS_NAME}"

    def attempt_status(self, name: str, attempt: int) -> str:
        return f"{self._prefix}{name}/{ATTEMPTS_NAME}/{attempt}/{STATUS_NAME}"


@dataclass(frozen=True)
class SweepPaths:
    """The files of one sweep directory ``sweeps/outputs/<sweep_id>/``."""

    root: Path

    @property
    def sweep_id(self) -> str:
        return self.root.name

    # -- sweep-level records --------------------------------------------------
    @property
    def sweep_config(self) -> Path:
        """The user's sweep.yaml, copied byte for byte."""
        return self.root / "sweep_config.yaml"

    @property
    def project_config(self) -> Path:
        """The resolved project settings the task runner needs (interpreter, script, style)."""
        return self.root / "project_config.yaml"

    @property
    def metadata(self) -> Path:
        return self.root / "sweep_metadata.yaml"

    @property
    def task_mapping(self) -> Path:
        return self.root / "task_mapping.yaml"

    @property
    def git_diff(self) -> Path:
        return self.root / "git_diff.patch"

    # -- folders --------------------------------------------------------------
    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    @property
    def task_files(self) -> TaskFiles:
        """Every task's files as strings, for loops over a whole sweep (see :class:`TaskFiles`)."""
        return TaskFiles(self.tasks_dir)

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def sweep_log(self) -> Path:
        return self.logs_dir / "sweep.log"

    @property
    def engine_log(self) -> Path:
        return self.logs_dir / "engine.log"

    @property
    def sources_dir(self) -> Path:
        return self.logs_dir / "sources"

    def source_log(self, backend: str) -> Path:
        return self.sources_dir / f"{backend}.log"

    @property
    def errors_dir(self) -> Path:
        return self.logs_dir / "errors"

    @property
    def scripts_dir(self) -> Path:
        return self.root / "scripts"

    @property
    def job_scripts_dir(self) -> Path:
        return self.scripts_dir / "job_scripts"

    @property
    def setup_scripts_dir(self) -> Path:
        return self.scripts_dir / "setup_scripts"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    # -- hsm-snake's own bookkeeping ------------------------------------------
    @property
    def lock(self) -> Path:
        """flock()ed by the process that runs the sweep (and inherited by Snakemake)."""
        return self.root / ".hsm" / "run.lock"

    @property
    def incoming_dir(self) -> Path:
        """Where the SSH executor unpacks a task folder coming back from a host before moving its
        files into place (the same file system, so each move is a rename)."""
        return self.lock.parent / "incoming"

    @property
    def slurm_logs_dir(self) -> Path:
        """Output of the remote Slurm executor's array elements (``<array id>_<index>.out``): what
        the runner printed itself, e.g. why it could not start."""
        return self.logs_dir / "slurm"

    def submitted_jobs(self, backend: str) -> Path:
        """The ids of every job an executor submitted for this sweep, one a line (PBS; Slurm's
        are in the sbatch records of scripts/job_scripts/)."""
        return self.root / ".hsm" / f"{backend}-jobs"

    @property
    def status_cache(self) -> Path:
        """The parsed status.yaml of completed tasks, reused by the monitoring commands."""
        return self.root / ".hsm" / "status-cache"

    @property
    def cluster_storage(self) -> Path:
        """Per cluster remote the sweep has a copy on, the outcome and arrays its storage step was
        last carried out for (archive/removal, ``remote_cluster/storage.py``)."""
        return self.root / ".hsm" / "cluster-storage.yaml"

    @property
    def remote_tasks_dir(self) -> Path:
        return self.root / ".hsm" / "remote"

    def remote_task(self, name: str) -> Path:
        """The SSH executor's record of a task it handed to a host (alias, attempt, engine pid,
        remote folder, process group), from the hand-over until the task's folder is back."""
        return self.remote_tasks_dir / f"{name}.yaml"

    @property
    def snakemake_dir(self) -> Path:
        return self.root / ".snakemake"

    @property
    def snakemake_incomplete_dir(self) -> Path:
        return self.snakemake_dir / "incomplete"

    @property
    def snakemake_locks_dir(self) -> Path:
        return self.snakemake_dir / "locks"

    def layout_dirs(self) -> list[Path]:
        return [
            self.tasks_dir,
            self.sources_dir,
            self.errors_dir,
            self.job_scripts_dir,
            self.setup_scripts_dir,
            self.reports_dir,
            self.lock.parent,
        ]

    def task(self, name: str) -> TaskPaths:
        """The folder of task ``name``; a name read back from a file that is not a task id
        (``task_002/../../x``) is refused rather than made into a path outside the sweep."""
        return TaskPaths(self.tasks_dir / names.check_task_name(name))

    def task_of_outputs(self, outputs) -> TaskPaths | None:
        """The task folder whose marker is among a Snakemake job's outputs (executors need it)."""
        for output in outputs:
            relative = Path(str(output))
            if relative.name == MARKER_NAME and relative.parent.parent.name == "tasks":
                return TaskPaths(self.root / relative.parent)
        return None

    def marker_target(self, name: str) -> str:
        """A task's Snakemake target, relative to the sweep directory (Snakemake's workdir)."""
        return f"tasks/{name}/{MARKER_NAME}"

    def incomplete_targets(self) -> set[str]:
        """Targets Snakemake flagged as incomplete (its job started and never finished).

        Snakemake names each flag file by the urlsafe base64 of the output path.
        """
        try:
            names = os.listdir(self.snakemake_incomplete_dir)
        except FileNotFoundError:
            return set()
        targets = set()
        for encoded in names:
            try:
                targets.add(base64.urlsafe_b64decode(encoded).decode())
            except (ValueError, UnicodeDecodeError):
                continue
        return targets
