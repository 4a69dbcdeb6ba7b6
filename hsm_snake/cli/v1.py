"""The ``hsm`` command of HPC Sweep Manager v1, run by hsm-snake.

Every command and option of v1's CLI and docs (``hsm sweep|remote|queue|setup …`` and the older
top-level forms its docs still show) is accepted. Each one either runs its hsm-snake equivalent,
printing that command once so people learn it, or, where hsm-snake deliberately works differently,
prints the hsm-snake command that does the job and exits 1 without running anything. Options
hsm-snake has no use for are named in a note and otherwise ignored, as they changed nothing there.

Each command turns its v1 arguments into a :class:`Translation` (pure: it reads no files), so the
table of v1 forms in docs/v1-commands.md is generated from this code (:func:`compat_markdown`) and
tests check every form against hsm-snake's own command line.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from hsm_snake import __version__
from hsm_snake.cli.main import cli as hsm_snake_cli
from hsm_snake.engine.command import auto_backend

HINT_EXIT = 1


@dataclass
class Translation:
    """What a v1 command line becomes: the hsm-snake argv to run, or a hint (not run)."""

    argv: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hint: str | None = None
    cwd: str | None = None

    def command_line(self) -> str:
        line = shlex.join(["hsm-snake", *self.argv]) if self.argv else ""
        return f"cd {shlex.quote(self.cwd)} && {line}" if self.cwd and line else line


_RECORDING: contextvars.ContextVar[list[Translation] | None] = contextvars.ContextVar("v1_recording", default=None)
# The scheduler --mode auto/array pick on this machine; fixed to "slurm" when the docs are generated.
_CLUSTER: contextvars.ContextVar[str | None] = contextvars.ContextVar("v1_cluster", default=None)


def _finish(ctx: click.Context, translation: Translation) -> None:
    recording = _RECORDING.get()
    if recording is not None:
        recording.append(translation)
        return
    if translation.hint:
        click.echo(f"hsm: {translation.hint}", err=True)
        if translation.argv:
            click.echo(f"  in hsm-snake: {translation.command_line()}", err=True)
        ctx.exit(HINT_EXIT)
    if not (ctx.find_root().params.get("quiet") or ctx.params.get("sub_quiet")):
        click.echo(f"(hsm v1 command; the hsm-snake equivalent is: {translation.command_line()})", err=True)
        for note in translation.notes:
            click.echo(f"(note: {note})", err=True)
    if translation.cwd:
        if not Path(translation.cwd).is_dir():
            raise click.BadParameter(f"{translation.cwd} is not a folder", param_hint="--project-root")
        os.chdir(translation.cwd)
    hsm_snake_cli.main(args=translation.argv, prog_name="hsm-snake", standalone_mode=True)


def _has_command(path: list[str]) -> bool:
    group: click.Command | None = hsm_snake_cli
    for part in path:
        group = group.commands.get(part) if isinstance(group, click.Group) else None
    return group is not None


class V1Group(click.Group):
    """A group whose unknown subcommand gets a pointer, not only click's "No such command"."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            where = ctx.command_path
            raise click.UsageError(
                f"'{args[0]}' is not one of v1's '{where}' commands ({', '.join(sorted(self.commands))}); "
                "hsm-snake --help lists hsm-snake's",
                ctx,
            )
        return super().resolve_command(ctx, args)


def _verbosity(function: Callable) -> Callable:
    """v1's -v/--verbose and -q/--quiet, which every v1 command took (only -q matters here)."""
    function = click.option("-v", "--verbose", "sub_verbose", is_flag=True, hidden=True)(function)
    return click.option("-q", "--quiet", "sub_quiet", is_flag=True, hidden=True)(function)


@click.group(cls=V1Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, prog_name="hsm", message="%(prog)s: HPC Sweep Manager v1 commands (hsm-snake %(version)s)"
)
@click.option("-v", "--verbose", is_flag=True, help="Accepted (v1); hsm-snake's logs are in each sweep's logs/.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the hsm-snake equivalent of each command.")
def hsm(verbose: bool, quiet: bool) -> None:
    """HPC Sweep Manager v1 commands, run by hsm-snake (hsm-snake --help for its own)."""


# -- sweep run / complete ----------------------------------------------------------------------------

RUN_MODES = ["auto", "individual", "array", "local", "distributed", "remote"]


def _cluster() -> str:
    return _CLUSTER.get() or auto_backend()


def _quoted(alias: str) -> str:
    """An alias as one part of a dotted --set key (an ssh alias may hold dots)."""
    return f'"{alias}"' if "." in alias else alias


def _profile_and_section(mode: str, alias: str | None) -> tuple[str, str, list[str]]:
    """(hsm-snake profile, where the run's resources go, extra args) of a v1 mode. ``remote``: the
    pool narrowed to ALIAS (``distributed.use``), ALIAS added as a bare ~/.ssh/config alias when
    hsm.yaml does not have it (an empty entry changes nothing in a registered one)."""
    if mode == "local":
        return "local", "local", []
    if mode == "distributed":
        return "ssh", "distributed", []
    scheduler = _cluster_remote(alias) if mode == "remote" else None
    if scheduler:
        return REMOTE_CLUSTER, scheduler, []
    if mode == "remote":
        key = f"distributed.remotes.{_quoted(alias)}"
        return "ssh", "remote", ["--set", f"{key}={{}}", "--set", f"distributed.use={json.dumps([alias])}"]
    backend = _cluster()
    if mode == "auto":
        return "auto", backend, []
    if backend == "local":  # array/individual with no scheduler: hpc explains what is missing
        return "hpc", "slurm", []
    if mode == "individual":
        return backend, backend, ["--set", f"{backend}.max_array_size=1"]
    return backend, backend, []


