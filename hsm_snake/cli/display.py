"""Terminal output of the CLI: rich tables and summaries. Library modules never print."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from hsm_snake.monitor import scan
from hsm_snake.runner.render import display_command

STATE_STYLES = {
    scan.COMPLETED: "green",
    scan.RUNNING: "cyan",
    scan.PENDING: "white",
    scan.FAILED: "red",
    scan.CANCELLED: "yellow",
    scan.STALE: "magenta",
    scan.INTERRUPTED: "yellow",
    scan.UNREADABLE: "red",
}


def format_params(params: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}" for k, v in params.items()
    )


def tasks_table(title: str | None, rows: Iterable[tuple[str, str, dict[str, Any], list[str], str]]) -> Table:
    """Rows of (task, state, params, argv, note)."""
    table = Table(title=Text(title) if title else None, show_lines=False, expand=False)
    table.add_column("task", no_wrap=True)
    table.add_column("state", no_wrap=True)
    # The command must be shown whole (fold, never an ellipsis): users copy it.
    table.add_column("parameters", overflow="fold")
    table.add_column("command", overflow="fold")
    for name, state, params, argv, note in rows:
        state_text = Text(state, style=STATE_STYLES.get(state, "white"))
        if note:
            state_text.append(f" ({note})")
        # User values go in as Text: a value such as "[lr]" must not be read as rich markup.
        table.add_row(name, state_text, Text(format_params(params)), Text(display_command(argv)))
    return table


def counts_line(counts: dict[str, int], total: int) -> str:
    parts = [f"[{STATE_STYLES[s]}]{counts[s]} {s}[/]" for s in scan.STATES if counts.get(s)]
    return f"{total} task(s): " + ", ".join(parts)


def make_console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)
