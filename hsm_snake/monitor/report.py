"""``hsm-snake report``: a self-contained HTML report of a sweep, and its companions.

Writes into ``reports/``:

- ``completion_report.html`` — summary counts, a sortable table of every task (parameters,
  state, metrics, duration), and plots rendered at build time as inline SVG (each numeric metric
  against each swept numeric parameter, a duration histogram, a timeline of tasks per host).
  Inline CSS and JavaScript only: it opens offline, from a laptop, years later.
- ``error_analysis.html`` — the failed tasks grouped by cause (as ``hsm-snake errors``).
- ``performance_analysis.yaml`` — durations (min/median/max) and throughput per backend and host.
- ``results.csv`` — the task table (as ``hsm-snake results``).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from hsm_snake import __version__
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import write_text_atomic, write_yaml
from hsm_snake.monitor import scan, svgplot
from hsm_snake.monitor.progress import Progress, summarize
from hsm_snake.monitor.readers import (
    format_duration,
    format_rate,
    format_time,
    gc_paused,
    load_sweep_index,
    metadata,
    number,
    parse_time,
    text,
)
from hsm_snake.monitor.results import ResultTable, collect, to_csv, write_results_csv
from hsm_snake.monitor.triage import ErrorReport, triage

MAX_SCATTER_PLOTS = 36
MAX_SCATTER_POINTS = 2000
MAX_TIMELINE_BARS = 3000
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class ReportFiles:
    html: Path
    errors_html: Path
    performance: Path
    results_csv: Path
    plots: int
    tasks: int


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        # Compiled templates kept in jinja's per-user temp folder: compiling them costs more than a small report.
        bytecode_cache=jinja2.FileSystemBytecodeCache(),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = format_duration
    env.filters["when"] = format_time
    env.filters["rate"] = format_rate
    env.filters["cell"] = text
    return env


MAX_CATEGORIES = 20
"""A text parameter with more distinct values than this gets no plot (the labels would not fit)."""


_MISSING = object()
"""An empty cell in a column of :func:`_plot_values` (not plotted, not counted as NaN/inf)."""


def numeric_columns(columns: dict[str, list[Any]], *, swept: bool) -> list[str]:
    """Columns (name -> the rows' values) whose values are all numbers (ignoring empty cells) and
    at least one finite (NaN and inf are numbers a plot leaves out); ``swept``: at least two finite."""
    chosen = []
    wanted = 2 if swept else 1
    for name, column in columns.items():
        values = [v for v in column if v is not None]
        if not values or not _all_numbers(values):
            continue
        finite = set()
        for value in values:
            if (n := number(value)) is not None:
                finite.add(n)
                if len(finite) >= wanted:
                    chosen.append(name)
                    break
    return chosen


def _all_numbers(values: list[Any]) -> bool:
    """Every value an int or float (not bool), tested once per class present."""
    return all(issubclass(kind, int | float) and not issubclass(kind, bool) for kind in set(map(type, values)))


def categorical_columns(columns: dict[str, list[Any]]) -> dict[str, list[str]]:
    """Swept parameters that are not all numbers (optimizer: [adam, sgd], flags, mixed values),
    with their values as text in the order the sweep runs them: 2 to MAX_CATEGORIES of them."""
    chosen = {}
    for name, column in columns.items():
        values = [v for v in column if v is not None]
        if not values or _all_numbers(values):
            continue
        categories = list(dict.fromkeys(text(v) for v in values))
        if 2 <= len(categories) <= MAX_CATEGORIES:
            chosen[name] = categories
    return chosen


def _plot_values(column: list[Any], categories: list[str] | None) -> list[Any]:
    """Where each row's value lies on an axis: a number, its category's position, None when it
    cannot be drawn (NaN, inf), _MISSING for an empty cell."""
    if categories:
        position = {name: i for i, name in enumerate(categories)}
        return [_MISSING if v is None else position.get(text(v)) for v in column]
    return [_MISSING if v is None else number(v) for v in column]


def scatter_plots(table: ResultTable) -> tuple[list[dict[str, str]], int]:
    """(plots, how many were left out): each numeric metric against each swept parameter, a
    scatter plot for a numeric one, a strip plot (a column per value) for any other."""
    rows = table.rows
    param_columns = {name: table.values(name) for name in table.params}
    metric_columns = {name: table.values(name) for name in table.metrics}
    numeric = numeric_columns(param_columns, swept=True)
    categorical = categorical_columns(param_columns)
    params = [p for p in table.params if p in numeric or p in categorical]
    metrics = numeric_columns(metric_columns, swept=False)
    pairs = [(m, p) for m in metrics for p in params]
    # Each column converted once, not once per plot it is in.
    xs = {p: _plot_values(param_columns[p], categorical.get(p)) for p in {p for _, p in pairs[:MAX_SCATTER_PLOTS]}}
    ys = {m: _plot_values(metric_columns[m], None) for m in {m for m, _ in pairs[:MAX_SCATTER_PLOTS]}}
    plots = []
    for metric, param in pairs[:MAX_SCATTER_PLOTS]:
        categories = categorical.get(param)
        plottable, not_finite = _plottable(rows, xs[param], ys[metric])
        if not plottable:
            continue
        drawn = _drawn(plottable)
        points = []
        for row, x, y in drawn:
            shown_x = text(row[param]) if categories else svgplot.fmt(x)
            tip = f"{row['task']}: {param}={shown_x}, {metric}={svgplot.fmt(y)} ({row['state']})"
            points.append((x, y, tip, row["state"]))
        if categories:
            svg = svgplot.strip(points, categories, x_label=param, y_label=metric)
        else:
            svg = svgplot.scatter(points, x_label=param, y_label=metric)
        title = f"{metric} vs {param}"
        if not_finite:
            title += f" ({not_finite} NaN/inf value(s) left out)"
        if len(drawn) < len(plottable):
            title += f" ({len(drawn):,} of {len(plottable):,} tasks drawn)"
        plots.append({"title": title, "svg": svg})
    return plots, max(0, len(pairs) - MAX_SCATTER_PLOTS)


def _plottable(
    rows: list[dict[str, Any]], x_values: list[Any], y_values: list[Any]
) -> tuple[list[tuple[dict[str, Any], float, float]], int]:
    """(row, x, y) of the rows a plot can draw, and how many it leaves out as NaN/inf."""
    if not any(None in values or _MISSING in values for values in (x_values, y_values)):
        return list(zip(rows, x_values, y_values, strict=True)), 0  # the common case: every row
    plottable, not_finite = [], 0
    for row, x, y in zip(rows, x_values, y_values, strict=True):
        if x is _MISSING or y is _MISSING:
            continue
        if x is None or y is None:
            not_finite += 1
            continue
        plottable.append((row, x, y))
    return plottable, not_finite


def _drawn(plottable: list[tuple[dict[str, Any], float, float]]) -> list[tuple[dict[str, Any], float, float]]:
    """The (row, x, y) a plot draws: all up to MAX_SCATTER_POINTS, else that many evenly spaced
    ones plus those of the metric's lowest and highest value (more points only cost build time and
    page weight: 10,000 dots in 380 × 260 pixels draw the same cloud)."""
    if len(plottable) <= MAX_SCATTER_POINTS:
        return plottable
    step = len(plottable) / (MAX_SCATTER_POINTS - 2)
    chosen = {int(k * step) for k in range(MAX_SCATTER_POINTS - 2)}
    ys = [y for _, _, y in plottable]
    chosen.update((ys.index(min(ys)), ys.index(max(ys))))
    return [plottable[i] for i in sorted(chosen)]


Interval = tuple[str, float, float, dict[str, Any], str, str]
"""(host, start, end, the task's table row, state, backend) of a task that ran."""


def _intervals(table: ResultTable, paths: SweepPaths, markers: dict[str, float]) -> list[Interval]:
    """The interval of every task with a start time and a duration.

    status.yaml's times are whole seconds; the mtime of the file written last when the task
    ended (its marker, given in ``markers`` by task, else status.yaml) gives the end to the
    millisecond whenever it agrees with the recorded times.
    """
    out = []
    files = paths.task_files
    for row in table.rows:
        start = parse_time(row.get("started"))
        duration = number(row.get("duration_s"))
        if start is None or duration is None or duration < 0:
            continue
        end = start + duration
        written = markers.get(row["task"])
        if written is None:
            try:
                written = os.stat(files.status(row["task"])).st_mtime
            except OSError:
                written = None
        if written is not None and end - 0.5 <= written <= end + 1.5:
            end = written
            start = end - duration
        host = row.get("host") or "unknown host"
        out.append((str(host), start, end, row, row["state"], str(row.get("backend") or "unknown")))
    return out


def _timeline_bar(interval: Interval) -> tuple[str, float, float, str, str]:
    """(lane, start, end, tooltip, state) of a task the timeline draws (tooltips only for those)."""
    host, start, end, row, state, _ = interval
    return host, start, end, f"{row['task']} on {host}: {format_duration(end - start)} ({state})", state


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min_s": round(min(values), 3),
        "median_s": round(statistics.median(values), 3),
        "mean_s": round(statistics.fmean(values), 3),
        "max_s": round(max(values), 3),
        "total_s": round(sum(values), 3),
    }


