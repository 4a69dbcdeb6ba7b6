"""``status.yaml`` of a task: its header, timestamp format and writing. The one module that writes it.

The runner writes it at the start and the end of every attempt; a backend's accounting writes it
for a task whose job died before the runner could (out of memory, walltime, node failure); the
SSH executor for a task whose host was lost; ``migrate`` when it converts a v1 task. Readers use
:func:`hsm_snake.layout.records.read_record` / ``read_record_text`` (fast path for this format).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hsm_snake.layout.records import write_record

HEADER = "hsm-snake task status (written by the task runner; do not edit)"


def now_iso() -> str:
    """The timestamp format of every ``started``/``finished`` field: local time with its offset."""
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def write_status(path: Path, status: dict[str, Any], durable: bool = True) -> None:
    """Replace a task's status.yaml atomically (``durable=False``: no fsync, see docs/design.md)."""
    write_record(path, status, HEADER, durable)
