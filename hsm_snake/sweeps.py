"""What the CLI commands do, as library functions: find, plan, create and run sweeps."""

from __future__ import annotations

import difflib
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hsm_snake.config.appkeys import run_app
from hsm_snake.config.overrides import flatten as flatten_overrides
from hsm_snake.config.overrides import merge as merge_overrides
from hsm_snake.config.project import ProjectConfig, find_project_config, load_project
from hsm_snake.config.sweep_file import SweepSpec, load_sweep
from hsm_snake.config.validation import check_launchable
from hsm_snake.engine import backends, diskspace, leftovers, recovery
from hsm_snake.engine import command as engine
from hsm_snake.engine.lock import SweepLock
from hsm_snake.errors import ConfigError
from hsm_snake.executors.remote_cluster import room as remote_room
from hsm_snake.executors.remote_cluster import storage as remote_storage
from hsm_snake.executors.slurm import accounting as slurm_accounting
from hsm_snake.executors.slurm import limits as slurm_limits
from hsm_snake.layout.index import SweepIndex, format_task_selection, load_index
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import PRIVATE_FILE_MODE, read_yaml, write_yaml
from hsm_snake.monitor import scan
from hsm_snake.runner.task import build_launch
from hsm_snake.sweep import create as layout
from hsm_snake.sweep.expand import expand
from hsm_snake.sweep.missing import select_missing


@dataclass
class RunOutcome:
    paths: SweepPaths
    command: list[str]
    exit_code: int
    state: scan.SweepState
    kept_results: list[str] = field(default_factory=list)
    interrupted: bool = False
    disk_full: diskspace.DiskFull | None = None

    @property
    def ok(self) -> bool:
        return not self.state.missing()


def load_inputs(
    sweep_file: Path, project_file: Path | None, cwd: Path, overrides: dict[str, Any] | None = None
) -> tuple[SweepSpec, ProjectConfig]:
    """The sweep file and its project config (given, else found beside the sweep file or here),
    with this run's ``--set`` settings (see config/overrides.py)."""
    spec = load_sweep(sweep_file)
    if project_file is None:
        project_file = find_project_config(sweep_file.resolve().parent)
    project = load_project(project_file, cwd=cwd, overrides=overrides)
    return spec, project


# Seconds a Hydra app gets to compose its config for `validate --deep`.
DEEP_TIMEOUT_S = 120

_SWEEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_sweep_id(sweep_id: str | None) -> str | None:
    """A sweep id names one folder under the output dir: no separators, no leading dot."""
    if sweep_id is not None and not _SWEEP_ID.match(sweep_id):
        raise ConfigError(
            f"{sweep_id!r} is not a usable sweep id",
            key="--sweep-id",
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. lr_scan_2)",
        )
    return sweep_id


def continued_sweep_id(spec: SweepSpec, project: ProjectConfig, sweep_id: str | None) -> str | None:
    """The sweep a run goes into: ``--sweep-id``, or the existing sweep a v1 file's ``complete:`` names."""
    if not spec.continues:
        return sweep_id
    if sweep_id and sweep_id != spec.continues:
        raise ConfigError(
            f"the sweep file continues sweep {spec.continues}, --sweep-id names {sweep_id}",
            file=spec.source,
            key="complete",
            hint="drop one of the two",
        )
    check_sweep_id(spec.continues)
    if not (project.output_dir / spec.continues / "task_mapping.yaml").exists():
        raise ConfigError(
            f"names sweep {spec.continues}, which is not under {project.output_dir}",
            file=spec.source,
            key="complete",
            hint="give an existing sweep's id (hsm-snake recent lists them), or drop complete: to start a new one",
        )
    return spec.continues


def sweep_paths_for(project: ProjectConfig, sweep_id: str | None) -> SweepPaths:
    """Where a new sweep would go (the id is only allocated when it is written)."""
    return SweepPaths(project.output_dir / (sweep_id or layout.new_sweep_id()))


def plan(spec: SweepSpec, project: ProjectConfig, sweep_id: str | None = None) -> layout.SweepPlan:
    check_launchable(project, spec)
    return layout.plan_sweep(spec, project, sweep_paths_for(project, sweep_id))


def create(spec: SweepSpec, project: ProjectConfig, command: list[str], sweep_id: str | None = None) -> SweepIndex:
    """Write a new sweep directory, or re-expand an edited sweep into an existing one."""
    index, lock = create_locked(spec, project, command, sweep_id)
    lock.release()
    return index


