"""The ``hsm-snake`` command line: thin click wrappers over :mod:`hsm_snake.sweeps`."""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from hsm_snake import __version__
from hsm_snake.cli.display import (
    counts_line,
    errors_view,
    make_console,
    markup_safe,
    printable,
    recent_table,
    status_view,
    tasks_table,
)
from hsm_snake.cli.queue import queue as queue_group
from hsm_snake.cli.remote import remote as remote_group
from hsm_snake.engine import diskspace
from hsm_snake.errors import HsmError
from hsm_snake.layout.index import format_task_selection, load_index
from hsm_snake.monitor import scan
from hsm_snake.runner.render import display_command
from hsm_snake.sweep.locate import find_sweep
from hsm_snake.sweep.missing import PlannedTask, missing_tasks, planned_tasks

PROFILE_HELP = (
    "Snakemake profile: a packaged name (local, ssh, pbs, slurm), hpc (slurm where sbatch is, else pbs), "
    "auto (hpc, else local) or a folder with a config.yaml."
)
SET_HELP = (
    "KEY=VALUE: an hsm.yaml setting for this sweep (dotted key, checked like the file; repeatable), "
    "e.g. --set slurm.walltime=02:00:00 --set local.visible_gpus=[0,1] --set wandb.group=ablation. "
    "Recorded with the sweep; complete keeps it."
)


def _set_option(function):
    return click.option(
        "--set",
        "set_items",
        multiple=True,
        metavar="KEY=VALUE",
        callback=lambda _c, _p, items: _parse_overrides(items),
        help=SET_HELP,
    )(function)


def _parse_overrides(items: tuple[str, ...]) -> dict[str, Any]:
    from hsm_snake.config.overrides import parse

    try:
        return parse(items)
    except HsmError as exc:
        raise click.UsageError(str(exc)) from None


def _command_line() -> list[str]:
    return ["hsm-snake", *sys.argv[1:]]