# v1 resource names (sbatch/qsub style) → the hsm.yaml key they set, by where the run's resources go
# ("remote": one SSH host of --remote, {alias} its quoted alias).
_RESOURCES = {
    "cpus-per-task": {"slurm": "slurm.cpus_per_task", "local": "local.cpus_per_task", "pbs": "pbs.ncpus"},
    "ntasks": {"slurm": "slurm.cpus_per_task", "local": "local.cpus_per_task", "pbs": "pbs.ncpus"},
    "ncpus": {"slurm": "slurm.cpus_per_task", "local": "local.cpus_per_task", "pbs": "pbs.ncpus"},
    "mem": {"slurm": "slurm.mem", "local": "local.mem", "pbs": "pbs.mem"},
    "mem-per-cpu": {"slurm": "slurm.mem_per_cpu"},
    "gpus": {
        "slurm": "slurm.gpus",
        "local": "local.gpus",
        "pbs": "pbs.ngpus",
        "remote": "distributed.remotes.{alias}.gpus",
    },
    "walltime": {
        "slurm": "slurm.walltime",
        "local": "local.walltime",
        "pbs": "pbs.walltime",
        "distributed": "distributed.walltime",
        "remote": "distributed.walltime",
    },
    "partition": {"slurm": "slurm.partition"},
    "queue": {"pbs": "pbs.queue"},
    "qos": {"slurm": "slurm.qos"},
    "account": {"slurm": "slurm.account", "pbs": "pbs.account"},
    "constraint": {"slurm": "slurm.constraint"},
    "select": {"pbs": "pbs.select"},
    "nodes": {"pbs": "pbs.nodes"},
    "ppn": {"pbs": "pbs.ppn"},
}
_RESOURCES["ngpus"] = _RESOURCES["gpus"]
_RESOURCES["time"] = _RESOURCES["walltime"]


def _key(name: str, section: str, alias: str | None) -> str | None:
    key = _RESOURCES.get(name, {}).get(section)
    return key.format(alias=_quoted(alias or "")) if key else None


def _resource_sets(text: str, section: str, alias: str | None) -> tuple[list[str], list[str]]:
    """``--resources "--cpus-per-task=4 --mem=16G"`` (or ``select=1:ncpus=4``) → --set args, notes."""
    sets, extra, ignored = [], [], []
    for token in shlex.split(text):
        pieces = [token] if token.startswith("-") else token.split(":")
        for piece in pieces:
            name, sep, value = piece.lstrip("-").partition("=")
            key = _key(name, section, alias) if sep else None
            if key:
                sets += ["--set", f"{key}={value}"]
            elif section == "slurm" and token.startswith("-"):
                extra.append(piece)
            elif piece not in ("-l",):
                ignored.append(piece)
    if extra:
        sets += ["--set", f"slurm.extra_directives={json.dumps(extra)}"]
    where = f"--remote {alias}" if section == "remote" else f"{section}:"
    notes = [f"--resources {' '.join(ignored)}: no setting of {where} takes it; ignored"] if ignored else []
    return sets, notes


def _gpu_sets(text: str, section: str, alias: str | None) -> tuple[list[str], list[str]]:
    """v1's --gpus allowlist (all, cpu, N, 0,1,3) → visible_gpus / gpus of this machine or the --remote host."""
    if section not in ("local", "remote"):
        return [], [f"--gpus {text}: v1 applied it to local and --remote runs only; ignored"]
    prefix = "local" if section == "local" else f"distributed.remotes.{_quoted(alias or '')}"
    text = text.strip().lower()
    if text == "all":
        return [], []
    if text == "cpu":
        return ["--set", f"{prefix}.gpus=0"], []
    if text.isdigit():
        return ["--set", f"{prefix}.visible_gpus={json.dumps(list(range(int(text))))}"], []
    ids = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in ids):
        raise click.BadParameter("use all, cpu, a count N, or device numbers such as 0,1,3", param_hint="--gpus")
    return ["--set", f"{prefix}.visible_gpus={json.dumps([int(part) for part in ids])}"], []


def _mode(mode: str | None, remote_alias: str | None, default: str) -> str:
    """v1's rules: --remote implies --mode remote, which needs it, and goes with no other mode."""
    mode = mode or ("remote" if remote_alias else default)
    if mode == "remote" and not remote_alias:
        raise click.UsageError("--mode remote needs --remote ALIAS (as in v1)")
    # A cluster remote (v1's SSH-driven Slurm) takes arrays: --mode array --remote ALIAS.
    if remote_alias and mode not in ("remote", "auto") and not (mode == "array" and _cluster_remote(remote_alias)):
        raise click.UsageError(f"--remote goes with --mode remote, not --mode {mode} (as in v1)")
    return "remote" if remote_alias else mode


def _run_settings(
    mode: str,
    alias: str | None,
    walltime: str | None,
    resources: str | None,
    group: str | None,
    parallel_jobs: int | None,
    gpus: str | None,
    no_progress: bool,
    show_output: bool,
) -> tuple[list[str], list[str], list[str]]:
    """(--profile args, --set/-j args, notes) shared by sweep run and sweep complete."""
    profile, section, mode_args = _profile_and_section(mode, alias)
    args, notes = list(mode_args), []
    if walltime:
        args += ["--set", f"{_key('walltime', section, alias)}={walltime}"]
    if resources:
        sets, why = _resource_sets(resources, section, alias)
        args, notes = args + sets, notes + why
    if gpus is not None:
        sets, why = _gpu_sets(gpus, section, alias)
        args, notes = args + sets, notes + why
    if group:
        args += ["--set", f"wandb.group={group}"]
    if parallel_jobs is not None:
        if section == "local":
            args += ["-j", str(parallel_jobs)]
        else:
            notes.append(f"--parallel-jobs {parallel_jobs}: v1 used it for local runs only; ignored")
    if no_progress:
        notes.append("--no-progress: hsm-snake draws its progress bar only on a terminal (pipe the output to drop it)")
    if show_output:
        notes.append(
            "--show-output: each task's output is in tasks/<task>/stdout.log (hsm-snake watch follows the sweep)"
        )
    return (["--remote", str(alias)] if profile == REMOTE_CLUSTER else ["--profile", profile]), args, notes


