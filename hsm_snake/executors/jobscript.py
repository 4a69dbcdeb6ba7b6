"""What the job scripts of hsm-snake's cluster executors (hsm-slurm, hsm-pbs) share: the task's
set-up from hsm.yaml, and the task runner as the job's one command.

A task job runs ``python -m hsm_snake.runner tasks/<task>`` (standard library + PyYAML, ~50 MB),
not a Snakemake: the runner writes the completion marker that the engine's Snakemake checks.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hsm_snake.layout.records import read_yaml

_setup_cache: dict[tuple[Path, str], tuple[float, str | None]] = {}


def recorded_setup(sweep_dir: Path, backend: str) -> str | None:
    """``modules`` + ``pre_script`` of hsm.yaml ``<backend>:``, as recorded in the sweep's
    project_config.yaml (re-read when the file changes: ``complete`` may refresh it)."""
    path = sweep_dir / "project_config.yaml"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    cached = _setup_cache.get((path, backend))
    if cached is None or cached[0] != mtime:
        record = read_yaml(path) or {}
        cached = (mtime, ((record.get("runner") or {}).get("pre_scripts") or {}).get(backend))
        _setup_cache[(path, backend)] = cached
    return cached[1]


def setup_and_cd(setup: str | None, backend: str, workdir: str) -> list[str]:
    """The set-up, then back into the sweep directory (the set-up may change directory)."""
    lines = []
    if setup:
        lines += [
            "",
            f"# Task set-up from hsm.yaml {backend}: (modules, pre_script); never a parameter value.",
            setup.rstrip("\n"),
            # The runner skips its own copy of the set-up when this says it ran here.
            f"export HSM_SETUP_DONE={backend}",
        ]
    return [*lines, "", f"cd {shlex.quote(workdir)} || exit 1"]


def runner_command(python: str, task_dir: str) -> str:
    """The job's command: the task runner in place of the shell (signals reach it directly).
    ``task_dir`` is a word of the script as it stands (a quoted path or a ``"$variable"``)."""
    return f"exec {shlex.quote(python)} -m hsm_snake.runner {task_dir}"