def create_locked(
    spec: SweepSpec, project: ProjectConfig, command: list[str], sweep_id: str | None = None
) -> tuple[SweepIndex, SweepLock]:
    """:func:`create`, returning the sweep lock still held, for :func:`run` to go on under it: two
    runs of one ``--sweep-id`` started together must not write one file's tasks and run the other's."""
    check_sweep_id(sweep_id)
    plan(spec, project, sweep_id)  # refuse bad input and a script that cannot start before any write
    layout.check_sweeps_root(project)
    paths = layout.allocate_sweep_dir(project.output_dir, sweep_id)
    if project.sweeps_root is not None:
        layout.link_sweep(paths, project.sweep_links_dir)
    lock = SweepLock(paths)
    lock.acquire(command)
    try:
        return layout.write_sweep(layout.plan_sweep(spec, project, paths), spec, project, command), lock
    except BaseException:
        lock.release()
        raise


def hydra_dry_run(spec: SweepSpec, project: ProjectConfig) -> ConfigError | None:
    """Have a Hydra app compose the first task's config with Hydra's ``--cfg job``: the app's own
    overrides check (unknown keys, config group options, types) without running it."""
    settings = layout.runner_settings(project, spec)
    first = next(iter(expand(spec)), None)
    if settings["arg_style"] != "hydra" or first is None:
        return None
    sweep = SweepPaths(project.output_dir / "sweep_validate")
    launch = build_launch(settings, first, sweep.task("task_001"), sweep, "local")
    done = run_app([*launch.argv, "--cfg", "job"], cwd=project.root, env=launch.env, timeout_s=DEEP_TIMEOUT_S)
    if isinstance(done, str):
        return ConfigError(f"could not run the script's Hydra dry run: {done}", file=spec.source)
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line][-6:]
    return ConfigError(
        "the app refuses the first task's arguments (Hydra's `--cfg job` dry run):\n    " + "\n    ".join(lines),
        file=spec.source,
        hint="fix the swept key or value in the sweep file (a key the config lacks needs `+key`), "
        "or task.extra_args / task.output_dir_arg in hsm.yaml",
    )


def refresh_project_settings(paths: SweepPaths, cwd: Path, overrides: dict[str, Any] | None = None) -> bool:
    """Re-read the project config a sweep came from, so `complete` uses the user's fixes, with
    the ``--set`` settings recorded by earlier runs and ``overrides`` (this run's) over them.

    Settings only decide how tasks run (interpreter, env, resources), never which tasks
    exist, so rewriting them reruns nothing. Returns True when something changed.
    """
    recorded = read_yaml(paths.project_config) or {}
    source = recorded.get("source")
    source_path = Path(source) if source and Path(source).exists() else None
    settings = merge_overrides(recorded.get("overrides") or {}, overrides or {})
    if source_path is None and source:
        if not overrides:
            return False
        raise ConfigError(
            f"the project config this sweep came from, {source}, is gone: --set has nothing to go over",
            key="--set",
            hint="put the file back (or an hsm.yaml here) and run again",
        )
    project = load_project(source_path, cwd=cwd, overrides=settings)
    spec = load_sweep(paths.sweep_config)
    check_launchable(project, spec)
    refreshed = layout.project_record(project, spec)
    if refreshed == recorded:
        return False
    write_yaml(paths.project_config, refreshed, mode=PRIVATE_FILE_MODE)
    given = f" with --set {' '.join(flatten_overrides(settings))}" if settings else ""
    append_sweep_log(paths, f"project settings re-read from {project.source or 'defaults'}{given}")
    return True


def remote_run(project_data: dict[str, Any], sweep_resources: dict[str, Any], alias: str) -> tuple[str, list[str]]:
    """(profile, executor options) of a run on the cluster remote ``alias`` (which must be one):
    ``remote-slurm`` (hsm-remote-slurm) or ``remote-pbs`` (hsm-remote-pbs), by its backend."""
    remotes = backends.cluster_remotes(project_data)
    if alias not in remotes:
        close = difflib.get_close_matches(alias, list(remotes), n=1)
        raise ConfigError(
            f"{alias!r} is not a remote with backend: slurm or pbs in this sweep's project config",
            key="--remote",
            hint=(f"did you mean '{close[0]}'? " if close else "")
            + (
                f"cluster remotes: {', '.join(remotes)}"
                if remotes
                else "add one under distributed.remotes with backend: slurm (or pbs)"
            ),
        )
    scheduler = remotes[alias]["backend"]
    section = backends.remote_cluster_section(project_data, sweep_resources, alias)
    # PBS: the executor's default unless pbs.max_array_size says otherwise (as for hsm-pbs).
    limit = backends.slurm_array_limit(section) if scheduler == "slurm" else section.get("max_array_size")
    args = [f"--hsm-remote-{scheduler}-alias", alias]
    if limit is not None:
        args += [f"--hsm-remote-{scheduler}-array-limit", str(limit)]
    return f"remote-{scheduler}", args