class HsmGroup(click.Group):
    """Turns a user's mistake (HsmError) into a message and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HsmError as exc:
            click.echo(f"Error: {printable(exc)}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=HsmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hsm-snake")
def cli() -> None:
    """Hyper-parameter sweeps: hsm-snake plans, Snakemake schedules, the sweep directory keeps the state."""


PLAN_ROWS = 20
"""Tasks a plan table shows unless --all: rendering a 5,000-row table takes seconds and fills scrollback."""


def _print_plan(
    console: Any, title: str, tasks: list[PlannedTask], as_json: bool, limit: int | None = PLAN_ROWS
) -> None:
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "task": t.entry.name,
                        "state": t.state,
                        "param_hash": t.entry.param_hash,
                        "params": t.entry.params,
                        "command": t.argv,
                    }
                    for t in tasks
                ],
                ensure_ascii=False,
            )
        )
        return
    shown = tasks if limit is None else tasks[:limit]
    # The title above the table, not in it: a table title is wrapped to the table's width.
    console.print(Text(title), soft_wrap=True)
    console.print(tasks_table(None, ((t.entry.name, t.state, t.entry.params, t.argv, None) for t in shown)))
    if len(shown) < len(tasks):
        states = Counter(t.state for t in tasks)
        by_state = ", ".join(f"{count} {state}" for state, count in states.most_common())
        console.print(
            f"the first {len(shown)} of {len(tasks)} task(s) shown ({by_state}); "
            "--all lists every one, --json prints them all as JSON",
            soft_wrap=True,
        )


def _progress_reporter(console: Any, total: int):
    """A live progress bar on a terminal; nothing when output is a pipe or a file."""
    if not console.is_terminal:
        return None, None
    # Here, not at the top: status and missing must start fast, and only run draws a bar.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )
    bar = progress.add_task("tasks", total=total, detail="")

    def on_tick(state: scan.SweepState) -> None:
        counts = state.counts()
        detail = ", ".join(f"{counts[s]} {s}" for s in (scan.RUNNING, scan.FAILED, scan.CANCELLED) if counts.get(s))
        progress.update(bar, completed=counts.get(scan.COMPLETED, 0), detail=detail)

    return progress, on_tick


def _sweeps():
    """The module that creates and runs sweeps; imported only by commands that do that, so that
    status/missing stay light (no schema validator, no layout code)."""
    from hsm_snake import sweeps

    return sweeps


def _run_and_report(paths: Any, *, profile: str, cores: int | None, lock: Any = None, **options: Any) -> None:
    sweeps = _sweeps()
    console = make_console()
    index = load_index(paths.root)
    progress, on_tick = _progress_reporter(console, len(index.active()))
    if progress is not None:
        progress.start()
    try:
        outcome = sweeps.run(
            paths,
            sweeps.RunRequest(profile=profile, command=_command_line(), cores=cores, **options),
            lock=lock,
            on_tick=on_tick,
            on_notice=lambda message: console.print(printable(message), soft_wrap=True, markup=False),
        )
        if on_tick is not None:
            on_tick(outcome.state)  # the bar's last frame shows how the run ended, not its last poll
    except OSError as exc:
        full = diskspace.from_error(paths, exc)
        if full is None:
            raise
        _report_disk_full(console, paths, full, scan.scan(load_index(paths.root)))
    except KeyboardInterrupt:
        # Outside Snakemake's run (e.g. while waiting for a killed run's jobs): nothing was started.
        console.print(
            f"stopped on request; stop an earlier run's jobs with: hsm-snake cancel {paths.sweep_id}", soft_wrap=True
        )
        console.print(f"resume with: hsm-snake complete {paths.sweep_id}", soft_wrap=True)
        sys.exit(130)
    finally:
        if progress is not None:
            progress.stop()
    if outcome.kept_results:
        console.print(
            f"kept {len(outcome.kept_results)} finished result(s) whose completion Snakemake had not recorded "
            f"(a killed run, or a marker Snakemake removed): {', '.join(outcome.kept_results[:10])}"
        )
    if outcome.command:
        console.print(f"[dim]snakemake: {markup_safe(display_command(outcome.command))}[/dim]", soft_wrap=True)
    counts = outcome.state.counts()
    console.print(f"sweep {paths.sweep_id}: " + counts_line(counts, len(outcome.state.tasks)))
    console.print(f"[dim]{markup_safe(paths.root)}[/dim]", soft_wrap=True)
    if outcome.interrupted:
        console.print(f"stopped on request; resume with: hsm-snake complete {paths.sweep_id}")
        sys.exit(130)
    failed = [t for t in outcome.state.tasks if t.state in (scan.FAILED, scan.CANCELLED)]
    for task in failed[:10]:
        status = task.status or {}
        console.print(
            f"  [red]{task.task.name}[/red] {markup_safe(status.get('error_category'))}: "
            f"{markup_safe(status.get('error_summary'))}",
            soft_wrap=True,
        )
    if outcome.state.missing():
        if outcome.disk_full is not None:
            _report_disk_full(console, paths, outcome.disk_full, outcome.state)
        if outcome.exit_code != 0 and not failed:
            console.print(f"Snakemake exited with status {outcome.exit_code}; its log: {markup_safe(paths.engine_log)}")
            for line in _last_lines(paths.engine_log, 25):
                console.print(f"  {printable(line)}", markup=False, highlight=False)
        console.print(f"finish the sweep with: hsm-snake complete {paths.sweep_id}")
        sys.exit(1)


def _report_disk_full(console: Any, paths: Any, full: Any, state: scan.SweepState) -> None:
    """What happened, that finished work is safe, and how to go on; exit 1."""
    completed = state.counts().get(scan.COMPLETED, 0)
    console.print(printable(diskspace.describe(full)), soft_wrap=True, markup=False)
    console.print(
        f"completed tasks were kept: {completed} of {len(state.tasks)} completed, with their results and "
        f"markers; the {len(state.missing())} other task(s) did not run or could not record their end, and "
        "stay missing (nothing completed was turned into failed)",
        soft_wrap=True,
    )
    console.print(f"free some space there, then resume with: hsm-snake complete {paths.sweep_id}", soft_wrap=True)
    sys.exit(1)


def _last_lines(path: Path, count: int) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-count:]
    except FileNotFoundError:
        return []


project_option = click.option(
    "-p",
    "--project",
    "project_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Project config (default: hsm.yaml or a v1 config beside the sweep file or found from here).",
)


@cli.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@project_option
@click.option("--profile", default="local", show_default=True, help=PROFILE_HELP)
@click.option("-n", "--dry-run", is_flag=True, help="Write nothing; list the tasks that would run and their commands.")
@click.option(
    "--sweep-id",
    callback=lambda _c, _p, value: _sweeps().check_sweep_id(value),
    help="Name the sweep (an existing one is re-expanded: unchanged tasks keep their numbers).",
)
@click.option(
    "-j", "--cores", type=int, help="Tasks at once on this machine (default: local.max_parallel, or every CPU)."
)
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the tasks as JSON.")
@click.option(
    "--all", "show_all", is_flag=True, help=f"With --dry-run: list every task (not only the first {PLAN_ROWS})."
)
@click.option("--max-tasks", type=click.IntRange(min=1), help="Run only the first N tasks (complete runs the rest).")
@_set_option
@click.option(
    "--remote",
    metavar="ALIAS",
    help="Run on the Slurm or PBS cluster of distributed.remotes.ALIAS (backend: slurm / pbs), over SSH from here.",
)
def run(
    sweep_file: Path,
    project_file: Path | None,
    profile: str,
    dry_run: bool,
    sweep_id: str | None,
    cores: int | None,
    as_json: bool,
    show_all: bool,
    max_tasks: int | None,
    set_items: dict[str, Any],
    remote: str | None,
) -> None:
    """Expand SWEEP_FILE into tasks, lay out the sweep directory and run every task."""
    remote = _remote_option(profile, remote)
    sweeps = _sweeps()
    spec, project = sweeps.load_inputs(sweep_file, project_file, Path.cwd(), set_items)
    console = make_console()
    for notice in (*spec.notices, *project.notices):
        click.echo(f"note: {notice}", err=True)
    sweep_id = sweeps.continued_sweep_id(spec, project, sweep_id)
    if dry_run:
        plan = sweeps.plan(spec, project, sweep_id)
        states = {name: scan.PENDING for name in plan.new_tasks}
        if plan.paths.root.exists():
            states.update({t.task.name: t.state for t in scan.scan(load_index(plan.paths.root)).missing()})
        entries = [entry for entry in plan.tasks.values() if not entry.retired][:max_tasks]
        entries = [entry for entry in entries if entry.name in states]
        todo = planned_tasks(plan.paths, entries, plan.runner, states)
        title = f"{len(todo)} task(s) would run (sweep {plan.paths.sweep_id}, dry run: nothing written)"
        _print_plan(console, title, todo, as_json, None if show_all else PLAN_ROWS)
        return
    index, lock = sweeps.create_locked(spec, project, _command_line(), sweep_id)
    console.print(
        f"sweep {index.sweep_id}: {len(index.active())} task(s) in {markup_safe(index.paths.root)}", soft_wrap=True
    )
    first = index.active()[:max_tasks] if max_tasks else None
    selection = format_task_selection([t.number for t in first]) if first else None
    _run_and_report(index.paths, profile=profile, cores=cores, tasks=selection, remote=remote, lock=lock)


@cli.command()
@click.argument("sweep", required=False)
@click.option("--profile", default="local", show_default=True, help=PROFILE_HELP)
@click.option(
    "--retry-failed/--no-retry-failed",
    default=True,
    show_default=True,
    help="Also rerun tasks that failed or were cancelled (not only never-finished ones).",
)
@click.option(
    "--tasks",
    callback=lambda _c, _p, value: _task_selection(value),
    help="Only these task numbers, e.g. 1,5,10-20, or @FILE listing them (one a line or by commas).",
)
@click.option("--only-category", help="Only failed tasks of this error category (e.g. timeout).")
@click.option("--max-tasks", type=click.IntRange(min=1), help="Run only the first N of the tasks that would run.")
@click.option("-j", "--cores", type=int, help="Tasks at once on this machine.")
@click.option("-n", "--dry-run", is_flag=True, help="List what would run, run nothing.")
@click.option(
    "--all", "show_all", is_flag=True, help=f"With --dry-run: list every task (not only the first {PLAN_ROWS})."
)
@_set_option
@click.option(
    "--remote",
    metavar="ALIAS",
    help="Run on the Slurm or PBS cluster of distributed.remotes.ALIAS (backend: slurm / pbs), over SSH from here.",
)
def complete(
    sweep: str | None,
    profile: str,
    retry_failed: bool,
    tasks: str | None,
    only_category: str | None,
    max_tasks: int | None,
    cores: int | None,
    dry_run: bool,
    show_all: bool,
    set_items: dict[str, Any],
    remote: str | None,
) -> None:
    """Run only the tasks of SWEEP (id or path; default: newest) that are not completed."""
    paths = find_sweep(sweep, Path.cwd())
    if max_tasks is not None:
        _, todo = missing_tasks(paths, retry_failed=retry_failed, tasks=tasks, only_category=only_category)
        if todo:
            tasks = format_task_selection([t.entry.number for t in todo[:max_tasks]])
    if dry_run:
        _show_missing(
            paths,
            as_json=False,
            show_all=show_all,
            retry_failed=retry_failed,
            tasks=tasks,
            only_category=only_category,
        )
        return
    _run_and_report(
        paths,
        profile=profile,
        cores=cores,
        refresh_from=Path.cwd(),
        overrides=set_items,
        retry_failed=retry_failed,
        tasks=tasks,
        only_category=only_category,
        remote=_remote_option(profile, remote),
    )


def _task_selection(value: str | None) -> str | None:
    if value and value.startswith("@"):
        from hsm_snake.layout.index import task_selection_from_file

        try:
            return task_selection_from_file(value[1:])
        except HsmError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _remote_option(profile: str, remote: str | None) -> str | None:
    """--remote names the backend itself: not together with another --profile."""
    if remote is not None and profile != "local":
        raise click.UsageError(f"--remote {remote} and --profile {profile} both say where to run: give one")
    return remote


def _show_missing(paths: Any, *, as_json: bool, show_all: bool, **selection: Any) -> None:
    state, planned = missing_tasks(paths, **selection)
    not_completed = len(state.missing())
    title = f"sweep {paths.sweep_id}: {not_completed} of {len(state.tasks)} task(s) not completed"
    if selection.get("only_category") is not None:
        title += f"; {len(planned)} would run (the failed ones of category {selection['only_category']})"
    elif len(planned) != not_completed:
        title += f"; {len(planned)} would run (--no-retry-failed leaves out {not_completed - len(planned)} failed)"
    _print_plan(make_console(), title, planned, as_json, None if show_all else PLAN_ROWS)


@cli.command()
@click.argument("sweep", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the tasks as JSON.")
@click.option("--all", "show_all", is_flag=True, help=f"List every task (not only the first {PLAN_ROWS}).")
def missing(sweep: str | None, as_json: bool, show_all: bool) -> None:
    """List the tasks of SWEEP that are not completed (pending, failed, interrupted) and their commands."""
    _show_missing(find_sweep(sweep, Path.cwd()), as_json=as_json, show_all=show_all)


def _where(task: scan.TaskState) -> str | None:
    """``on <host>`` for the --tasks table, unless the note already says where it runs."""
    from hsm_snake.monitor.progress import host_label

    host = host_label(task.status or {})
    return f"on {host}" if host and host not in (task.note or "") else None


@cli.command()
@click.argument("sweep", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print counts and tasks as JSON.")
@click.option("--tasks", "list_tasks", is_flag=True, help="List every task with its state.")
@click.option(
    "--all-status",
    is_flag=True,
    help="Also read status.yaml of completed tasks (exact hosts/backends; slower on big sweeps).",
)
def status(sweep: str | None, as_json: bool, list_tasks: bool, all_status: bool) -> None:
    """Counts of SWEEP's tasks by state, progress, throughput and ETA, read from the sweep directory alone."""
    from hsm_snake.monitor.progress import summarize
    from hsm_snake.monitor.readers import load_sweep_index

    paths = find_sweep(sweep, Path.cwd())
    state = scan.scan(load_sweep_index(paths.root), with_status=list_tasks or as_json or all_status)
    progress = summarize(state)
    if as_json:
        record = state.as_dict(progress=progress.as_dict())
        # plain records, no cycles: check_circular=False saves a lookup per container on 10,000 tasks
        click.echo(json.dumps(record, ensure_ascii=False, check_circular=False))
        return
    console = make_console()
    console.print(status_view(paths, state, progress), soft_wrap=True)
    if list_tasks:
        console.print(
            tasks_table(
                "tasks",
                (
                    (
                        t.task.name,
                        t.state,
                        t.task.params,
                        (t.status or {}).get("command") or [],
                        # Where it runs or ran (the pool's alias), and the tracker's run page.
                        " ".join(str(n) for n in (t.note, _where(t), (t.status or {}).get("tracker_url")) if n) or None,
                    )
                    for t in state.tasks
                ),
            )
        )