# What a cluster remote runs with: hsm-snake names it with --remote ALIAS (no profile).
REMOTE_CLUSTER = "remote-cluster"


def _cluster_remote(alias: str | None) -> str | None:
    """The scheduler (slurm, pbs) when ALIAS is a cluster remote of the project config here (run
    there with --remote), else None."""
    if not alias:
        return None
    from hsm_snake.config.project import load_project
    from hsm_snake.engine.backends import cluster_remotes
    from hsm_snake.errors import HsmError

    try:
        return (cluster_remotes(load_project(None, Path.cwd()).data).get(alias) or {}).get("backend")
    except HsmError:
        return None


def _run_options(function: Callable) -> Callable:
    """The options v1's sweep run and sweep complete share."""
    for decorator in reversed(
        [
            click.option("--walltime", help="Job walltime (becomes --set <section>.walltime=...)."),
            click.option("--resources", help='Scheduler resources, e.g. "--cpus-per-task=4 --mem=16G" (become --set).'),
            click.option("--group", help="W&B group (becomes --set wandb.group=...)."),
            click.option("-p", "--parallel-jobs", type=int, help="Tasks at once on this machine (local mode: -j)."),
            click.option("--no-progress", is_flag=True, help="Accepted (no bar is drawn off a terminal)."),
            click.option("--show-output", is_flag=True, help="Accepted (task output is in tasks/<task>/stdout.log)."),
            click.option("--remote", "remote_alias", help="Only this SSH host (registered, or a ~/.ssh/config alias)."),
            click.option("--gpus", "gpus", help="GPU allowlist: all, cpu, N or 0,1,3 (local.visible_gpus)."),
        ]
    ):
        function = decorator(function)
    return function


@hsm.group(cls=V1Group)
def sweep() -> None:
    """v1's sweep commands."""


@sweep.command("run")
@click.option(
    "-c", "--config", "config", default="sweeps/sweep.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--mode", type=click.Choice(RUN_MODES), help="Default: remote with --remote, else auto (as in v1).")
@click.option("-d", "--dry-run", is_flag=True, help="List what would run.")
@click.option("--count-only", is_flag=True, help="Only check the sweep and count its tasks.")
@click.option("--max-runs", type=int, help="Run only the first N tasks.")
@click.option("--sweep-id", help="Name the sweep (hsm-snake).")
@click.option("--priority", type=int, hidden=True)
@_run_options
@_verbosity
@click.pass_context
def run(
    ctx: click.Context,
    config: str,
    mode: str | None,
    dry_run: bool,
    count_only: bool,
    max_runs: int | None,
    sweep_id: str | None,
    priority: int | None,
    remote_alias: str | None,
    gpus: str | None,
    **options,
) -> None:
    """hsm sweep run → hsm-snake run (validate for --count-only)."""
    if count_only:
        _finish(ctx, Translation(["validate", config]))
        return
    mode = _mode(mode, remote_alias, "auto")
    if max_runs is not None and max_runs < 1:
        raise click.BadParameter("must be at least 1", param_hint="--max-runs")
    profile, settings, notes = _run_settings(mode, remote_alias, gpus=gpus, **_common(options))
    argv = ["run", config, *profile, *settings]
    argv += ["--dry-run"] if dry_run else []
    argv += ["--sweep-id", sweep_id] if sweep_id else []
    argv += ["--max-tasks", str(max_runs)] if max_runs is not None else []
    if priority is not None:
        notes.append(f"--priority {priority}: set slurm.extra_directives ([--nice=N]) in hsm.yaml; ignored")
    _finish(ctx, Translation(argv, notes))


def _common(options: dict) -> dict:
    return {k: options[k] for k in ("walltime", "resources", "group", "parallel_jobs", "no_progress", "show_output")}


def _task_ids(value: str) -> str:
    """v1's --task-ids: "1,5,10-20", "@file", or the name of an existing file."""
    if value.startswith("@") or Path(value).is_file():
        return "@" + value.removeprefix("@")
    return value


@sweep.command("complete")
@click.argument("sweep_id", required=False)
@click.option("--mode", type=click.Choice(RUN_MODES), default="auto", show_default=True)
@click.option("-d", "--dry-run", is_flag=True)
@click.option("--no-retry-failed", is_flag=True, help="Only tasks that never finished, not failed ones.")
@click.option("--max-runs", type=int, help="Run only the first N of them.")
@click.option("-t", "--task-ids", help="Only these tasks: 1,5,10-20 or @FILE (one a line).")
@click.option("--complete-baselines", is_flag=True, hidden=True)
@click.option("--complete-main-training", is_flag=True, hidden=True)
@click.option("--baselines-only", is_flag=True, hidden=True)
@click.option("--overwrite-source-mapping", is_flag=True, hidden=True)
@click.option("--no-verify-running", is_flag=True, hidden=True)
@click.option("--treat-running-as-failed", is_flag=True, hidden=True)
@_run_options
@_verbosity
@click.pass_context
def complete(
    ctx: click.Context,
    sweep_id: str | None,
    mode: str,
    dry_run: bool,
    no_retry_failed: bool,
    max_runs: int | None,
    task_ids: str | None,
    remote_alias: str | None,
    gpus: str | None,
    complete_baselines: bool,
    complete_main_training: bool,
    baselines_only: bool,
    overwrite_source_mapping: bool,
    no_verify_running: bool,
    treat_running_as_failed: bool,
    **options,
) -> None:
    """hsm sweep complete → hsm-snake complete."""
    target = [sweep_id] if sweep_id else []
    mode = _mode(mode, remote_alias, "auto")
    if complete_baselines or complete_main_training or baselines_only:
        _finish(
            ctx,
            Translation(
                ["complete", *target, "--tasks", "N,M-K"],
                hint=(
                    "v1's baseline completion is not in hsm-snake: a sweep is its tasks; "
                    "run the ones you want by number"
                ),
            ),
        )
        return
    if max_runs is not None and max_runs < 1:
        raise click.BadParameter("must be at least 1", param_hint="--max-runs")
    profile, settings, notes = _run_settings(mode, remote_alias, gpus=gpus, **_common(options))
    argv = ["complete", *target, *profile, *settings]
    argv += ["--no-retry-failed"] if no_retry_failed else []
    argv += ["--tasks", _task_ids(task_ids)] if task_ids else []
    argv += ["--max-tasks", str(max_runs)] if max_runs is not None else []
    argv += ["--dry-run"] if dry_run else []
    if overwrite_source_mapping or no_verify_running:
        notes.append("task states come from each task's own status.yaml: nothing to verify or overwrite")
    if treat_running_as_failed:
        notes.append("a task whose run died is found and rerun by complete itself")
    _finish(ctx, Translation(argv, notes))


