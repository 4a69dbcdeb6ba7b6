"""What hsm-snake's Snakemake executor plugins (hsm-pbs, hsm-ssh) declare alike."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(default: Any, help: str) -> Any:
    """An ExecutorSettings field: a ``--<plugin>-<name>`` option with its help text, not read from
    the environment, not required."""
    return field(default=default, metadata={"help": help, "env_var": False, "required": False})