@cli.command()
@click.argument("sweep", required=False)
def cancel(sweep: str | None) -> None:
    """Stop a running SWEEP (local run, Slurm/PBS jobs, SSH tasks, also those of a killed run);
    finished results stay, `complete` resumes."""
    from hsm_snake.engine.cancel import cancel as cancel_sweep

    paths = find_sweep(sweep, Path.cwd())
    outcome = cancel_sweep(paths)
    console = make_console()
    if outcome.stopped_run:
        console.print(f"stopped the run of sweep {paths.sweep_id}: {markup_safe(outcome.stopped_run)}")
    if outcome.cancelled_jobs:
        jobs = " ".join(outcome.cancelled_jobs[:20])
        console.print(f"cancelled {len(outcome.cancelled_jobs)} job(s)/remote task(s): {jobs}")
    for note in outcome.notes:
        console.print(printable(note), soft_wrap=True, markup=False)
    if outcome.remote_holder:
        console.print(f"sweep {paths.sweep_id} is run by {markup_safe(outcome.remote_holder)}: cancel it there")
        sys.exit(1)
    if not (outcome.stopped_run or outcome.cancelled_jobs):
        console.print(f"nothing to cancel: no run of sweep {paths.sweep_id} is in progress")
        return
    counts = scan.scan(load_index(paths.root)).counts()
    console.print(f"sweep {paths.sweep_id}: " + counts_line(counts, sum(counts.values())))
    console.print(f"resume with: hsm-snake complete {paths.sweep_id}")