# -- sweep monitoring ---------------------------------------------------------------------------------


@sweep.command("status")
@click.argument("sweep_id", required=False)
@click.option("-a", "--all", "every", is_flag=True, help="Every sweep (hsm-snake recent --all).")
@click.option("--incomplete-only", is_flag=True, help="Sweeps with tasks not completed.")
@_verbosity
@click.pass_context
def status(ctx: click.Context, sweep_id: str | None, every: bool, incomplete_only: bool, **_) -> None:
    """hsm sweep status → hsm-snake status (recent for --all / --incomplete-only)."""
    if incomplete_only:
        _finish(ctx, Translation(["recent", "--all", "--incomplete"]))
    elif every:
        _finish(ctx, Translation(["recent", "--all"]))
    else:
        _finish(ctx, Translation(["status", *([sweep_id] if sweep_id else [])]))


@sweep.command("report")
@click.argument("sweep_id", required=False)
@click.option("--scan-tasks", is_flag=True, help="Accepted (hsm-snake always reads the task folders).")
@click.option("--save-json", is_flag=True, help="The JSON report is hsm-snake status SWEEP --json.")
@_verbosity
@click.pass_context
def report(ctx: click.Context, sweep_id: str | None, scan_tasks: bool, save_json: bool, **_) -> None:
    """hsm sweep report → hsm-snake report."""
    target = [sweep_id] if sweep_id else []
    if save_json:
        _finish(
            ctx,
            Translation(
                ["status", *target, "--json"],
                hint=(
                    "--save-json: hsm-snake prints the sweep's JSON report on stdout (redirect it to a file); "
                    "hsm-snake report writes the HTML report and reports/results.csv"
                ),
            ),
        )
        return
    _finish(ctx, Translation(["report", *target]))


@sweep.command("errors")
@click.argument("sweep_id", required=False)
@click.option("-a", "--all", "every", is_flag=True, help="Whole logs, not the first lines.")
@click.option("--pattern", help="Only errors whose log contains this text.")
@_verbosity
@click.pass_context
def errors(ctx: click.Context, sweep_id: str | None, every: bool, pattern: str | None, **_) -> None:
    """hsm sweep errors → hsm-snake errors."""
    argv = ["errors", *([sweep_id] if sweep_id else [])] + (["--lines", "1000"] if every else [])
    # v1 matched plain text (ignoring case); hsm-snake's --pattern is a regular expression.
    argv += ["--pattern", re.escape(pattern)] if pattern is not None else []
    _finish(ctx, Translation(argv))


@sweep.command("watch")
@click.argument("sweep_id", required=False)
@click.option("--refresh", type=int, default=5, show_default=True, help="Seconds between updates.")
@click.option("--once", is_flag=True, help="Show the progress once (hsm-snake status).")
@_verbosity
@click.pass_context
def watch(ctx: click.Context, sweep_id: str | None, refresh: int, once: bool, **_) -> None:
    """hsm sweep watch → hsm-snake watch (status for --once)."""
    target = [sweep_id] if sweep_id else []
    if once:
        _finish(ctx, Translation(["status", *target]))
    else:
        _finish(ctx, Translation(["watch", *target, "--interval", str(max(refresh, 1))]))


def _recent(days: int | None) -> Translation:
    """v1 listed the sweeps of the last 7 days unless told otherwise."""
    return Translation(["recent", "--days", str(7 if days is None else days)])


@sweep.command("recent")
@click.option("-d", "--days", type=int, help="Sweeps of the last N days (v1: 7).")
@click.option("-w", "--watch", "watch_", is_flag=True, hidden=True)
@_verbosity
@click.pass_context
def recent(ctx: click.Context, days: int | None, watch_: bool, **_) -> None:
    """hsm sweep recent → hsm-snake recent."""
    _finish(ctx, _recent(days))


@sweep.command("queue")
@click.option("-w", "--watch", "watch_", is_flag=True, hidden=True)
@click.option("-r", "--refresh", type=int, hidden=True)
@_verbosity
@click.pass_context
def sweep_queue(ctx: click.Context, watch_: bool, refresh: int | None, **_) -> None:
    """hsm sweep queue → hsm-snake queue mine."""
    _finish(ctx, Translation(["queue", "mine"]))


