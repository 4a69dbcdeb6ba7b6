"""``hsm-snake remote add|list|test|health|remove``: thin click wrappers over :mod:`hsm_snake.executors.ssh.remotes`."""

from __future__ import annotations

from pathlib import Path

import click


def _remotes():
    from hsm_snake.executors.ssh import remotes

    return remotes


@click.group()
def remote() -> None:
    """The SSH hosts of this project (distributed.remotes in hsm.yaml), for --profile ssh."""


@remote.command()
@click.argument("alias")
@click.argument("host_arg", metavar="[HOST]", required=False)
@click.option("--host", help="Host name or ~/.ssh/config alias (default: ALIAS, a ~/.ssh/config alias).")
@click.option("--port", type=click.IntRange(1, 65535), help="SSH port.")
@click.option("--user", help="SSH user.")
@click.option("--key", "ssh_key", help="Private key file.")
@click.option("--project-dir", help="Where the project lives on the host (default ~/hsm-projects/ALIAS).")
@click.option("--python", "python_path", help="The Python to run there.")
@click.option("--conda-env", help="A conda env there (instead of --python).")
@click.option("--max-jobs", type=click.IntRange(min=1), help="Tasks at once on the host.")
@click.option("--shared-fs", is_flag=True, default=None, help="The host sees this machine's files at the same paths.")
@click.option("--enabled/--disabled", default=True, help="A disabled host stays in hsm.yaml but gets no tasks.")
@click.option(
    "--accept-new-hostkey",
    is_flag=True,
    help="Connect once and record the host's key in known_hosts if it has none (never by default).",
)
def add(
    alias: str,
    host_arg: str | None,
    host: str | None,
    port: int | None,
    user: str | None,
    ssh_key: str | None,
    project_dir: str | None,
    python_path: str | None,
    conda_env: str | None,
    max_jobs: int | None,
    shared_fs: bool | None,
    enabled: bool,
    accept_new_hostkey: bool,
) -> None:
    """Add host ALIAS to hsm.yaml (comments and layout of the file are kept). HOST (or --host)
    defaults to ALIAS itself: a ~/.ssh/config alias brings its host name, user, port and key."""
    remotes = _remotes()
    if python_path and conda_env:
        raise click.UsageError("give --python or --conda-env, not both")
    if host_arg and host and host_arg != host:
        raise click.UsageError(f"two hosts given: {host_arg} and --host {host}")
    host = host_arg or host
    fields = {
        "host": host,
        "port": port,
        "user": user,
        "ssh_key": ssh_key,
        "project_dir": project_dir,
        "python_path": python_path,
        "conda_env": conda_env,
        "max_parallel_jobs": max_jobs,
        "shared_fs": shared_fs,
        "enabled": None if enabled else False,
    }
    path = remotes.project_file(Path.cwd())
    remotes.check_new_alias(path, alias)
    if accept_new_hostkey:
        from hsm_snake.executors.ssh.hosts import host_from_remote

        remotes.accept_host_key(host_from_remote(alias, fields))
        click.echo(f"host key of {host or alias} recorded in known_hosts (if it was new)")
    remotes.add_remote(path, alias, fields)
    click.echo(f"added remote {alias} to {path}; check it with: hsm-snake remote test {alias}")


@remote.command("remove")
@click.argument("alias")
def remove(alias: str) -> None:
    """Remove host ALIAS from hsm.yaml."""
    remotes = _remotes()
    path = remotes.project_file(Path.cwd())
    remotes.remove_remote(path, alias)
    click.echo(f"removed remote {alias} from {path}")


@remote.command("list")
def list_remotes() -> None:
    """The hosts and their settings, one line each."""
    remotes = _remotes()
    pool = remotes.remotes(Path.cwd())
    if not pool:
        click.echo("no remotes; add one with: hsm-snake remote add ALIAS [HOST]")
    for alias, host in pool.items():
        gpus = f"  gpus {host.gpus_per_task}/task of {','.join(host.gpu_free)}" if host.gpu_free else ""
        click.echo(
            f"{alias}  {remotes.address(host)}  python {_python_name(host)}  project_dir {host.project_dir}"
            f"  slots {host.slots}{gpus}"
            + ("  shared_fs" if host.shared_fs else "")
            + (f"  backend {host.backend}" if host.backend != "ssh" else "")
        )


