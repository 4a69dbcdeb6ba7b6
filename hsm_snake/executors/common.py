"""What the backends share: scheduler tools run with a time limit (a cluster whose controller does
not answer, or a laptop with a Slurm client and no controller, must never hang a command that asks
it something), and the settings hsm-snake's executor plugins (hsm-pbs, hsm-ssh) declare alike."""

from __future__ import annotations

import subprocess
from dataclasses import field
from typing import Any


def run_bounded(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess | None:
    """``argv`` with no input, its output captured as text; None when it could not be started or
    did not end within ``timeout_s``."""
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def of_local_scheduler(status: dict[str, Any], scheduler: str) -> bool:
    """The record names a job of this machine's ``scheduler`` (slurm, pbs). A cluster remote's
    element names its remote (``host_alias``): its id means nothing to the local tools
    (executors/remote_cluster asks there)."""
    return status.get("backend") == scheduler and bool(status.get("job_id")) and not status.get("host_alias")


def stdout_of(argv: list[str], timeout_s: float) -> str | None:
    """What ``argv`` printed when it ran and succeeded in time, else None."""
    done = run_bounded(argv, timeout_s)
    return done.stdout if done is not None and done.returncode == 0 else None


def plugin_common_settings(*, passes_snakemake_args: bool) -> Any:
    """The CommonSettings of a remote hsm-snake executor plugin. ``passes_snakemake_args``: some of
    its jobs run a Snakemake command, which then takes the default storage, resources and environment
    arguments (hsm-pbs's non-task jobs); hsm-ssh starts only the runner."""
    # Imported here: the tools above serve the CLI, which must not load Snakemake's interface to start.
    from snakemake_interface_executor_plugins.settings import CommonSettings

    snakemake_args = dict.fromkeys(
        ("pass_default_storage_provider_args", "pass_default_resources_args", "pass_envvar_declarations_to_cmd"),
        passes_snakemake_args,
    )
    return CommonSettings(
        non_local_exec=True,
        implies_no_shared_fs=False,
        job_deploy_sources=False,
        auto_deploy_default_storage_provider=False,
        init_seconds_before_status_checks=1,
        **snakemake_args,
    )


def setting(default: Any, help: str) -> Any:
    """An ExecutorSettings field: a ``--<plugin>-<name>`` option with its help text, not read from
    the environment, not required."""
    return field(default=default, metadata={"help": help, "env_var": False, "required": False})