@sweep.command("cancel")
@click.argument("sweep_id", required=False)
@click.option("-y", "--yes", is_flag=True, help="Accepted (hsm-snake cancel does not ask).")
@click.option("-f", "--force", is_flag=True, hidden=True)
@_verbosity
@click.pass_context
def cancel(ctx: click.Context, sweep_id: str | None, yes: bool, force: bool, **_) -> None:
    """hsm sweep cancel → hsm-snake cancel (also stops SSH tasks)."""
    _finish(ctx, Translation(["cancel", *([sweep_id] if sweep_id else [])]))


@sweep.command("cleanup")
@click.option("-d", "--older-than-days", "--days", "days", type=int, default=30, show_default=True)
@click.option("--keep-incomplete", is_flag=True, help="Spare sweeps with tasks not completed.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask.")
@click.option("-f", "--force", is_flag=True, hidden=True)
@click.option("-n", "--dry-run", is_flag=True, help="List, delete nothing.")
@_verbosity
@click.pass_context
def cleanup(ctx: click.Context, days: int, keep_incomplete: bool, yes: bool, force: bool, dry_run: bool, **_) -> None:
    """hsm sweep cleanup → hsm-snake cleanup."""
    argv = ["cleanup", "--older-than-days", str(days)]
    argv += ["--keep-incomplete"] if keep_incomplete else []
    argv += ["--yes"] if yes or force else []
    argv += ["--dry-run"] if dry_run else []
    _finish(ctx, Translation(argv))


# -- remote ---------------------------------------------------------------------------------------------


@hsm.group("remote", cls=V1Group)
def remote_group() -> None:
    """v1's remote commands (SSH hosts)."""


@remote_group.command("add")
@click.argument("name")
@click.argument("host", required=False)
@click.option("--key", help="SSH key file.")
@click.option("--port", type=int, help="SSH port.")
@click.option("--max-jobs", type=int, help="Tasks at once on the host.")
@click.option("--enabled/--disabled", default=True)
@click.pass_context
def remote_add(
    ctx, name: str, host: str | None, key: str | None, port: int | None, max_jobs: int | None, enabled: bool
) -> None:
    """hsm remote add → hsm-snake remote add."""
    argv = ["remote", "add", name, *([host] if host else [])]
    argv += ["--key", key] if key else []
    argv += ["--port", str(port)] if port else []
    argv += ["--max-jobs", str(max_jobs)] if max_jobs else []
    argv += [] if enabled else ["--disabled"]
    _finish(ctx, Translation(argv))


@remote_group.command("list")
@click.pass_context
def remote_list(ctx) -> None:
    """hsm remote list → hsm-snake remote list."""
    _finish(ctx, Translation(["remote", "list"]))


def _hosts(names: tuple[str, ...], every: bool) -> list[str]:
    return ["--all"] if every else ["--", *names]


@remote_group.command("test")
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every registered host.")
@click.pass_context
def remote_test(ctx, names: tuple[str, ...], every: bool) -> None:
    """hsm remote test → hsm-snake remote test (bare ~/.ssh/config aliases too)."""
    _finish(ctx, Translation(["remote", "test", *_hosts(names, every)]))


@remote_group.command("health")
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True)
@click.option("--watch", "watch_", is_flag=True, help="Repeat (hsm-snake: under watch(1)).")
@click.option("--refresh", type=int, default=30, show_default=True)
@click.pass_context
def remote_health(ctx, names: tuple[str, ...], every: bool, watch_: bool, refresh: int) -> None:
    """hsm remote health → hsm-snake remote health."""
    argv = ["remote", "health", *([] if every or not names else ["--", *names])]
    if watch_:
        _finish(
            ctx,
            Translation(
                argv,
                hint=(f"--watch: hsm-snake checks once; repeat it with: watch -n {refresh} hsm-snake remote health"),
            ),
        )
        return
    _finish(ctx, Translation(argv))


@remote_group.command("gpus")
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True)
@click.pass_context
def remote_gpus(ctx, names: tuple[str, ...], every: bool) -> None:
    """hsm remote gpus → hsm-snake remote gpus."""
    argv = ["remote", "gpus", *([] if every or not names else ["--", *names])]
    if not _has_command(["remote", "gpus"]):
        _finish(
            ctx,
            Translation(hint="remote gpus is not in this hsm-snake yet: ssh HOST nvidia-smi shows a host's GPUs"),
        )
        return
    _finish(ctx, Translation(argv))


@remote_group.command("clean")
@click.argument("name")
@click.option("--all-projects", is_flag=True, help="Every project's folder on the host (v1's ~/.hsm/runs).")
@click.option("-y", "--yes", is_flag=True)
@click.pass_context
def remote_clean(ctx, name: str, all_projects: bool, yes: bool) -> None:
    """hsm remote clean → hsm-snake remote clean --everything (this project's copy on the host)."""
    argv = ["remote", "clean", "--everything", *(["--yes"] if yes else []), "--", name]
    if all_projects:
        _finish(
            ctx,
            Translation(
                argv,
                hint=(
                    "--all-projects: hsm-snake keeps each project in its own project_dir on a host; "
                    "clean each project from its folder"
                ),
            ),
        )
        return
    _finish(ctx, Translation(argv))


@remote_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Accepted (hsm-snake remote remove does not ask).")
@click.pass_context
def remote_remove(ctx, name: str, yes: bool) -> None:
    """hsm remote remove → hsm-snake remote remove."""
    _finish(ctx, Translation(["remote", "remove", name]))


# -- queue ------------------------------------------------------------------------------------------------


@hsm.group("queue", cls=V1Group, invoke_without_command=True)
@click.option("-w", "--watch", "watch_", is_flag=True, hidden=True)
@click.option("-r", "--refresh", type=int, hidden=True)
@click.pass_context
def queue_group(ctx: click.Context, watch_: bool, refresh: int | None) -> None:
    """v1's Slurm queue views (alone, as v1's older hsm queue: your jobs)."""
    if ctx.invoked_subcommand is None:
        _finish(ctx, Translation(["queue", "mine"]))


