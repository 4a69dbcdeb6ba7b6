"""Deleting what finished sweeps leave: old sweep directories (``hsm-snake cleanup``, v1's ``hsm
sweep cleanup``), and when a sweep's folders on its SSH hosts and Slurm remotes may go (``hsm-snake remote clean``).

As in v1: every sweep under the output folder created more than N days ago (its creation time,
else the folder's modification time), optionally sparing the ones with tasks not completed.
Unlike v1, a sweep being run is never deleted: each one is removed while holding its run lock.
HPC Sweep Manager v1 folders not yet migrated (``sweep_*`` with v1's ``submission_summary.txt`` or
``sweep_config.yaml`` and no task mapping) count too, their completeness unknown.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsm_snake.engine.backends import cluster_remotes
from hsm_snake.engine.lock import SweepLock, lock_holder
from hsm_snake.errors import ConfigError, SweepLockedError, SweepStateError
from hsm_snake.executors.remote_cluster import storage as remote_storage
from hsm_snake.executors.ssh import hosts as hostmod
from hsm_snake.executors.ssh.hosts import Host
from hsm_snake.layout import names
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import read_yaml
from hsm_snake.monitor.readers import created_time
from hsm_snake.monitor.recent import summarize_sweep
from hsm_snake.sweep.locate import existing_sweep, sweep_dirs

DAY_S = 86400.0
V1_MARKERS = ("submission_summary.txt", "sweep_config.yaml")


@dataclass
class Candidate:
    path: Path
    age_days: float
    incomplete: bool
    note: str


@dataclass
class CleanupPlan:
    remove: list[Candidate] = field(default_factory=list)
    kept_incomplete: list[Candidate] = field(default_factory=list)
    kept_running: list[Candidate] = field(default_factory=list)


def _v1_dirs(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    return [
        p
        for p in output_dir.iterdir()
        if p.is_dir()
        and p.name.startswith("sweep_")
        and not (p / "task_mapping.yaml").exists()
        and any((p / marker).exists() for marker in V1_MARKERS)
    ]


def _age_days(path: Path, now: float) -> float:
    created = created_time(SweepPaths(path))
    if created is None:
        try:
            created = os.stat(path).st_mtime
        except OSError:
            created = now
    return (now - created) / DAY_S


def plan_cleanup(
    output_dir: Path, older_than_days: float, keep_incomplete: bool, now: float | None = None
) -> CleanupPlan:
    """Which sweeps under ``output_dir`` a cleanup removes, and which it keeps and why."""
    now = time.time() if now is None else now
    plan = CleanupPlan()
    for path in sorted(sweep_dirs(output_dir)):
        age = _age_days(path, now)
        if age < older_than_days:
            continue
        summary = summarize_sweep(path)
        done = summary.error is None and summary.tasks is not None and summary.completed == summary.tasks
        note = summary.error or f"{summary.completed}/{summary.tasks} completed"
        candidate = Candidate(path, age, not done, note)
        if summary.in_progress:
            plan.kept_running.append(candidate)
        elif keep_incomplete and not done:
            plan.kept_incomplete.append(candidate)
        else:
            plan.remove.append(candidate)
    for path in sorted(_v1_dirs(output_dir)):
        age = _age_days(path, now)
        if age >= older_than_days:
            candidate = Candidate(path, age, True, "v1 folder (not migrated)")
            (plan.kept_incomplete if keep_incomplete else plan.remove).append(candidate)
    return plan


def remove_sweep(path: Path, command: list[str]) -> str | None:
    """Delete one sweep directory (or the sweep a sweeps/outputs link points to, and the link)
    under its run lock; why not, or None when it is gone."""
    paths = SweepPaths(path)
    lock = SweepLock(paths)
    if (path / "task_mapping.yaml").exists():
        try:
            lock.acquire(command)
        except SweepLockedError as exc:
            return str(exc).splitlines()[0]
    try:
        # A sweep under local.sweeps_root is listed through its link: the sweep goes, then the link.
        shutil.rmtree(path.resolve() if path.is_symlink() else path)
        if path.is_symlink():
            path.unlink()
    except OSError as exc:
        return f"{exc.strerror or exc}"
    finally:
        lock.release()
    return None


def sweep_hosts(paths: SweepPaths) -> dict[str, Host]:
    """The SSH hosts a sweep's runs used (its recorded pool, not today's hsm.yaml)."""
    record = read_yaml(paths.project_config) or {}
    return {host.alias: host for host in hostmod.pool_from_record(record, []) if not host.is_local}


def sweep_clusters(paths: SweepPaths) -> dict[str, dict[str, Any]]:
    """The Slurm remotes the sweep's arrays went to, with their recorded settings."""
    record = read_yaml(paths.project_config) or {}
    remotes = cluster_remotes(record.get("project") or {})
    return {alias: remotes.get(alias, {}) for alias in remote_storage.recorded_copies(paths)}


def split_clean_names(
    given: list[str], sweep: str | None, configured: set[str], cwd: Path, *, with_sweep: bool = True
) -> tuple[list[str], str | None]:
    """(aliases, sweep) of ``remote clean NAME... [--sweep SWEEP]``: without ``--sweep``, the last
    name is the sweep (``remote clean ALIAS SWEEP``) when it names an existing sweep (id or folder)
    and no remote ``configured`` in hsm.yaml; a name that is both is refused. ``with_sweep``
    False (``--everything``): every name is an alias. Every alias is checked."""
    aliases = given
    if with_sweep and sweep is None and given and existing_sweep(given[-1], cwd) is not None:
        if given[-1] in configured:
            raise ConfigError(
                f"{given[-1]!r} names both a remote in hsm.yaml and a sweep",
                key="remote clean",
                hint=f"--sweep {given[-1]} for the sweep; for the remote, name the sweep with --sweep SWEEP "
                "(hsm-snake recent lists them)",
            )
        aliases, sweep = given[:-1], given[-1]
    for alias in aliases:
        try:
            names.check_alias(alias)
        except names.BadName as bad:
            raise ConfigError(bad.message, key="remote clean", hint=bad.hint) from None
    return aliases, sweep


def check_sweep_finished(paths: SweepPaths) -> None:
    """Refuse to clean up after a sweep that runs, or whose tasks on hosts were never collected."""
    holder = lock_holder(paths)
    if holder:
        raise SweepLockedError(
            f"sweep {paths.sweep_id} is being run by {holder}: its hosts' folders are in use\n"
            f"  hint: wait for it to end, or hsm-snake cancel {paths.sweep_id}"
        )
    waiting = sorted(p.stem for p in paths.remote_tasks_dir.glob("*.yaml")) if paths.remote_tasks_dir.is_dir() else []
    if waiting:
        raise SweepStateError(
            f"sweep {paths.sweep_id} has {len(waiting)} task(s) handed to hosts and never collected "
            f"({', '.join(waiting[:5])}): their results may still be there\n"
            f"  hint: hsm-snake complete {paths.sweep_id} collects them first"
        )