# -- monitoring: errors, results, recent, watch, report -------------------------------------------
# Light on purpose: scan, records and the monitoring modules only (no Snakemake, no layout code).


@cli.command()
@click.argument("sweep", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@click.option("--lines", default=10, show_default=True, help="Lines of each example's stderr.log to show.")
@click.option(
    "--pattern",
    metavar="REGEX",
    help="Only failed tasks whose category, error summary or end of stderr.log match (ignoring case), "
    "e.g. ImportError.",
)
def errors(sweep: str | None, as_json: bool, lines: int, pattern: str | None) -> None:
    """Failed tasks of SWEEP grouped by cause, with an example's stderr and what to do about it.

    Also writes logs/errors/failed_tasks.yaml and logs/errors/error_patterns.yaml (not with --pattern:
    they list every failed task).
    """
    from hsm_snake.monitor.readers import load_sweep_index
    from hsm_snake.monitor.triage import error_pattern, triage, write_error_files

    regex = error_pattern(pattern) if pattern is not None else None
    paths = find_sweep(sweep, Path.cwd())
    report = triage(scan.scan(load_sweep_index(paths.root)), tail=lines, pattern=regex)
    written = []
    try:
        if regex is None:
            written = write_error_files(paths, report)
    except OSError as exc:
        click.echo(f"note: could not write {paths.errors_dir}: {exc}", err=True)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    console = make_console()
    console.print(errors_view(report), soft_wrap=True)
    if written and (report.groups or report.questionable):
        console.print(f"[dim]written: {markup_safe(', '.join(written))}[/dim]", soft_wrap=True)


@cli.command()
@click.argument("sweep", required=False)
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]), default="csv", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of to stdout."
)
def results(sweep: str | None, fmt: str, output: Path | None) -> None:
    """One row per task of SWEEP: state, parameters, metrics, duration, attempt, host, backend, job id.

    reports/results.csv in the sweep directory is always (re)written.
    """
    from hsm_snake.monitor import results as results_mod
    from hsm_snake.monitor.readers import load_sweep_index

    paths = find_sweep(sweep, Path.cwd())
    table = results_mod.collect(scan.scan(load_sweep_index(paths.root), with_status=True))
    csv_text = results_mod.to_csv(table)
    try:
        csv_path = results_mod.write_results_csv(paths, csv_text)
    except OSError as exc:
        csv_path = None
        click.echo(f"note: could not write {results_mod.results_csv_path(paths)}: {exc}", err=True)
    if fmt == "parquet":
        if output is None:
            raise HsmError("--format parquet writes a binary file: name it with --output FILE.parquet")
        results_mod.write_parquet(table, output)
    elif output is not None:
        from hsm_snake.layout.records import write_text_atomic

        write_text_atomic(output, csv_text if fmt == "csv" else results_mod.to_json(table) + "\n")
    else:
        click.echo(csv_text if fmt == "csv" else results_mod.to_json(table), nl=fmt == "json")
        return
    click.echo(f"{len(table.rows)} task(s) written to {output}" + (f" (and {csv_path})" if csv_path else ""))


