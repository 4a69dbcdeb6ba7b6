"""Terminal output of the CLI: rich tables and summaries. Library modules never print."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
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


# Escape sequences (CSI, OSC, two-byte) and every other control character but tab and newline:
# a script's stderr must not move the cursor, retitle the terminal or hide what follows.
_TERMINAL_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def printable(text: object) -> str:
    """``text`` without terminal control sequences, for printing what a task, file or user wrote."""
    return _TERMINAL_CONTROL.sub("", str(text))


def markup_safe(text: object) -> str:
    """``text`` to put inside a rich markup string: printable, and its ``[...]`` shown as written."""
    return escape(printable(text))


def plain_text(text: object, style: str = "") -> Text:
    """A rich Text of what a task, file or user wrote (no markup parsing, no control sequences)."""
    return Text(printable(text), style=style)


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
            state_text.append(f" ({printable(note)})")
        # User values go in as Text: a value such as "[lr]" must not be read as rich markup.
        table.add_row(name, state_text, plain_text(format_params(params)), plain_text(display_command(argv)))
    return table


def counts_line(counts: dict[str, int], total: int) -> str:
    parts = [f"[{STATE_STYLES[s]}]{counts[s]} {s}[/]" for s in scan.STATES if counts.get(s)]
    return f"{total} task(s): " + ", ".join(parts)


def make_console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)
