"""The ``hsm`` command of HPC Sweep Manager v1, mapped onto hsm-snake.

Users' scripts and habits keep working: ``hsm sweep run -c sweep.yaml --mode array`` runs the same
sweep through ``hsm-snake run sweep.yaml --profile hpc``. Each command prints its hsm-snake
equivalent once, so people learn the new one.
"""

from __future__ import annotations

import shlex

import click

from hsm_snake.cli.main import cli as hsm_snake_cli

# v1 --mode → hsm-snake profile. array/individual were v1's two ways of submitting to the
# cluster scheduler; remote/distributed its SSH modes.
MODE_PROFILES = {
    "local": "local",
    "array": "hpc",
    "individual": "hpc",
    "remote": "ssh",
    "distributed": "ssh",
}


def _delegate(ctx: click.Context, args: list[str]) -> None:
    click.echo(f"(hsm v1 command; the hsm-snake equivalent is: {shlex.join(['hsm-snake', *args])})", err=True)
    hsm_snake_cli.main(args=args, prog_name="hsm-snake", standalone_mode=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def hsm() -> None:
    """HPC Sweep Manager v1 commands, run by hsm-snake."""


@hsm.group()
def sweep() -> None:
    """v1's sweep commands."""


@sweep.command("run")
@click.option(
    "-c",
    "--config",
    "config",
    default="sweeps/sweep.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The sweep file.",
)
@click.option("--mode", type=click.Choice(sorted(MODE_PROFILES)), default="local", show_default=True)
@click.option("--dry-run", is_flag=True, help="List what would run.")
@click.option("--count-only", is_flag=True, help="Only print how many tasks the sweep expands to.")
@click.option("--max-runs", type=int, help="Run only the first N tasks.")
@click.option("--sweep-id", help="Name the sweep.")
@click.pass_context
def run(
    ctx: click.Context,
    config: str,
    mode: str,
    dry_run: bool,
    count_only: bool,
    max_runs: int | None,
    sweep_id: str | None,
) -> None:
    """hsm sweep run → hsm-snake run (or validate for --count-only)."""
    if count_only:
        _delegate(ctx, ["validate", config])
        return
    args = ["run", config, "--profile", MODE_PROFILES[mode]]
    if dry_run:
        args.append("--dry-run")
    if sweep_id:
        args += ["--sweep-id", sweep_id]
    if max_runs is not None:
        if max_runs < 1:
            raise click.BadParameter("must be at least 1", param_hint="--max-runs")
        args += ["--max-tasks", str(max_runs)]
    _delegate(ctx, args)


@sweep.command("complete")
@click.argument("sweep_id", required=False)
@click.option("--mode", type=click.Choice(sorted(MODE_PROFILES)), default="local", show_default=True)
@click.option("--dry-run", is_flag=True)
@click.pass_context
def complete(ctx: click.Context, sweep_id: str | None, mode: str, dry_run: bool) -> None:
    """hsm sweep complete → hsm-snake complete."""
    args = ["complete", *([sweep_id] if sweep_id else []), "--profile", MODE_PROFILES[mode]]
    _delegate(ctx, args + (["--dry-run"] if dry_run else []))


@sweep.command("status")
@click.argument("sweep_id", required=False)
@click.pass_context
def status(ctx: click.Context, sweep_id: str | None) -> None:
    """hsm sweep status → hsm-snake status."""
    _delegate(ctx, ["status", *([sweep_id] if sweep_id else [])])


def main() -> None:
    hsm()


if __name__ == "__main__":
    main()
