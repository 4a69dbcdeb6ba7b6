"""``hsm-snake queue mine|position|gpus|reservations``: thin click wrappers over
:mod:`hsm_snake.executors.slurm.queue` (Slurm, read-only)."""

from __future__ import annotations

import click


def _queue():
    from hsm_snake.executors.slurm import queue

    return queue


def _table(title: str, columns: list[str], rows: list[list[str]]):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title))
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text cells: job names and reasons come from other users, never read as markup.
        table.add_row(*(Text(str(cell)) for cell in row))
    return table


def _print(*renderables) -> None:
    from hsm_snake.cli.display import make_console

    console = make_console()
    for renderable in renderables:
        console.print(renderable, soft_wrap=True, markup=False, highlight=False)


def _unparsed(listing) -> list[str]:
    return [f"({listing.unparsed} squeue line(s) could not be read and are not shown)"] if listing.unparsed else []


@click.group(invoke_without_command=True)
@click.pass_context
def queue(ctx: click.Context) -> None:
    """The Slurm queue of this cluster, read-only (one squeue/scontrol call each); alone: your jobs."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(mine)


@queue.command()
@click.option("-u", "--user", help="Whose jobs (default: you).")
def mine(user: str | None) -> None:
    """Your jobs in any state: id, state, reason or nodes, partition, GPUs, name."""
    q = _queue()
    user = user or q.current_user()
    listing = q.user_jobs(user)
    if not listing.jobs:
        _print(f"no jobs of {user} in the queue", *_unparsed(listing))
        return
    sweeps = _project_sweep_ids()
    rows = [
        [j.job_id, j.state, j.reason, j.partition, j.gpus, j.name, q.sweep_of(j.name, sweeps)] for j in listing.jobs
    ]
    columns = ["job", "state", "reason / nodes", "partition", "GPUs", "name", "sweep"]
    _print(_table(f"jobs of {user} ({len(rows)})", columns, rows), *_unparsed(listing))


def _project_sweep_ids() -> set[str]:
    """The ids of this project's sweeps (to name each job's sweep); none outside a project."""
    from pathlib import Path

    from hsm_snake.config.project import load_project
    from hsm_snake.sweep.locate import sweep_dirs

    return {path.name for path in sweep_dirs(load_project(None, cwd=Path.cwd()).output_dir)}


@queue.command()
@click.argument("job_id", required=False)
@click.option("-u", "--user", help="Whose pending jobs (default: you).")
def position(job_id: str | None, user: str | None) -> None:
    """Where your pending GPU jobs (or JOB_ID) stand in the cluster's pending GPU queue, by priority.

    A snapshot: jobs of higher priority submitted later go ahead. Reason (Resources) means next
    to start, (Priority) that jobs of higher priority are ahead.
    """
    q = _queue()
    listing = q.pending_gpu_jobs()
    total = len(listing.jobs)
    places = {job.job_id: place for place, job in enumerate(listing.jobs, 1)}
    if job_id:
        if job_id not in places:
            _print(f"job {job_id} is not among the {total} pending GPU jobs (running, finished, or not a GPU job)")
            raise click.exceptions.Exit(1)
        _print(f"job {job_id}: place {places[job_id]} of {total} pending GPU jobs", *_unparsed(listing))
        return
    user = user or q.current_user()
    ours = [job for job in listing.jobs if job.user == user]
    if not ours:
        _print(f"no pending GPU jobs of {user} ({total} pending GPU jobs on the cluster)", *_unparsed(listing))
        return
    rows = [[j.job_id, f"{places[j.job_id]} / {total}", j.reason, j.gpus, j.expected_start] for j in ours]
    _print(
        _table(
            f"{len(ours)} pending GPU job(s) of {user} among {total}",
            ["job", "place", "reason", "GPUs", "expected start"],
            rows,
        ),
        *_unparsed(listing),
    )


@queue.command()
@click.option("--mine", "with_mine", is_flag=True, help="Add a column with your own jobs' GPUs.")
def gpus(with_mine: bool) -> None:
    """GPUs asked for per GPU type: running, pending, other states (all users)."""
    q = _queue()
    listing = q.all_jobs()
    depth = q.gpu_depth(listing.jobs)
    if not depth:
        _print("no GPU jobs in the queue", *_unparsed(listing))
        return
    mine = q.gpu_depth(listing.jobs, q.current_user()) if with_mine else {}
    rows = []
    for gpu_type in sorted(depth):
        counts = depth[gpu_type]
        other = sum(n for state, n in counts.items() if state not in ("RUNNING", "PENDING"))
        row = [gpu_type, counts["RUNNING"], counts["PENDING"], other or ""]
        if with_mine:
            own = mine.get(gpu_type) or {}
            row.append(f"{own.get('RUNNING', 0)}/{own.get('PENDING', 0)}")
        rows.append(row)
    columns = ["GPU type", "running", "pending", "other"] + (["mine (R/P)"] if with_mine else [])
    _print(_table("GPUs asked for, by type", columns, rows), *_unparsed(listing))


@queue.command()
def reservations() -> None:
    """Reservations (maintenance windows) from scontrol show reservations."""
    found = _queue().reservations()
    if not found:
        _print("no reservations")
        return
    rows = [[r.name, r.start, r.end, r.duration, r.node_count, r.nodes] for r in found]
    _print(_table("reservations", ["name", "start", "end", "duration", "nodes", "node list"], rows))