@queue_group.command("mine")
@_verbosity
@click.pass_context
def queue_mine(ctx, **_) -> None:
    """hsm queue mine → hsm-snake queue mine."""
    _finish(ctx, Translation(["queue", "mine"]))


@queue_group.command("position")
@click.argument("job_id", required=False)
@_verbosity
@click.pass_context
def queue_position(ctx, job_id: str | None, **_) -> None:
    """hsm queue position → hsm-snake queue position."""
    _finish(ctx, Translation(["queue", "position", *([job_id] if job_id else [])]))


@queue_group.command("gpus")
@click.option("--mine", is_flag=True)
@_verbosity
@click.pass_context
def queue_gpus(ctx, mine: bool, **_) -> None:
    """hsm queue gpus → hsm-snake queue gpus."""
    _finish(ctx, Translation(["queue", "gpus", *(["--mine"] if mine else [])]))


@queue_group.command("reservations")
@_verbosity
@click.pass_context
def queue_reservations(ctx, **_) -> None:
    """hsm queue reservations → hsm-snake queue reservations."""
    _finish(ctx, Translation(["queue", "reservations"]))


# -- setup ------------------------------------------------------------------------------------------------


@hsm.group("setup", cls=V1Group)
def setup() -> None:
    """v1's project set-up."""


@setup.command("init")
@click.option("-i", "--interactive", is_flag=True)
@click.option("--project-root", type=click.Path(file_okay=False))
@_verbosity
@click.pass_context
def setup_init(ctx, interactive: bool, project_root: str | None, **_) -> None:
    """hsm setup init → hsm-snake init."""
    if interactive:
        _finish(
            ctx,
            Translation(
                ["init", "--template", "grid"],
                cwd=project_root,
                hint=(
                    "-i: hsm-snake init is not interactive; it writes a commented hsm.yaml and sweep.yaml "
                    "from a template (grid, paired, slurm-gpu, ssh) to edit"
                ),
            ),
        )
        return
    _finish(ctx, Translation(["init"], cwd=project_root))


@setup.command("configure")
@click.option("--from-file", type=click.Path())
@click.option("-o", "--output", type=click.Path())
@_verbosity
@click.pass_context
def setup_configure(ctx, from_file: str | None, output: str | None, **_) -> None:
    """hsm setup configure → hsm-snake init + show (no interactive builder)."""
    _finish(
        ctx,
        Translation(
            ["init", "--template", "grid"],
            hint=(
                "hsm-snake has no interactive sweep builder: start from hsm-snake init --template grid|paired, "
                "edit sweep.yaml, and check it with hsm-snake show sweep.yaml"
            ),
        ),
    )


# -- older v1 forms its docs still show -----------------------------------------------------------------------

hsm.add_command(run, "run")
hsm.add_command(status, "status")
hsm.add_command(complete, "complete")
hsm.add_command(cancel, "cancel")
hsm.add_command(recent, "recent")
hsm.add_command(errors, "errors")
hsm.add_command(setup_init, "init")


@hsm.command("monitor")
@click.argument("sweep_id", required=False)
@click.option("-w", "--watch", "watch_", is_flag=True)
@click.option("-r", "--refresh", type=int, default=30, show_default=True)
@click.option("-d", "--days", type=int)
@click.pass_context
def monitor(ctx, sweep_id: str | None, watch_: bool, refresh: int, days: int | None) -> None:
    """hsm monitor → hsm-snake watch / status / recent."""
    if not sweep_id:
        _finish(ctx, _recent(days))
    elif watch_:
        _finish(ctx, Translation(["watch", sweep_id, "--interval", str(max(refresh, 1))]))
    else:
        _finish(ctx, Translation(["status", sweep_id]))


@hsm.group("config", cls=V1Group)
def config_group() -> None:
    """v1's config commands."""


@config_group.command("init")
@click.option("-i", "--interactive", is_flag=True)
@click.option("--force", is_flag=True)
@click.pass_context
def config_init(ctx, interactive: bool, force: bool) -> None:
    """hsm config init → hsm-snake init."""
    _finish(ctx, Translation(["init", *(["--force"] if force else [])]))


@config_group.command("show")
@click.pass_context
def config_show(ctx) -> None:
    """hsm config show → hsm-snake show."""
    _finish(ctx, Translation(["show"]))


@config_group.command("validate")
@click.option("--config", "project_file", type=click.Path())
@click.option("--sweep-config", type=click.Path())
@click.pass_context
def config_validate(ctx, project_file: str | None, sweep_config: str | None) -> None:
    """hsm config validate → hsm-snake validate."""
    argv = ["validate", *([sweep_config] if sweep_config else [])]
    _finish(ctx, Translation(argv + (["--project", project_file] if project_file else [])))


@hsm.command("collect-results")
@click.argument("sweep_id", required=False)
@click.option("--remote", "remote_alias")
@click.pass_context
def collect_results(ctx, sweep_id: str | None, remote_alias: str | None) -> None:
    """hsm collect-results → nothing to collect: hsm-snake results."""
    _finish(
        ctx,
        Translation(
            ["results", *([sweep_id] if sweep_id else [])],
            hint=(
                "hsm-snake brings each task's folder back from its host when the task ends: nothing to collect; "
                "the table of results is"
            ),
        ),
    )


# Whole groups of the old CLI: each subcommand becomes a current v1 command line (run again through
# hsm), or a Hint when hsm-snake has nothing like it.
@dataclass(frozen=True)
class Hint:
    why: str
    argv: tuple[str, ...] = ()