def significant(value: float, digits: int = 3) -> float:
    """``35397.45`` → ``35400.0``: a rate measured over seconds has no more digits than that."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _throughput(group: list[Interval]) -> dict[str, Any]:
    durations = [end - start for _, start, end, _, state, _ in group if state == scan.COMPLETED]
    starts, ends = [g[1] for g in group], [g[2] for g in group]
    wall = max(ends) - min(starts)
    busy = math.fsum(ends) - math.fsum(starts)
    states = Counter(g[4] for g in group)
    finished = len(group)
    data: dict[str, Any] = {
        "tasks": finished,
        "completed": states[scan.COMPLETED],
        "failed": states[scan.FAILED],
        "wall_s": round(wall, 3),
        "tasks_per_hour": significant(finished / wall * 3600) if wall > 0 else None,
        "busy_s": round(busy, 3),
        "mean_parallelism": round(busy / wall, 2) if wall > 0 else None,
    }
    data["durations"] = _stats(durations)
    return data


def performance(table: ResultTable, progress: Progress, intervals: list[Interval]) -> dict[str, Any]:
    """performance_analysis.yaml; ``intervals`` as :func:`_intervals` gives them. Its overall
    throughput (finished tasks per wall second, first start to last end) is the report's one."""
    completed = [
        d for row in table.rows if row["state"] == scan.COMPLETED and (d := number(row.get("duration_s"))) is not None
    ]
    by_backend: dict[str, list] = {}
    by_host: dict[str, list] = {}
    for item in intervals:
        by_backend.setdefault(item[5], []).append(item)
        by_host.setdefault(item[0], []).append(item)
    return {
        "sweep_id": table.sweep_id,
        "generated": datetime.now().astimezone().isoformat(timespec="seconds"),
        "tasks": len(table.rows),
        "durations_completed": _stats(completed),
        "durations_all_finished": _stats([e - s for _, s, e, *_ in intervals]),
        "overall": _throughput(intervals) if intervals else None,
        "elapsed_s": round(progress.elapsed_s, 3) if progress.elapsed_s is not None else None,
        "by_backend": {name: _throughput(group) for name, group in sorted(by_backend.items())},
        "by_host": {name: _throughput(group) for name, group in sorted(by_host.items())},
    }


