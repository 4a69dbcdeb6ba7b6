"""Rich renderables of the monitoring commands (status, watch, errors, recent, results).

Builds renderables only; cli.py prints them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from hsm_snake.cli.display import STATE_STYLES, counts_line
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.monitor import scan
from hsm_snake.monitor.progress import Progress
from hsm_snake.monitor.readers import compress_tasks, format_duration, format_rate, parse_time
from hsm_snake.monitor.recent import SweepSummary
from hsm_snake.monitor.triage import ErrorReport

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
        lines.append(Text(" · ".join(where)))
    if progress.by_host:
        lines.append(
            Text(
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
        Text(str(paths.root), style="dim"),
        Text(f"run in progress: {state.holder}" if state.holder else "no run in progress"),
        *progress_lines(paths, state, progress),
    ]
    return Group(*parts)


def errors_view(report: ErrorReport) -> Group:
    parts: list[RenderableType] = []
    if not report.groups and not report.questionable:
        return Group(Text(f"sweep {report.sweep_id}: no failed tasks ({report.total} task(s))"))
    parts.append(
        Text(f"sweep {report.sweep_id}: {report.failed_count} of {report.total} task(s) failed or were cancelled")
    )
    for group in report.groups:
        parts.append(Text(""))
        title = Text(f"{group.label}", style="bold red")
        title.append(f": {group.count} task(s): {compress_tasks(group.tasks)}", style="bold")
        parts.append(title)
        for summary, count in group.summaries.items():
            parts.append(Text(f"  {summary}" + (f" ({count}×)" if count > 1 else "")))
        parts.append(Text(f"  suggestion: {group.suggestion}", style="yellow"))
        if group.stderr_tail:
            parts.append(Text(f"  end of tasks/{group.example}/stderr.log:", style="dim"))
            for line in group.stderr_tail:
                parts.append(Text(f"    {line}", style="dim"))
    if report.questionable:
        parts.append(Text(""))
        parts.append(Text(f"{len(report.questionable)} task(s) whose state cannot be trusted:", style="bold magenta"))
        for q in report.questionable:
            parts.append(Text(f"  {q.task} {q.state}: {q.note or ''}"))
        parts.append(Text(f"  suggestion: {report.questionable[0].suggestion}", style="yellow"))
    return Group(*parts)


def _short_time(iso: str | None) -> str:
    moment = parse_time(iso)
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def recent_table(summaries: Iterable[SweepSummary], title: str) -> Table:
    table = Table(title=title)
    for name, justify, no_wrap in (
        ("sweep", "left", True),
        ("created", "left", True),
        ("tasks", "right", True),
        ("completed", "right", True),
        ("failed", "right", True),
        ("backends", "left", False),
        ("run", "left", False),
    ):
        table.add_column(name, justify=justify, no_wrap=no_wrap, overflow="fold")
    for s in summaries:
        if s.error:
            unreadable = Text(f"unreadable: {s.error}", style="red")
            table.add_row(Text(s.sweep_id), Text(_short_time(s.created)), "-", "-", "-", "-", unreadable)
            continue
        run = Text("in progress", style="cyan") if s.in_progress else Text("-", style="dim")
        table.add_row(
            Text(s.sweep_id),
            Text(_short_time(s.created)),
            str(s.tasks),
            Text(str(s.completed), style="green"),
            Text(str(s.failed), style="red" if s.failed else "dim"),
            Text(", ".join(s.backends) or "-"),
            run,
        )
    return table