_LEGACY_GROUPS: dict[str, tuple[str, dict[str, list[str] | Hint]]] = {
    "local": (
        "v1's local commands (now sweep run --mode local).",
        {
            "run": ["sweep", "run", "--mode", "local"],
            "status": ["sweep", "status"],
            "clean": Hint("local runs leave nothing behind but their sweep folders; old ones go with", ("cleanup",)),
        },
    ),
    "hpc": (
        "v1's HPC commands (now sweep run --mode array).",
        {
            "submit": ["sweep", "run", "--mode", "array"],
            "queue": ["queue", "mine"],
            "status": ["sweep", "status"],
            "cancel": ["sweep", "cancel"],
        },
    ),
    "distributed": (
        "v1's distributed commands (now remote + sweep run --mode distributed).",
        {
            "add": ["remote", "add"],
            "test": ["remote", "test"],
            "health": ["remote", "health"],
            "remove": ["remote", "remove"],
            "list": ["remote", "list"],
            "init": Hint(
                "hsm-snake writes an hsm.yaml with a distributed: section to fill in", ("init", "--template", "ssh")
            ),
        },
    ),
    "sync": (
        "v1's sync commands (hsm-snake syncs by itself).",
        {
            name: Hint(
                "hsm-snake copies the project to each SSH host itself before a sweep's first task there "
                "(rsync into its project_dir): there is no sync step; a host is checked with",
                ("remote", "test", "--all"),
            )
            for name in ("init", "list", "run", "to", "cache", "clean")
        },
    ),
    "analyze": (
        "v1's code-analysis tooling (its README still lists it).",
        {
            name: Hint("v1's analysis of its own code base is not part of hsm-snake; a sweep's report is", ("report",))
            for name in ("enable-tracking", "report", "dead-code", "complexity", "dependencies", "coverage-gaps")
        },
    ),
    "results": (
        "v1's results commands.",
        {
            "collect": Hint(
                "hsm-snake brings each task's folder back when the task ends: nothing to collect; the table is",
                ("results",),
            ),
            "sweep": ["sweep", "report"],
        },
    ),
}