# Tracker addresses the report links: run pages, and an MLflow file store's run folder. Never
# another scheme (a task's output could make its "run page" a javascript: address).
LINKED_SCHEMES = ("https://", "http://", "file://")


def _table_rows(table: ResultTable) -> Markup:
    """The ``<tr>`` rows of the task table: numbers sort as numbers, text as text.

    Built here, column by column, each distinct value of a column formatted once: as a template
    loop over 10,000 tasks × ~30 columns it took seconds.
    """
    columns = [_column_cells(table.values(column), column) for column in table.columns]
    if not table.rows:
        return Markup("")
    # Each row's <tr> opens before its first cell and closes after its last: one join of every cell.
    columns[0] = ["<tr>\n" + cell for cell in columns[0]]
    columns[-1] = [cell + "</tr>\n" for cell in columns[-1]]
    return Markup("".join(itertools.chain.from_iterable(zip(*columns, strict=True))))


def _column_cells(values: list[Any], column: str) -> list[str]:
    """The cells of a column of ``values``, each distinct value formatted once."""
    if _keyed_by_value(values):  # most columns: one dict lookup per cell, in C
        formatted = {value: _cell_html(column, value) for value in dict.fromkeys(values)}
        return list(map(formatted.__getitem__, values))
    # Mixed classes (1, 1.0 and True are equal keys but print differently): told apart by class;
    # lists and dicts (unhashable) and zero floats (0.0 == -0.0) formatted one by one.
    by_key: dict[Any, str] = {}
    cells = []
    for value in values:
        kind = value.__class__
        if kind is list or kind is dict or kind is float and value == 0:
            cells.append(_cell_html(column, value))
            continue
        cell = by_key.get((kind, value))
        if cell is None:
            cell = by_key[(kind, value)] = _cell_html(column, value)
        cells.append(cell)
    return cells


_EQUAL_PRINT_ALIKE = frozenset((str, int, type(None)))
"""Classes whose equal values print alike and never equal a value of another of them."""
_FLOAT_CELLS = frozenset((float, type(None)))


def _keyed_by_value(values: list[Any]) -> bool:
    """Whether equal values of the column always print alike, so a value can key its cell."""
    kinds = set(map(type, values))
    if kinds <= _EQUAL_PRINT_ALIKE:
        return True
    # Floats, unless one is zero (0.0 == -0.0) or NaN (equal to nothing, so never found again).
    return kinds <= _FLOAT_CELLS and 0.0 not in values and not any(map(math.isnan, filter(None, values)))


