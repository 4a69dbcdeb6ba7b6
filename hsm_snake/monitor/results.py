"""One row per task: parameters, state, metrics and timing (``hsm-snake results``, the report).

Metrics come from status.yaml's ``metrics`` (copied there by the runner) or the task's
``metrics.json``. Reads the sweep directory alone; never raises on a damaged task.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsm_snake.errors import HsmError
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import write_text_atomic
from hsm_snake.monitor import scan
from hsm_snake.monitor.readers import gc_paused, number, task_metrics

FIXED_BEFORE = ("task", "state")
FIXED_AFTER = (
    "duration_s",
    "attempt",
    "host",
    "backend",
    "job_id",
    "started",
    "finished",
    "error_category",
    "cuda_visible_devices",
    "tracker_url",
)
FORMATS = ("csv", "json", "parquet")


@dataclass
class ResultTable:
    sweep_id: str
    params: list[str]
    """Parameter columns (prefixed ``param.`` when a parameter has the name of a fixed column)."""
    metrics: list[str]
    """Metric names as in the rows (prefixed ``metric.`` when a parameter has the same name)."""
    rows: list[dict[str, Any]]
    _values: dict[str, list[Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def columns(self) -> list[str]:
        return [*FIXED_BEFORE, *self.params, *self.metrics, *FIXED_AFTER]

    def values(self, column: str) -> list[Any]:
        """The rows' values of ``column`` (None where a row has none), extracted once: the report's
        table, plots and results.csv all read the same columns."""
        if column not in self._values:
            self._values[column] = [row.get(column) for row in self.rows]
        return self._values[column]


# Values kept in the fixed columns. type(), not isinstance: bool is no scalar here, and status records
# come from JSON/YAML parsers (no subclasses); it is also the cheapest test on 10,000 rows.
_SCALARS = frozenset((str, int, float))
_FIXED_SCALARS = FIXED_AFTER[2:]


def collect(state: scan.SweepState) -> ResultTable:
    """The table of a sweep scanned with ``with_status=True``."""
    with gc_paused():
        return _collect(state)


def _collect(state: scan.SweepState) -> ResultTable:
    paths = state.index.paths
    fixed = set(FIXED_BEFORE) | set(FIXED_AFTER)
    params: dict[str, str] = {}  # parameter -> column (prefixed when it has a fixed column's name)
    for task in state.tasks:
        for name in task.task.params:
            if name not in params:
                params[name] = f"param.{name}" if name in fixed else name
    taken = set(params) | set(params.values()) | fixed
    metric_names: dict[str, str] = {}
    raw_rows = []
    files = paths.task_files
    for task in state.tasks:
        status = task.status if isinstance(task.status, dict) else {}
        metrics = task_metrics(files, task.task.name, status)
        for name in metrics:
            if name not in metric_names:
                metric_names[name] = f"metric.{name}" if name in taken else name
        raw_rows.append((task, status, metrics))
    rows = []
    param_columns, metric_columns = list(params.items()), list(metric_names.items())
    for task, status, metrics in raw_rows:
        row: dict[str, Any] = {"task": task.task.name, "state": task.state}
        task_params = task.task.params
        for name, column in param_columns:
            row[column] = task_params.get(name)
        for name, column in metric_columns:
            row[column] = metrics.get(name)
        row["duration_s"] = number(status.get("duration_s"))
        attempt = status.get("attempt")
        row["attempt"] = attempt if type(attempt) is int else None
        for key in _FIXED_SCALARS:
            value = status.get(key)
            row[key] = value if type(value) in _SCALARS else None
        rows.append(row)
    return ResultTable(paths.sweep_id, list(params.values()), list(metric_names.values()), rows)


# Cells that are not written as str() does: lists, dicts and booleans as JSON, and text a
# spreadsheet would run as a formula (=, +, -, @, and tab/CR that some strip first) with a
# leading quote, which makes it show the text as written (OWASP "CSV injection").
_TEXT_CELLS = frozenset((str, list, dict, bool))
_PLAIN_TEXT_COLUMN = frozenset((str, int, float, type(None)))
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(value: Any) -> str:
    if type(value) is not str:
        value = json.dumps(value, ensure_ascii=False)
    if value.startswith(_FORMULA_START) and not _is_number(value):
        return "'" + value  # negative numbers stay numbers
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(table: ResultTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = table.columns
    writer.writerow([_text_cell(column) for column in columns])
    writer.writerows(zip(*(_csv_column(table.values(column)) for column in columns), strict=True))
    return out.getvalue()


def _csv_column(values: list[Any]) -> list[Any]:
    """A column's cells as csv writes them. Column by column: most columns hold only numbers,
    empty cells, or text that needs nothing (csv writes None as an empty cell and numbers as
    str() does), which one look at the classes present tells, without a call per cell."""
    kinds = set(map(type, values))
    if kinds.isdisjoint(_TEXT_CELLS):
        return values
    if kinds <= _PLAIN_TEXT_COLUMN and not any(type(v) is str and v.startswith(_FORMULA_START) for v in values):
        return values
    # type(), as in collect: bool is not written as str() does.
    return [_text_cell(v) if type(v) in _TEXT_CELLS else v for v in values]


def to_json(table: ResultTable) -> str:
    return json.dumps(
        {"sweep_id": table.sweep_id, "columns": table.columns, "rows": table.rows}, ensure_ascii=False, indent=1
    )


def results_csv_path(paths: SweepPaths) -> Path:
    return paths.reports_dir / "results.csv"


def write_results_csv(paths: SweepPaths, csv_text: str) -> Path:
    """reports/results.csv, from :func:`to_csv`'s text (not fsynced: rebuilt from the sweep directory)."""
    target = results_csv_path(paths)
    write_text_atomic(target, csv_text, durable=False)
    return target


def write_parquet(table: ResultTable, target: Path) -> None:
    """Parquet through pyarrow (or pandas), when one of them happens to be installed."""
    columns = {column: _parquet_column([row.get(column) for row in table.rows]) for column in table.columns}
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None:
        pq.write_table(pa.table(columns), str(target))
        return
    hint = "  hint: `pip install pyarrow`, or use --format csv (reports/results.csv is always written)"
    try:
        import pandas as pd
    except ImportError:
        raise HsmError(
            "--format parquet needs pyarrow (or pandas with a parquet engine), and neither is installed here.\n" + hint
        ) from None
    try:
        pd.DataFrame(columns).to_parquet(target)
    except ImportError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "no parquet engine"
        raise HsmError(f"--format parquet: pandas cannot write parquet here ({reason})\n{hint}") from None


def _parquet_column(values: list[Any]) -> list[Any]:
    """Parquet columns hold one type: nested values become JSON, a column of mixed kinds text."""
    values = [json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v for v in values]
    kinds = {float if type(v) is int else type(v) for v in values if v is not None}
    if len(kinds) > 1:
        return [None if v is None else str(v) for v in values]
    return values