def remote_slurm_caps(
    paths: SweepPaths, recorded: dict[str, Any], alias: str, profile_dir: Path, notice: Callable[[str], None]
) -> list[str]:
    """``--jobs`` and the array size within the Slurm remote's MaxArraySize and submit room, read on
    its login node before Snakemake starts (``remote_cluster/room.py``); ``notice`` hears each line."""
    project_data = recorded.get("project") or {}
    caps, notes = remote_room.remote_caps(
        paths,
        alias,
        backends.cluster_remotes(project_data, "slurm")[alias],
        backends.remote_cluster_section(project_data, recorded.get("sweep_resources") or {}, alias),
        profile_dir,
    )
    for note in notes:
        notice(note)
    return caps


def record_where_tasks_ran(paths: SweepPaths, backend: str, state: scan.SweepState, names: set[str]) -> None:
    """logs/sources/<backend>.log: one line per task a round ran — what ran where, and how it ended."""
    lines = []
    for task in state.tasks:
        if task.task.name not in names:
            continue
        status = task.status or {}
        lines.append(
            f"{status.get('finished') or '-'} {task.task.name} {task.state} host={status.get('host') or '-'} "
            f"job={status.get('job_id') or '-'} attempt={status.get('attempt') or '-'} "
            f"duration_s={status.get('duration_s') if status.get('duration_s') is not None else '-'}"
            + (f" category={status['error_category']}" if status.get("error_category") else "")
        )
    if lines:
        log = paths.source_log(backend)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


def retryable(state: scan.SweepState, retry: dict[str, Any], rounds_done: int) -> list:
    """Failed tasks worth another attempt in this run: a retried category, retries left."""
    if rounds_done > int(retry.get("retries") or 0):
        return []
    categories = set(retry.get("on") or [])
    return [
        t.task for t in state.tasks if t.state == scan.FAILED and (t.status or {}).get("error_category") in categories
    ]


def _run_engine(
    snakemake: list[str],
    paths: SweepPaths,
    lock: SweepLock,
    index: Any,
    tasks: str | None,
    on_tick: Callable[[scan.SweepState], None] | None,
) -> tuple[int, bool]:
    """Run one Snakemake to its end; Ctrl-C/SIGTERM stop it. Returns (exit code, stopped)."""
    proc = engine.EngineProcess(snakemake, paths, lock)
    interrupted = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
        proc.request_stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        tick = (lambda: on_tick(scan.scan(index, selection=tasks))) if on_tick else None
        code = proc.wait(on_tick=tick)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code, interrupted


def append_sweep_log(paths: SweepPaths, message: str) -> None:
    paths.sweep_log.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    with open(paths.sweep_log, "a", encoding="utf-8") as log:
        log.write(f"{stamp} {message}\n")


def _notice_to(paths: SweepPaths, on_notice: Callable[[str], None] | None) -> Callable[[str], None]:
    def notice(message: str) -> None:
        append_sweep_log(paths, message)
        if on_notice is not None:
            on_notice(message)

    return notice


def default_cores(project_data: dict[str, Any]) -> int:
    return int((project_data.get("local") or {}).get("max_parallel") or os.cpu_count() or 1)


@dataclass(frozen=True)
class RunRequest:
    """What a ``run`` or ``complete`` asks of a sweep (the CLI builds it from its options).

    ``refresh_from`` (complete): first re-read the project config the sweep came from (found from
    that folder if its recorded source is gone) with ``overrides`` (``--set``). ``cores`` defaults
    to local.max_parallel. ``remote``: the cluster remote (``backend: slurm`` or ``pbs``) to run on
    (over SSH; the profile is then ``remote-slurm`` or ``remote-pbs``). ``tasks``/``only_category``/
    ``retry_failed`` narrow what runs.
    """

    profile: str
    command: list[str]
    cores: int | None = None
    retry_failed: bool = True
    tasks: str | None = None
    only_category: str | None = None
    extra_args: tuple[str, ...] = ()
    refresh_from: Path | None = None
    overrides: dict[str, Any] | None = None
    remote: str | None = None


