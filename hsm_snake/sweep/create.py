"""Lay out a sweep directory: allocate its id, number its tasks, write its records.

Task numbers are assigned once and never reused: re-expanding an edited sweep into an existing
directory keeps the number of every unchanged parameter set, appends new ones, and marks
dropped ones ``retired`` (their folders stay). Unchanged task files are never rewritten, so
Snakemake's mtime trigger never reruns a finished task.
"""

from __future__ import annotations

import getpass
import os
import platform
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hsm_snake import __version__
from hsm_snake.config.conventions import script_setting, task_conventions
from hsm_snake.config.project import ProjectConfig, parse_mem_mb, parse_walltime_seconds
from hsm_snake.config.sweep_file import SweepSpec
from hsm_snake.engine import backends
from hsm_snake.errors import ConfigError
from hsm_snake.layout import names
from hsm_snake.layout.index import SweepIndex, TaskEntry, load_index, mapping_document
from hsm_snake.layout.paths import SweepPaths, task_id, task_number
from hsm_snake.layout.records import PRIVATE_FILE_MODE, dump_yaml, read_yaml, write_json_document, write_yaml
from hsm_snake.runner import gpu_slots
from hsm_snake.runner.render import render_override
from hsm_snake.runner.setup import setup_script
from hsm_snake.sweep.expand import expand, param_hash

MAPPING_HEADER = (
    "hsm-snake task mapping: task id -> param hash -> parameters. Numbers are never reused. (JSON, which is also YAML.)"
)


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep directory will hold: its tasks and the runner's settings."""

    paths: SweepPaths
    tasks: dict[str, TaskEntry]
    new_tasks: list[str]
    runner: dict[str, Any]
    resources: dict[str, Any]


def number_tasks(
    existing: dict[str, TaskEntry], expanded: list[dict[str, Any]]
) -> tuple[dict[str, TaskEntry], list[str]]:
    """Give each parameter set its task id: the old one if it had one, else the next number."""
    by_hash = {entry.param_hash: entry for entry in existing.values()}
    next_number = max((task_number(name) for name in existing), default=0) + 1
    tasks: dict[str, TaskEntry] = {}
    new: list[str] = []
    current_hashes = set()
    for params in expanded:
        digest = param_hash(params)
        current_hashes.add(digest)
        old = by_hash.get(digest)
        if old is not None:
            tasks[old.name] = TaskEntry(old.name, digest, old.params, retired=False)
            continue
        name = task_id(next_number)
        next_number += 1
        tasks[name] = TaskEntry(name, digest, params)
        new.append(name)
    for entry in existing.values():
        if entry.param_hash not in current_hashes:
            tasks[entry.name] = TaskEntry(entry.name, entry.param_hash, entry.params, retired=True)
    ordered = dict(sorted(tasks.items(), key=lambda item: task_number(item[0])))
    return ordered, new


def runner_settings(project: ProjectConfig, spec: SweepSpec) -> dict[str, Any]:
    """The part of the project config the task runner needs, with absolute paths."""
    task = project.section("task")
    script, _ = script_setting(project, spec.script)
    train_script = (project.root / script).resolve() if script else None
    calling = task_conventions(project, train_script)
    wandb = project.data.get("wandb")
    mlflow = project.data.get("mlflow")
    local = project.section("local")
    timeouts = {}
    if local.get("walltime") is not None:
        timeouts["local"] = timeouts["ssh"] = parse_walltime_seconds(local["walltime"], "local.walltime")
    distributed = project.section("distributed")
    if distributed.get("walltime") is not None:
        timeouts["ssh"] = parse_walltime_seconds(distributed["walltime"], "distributed.walltime")
    remote_timeouts = {
        str(alias): parse_walltime_seconds(remote["walltime"], f"distributed.remotes.{alias}.walltime")
        for alias, remote in (distributed.get("remotes") or {}).items()
        if (remote or {}).get("walltime") is not None
    }
    return {
        "python_command": project.python_command(),
        "train_script": str(train_script) if train_script else None,
        "workdir": str(project.root),
        "run_in_task_dir": calling.run_in_task_dir,
        "arg_style": calling.arg_style,
        "output_dir_arg": calling.output_dir_arg,
        "hydra_run_dir": calling.hydra_run_dir,
        "bool_style": calling.bool_style,
        "list_style": calling.list_style,
        "wandb_group_arg": "wandb.group" if wandb_group_override(project) else None,
        "extra_args": list(task.get("extra_args") or []),
        "env": dict(task.get("env") or {}),
        "metrics_regex": dict(task.get("metrics_regex") or {}),
        "pre_scripts": {
            **{
                backend: setup
                for backend in ("local", "slurm", "pbs")
                if (setup := setup_script(project.section(backend)))
            },
            **{
                backends.remote_backend(alias, remote["backend"]): setup
                for alias, remote in backends.cluster_remotes(project.data).items()
                if (setup := setup_script(backends.remote_cluster_section(project.data, spec.resources, alias)))
            },
        },
        "timeout_s": timeouts,
        "remote_timeouts_s": remote_timeouts,
        "gpus": local_gpus(project, spec),
        "wandb": {key: wandb.get(key) for key in ("project", "entity", "group")} if wandb is not None else None,
        "mlflow": dict(mlflow) if mlflow is not None else None,
    }


