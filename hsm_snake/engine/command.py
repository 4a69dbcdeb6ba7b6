"""The bridge to Snakemake: the exact command, the sweep lock, and the Snakemake process.

Snakemake is driven as a subprocess (``python -m snakemake``) because only its CLI reads
profiles, and so that the printed command can be rerun by hand. Its working directory is the
sweep directory, so every sweep has its own ``.snakemake/`` (locks, incomplete flags, metadata).
"""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from hsm_snake.engine.lock import SweepLock
from hsm_snake.errors import ConfigError
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.package_data import profiles_dir, workflow_dir


def available_profiles() -> list[str]:
    return sorted(p.name for p in profiles_dir().iterdir() if (p / "config.yaml").exists() and p.name != "default")


def resolve_profile(name_or_path: str) -> Path:
    """A packaged profile by name (``local``, ``slurm`` …), ``hpc`` (the scheduler this machine
    has), ``auto`` (that, else this machine: v1's default mode), or a folder holding a config.yaml."""
    if name_or_path == "hpc":
        name_or_path = detect_scheduler()
    elif name_or_path == "auto":
        name_or_path = auto_backend()
    packaged = profiles_dir() / name_or_path
    if "/" not in name_or_path and (packaged / "config.yaml").exists():
        return packaged
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        path = path.parent
    if (path / "config.yaml").exists():
        return path.resolve()
    names = available_profiles()
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"no profile named {name_or_path!r}",
        key="--profile",
        hint=f"{hint}packaged profiles: {', '.join(names)}, hpc, auto; "
        "or give a folder that holds a Snakemake config.yaml",
    )


def auto_backend() -> str:
    """``slurm`` where sbatch is on PATH, ``pbs`` where qsub is, else ``local`` (v1's ``--mode auto``)."""
    return "slurm" if shutil.which("sbatch") else "pbs" if shutil.which("qsub") else "local"


def detect_scheduler() -> str:
    """``slurm`` where sbatch is on PATH, else ``pbs`` where qsub is (Slurm's torque wrappers
    provide a qsub too, so sbatch is asked first)."""
    backend = auto_backend()
    if backend != "local":
        return backend
    raise ConfigError(
        "--profile hpc found neither sbatch (Slurm) nor qsub (PBS/Torque) on PATH",
        key="--profile",
        hint="load your cluster's module first, or name the profile: --profile slurm / --profile pbs",
    )


def snakemake_command(
    paths: SweepPaths,
    profile: Path,
    *,
    cores: int | None = None,
    config: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    """The exact Snakemake command line for a sweep."""
    command = [
        sys.executable,
        "-m",
        "hsm_snake.engine.snakemake_cli",
        "--snakefile",
        str(workflow_dir() / "Snakefile"),
        "--directory",
        str(paths.root),
        "--workflow-profile",
        str(profiles_dir() / "default"),
        "--profile",
        str(profile),
    ]
    if cores is not None:
        command += ["--cores", str(cores)]
    if config:
        command += ["--config", *(f"{key}={value}" for key, value in config.items())]
    command += list(extra_args)
    return command


class EngineProcess:
    """A running Snakemake in a process group of its own, its output appended to engine.log."""

    def __init__(self, command: list[str], paths: SweepPaths, lock: SweepLock, env: dict[str, str] | None = None):
        self.command = command
        self.log_path = paths.engine_log
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {stamp} {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {}), "HSM_SWEEP_DIR": str(paths.root)},
                # Its own group: a stop reaches Snakemake and every task script at once.
                process_group=0,
                pass_fds=(lock.fd,),
            )
        lock.note_engine_pid(self.process.pid)
        self._stop_requests = 0

    def request_stop(self) -> None:
        """First call: SIGINT to Snakemake and the tasks (clean stop). Later calls: SIGKILL."""
        self._stop_requests += 1
        sig = signal.SIGINT if self._stop_requests == 1 else signal.SIGKILL
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, poll_s: float = 0.5, on_tick: Any = None) -> int:
        while True:
            try:
                return self.process.wait(timeout=poll_s)
            except subprocess.TimeoutExpired:
                if on_tick is not None:
                    on_tick()