def run(
    paths: SweepPaths,
    request: RunRequest,
    *,
    lock: SweepLock | None = None,
    on_tick: Callable[[scan.SweepState], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run (or complete) a sweep: Snakemake runs exactly the tasks that are not done.

    Tasks that fail in a category of ``retry.on`` run again, up to ``retries`` times, each time with
    the memory/time request grown by their history (see escalation.py). Jobs and remote tasks an
    earlier, killed run left behind are waited for first (leftovers.py); ``on_notice`` hears what is
    waited for. ``lock``: the sweep lock :func:`create_locked` holds (released at the end); else it
    is taken here.
    """
    if lock is None:
        lock = SweepLock(paths)
        lock.acquire(request.command)
    try:
        leftovers.wait_for_leftovers(paths, _notice_to(paths, on_notice))
        if request.refresh_from is not None:
            refresh_project_settings(paths, request.refresh_from, request.overrides)
        index = load_index(paths.root)
        recorded = read_yaml(paths.project_config) or {}
        project_data = recorded.get("project") or {}
        if request.remote:
            profile, backend_args = remote_run(project_data, recorded.get("sweep_resources") or {}, request.remote)
            profile_dir = engine.resolve_profile(profile)
            scheduler = backends.cluster_remotes(project_data)[request.remote]["backend"]
            backend = backends.remote_backend(request.remote, scheduler)
            if scheduler == "slurm":
                # Later options win: these come after remote_run's.
                backend_args += remote_slurm_caps(
                    paths, recorded, request.remote, profile_dir, _notice_to(paths, on_notice)
                )
        else:
            profile_dir = engine.resolve_profile(request.profile)
            backend = backends.backend_of_profile(profile_dir.name)
            backend_args = backends.snakemake_args(
                profile_dir.name,
                project_data,
                recorded.get("sweep_resources") or {},
                (recorded.get("runner") or {}).get("gpus"),
            )
        if backend == "slurm":
            slurm = backends.merged_section(project_data, recorded.get("sweep_resources") or {}, "slurm")
            caps, why = slurm_limits.submission_caps(profile_dir, slurm)
            # Later options win: these come after the profile's and the max_array_size ones.
            backend_args = [*backend_args, *caps]
            if why:
                _notice_to(paths, on_notice)(why)
        retry = recorded.get("retry") or {}
        cores = request.cores or default_cores(project_data)
        recovery.clear_snakemake_locks(paths)
        layout.restore_missing_params(index)
        kept = recovery.keep_finished_results(scan.scan(index))
        tasks = request.tasks
        state = scan.scan(index, selection=tasks)
        todo = select_missing(state, request.retry_failed, request.only_category)
        attempted = {entry.name for entry in todo}
        snakemake: list[str] = []
        code, interrupted, round_number, disk_full = 0, False, 0, None
        while todo and not interrupted:
            selection = None
            narrowed = tasks or not request.retry_failed or request.only_category
            if narrowed or round_number or len(todo) != len(state.missing()):
                selection = format_task_selection([t.number for t in todo])
            config = {"backend": backend, **({"tasks": selection} if selection else {})}
            snakemake = engine.snakemake_command(
                paths, profile_dir, cores=cores, config=config, extra_args=(*backend_args, *request.extra_args)
            )
            what = "run" if round_number == 0 else f"retry {round_number}"
            append_sweep_log(paths, f"{what}: {len(todo)} task(s) with profile {request.profile} (pid {os.getpid()})")
            log_from = diskspace.engine_log_size(paths)
            code, interrupted = _run_engine(snakemake, paths, lock, index, tasks, on_tick)
            if code != 0 and disk_full is None:
                disk_full = diskspace.after_engine(paths, log_from)
            kept += recovery.keep_finished_results(scan.scan(index))
            if backend == "slurm":
                slurm_accounting.record_scheduler_verdicts(scan.scan(index, selection=tasks))
            state = scan.scan(index, selection=tasks, with_status=True)
            record_where_tasks_ran(paths, backend, state, {entry.name for entry in todo})
            counts = state.counts()
            append_sweep_log(
                paths,
                f"{what} ended (Snakemake exit {code}): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
            )
            round_number += 1
            todo = [entry for entry in retryable(state, retry, round_number) if entry.name in attempted]
        if not interrupted:
            for step in remote_storage.finish(paths, project_data):
                _notice_to(paths, on_notice)(f"{step.alias}: {remote_storage.describe(step)}")
        return RunOutcome(paths, snakemake, code, state, kept, interrupted, disk_full)
    finally:
        lock.release()