@remote.command("test")
@click.argument("aliases", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every registered host.")
def test(aliases: tuple[str, ...], every: bool) -> None:
    """Check hosts ALIASES (registered, or bare ~/.ssh/config aliases): connection, Python, PyYAML,
    rsync, project_dir writable, disk space."""
    from hsm_snake.cli.display import printable

    remotes = _remotes()
    hosts = remotes.pick_hosts(Path.cwd(), list(aliases), every)
    registered = remotes.remotes(Path.cwd())
    ready = True
    for alias, host in hosts.items():
        if alias not in registered:
            click.echo(f"{alias}: not in hsm.yaml, tried as a ~/.ssh/config alias (project_dir {host.project_dir})")
        checks = remotes.check_remote(host)
        for check in checks:
            click.echo(f"{alias}: {'ok  ' if check.ok else 'FAIL'} {check.name:12} {printable(check.detail)}")
        if all(check.ok for check in checks):
            click.echo(f"{alias} is ready")
        else:
            ready = False
    if not ready:
        raise click.exceptions.Exit(1)


@remote.command()
@click.argument("aliases", nargs=-1)
def health(aliases: tuple[str, ...]) -> None:
    """Check every host (or ALIASES) at once (a table)."""
    from rich.table import Table

    from hsm_snake.cli.display import make_console, plain_text

    remotes = _remotes()
    pool = remotes.pick_hosts(Path.cwd(), list(aliases), every=False) if aliases else remotes.remotes(Path.cwd())
    rows = remotes.health(pool)
    if not rows:
        click.echo("no remotes; add one with: hsm-snake remote add ALIAS [HOST]")
        return
    table = Table("alias", "address", "state", "free GB", "details")
    for row in rows:
        table.add_row(
            row.alias,
            plain_text(row.address),
            "[green]healthy[/]" if row.healthy else "[red]UNHEALTHY[/]",
            "-" if row.free_gb is None else f"{row.free_gb:.1f}",
            plain_text(row.detail),
        )
    make_console().print(table)
    if not all(row.healthy for row in rows):
        raise click.exceptions.Exit(1)


@remote.command()
@click.argument("names", nargs=-1, metavar="[ALIAS]... [SWEEP]")
@click.option("--sweep", help="The sweep whose folders to remove (id or path; default: the newest).")
@click.option(
    "--everything",
    is_flag=True,
    help="Remove the whole project copy on the hosts (code, runner, every sweep): v1's remote clean.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask first.")
def clean(names: tuple[str, ...], sweep: str | None, everything: bool, yes: bool) -> None:
    """Remove what a finished sweep left on ALIASES, else on every host and Slurm remote it used: an
    SSH host's project_dir/sweeps/outputs/<id>, a Slurm remote's <workdir>/<id> (never an archive
    its archive_on still asks for). Never while the sweep runs or has tasks out there. The sweep is
    --sweep SWEEP, or a last name that is a sweep (id or folder) and no remote of hsm.yaml."""
    from hsm_snake.engine.cleanup import check_sweep_finished, split_clean_names, sweep_clusters, sweep_hosts
    from hsm_snake.executors.remote_cluster import storage
    from hsm_snake.executors.ssh.transfer import sweep_dir_under_project
    from hsm_snake.sweep.locate import find_sweep

    remotes = _remotes()
    cwd = Path.cwd()
    configured = set(remotes.remotes(cwd))
    aliases, sweep = split_clean_names(list(names), sweep, configured, cwd, with_sweep=not everything)
    clusters: dict = {}
    if everything:
        if sweep:
            raise click.UsageError("--everything removes every sweep: give --sweep or --everything, not both")
        hosts = remotes.pick_hosts(cwd, aliases, every=not aliases)
        under, what = "", "the whole project copy"
    else:
        paths = find_sweep(sweep, cwd)
        check_sweep_finished(paths)
        used_clusters = sweep_clusters(paths)
        clusters = {a: r for a, r in used_clusters.items() if not aliases or a in aliases}
        others = [a for a in aliases if a not in used_clusters]
        hosts = {} if aliases else sweep_hosts(paths)
        if others:
            hosts = remotes.pick_hosts(cwd, others, every=False)
        for alias in clusters:
            storage.check_collected(paths, alias)
        under, what = sweep_dir_under_project(paths.sweep_id), f"sweep {paths.sweep_id}'s folder"
        if not hosts and not clusters:
            click.echo(f"sweep {paths.sweep_id} ran on no SSH host or Slurm remote: nothing to clean")
            return
    names = ", ".join([*hosts, *clusters])
    if not yes and not click.confirm(f"remove {what} on {names}?", default=False):
        click.echo("nothing removed")
        raise click.exceptions.Exit(1)
    failed = False
    steps = [*remotes.clean(hosts, under), *(storage.clean(paths, alias, remote) for alias, remote in clusters.items())]
    for done in steps:
        if done.error:
            failed = True
            click.echo(f"{done.alias}: {done.path}: {done.error}")
        else:
            click.echo(f"{done.alias}: {'removed' if done.removed else 'nothing at'} {done.path}")
    if failed:
        raise click.exceptions.Exit(1)


def _python_name(host) -> str:
    from hsm_snake.executors.ssh.hosts import python_name

    return python_name(host)


@remote.command()
@click.argument("aliases", nargs=-1)
def gpus(aliases: tuple[str, ...]) -> None:
    """Each host's GPUs (nvidia-smi there, after its set-up): memory and use, and whether each looks
    free; on ALIASES (an unregistered one is a bare ~/.ssh/config alias), else on every host."""
    from rich.markup import escape
    from rich.table import Table

    from hsm_snake.cli.display import make_console

    remotes = _remotes()
    reports = remotes.gpu_report(remotes.pick_hosts(Path.cwd(), list(aliases), every=not aliases))
    table = Table("alias", "gpu", "name", "memory used / total", "use", "state")
    for report in reports:
        if report.problem:
            table.add_row(escape(report.alias), "-", "-", "-", "-", f"[yellow]{escape(report.problem)}[/]")
        for gpu in report.gpus:
            used, total, use = (gpu.get(key) for key in ("mem_used_mb", "mem_total_mb", "util_pct"))
            memory = f"{float(used) / 1024:.1f} / {float(total) / 1024:.1f} GB" if used and total else "?"
            free = used is not None and use is not None and float(use) < 5 and float(used) < 500
            table.add_row(
                escape(report.alias),
                str(gpu["index"]),
                escape(str(gpu.get("name", ""))),
                memory,
                f"{use}%" if use is not None else "?",
                "free" if free else "busy" if use is not None else "",
            )
    make_console().print(table)
