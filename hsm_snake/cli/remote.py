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
@click.option("--host", required=True, help="Host name or ~/.ssh/config alias.")
@click.option("--port", type=click.IntRange(1, 65535), help="SSH port.")
@click.option("--user", help="SSH user.")
@click.option("--key", "ssh_key", help="Private key file.")
@click.option("--project-dir", help="Where the project lives on the host (default ~/hsm-projects/ALIAS).")
@click.option("--python", "python_path", help="The Python to run there.")
@click.option("--conda-env", help="A conda env there (instead of --python).")
@click.option("--max-jobs", type=click.IntRange(min=1), help="Tasks at once on the host.")
@click.option("--shared-fs", is_flag=True, default=None, help="The host sees this machine's files at the same paths.")
@click.option(
    "--accept-new-hostkey",
    is_flag=True,
    help="Connect once and record the host's key in known_hosts if it has none (never by default).",
)
def add(
    alias: str,
    host: str,
    port: int | None,
    user: str | None,
    ssh_key: str | None,
    project_dir: str | None,
    python_path: str | None,
    conda_env: str | None,
    max_jobs: int | None,
    shared_fs: bool | None,
    accept_new_hostkey: bool,
) -> None:
    """Add host ALIAS to hsm.yaml (comments and layout of the file are kept)."""
    remotes = _remotes()
    if python_path and conda_env:
        raise click.UsageError("give --python or --conda-env, not both")
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
    }
    path = remotes.project_file(Path.cwd())
    remotes.check_new_alias(path, alias)
    if accept_new_hostkey:
        from hsm_snake.executors.ssh.hosts import host_from_remote

        remotes.accept_host_key(host_from_remote(alias, fields))
        click.echo(f"host key of {host} recorded in known_hosts (if it was new)")
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
        click.echo("no remotes; add one with: hsm-snake remote add ALIAS --host HOST")
    for alias, host in pool.items():
        gpus = f"  gpus {host.gpus_per_task}/task of {','.join(host.gpu_free)}" if host.gpu_free else ""
        click.echo(
            f"{alias}  {remotes.address(host)}  python {' '.join(host.python)}  project_dir {host.project_dir}"
            f"  slots {host.slots}{gpus}" + ("  shared_fs" if host.shared_fs else "")
        )


@remote.command("test")
@click.argument("alias")
def test(alias: str) -> None:
    """Check host ALIAS: connection, Python, PyYAML, rsync, project_dir writable, disk space."""
    remotes = _remotes()
    checks = remotes.check_remote(remotes.find_remote(Path.cwd(), alias))
    for check in checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name:12} {check.detail}")
    if not all(check.ok for check in checks):
        raise click.exceptions.Exit(1)
    click.echo(f"{alias} is ready")


@remote.command()
def health() -> None:
    """Check every host at once (a table)."""
    from rich.table import Table

    from hsm_snake.cli.display import make_console

    remotes = _remotes()
    rows = remotes.health(remotes.remotes(Path.cwd()))
    if not rows:
        click.echo("no remotes; add one with: hsm-snake remote add ALIAS --host HOST")
        return
    table = Table("alias", "address", "state", "free GB", "details")
    for row in rows:
        table.add_row(
            row.alias,
            row.address,
            "[green]healthy[/]" if row.healthy else "[red]UNHEALTHY[/]",
            "-" if row.free_gb is None else f"{row.free_gb:.1f}",
            row.detail,
        )
    make_console().print(table)
    if not all(row.healthy for row in rows):
        raise click.exceptions.Exit(1)