def wandb_group_override(project: ProjectConfig) -> bool:
    """Whether tasks get ``wandb.group=<sweep id>``: with a ``wandb:`` block (unless its
    group_override is false), and always for a v1 config, as v1 passed it to every task."""
    wandb = project.data.get("wandb")
    if wandb is not None:
        return bool(wandb.get("group_override", True))
    return project.v1_format


def local_gpus(project: ProjectConfig, spec: SweepSpec) -> dict[str, Any]:
    """GPUs per task and this machine's device slots (visible_gpus: configured, else detected)."""
    section = backends.merged_section(project.data, spec.resources, "local")
    visible = section.get("visible_gpus")
    return {
        "per_task": int(section.get("gpus") or 0),
        "visible": list(visible) if visible is not None else gpu_slots.detect_devices(),
        "tasks_per_gpu": int(section.get("tasks_per_gpu") or 1),
    }


def resources_by_backend(project: ProjectConfig, spec: SweepSpec) -> dict[str, Any]:
    """Snakemake resources of the task rule, per backend (local: the device slots a task takes)."""
    gpus = local_gpus(project, spec)
    return {
        "local": {"gpu": gpus["per_task"]} if gpus["per_task"] and gpus["visible"] else {},
        **backends.cluster_resources(project.data, spec.resources),
    }