def _legacy_command(group: str, name: str, target: list[str] | Hint) -> click.Command:
    shown = f"hsm {' '.join(target)}" if isinstance(target, list) else "a hint"

    @click.command(
        name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        help=f"hsm {group} {name} → {shown}",
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    def command(ctx: click.Context, args: tuple[str, ...]) -> None:
        if isinstance(target, Hint):
            _finish(ctx, Translation(list(target.argv), hint=f"hsm {group} {name}: {target.why}"))
            return
        code = hsm.main(args=[*target, *args], prog_name="hsm", standalone_mode=False)
        if isinstance(code, int) and code:
            ctx.exit(code)

    return command


for _name, (_help, _commands) in _LEGACY_GROUPS.items():
    _group = V1Group(_name, help=_help)
    for _sub, _target in _commands.items():
        _group.add_command(_legacy_command(_name, _sub, _target))
    hsm.add_command(_group)


# -- the compatibility table ----------------------------------------------------------------------------------

# v1 command lines (after `hsm`) that the table shows and the tests run: every command and every option.
FORMS: dict[str, list[str]] = {
    "sweep run": [
        "sweep run",
        "sweep run -c sweeps/sweep.yaml --mode local",
        "sweep run --mode auto",
        "sweep run --mode array --walltime 01:00:00 --resources '--cpus-per-task=4 --mem=16G'",
        "sweep run --mode individual",
        "sweep run --mode distributed",
        "sweep run --remote my-box --gpus 1 --resources '--gpus=1'",
        "sweep run --mode remote --remote my-box",
        "sweep run --remote gpu1.lab.org --gpus cpu --walltime 01:00:00 --resources '--gpus=0 --mem=8G'",
        "sweep run --mode local --gpus 0,1 --parallel-jobs 4 --resources '--gpus=1'",
        "sweep run --mode local -p 2 --gpus cpu --walltime 00:30:00",
        "sweep run --config sweeps/sweep.yaml --count-only",
        "sweep run --dry-run --max-runs 4 --group ablation --sweep-id lr_scan",
        "sweep run -d --no-progress --show-output -v -q --priority 5",
    ],
    "sweep complete": [
        "sweep complete sweep_20250101_120000",
        "sweep complete sweep_20250101_120000 --mode array --task-ids 1,5,10-20 --max-runs 5",
        "sweep complete sweep_20250101_120000 -t @failed_tasks.txt --no-retry-failed -d",
        "sweep complete sweep_20250101_120000 --mode local --walltime 02:00:00 --resources '--mem=8G' --group g2 -p 2",
        "sweep complete sweep_20250101_120000 --remote my-box --gpus 1 --no-progress --show-output",
        "sweep complete sweep_20250101_120000 --complete-baselines --complete-main-training --baselines-only",
        "sweep complete sweep_20250101_120000 --overwrite-source-mapping --no-verify-running --treat-running-as-failed",
    ],
    "sweep status": ["sweep status sweep_20250101_120000", "sweep status --all", "sweep status --incomplete-only -v"],
    "sweep report": [
        "sweep report sweep_20250101_120000 --scan-tasks",
        "sweep report sweep_20250101_120000 --save-json",
    ],
    "sweep errors": [
        "sweep errors sweep_20250101_120000",
        "sweep errors sweep_20250101_120000 --all --pattern ImportError",
    ],
    "sweep watch": ["sweep watch sweep_20250101_120000 --refresh 10", "sweep watch sweep_20250101_120000 --once"],
    "sweep recent": ["sweep recent", "sweep recent -d 3 -w"],
    "sweep queue": ["sweep queue -w -r 10"],
    "sweep cancel": ["sweep cancel sweep_20250101_120000 -y", "sweep cancel sweep_20250101_120000 -f"],
    "sweep cleanup": [
        "sweep cleanup -d 60 --keep-incomplete --dry-run",
        "sweep cleanup --older-than-days 90 -y",
        "sweep cleanup --days 30 -f -n",
    ],
    "remote add": [
        "remote add my-box",
        "remote add gpu1 gpu1.lab.org --key ~/.ssh/id_ed25519 --port 2222 --max-jobs 4 --disabled",
    ],
    "remote list": ["remote list"],
    "remote test": ["remote test my-box other-box", "remote test --all"],
    "remote health": ["remote health my-box", "remote health --all", "remote health --all --watch --refresh 60"],
    "remote gpus": ["remote gpus my-box", "remote gpus --all"],
    "remote clean": ["remote clean my-box -y", "remote clean my-box --all-projects"],
    "remote remove": ["remote remove my-box --yes"],
    "queue": ["queue", "queue -w -r 10"],
    "queue mine": ["queue mine"],
    "queue position": ["queue position", "queue position 3553026"],
    "queue gpus": ["queue gpus --mine"],
    "queue reservations": ["queue reservations"],
    "setup init": ["setup init", "setup init --project-root my-project", "setup init -i"],
    "setup configure": ["setup configure --from-file conf/config.yaml -o sweeps/sweep.yaml"],
    "run": ["run --config sweeps/sweep.yaml --mode local"],
    "status": ["status --all"],
    "complete": ["complete sweep_20250101_120000 --mode local"],
    "cancel": ["cancel sweep_20250101_120000 --force"],
    "recent": ["recent --days 7"],
    "errors": ["errors sweep_20250101_120000 --pattern CUDA"],
    "init": ["init --interactive"],
    "monitor": ["monitor", "monitor sweep_20250101_120000", "monitor sweep_20250101_120000 --watch --refresh 10 -d 3"],
    "config init": ["config init --interactive --force"],
    "config show": ["config show"],
    "config validate": ["config validate --config hsm_config.yaml --sweep-config sweeps/sweep.yaml"],
    "collect-results": ["collect-results sweep_20250101_120000 --remote my-box"],
    "local run": ["local run -c sweeps/sweep.yaml"],
    "local status": ["local status sweep_20250101_120000"],
    "local clean": ["local clean"],
    "hpc submit": ["hpc submit -c sweeps/sweep.yaml --walltime 04:00:00"],
    "hpc queue": ["hpc queue"],
    "hpc status": ["hpc status sweep_20250101_120000"],
    "hpc cancel": ["hpc cancel sweep_20250101_120000"],
    "distributed init": ["distributed init"],
    "distributed add": ["distributed add box box.lab.org"],
    "distributed test": ["distributed test box"],
    "distributed health": ["distributed health"],
    "distributed remove": ["distributed remove box"],
    "distributed list": ["distributed list"],
    "sync init": ["sync init"],
    "sync list": ["sync list"],
    "sync run": ["sync run"],
    "sync to": ["sync to box"],
    "sync cache": ["sync cache"],
    "sync clean": ["sync clean"],
    "analyze enable-tracking": ["analyze enable-tracking"],
    "analyze report": ["analyze report"],
    "analyze dead-code": ["analyze dead-code"],
    "analyze complexity": ["analyze complexity"],
    "analyze dependencies": ["analyze dependencies"],
    "analyze coverage-gaps": ["analyze coverage-gaps"],
    "results collect": ["results collect sweep_20250101_120000"],
    "results sweep": ["results sweep sweep_20250101_120000"],
}


def walk(group: click.Group = hsm, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every leaf command of ``hsm`` with its path ("sweep run", "remote add", "run", ...)."""
    for name in sorted(group.commands):
        command = group.commands[name]
        path = f"{prefix}{name}"
        if not isinstance(command, click.Group):
            yield path, command
            continue
        if command.invoke_without_command:  # a v1 command of its own too
            yield path, command
        yield from walk(command, f"{path} ")


def translate(form: str, cluster: str = "slurm") -> Translation:
    """What ``hsm FORM`` does, without doing it (``cluster``: the scheduler --mode auto finds)."""
    recorded: list[Translation] = []
    tokens = [_RECORDING.set(recorded), _CLUSTER.set(cluster)]
    try:
        hsm.main(args=shlex.split(form), prog_name="hsm", standalone_mode=False)
    finally:
        _CLUSTER.reset(tokens[1])
        _RECORDING.reset(tokens[0])
    (translation,) = recorded
    return translation


def compat_rows(cluster: str = "slurm") -> list[tuple[str, str, str]]:
    """(v1 form, what hsm-snake does, notes) for every form of :data:`FORMS`, in command order."""
    rows = []
    for path, _command in walk():
        for form in FORMS.get(path, []):
            t = translate(form, cluster)
            if t.hint:
                rows.append(
                    (
                        f"hsm {form}",
                        f"not run (exit {HINT_EXIT}); points to `{t.command_line()}`"
                        if t.argv
                        else f"not run (exit {HINT_EXIT})",
                        t.hint,
                    )
                )
            else:
                rows.append((f"hsm {form}", f"runs `{t.command_line()}`", "; ".join(t.notes)))
    return rows


def compat_markdown() -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| v1 command | hsm-snake | notes |",
        "|---|---|---|",
        *(f"| `{cell(v1)}` | {cell(new)} | {cell(notes)} |" for v1, new, notes in compat_rows()),
    ]
    return "\n".join(lines) + "\n"


DOC_BEGIN = "<!-- BEGIN v1-commands (generated) -->\n"
DOC_END = "<!-- END v1-commands -->"


def write_docs(path: Path) -> None:
    """Put :func:`compat_markdown` between the markers of ``path`` (docs/v1-commands.md)."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(DOC_BEGIN) + len(DOC_BEGIN), text.index(DOC_END)
    path.write_text(text[:start] + compat_markdown() + text[end:], encoding="utf-8")


def main() -> None:
    hsm()


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write-docs"]:
        write_docs(Path(sys.argv[2]))
    else:
        main()
