"""Every sbatch call of a sweep, kept under ``scripts/job_scripts/`` for reproducibility.

hsm-snake's Slurm executor (``executor.py``) keeps each sbatch call it makes, with the job script
it fed on stdin, as ``scripts/job_scripts/sbatch-<UTC time>-<pid>.sh``: a shell script that would
submit the same job again, sbatch's answer (the job id) in a comment. ``hsm-snake complete`` finds
the jobs of a killed run by those answers (engine/leftovers.py).
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from hsm_snake.layout.records import write_text_atomic

STDIN_END = "HSM_SBATCH_STDIN"


def render_record(args: list[str], stdin: bytes, answer: str, code: int, when: datetime) -> str:
    lines = [
        "#!/bin/sh",
        f"# sbatch call made by hsm-snake's Slurm executor at {when.isoformat(timespec='seconds')}",
        *[f"# sbatch answered (exit {code}): {line}" for line in answer.strip().splitlines()[:5] or ["(nothing)"]],
    ]
    call = shlex.join(["sbatch", *args])
    text = stdin.decode("utf-8", errors="replace")
    if text:
        lines += [f"{call} <<'{STDIN_END}'", text.rstrip("\n"), STDIN_END]
    else:
        lines.append(call)
    return "\n".join(lines) + "\n"


def keep(record_dir: Path, args: list[str], stdin: bytes, answer: str, code: int) -> Path | None:
    """Write one sbatch call's record; None (and a word on stderr) when it cannot: a submission
    never fails over its record."""
    when = datetime.now(UTC)
    record = record_dir / f"sbatch-{when.strftime('%Y%m%dT%H%M%S.%f')}-{os.getpid()}.sh"
    try:
        record_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, render_record(args, stdin, answer, code, when))
    except OSError as exc:
        print(f"hsm-snake: could not keep the sbatch call in {record}: {exc}", file=sys.stderr)
        return None
    return record