def retry_policy(project: ProjectConfig, spec: SweepSpec) -> dict[str, Any]:
    """How many times, on which failures, and how requests grow (caps in Snakemake's units)."""
    retry = dict(project.data.get("retry") or {})
    policy: dict[str, Any] = {
        "retries": int((spec.resources or {}).get("retries", project.data.get("retries", 0)) or 0),
        "on": list(retry.get("on") or []),
        "mem_factor": retry.get("mem_factor", 2),
        "time_factor": retry.get("time_factor", 2),
        "max_mem_mb": None,
        "max_runtime": None,
        "max_walltime_s": None,
    }
    if retry.get("max_mem") is not None:
        policy["max_mem_mb"] = parse_mem_mb(retry["max_mem"], "retry.max_mem")
    if retry.get("max_walltime") is not None:
        seconds = parse_walltime_seconds(retry["max_walltime"], "retry.max_walltime")
        policy["max_walltime_s"] = seconds
        policy["max_runtime"] = max(1, -(-int(seconds) // 60))
    return policy


def project_record(project: ProjectConfig, spec: SweepSpec) -> dict[str, Any]:
    """project_config.yaml: where the settings came from, and what the runner and rule use."""
    return {
        "source": str(project.source) if project.source else None,
        **({"overrides": project.overrides} if project.overrides else {}),
        "project": project.data,
        "runner": runner_settings(project, spec),
        "resources": resources_by_backend(project, spec),
        "retry": retry_policy(project, spec),
        "sweep_resources": spec.resources,
    }


def plan_sweep(spec: SweepSpec, project: ProjectConfig, paths: SweepPaths) -> SweepPlan:
    """Expand the sweep against what the directory already holds (nothing is written)."""
    existing: dict[str, TaskEntry] = {}
    if paths.task_mapping.exists():
        existing = load_index(paths.root).tasks
    tasks, new = number_tasks(existing, expand(spec))
    runner = runner_settings(project, spec)
    for name in new:
        check_renderable(tasks[name], runner["arg_style"], runner["list_style"], spec)
    return SweepPlan(
        paths=paths, tasks=tasks, new_tasks=new, runner=runner, resources=resources_by_backend(project, spec)
    )


def check_renderable(task: TaskEntry, style: str, lists: str, spec: SweepSpec) -> None:
    """Refuse at planning time a value the script could not receive exactly."""
    for key, value in task.params.items():
        try:
            for argument in render_override(key, value, style, lists=lists):
                names.check_argv_text(argument)
        except ValueError as exc:
            raise ConfigError(
                f"{task.name}: value {value!r} cannot be passed as a {style}-style argument: {exc}",
                file=spec.source,
                key=key,
                line=_line_of_parameter(spec, key),
                hint="change the value, or pick another task.arg_style (hydra, argparse, raw) in hsm.yaml",
            ) from None


def _line_of_parameter(spec: SweepSpec, key: str) -> int | None:
    """The first line of the sweep file that defines parameter ``key`` (``grid.model.lr``, ...)."""
    found = [line for path, line in spec.lines.items() if path == key or path.endswith("." + key)]
    return min(found, default=None)


def new_sweep_id(now: datetime | None = None) -> str:
    return (now or datetime.now()).strftime("sweep_%Y%m%d_%H%M%S")


def allocate_sweep_dir(output_dir: Path, sweep_id: str | None = None) -> SweepPaths:
    """Create and claim a fresh sweep directory. Two runs in one second get ``_2``, ``_3`` …

    mkdir is the claim: it fails for the loser of a race, which then tries the next suffix.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    base = sweep_id or new_sweep_id()
    candidate, suffix = base, 1
    while True:
        try:
            (output_dir / candidate).mkdir()
            return SweepPaths(output_dir / candidate)
        except FileExistsError:
            if sweep_id:
                return SweepPaths(output_dir / candidate)
            suffix += 1
            candidate = f"{base}_{suffix}"


def check_sweeps_root(project: ProjectConfig) -> None:
    """A ``local.sweeps_root`` must exist: a missing one is usually an unmounted disk (v1 refused it too)."""
    root = project.sweeps_root
    if root is not None and not root.is_dir():
        where = project.machine_source if "local.sweeps_root" in project.machine_keys else project.source
        raise ConfigError(
            f"local.sweeps_root {root} does not exist on this machine",
            file=where,
            key="local.sweeps_root",
            hint=f"mount or create it (mkdir -p {root}), or remove local.sweeps_root",
        )


def link_sweep(paths: SweepPaths, links_dir: Path) -> None:
    """v1's discovery link ``sweeps/outputs/<sweep_id>`` -> the sweep under ``sweeps_root``.
    A stale link is replaced; anything else already there is left alone (it may hold data)."""
    link = links_dir / paths.sweep_id
    if link.is_symlink() and link.resolve() == paths.root.resolve():
        return
    links_dir.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    if not link.exists():
        link.symlink_to(paths.root.resolve(), target_is_directory=True)


def write_sweep(plan: SweepPlan, spec: SweepSpec, project: ProjectConfig, command: list[str]) -> SweepIndex:
    """Write the plan into its directory: layout, copied configs, mapping, new tasks' params."""
    paths = plan.paths
    for folder in paths.layout_dirs():
        folder.mkdir(parents=True, exist_ok=True)
    if spec.source is not None:
        shutil.copyfile(spec.source, paths.sweep_config)
    else:
        write_yaml(paths.sweep_config, spec.raw)
    write_yaml(paths.project_config, project_record(project, spec), mode=PRIVATE_FILE_MODE)
    for name in plan.new_tasks:
        task = paths.task(name)
        task.dir.mkdir(exist_ok=True)
        # Two file-system operations per task (a folder, a file), which is what a 10,000-task sweep
        # costs on NFS/Lustre or a busy disk; the runner makes results/ when the task starts.
        # Written in place, not by temp + rename, and not fsynced: nothing reads a new task's file
        # before task_mapping.yaml (written durably, after them) lists the task, a kill leaves it
        # missing, empty or whole (one small write), and an empty or missing one is rewritten
        # from the mapping before every run (restore_missing_params).
        task.params.write_text(dump_yaml(plan.tasks[name].params), encoding="utf-8")
    write_json_document(paths.task_mapping, mapping_document(plan.tasks, paths.sweep_id), MAPPING_HEADER)
    record_metadata(paths, project.root, command)
    return SweepIndex(paths, plan.tasks, plan.resources)


def restore_missing_params(index: SweepIndex) -> list[str]:
    """Rewrite params.yaml of tasks whose folder or file was deleted, or that a machine crash left
    empty, from task_mapping.yaml."""
    restored = []
    for entry in index.active():
        task = index.paths.task(entry.name)
        try:
            empty = task.params.stat().st_size == 0
        except FileNotFoundError:
            empty = True
        if empty:
            task.dir.mkdir(parents=True, exist_ok=True)
            write_yaml(task.params, entry.params)
            restored.append(entry.name)
    return restored


def record_metadata(paths: SweepPaths, project_root: Path, command: list[str]) -> None:
    """sweep_metadata.yaml: who made the sweep, where, with which versions and code."""
    existing = read_yaml(paths.metadata) if paths.metadata.exists() else None
    if existing:
        return
    metadata: dict[str, Any] = {
        "sweep_id": paths.sweep_id,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "cwd": os.getcwd(),
        "user": _user(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "versions": {
            "python": platform.python_version(),
            "hsm_snake": __version__,
            "snakemake": _package_version("snakemake"),
        },
        "python_executable": sys.executable,
        "git": git_state(project_root, paths.git_diff),
    }
    write_yaml(paths.metadata, metadata)


def git_state(root: Path, diff_path: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the project's git checkout; the uncommitted diff is saved."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    dirty = bool((git("status", "--porcelain") or "").strip())
    state: dict[str, Any] = {"commit": commit.strip(), "dirty": dirty, "diff": None}
    if dirty:
        diff = git("diff", "HEAD") or ""
        diff_path.write_text(diff, encoding="utf-8")
        state["diff"] = diff_path.name
    return state


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