@cli.command()
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    help="How many sweeps (default: 10, or all of them with --days or --all).",
)
@click.option(
    "-d", "--days", type=click.FloatRange(min=0, min_open=True), help="Only sweeps created in the last N days (v1)."
)
@click.option("--all", "every", is_flag=True, help="Every sweep, not only the latest ones.")
@click.option("--incomplete", is_flag=True, help="Only sweeps with tasks not completed.")
@click.option("--json", "as_json", is_flag=True, help="Print the sweeps as JSON.")
def recent(limit: int | None, days: float | None, every: bool, incomplete: bool, as_json: bool) -> None:
    """The latest sweeps of this project: tasks, completed, failed, backends, whether a run is in progress."""
    from hsm_snake.config.project import load_project
    from hsm_snake.monitor.recent import recent_sweeps

    output_dir = load_project(None, cwd=Path.cwd()).sweeps_listing_dir
    wanted = limit if limit is not None else None if every or days is not None else 10
    found = recent_sweeps(output_dir, None if incomplete else wanted, days=days)
    if incomplete:
        found = [s for s in found if s.error or s.completed != s.tasks][:wanted]
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in found], ensure_ascii=False))
        return
    console = make_console()
    within = f" created in the last {days:g} day(s)" if days is not None else ""
    if not found:
        console.print(Text(printable(f"no sweeps{within} under {output_dir}")), soft_wrap=True)
        return
    title = f"latest {len(found)} sweep(s){within} under {output_dir}"
    table, left_out = recent_table(found, title, console.width)
    console.print(table)
    if left_out:
        console.print(f"[dim]too narrow for {', '.join(left_out)}: widen the terminal, or use --json[/dim]")


