"""Counting pass-throughs for the cluster benches: a PATH whose first folder holds one shim per
command that logs each call, then runs the real command.

A logged line is the command's name, ``in_job`` when the call was made inside a Slurm job (else
empty) and the call's arguments (newlines and tabs as spaces), tab-separated.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Call:
    name: str
    in_job: bool
    arguments: str


def counting_path(folder: Path, calls_log: Path, names: tuple[str, ...]) -> str:
    """This process's PATH with ``folder`` first, ``folder`` holding a logging shim of each of ``names``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        real = shutil.which(name)
        if real is None:
            raise SystemExit(f"{name} not found: start the test bed (. /tmp/hsm-testbed/env.sh) or load Slurm")
        shim = folder / name
        shim.write_text(
            "#!/bin/sh\n"
            f"printf '%s\\t%s\\t%s\\n' {name} \"${{SLURM_JOB_ID:+in_job}}\" "
            f"\"$(printf '%s' \"$*\" | tr '\\n\\t' '  ')\" >> \"{calls_log}\"\n"
            f'exec "{real}" "$@"\n'
        )
        shim.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def logged_calls(calls_log: Path) -> list[Call]:
    """The calls the shims logged, in order ([] when none was made)."""
    if not calls_log.exists():
        return []
    calls = []
    for line in calls_log.read_text().splitlines():
        name, in_job, arguments = (line.split("\t", 2) + ["", ""])[:3]
        if name:
            calls.append(Call(name, in_job == "in_job", arguments))
    return calls
