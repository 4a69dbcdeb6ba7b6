"""Terminal output of the CLI: the console, what tasks, files and users wrote made safe to print,
task tables, and the views of the monitoring commands (status, watch, errors, recent). Builds
renderables and text; the commands print them. Library modules never print.

The monitor's progress, triage and recent modules are named here for their types only: the
commands that show such a view load them, and ``--help`` or ``run`` do not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hsm_snake.monitor import scan
from hsm_snake.monitor.readers import compress_tasks, format_duration, format_rate, parse_time
from hsm_snake.runner.render import display_command

if TYPE_CHECKING:
    from hsm_snake.layout.paths import SweepPaths
    from hsm_snake.monitor.progress import Progress
    from hsm_snake.monitor.recent import SweepSummary
    from hsm_snake.monitor.triage import ErrorReport

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


BAR_WIDTH = 40
_BAR_ORDER = (scan.COMPLETED, scan.FAILED, scan.CANCELLED, scan.RUNNING, scan.STALE, scan.INTERRUPTED, scan.UNREADABLE)


def progress_bar(counts: dict[str, int], total: int, width: int = BAR_WIDTH) -> Text:
    """A bar coloured by state (completed, failed, running...), then the percentage completed."""
    bar = Text()
    used = 0
    for state in _BAR_ORDER:
        count = counts.get(state, 0)
        if not count or not total:
            continue
        cells = max(1, round(width * count / total))
        cells = min(cells, width - used)
        bar.append("━" * cells, style=STATE_STYLES.get(state, "white"))
        used += cells
    bar.append("━" * (width - used), style="grey35")
    completed = counts.get(scan.COMPLETED, 0)
    percent = 100.0 * completed / total if total else 100.0
    bar.append(f" {percent:3.0f}% {completed}/{total} completed")
    return bar


def _counter(values: dict[str, int], limit: int = 6) -> str:
    ordered = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{name} ×{count}" if count > 1 else name for name, count in ordered[:limit])
    return text + (f" (+{len(ordered) - limit} more)" if len(ordered) > limit else "")


def progress_lines(paths: SweepPaths, state: scan.SweepState, progress: Progress) -> list[RenderableType]:
    counts = state.counts()
    lines: list[RenderableType] = [progress_bar(counts, len(state.tasks))]
    facts = [f"elapsed {format_duration(progress.elapsed_s)}"]
    if progress.throughput_per_s:
        facts.append(f"throughput {format_rate(progress.throughput_per_s)} over the last {progress.window} finished")
    if progress.parallelism:
        facts.append(f"≈{progress.parallelism:.1f} at once")
    if progress.mean_duration_s is not None:
        facts.append(f"mean task {format_duration(progress.mean_duration_s)}")
    if progress.in_progress:
        left = f"{progress.remaining} left"
        facts.append(f"ETA {format_duration(progress.eta_s)} ({left})" if progress.eta_s is not None else left)
    lines.append(Text(" · ".join(facts)))
    where = []
    if progress.running_backends:
        where.append(f"running on {_counter(progress.running_backends)}")
    if progress.running_hosts:
        where.append(f"hosts {_counter(progress.running_hosts)}")
    if progress.backends:
        where.append(f"backends seen: {', '.join(progress.backends)}")
    if progress.hosts and not progress.running_hosts:
        shown = progress.hosts[:8]
        more = f" (+{len(progress.hosts) - len(shown)})" if len(progress.hosts) > len(shown) else ""
        where.append(f"hosts seen: {', '.join(shown)}{more}")
    if where:
        lines.append(plain_text(" · ".join(where)))
    if progress.by_host:
        lines.append(
            plain_text(
                "per host: "
                + " · ".join(
                    f"{host}: " + ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
                    for host, states in progress.by_host.items()
                )
            )
        )
    if progress.stale:
        lines.append(
            Text(
                f"stale: {len(progress.stale)} task(s) ({compress_tasks(progress.stale)}) say running, but no run "
                f"holds the sweep (it was killed); `hsm-snake complete {paths.sweep_id}` reruns them",
                style=STATE_STYLES[scan.STALE],
            )
        )
    return lines


def status_view(paths: SweepPaths, state: scan.SweepState, progress: Progress) -> Group:
    head = Text.from_markup(f"sweep {paths.sweep_id}: " + counts_line(state.counts(), len(state.tasks)))
    parts: list[RenderableType] = [
        head,
        plain_text(paths.root, style="dim"),
        plain_text(f"run in progress: {state.holder}" if state.holder else "no run in progress"),
        *progress_lines(paths, state, progress),
    ]
    return Group(*parts)


def errors_view(report: ErrorReport) -> Group:
    parts: list[RenderableType] = []
    if report.pattern is not None:
        head = (
            f"sweep {report.sweep_id}: {report.failed_count} of {report.unfiltered} failed or cancelled task(s) "
            f"match {report.pattern!r}"
        )
        if not report.groups and not report.questionable:
            return Group(Text(head + " (it is searched for in the category, summary and end of stderr.log)"))
        parts.append(Text(head))
    elif not report.groups and not report.questionable:
        return Group(Text(f"sweep {report.sweep_id}: no failed tasks ({report.total} task(s))"))
    else:
        parts.append(
            Text(f"sweep {report.sweep_id}: {report.failed_count} of {report.total} task(s) failed or were cancelled")
        )
    for group in report.groups:
        parts.append(Text(""))
        title = Text(f"{group.label}", style="bold red")
        title.append(f": {group.count} task(s): {compress_tasks(group.tasks)}", style="bold")
        parts.append(title)
        for summary, count in group.summaries.items():
            parts.append(plain_text(f"  {summary}" + (f" ({count}×)" if count > 1 else "")))
        parts.append(Text(f"  suggestion: {group.suggestion}", style="yellow"))
        if group.stderr_tail:
            parts.append(Text(f"  end of tasks/{group.example}/stderr.log:", style="dim"))
            for line in group.stderr_tail:
                parts.append(plain_text(f"    {line}", style="dim"))
    if report.questionable:
        parts.append(Text(""))
        parts.append(Text(f"{len(report.questionable)} task(s) whose state cannot be trusted:", style="bold magenta"))
        for q in report.questionable:
            parts.append(plain_text(f"  {q.task} {q.state}: {q.note or ''}"))
        parts.append(Text(f"  suggestion: {report.questionable[0].suggestion}", style="yellow"))
    return Group(*parts)


def _short_time(iso: str | None, with_year: bool) -> str:
    moment = parse_time(iso)
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M" if with_year else "%m-%d %H:%M")


RECENT_SWEEP_MIN = 16
"""The sweep column is folded down to this width before any other column is left out."""
_RECENT_DROP_ORDER = ("backends", "created", "run", "failed")


def recent_table(summaries: Iterable[SweepSummary], title: str, width: int) -> tuple[Table, list[str]]:
    """The sweeps as a table that fits ``width`` columns, and the names of the columns left out
    to make it fit: the sweep id folds first, then backends, created, run and failed go (in that
    order); a column is never squeezed to a sliver."""
    summaries = list(summaries)
    this_year = datetime.now().year
    with_year = any(
        (moment := parse_time(s.created)) is not None and datetime.fromtimestamp(moment).year != this_year
        for s in summaries
    )
    cells: dict[str, list[Text]] = {name: [] for name in ("sweep", "created", "tasks", "done", "failed", "backends")}
    running = any(s.in_progress for s in summaries)
    if running:
        cells["run"] = []
    for s in summaries:
        cells["sweep"].append(plain_text(s.sweep_id))
        cells["created"].append(Text(_short_time(s.created, with_year)))
        if s.error:
            for name in ("tasks", "done", "failed"):
                cells[name].append(Text("-", style="dim"))
            cells["backends"].append(plain_text(f"unreadable: {s.error}", style="red"))
        else:
            cells["tasks"].append(Text(str(s.tasks)))
            cells["done"].append(Text(str(s.completed), style="green"))
            cells["failed"].append(Text(str(s.failed), style="red" if s.failed else "dim"))
            cells["backends"].append(plain_text(", ".join(s.backends) or "-"))
        if running:
            cells["run"].append(Text("running", style="cyan") if s.in_progress else Text("-", style="dim"))

    def natural(name: str) -> int:
        return max([len(name), *(t.cell_len for t in cells[name])])

    def needed(names: list[str]) -> int:
        sweep = min(natural("sweep"), RECENT_SWEEP_MIN)
        others = sum(min(natural(n), 24) if n == "backends" else natural(n) for n in names if n != "sweep")
        return sweep + others + 3 * len(names) + 1

    shown = list(cells)
    left_out = []
    for name in _RECENT_DROP_ORDER:
        if needed(shown) <= width or name not in shown:
            continue
        shown.remove(name)
        left_out.append(name)
    table = Table(title=plain_text(title))
    for name in shown:
        numeric = name in ("tasks", "done", "failed")
        table.add_column(
            name,
            justify="right" if numeric else "left",
            no_wrap=name not in ("sweep", "backends"),
            overflow="fold",
            min_width=natural(name) if name not in ("sweep", "backends") else min(natural(name), RECENT_SWEEP_MIN),
        )
    for row in zip(*(cells[name] for name in shown), strict=True):
        table.add_row(*row)
    return table, left_out