def _cell_html(column: str, value: Any) -> str:
    if value.__class__ is str and column != "state" and column != "tracker_url":
        shown = _escape(value)  # most cells: text is its own sort value
        return f'<td data-v="{shown}">{shown}</td>\n'
    numeric = number(value)
    shown = text(value)
    if column == "duration_s" and numeric is not None:
        shown = format_duration(numeric)
    elif isinstance(value, float):
        shown = f"{value:.6g}"  # 0.30000000000000004 reads 0.3; the sort value keeps every digit
    sort = repr(numeric) if numeric is not None else _escape(text(value))  # a float's repr needs no escaping
    if column == "state" and shown:
        color = svgplot.STATE_COLORS.get(shown, svgplot.DEFAULT_COLOR)
        return f'<td data-v="{sort}" style="color: {_escape(color)}">{_escape(shown)}</td>\n'
    if column == "tracker_url" and shown.startswith(LINKED_SCHEMES):
        return f'<td data-v="{sort}"><a href="{_escape(shown)}">{_escape(shown)}</a></td>\n'
    return f'<td data-v="{sort}">{_escape(shown)}</td>\n'


_HTML_SPECIAL = re.compile("[&<>\"']")


def _escape(value: str) -> str:
    """As the templates' autoescape does; most cells (numbers, names, times) need nothing."""
    return str(escape(value)) if _HTML_SPECIAL.search(value) else value


def build_report(paths: SweepPaths) -> ReportFiles:
    """Write the report files of a sweep; raises SweepStateError only if the task mapping is unreadable."""
    with gc_paused():
        return _build_report(paths)


def _build_report(paths: SweepPaths) -> ReportFiles:
    state = scan.scan(load_sweep_index(paths.root), with_status=True)
    table = collect(state)
    progress = summarize(state)
    errors = triage(state)
    meta = metadata(paths)
    env = _environment()

    plots, left_out = scatter_plots(table)
    intervals = _intervals(table, paths, {t.task.name: t.marker_mtime for t in state.tasks if t.marker_mtime})
    perf_data = performance(table, progress, intervals)
    durations = [e - s for _, s, e, _, state_, _ in intervals if state_ == scan.COMPLETED]
    shown_bars = sorted(intervals, key=lambda i: i[1])[-MAX_TIMELINE_BARS:]
    counts = state.counts()
    context = {
        "version": __version__,
        "generated": datetime.now().astimezone().isoformat(timespec="seconds"),
        "sweep_id": paths.sweep_id,
        "path": str(paths.root),
        "meta": meta,
        "command": " ".join(str(c) for c in meta.get("command") or []) if isinstance(meta.get("command"), list) else "",
        "git": meta.get("git") if isinstance(meta.get("git"), dict) else {},
        "total": len(state.tasks),
        "counts": [(s, counts[s]) for s in scan.STATES if counts.get(s)],
        "progress": progress,
        "overall": perf_data["overall"],
        "columns": table.columns,
        "param_columns": set(table.params),
        "metric_columns": set(table.metrics),
        "rows": _table_rows(table),
        "plots": plots,
        "plots_left_out": left_out,
        "histogram": svgplot.histogram(durations, label="duration of completed tasks (s)") if durations else None,
        "timeline": svgplot.timeline([_timeline_bar(i) for i in shown_bars]) if intervals else None,
        "timeline_left_out": len(intervals) - len(shown_bars),
        "errors": errors,
        "colors": svgplot.STATE_COLORS,
    }
    reports = paths.reports_dir
    html = reports / "completion_report.html"
    errors_html = reports / "error_analysis.html"
    perf = reports / "performance_analysis.yaml"
    # Not fsynced (megabytes at 10,000 tasks): rebuilt from the sweep directory by the next `report`.
    write_text_atomic(html, env.get_template("completion_report.html.j2").render(context), durable=False)
    write_text_atomic(errors_html, render_errors_html(errors, env), durable=False)
    write_yaml(perf, perf_data, durable=False)
    csv_path = write_results_csv(paths, to_csv(table))
    return ReportFiles(
        html, errors_html, perf, csv_path, len(plots) + bool(context["histogram"]) + bool(intervals), len(table.rows)
    )


def render_errors_html(errors: ErrorReport, env: jinja2.Environment | None = None) -> str:
    env = env or _environment()
    return env.get_template("error_analysis.html.j2").render(
        {
            "version": __version__,
            "generated": datetime.now().astimezone().isoformat(timespec="seconds"),
            "errors": errors,
            "colors": svgplot.STATE_COLORS,
        }
    )