@cli.command()
@click.option(
    "-d",
    "--older-than-days",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Delete sweeps created more than this many days ago.",
)
@click.option("--keep-incomplete", is_flag=True, help="Spare sweeps with tasks not completed.")
@click.option("-n", "--dry-run", is_flag=True, help="List what would be deleted, delete nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
def cleanup(older_than_days: float, keep_incomplete: bool, dry_run: bool, yes: bool) -> None:
    """Delete old sweep directories of this project to reclaim disk (never one being run)."""
    from hsm_snake.config.project import load_project
    from hsm_snake.engine.cleanup import plan_cleanup, remove_sweep

    output_dir = load_project(None, cwd=Path.cwd()).sweeps_listing_dir
    plan = plan_cleanup(output_dir, older_than_days, keep_incomplete)
    console = make_console()
    for candidate in plan.kept_running:
        console.print(f"kept {candidate.path.name}: a run is in progress", soft_wrap=True, markup=False)
    if plan.kept_incomplete:
        console.print(f"kept {len(plan.kept_incomplete)} incomplete sweep(s) (--keep-incomplete)")
    if not plan.remove:
        console.print(f"no sweeps older than {older_than_days:g} day(s) to delete under {output_dir}", markup=False)
        return
    console.print(
        f"{len(plan.remove)} sweep(s) older than {older_than_days:g} day(s) under {output_dir}:", markup=False
    )
    for candidate in plan.remove:
        console.print(
            f"  {candidate.path.name}  {candidate.age_days:.0f} days  {candidate.note}", soft_wrap=True, markup=False
        )
    if dry_run:
        console.print("dry run: nothing deleted")
        return
    if not yes and not click.confirm(f"delete these {len(plan.remove)} sweep director(y/ies)?", default=False):
        console.print("nothing deleted")
        sys.exit(1)
    failed = 0
    for candidate in plan.remove:
        why = remove_sweep(candidate.path, _command_line())
        if why:
            failed += 1
            console.print(f"kept {candidate.path.name}: {why}", soft_wrap=True, markup=False)
    console.print(f"deleted {len(plan.remove) - failed} sweep director(y/ies)")
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("sweep", required=False)
@click.option(
    "--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.05), help="Seconds between updates."
)
def watch(sweep: str | None, interval: float) -> None:
    """Show SWEEP's status live until no run is in progress and no task runs (Ctrl-C stops watching)."""
    import time

    from rich.live import Live

    from hsm_snake.monitor.progress import summarize
    from hsm_snake.monitor.readers import load_sweep_index

    paths = find_sweep(sweep, Path.cwd())
    console = make_console()

    def view():
        state = scan.scan(load_sweep_index(paths.root))
        active = state.holder is not None or state.counts().get(scan.RUNNING, 0) > 0
        return status_view(paths, state, summarize(state)), active

    renderable, active = view()
    try:
        with Live(renderable, console=console, auto_refresh=False, transient=False) as live:
            while active:
                time.sleep(interval)
                renderable, active = view()
                live.update(renderable, refresh=True)
    except KeyboardInterrupt:
        console.print("stopped watching (the run goes on)")
        return
    console.print("no run in progress: done watching")


@cli.command()
@click.argument("sweep", required=False)
@click.option("--open", "open_browser", is_flag=True, help="Open the report in a web browser.")
def report(sweep: str | None, open_browser: bool) -> None:
    """Write SWEEP's HTML report (reports/completion_report.html), error analysis and performance figures."""
    from hsm_snake.monitor.report import build_report

    paths = find_sweep(sweep, Path.cwd())
    files = build_report(paths)
    console = make_console()
    console.print(f"report of sweep {paths.sweep_id} ({files.tasks} task(s), {files.plots} plot(s)):")
    for path in (files.html, files.errors_html, files.performance, files.results_csv):
        console.print(f"  {markup_safe(path)}", soft_wrap=True)
    if open_browser:
        import webbrowser

        if not webbrowser.open(files.html.resolve().as_uri()):
            console.print("no web browser found here: open the file above yourself")


@cli.command()
@click.option(
    "--template",
    type=click.Choice(["grid", "paired", "slurm-gpu", "ssh"]),
    default="grid",
    show_default=True,
    help="The kind of sweep and project to start from.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing hsm.yaml / sweep.yaml (or ~/.hsm/config.yaml).")
@click.option("--script", help="The script to sweep, relative to this folder (default: the entry point found).")
@click.option(
    "--machine",
    is_flag=True,
    help="Write this machine's layer ~/.hsm/config.yaml (merged under every project) instead of the project files.",
)
@click.option("--sweeps-root", help="With --machine: an existing folder where this machine keeps sweeps.")
@click.option("--conda-root", help="With --machine: where conda/micromamba is installed (default: from CONDA_EXE).")
def init(
    template: str, force: bool, script: str | None, machine: bool, sweeps_root: str | None, conda_root: str | None
) -> None:
    """Write a commented hsm.yaml and sweep.yaml for the project in this folder, over its script's real keys
    (or, with --machine, this machine's ~/.hsm/config.yaml)."""
    from hsm_snake.config.project import machine_config_path
    from hsm_snake.config.scaffold import SeveralScripts, init_machine, init_project

    if machine:
        target = machine_config_path()
        if target is None:
            raise click.UsageError("no home folder: cannot place ~/.hsm/config.yaml")
        click.echo(f"wrote {init_machine(target, sweeps_root, conda_root, force)}")
        click.echo("next: hsm-snake show (its values are marked as coming from this file)")
        return
    if sweeps_root or conda_root:
        raise click.UsageError("--sweeps-root and --conda-root go with --machine")
    try:
        result = init_project(Path.cwd(), template, force, script)
    except SeveralScripts as several:
        if not sys.stdin.isatty():
            raise
        script = click.prompt("which script is swept?", type=click.Choice(several.candidates))
        result = init_project(Path.cwd(), template, force, script)
    for note in result.notes:
        click.echo(f"note: {note}")
    for path in result.written:
        click.echo(f"wrote {path}")
    click.echo("next: hsm-snake validate sweep.yaml, then hsm-snake run sweep.yaml --dry-run")


@cli.command()
@click.argument("sweep_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@project_option
@click.option("--strict", is_flag=True, help="Exit 1 when there are warnings.")
@click.option(
    "--deep", is_flag=True, help="Also let a Hydra app compose the first task's config (`--cfg job`; runs nothing)."
)
def validate(sweep_file: Path | None, project_file: Path | None, strict: bool, deep: bool) -> None:
    """Check SWEEP_FILE and the project config: errors (exit 2), warnings (exit 1 with --strict)."""
    from hsm_snake.config.validation import conventions_of
    from hsm_snake.config.validation import validate as check

    result = check(sweep_file, project_file, Path.cwd())
    if deep and not result.errors and result.spec is not None:
        refused = _sweeps().hydra_dry_run(result.spec, result.project)
        result.errors += [refused] if refused else []
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not result.errors:
        where = result.project.source if result.project and result.project.source else "defaults"
        tasks = f"{result.task_count} task(s)" if sweep_file else "no sweep file given"
        click.echo(f"ok: {tasks}; project config: {where}; {len(result.warnings)} warning(s)")
        if result.spec is not None:
            conventions = conventions_of(result.project, result.spec)
            click.echo(f"script call: {conventions.describe()}")
            if deep and conventions.arg_style != "hydra":
                click.echo(
                    f"--deep: nothing more to check: only a Hydra app can compose its config without running "
                    f"(this script takes {conventions.arg_style} arguments)"
                )
    sys.exit(result.exit_code(strict))


@cli.command()
@click.argument("sweep_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@project_option
@click.option("--first", default=5, show_default=True, help="How many tasks to show with their commands.")
def show(sweep_file: Path | None, project_file: Path | None, first: int) -> None:
    """The resolved project config (with where each value came from) and the sweep's expansion."""
    from rich.table import Table
    from rich.text import Text

    from hsm_snake.config.validation import config_sources, conventions_of, paired_tables
    from hsm_snake.config.validation import validate as check

    result = check(sweep_file, project_file, Path.cwd())
    if result.errors:
        raise result.errors[0]
    console = make_console()
    source, root = markup_safe(result.project.source or "defaults"), markup_safe(result.project.root)
    settings = Table(title=f"project config ({source}, root {root})")
    for column in ("key", "value", "from"):
        settings.add_column(column, overflow="fold")
    for key, value, origin in config_sources(result.project):
        settings.add_row(Text(key), Text(json.dumps(value, ensure_ascii=False)), Text(printable(origin)))
    console.print(settings)
    if result.spec is None:
        return
    console.print(f"sweep {markup_safe(sweep_file)}: {result.task_count} task(s)")
    console.print(Text(printable(f"script call: {conventions_of(result.project, result.spec).describe()}")))
    for name, columns, rows in paired_tables(result.spec):
        console.print(f"paired group {markup_safe(repr(name))}: the i-th values of each column run together")
        group = Table()
        for column in columns:
            group.add_column(Text(column))
        for row in rows:
            group.add_row(*(Text(json.dumps(v, ensure_ascii=False)) for v in row))
        console.print(group)
    plan = _sweeps().plan(result.spec, result.project)
    entries = [e for e in plan.tasks.values() if not e.retired][:first]
    _print_plan(
        console, f"first {len(entries)} task(s)", planned_tasks(plan.paths, entries, plan.runner), False, limit=None
    )
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@cli.command()
@click.argument("v1_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--to", "to", type=click.Path(path_type=Path), help="Migrate a copy into this new folder.")
def migrate(v1_dir: Path, to: Path | None) -> None:
    """Make a HPC Sweep Manager v1 sweep folder a standard sweep directory (nothing is lost)."""
    from hsm_snake.config.project import load_project
    from hsm_snake.sweep.migrate import migrate as migrate_v1

    outcome = migrate_v1(v1_dir, load_project(None, cwd=Path.cwd()), to)
    for old, new in outcome.renamed[:5]:
        click.echo(f"renamed tasks/{old} -> tasks/{new}")
    click.echo(
        f"migrated {outcome.paths.root}: {outcome.tasks} task(s), {len(outcome.completed)} completed, "
        f"{len(outcome.failed)} failed; next: hsm-snake missing {outcome.paths.root}"
    )


cli.add_command(remote_group)
cli.add_command(queue_group)


def main() -> None:
    # Ctrl-C (or kill -INT) stops a run or a wait cleanly even when a shell started hsm-snake in
    # the background, which leaves SIGINT ignored (Python then installs no KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cli()


if __name__ == "__main__":
    main()
