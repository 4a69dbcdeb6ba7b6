"""Small, defensive readers shared by the monitoring commands (errors, results, recent, status,
watch, report).

Everything here reads a sweep directory that may be half-written, hand-edited or damaged: no
function raises on a bad file; it returns ``None`` / an empty value instead. No Snakemake, no
layout code: only the standard library, PyYAML (via :mod:`hsm_snake.layout.records`) and paths.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import math
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from hsm_snake.errors import SweepStateError
from hsm_snake.layout.index import SweepIndex, format_task_selection, load_index
from hsm_snake.layout.paths import SweepPaths, TaskFiles, task_number
from hsm_snake.layout.records import RecordError, read_yaml

TAIL_BYTES = 16384


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a monitoring command builds its per-task records: tens of
    thousands of acyclic containers, which the collector would otherwise traverse again and again
    as they pile up (~15% of `report` at 10,000 tasks). Collection resumes after (`watch` runs on)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def compress_tasks(names: Iterable[str]) -> str:
    numbers = []
    for name in names:
        try:
            numbers.append(task_number(name))
        except ValueError:
            continue
    return format_task_selection(numbers)


def parse_time(value: Any) -> float | None:
    """An ISO-8601 timestamp (as the runner writes) as epoch seconds; None if unusable."""
    if isinstance(value, datetime):
        return value.timestamp()
    if not isinstance(value, str) or not value:
        return None
    return _parse_iso(value)


@functools.lru_cache(maxsize=4096)
def _parse_iso(value: str) -> float | None:
    # Cached: the monitors parse every task's start and end, whole seconds that many tasks share.
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def number(value: Any) -> float | None:
    """A finite int/float (not bool) as float, else None."""
    if type(value) is float:  # the common cases first: called for every cell of a 10,000-task report
        return value if math.isfinite(value) else None
    if type(value) is int:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def format_duration(seconds: float | None) -> str:
    """``3725`` → ``"1:02:05"``; ``42.5`` → ``"42.5s"``; None → ``"-"``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {text}" if days else text


def format_rate(per_second: float | None) -> str:
    """Tasks per second as a readable rate: ``"12.5 task(s)/min"``, ``"1,020 task(s)/min"``, ``"3.2 task(s)/h"``."""
    if not per_second:
        return "-"
    per_minute = per_second * 60
    if per_minute >= 100:
        return f"{per_minute:,.0f} task(s)/min"
    if per_minute >= 1:
        return f"{per_minute:.1f} task(s)/min"
    return f"{per_minute * 60:.2g} task(s)/h"


def format_time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def safe_yaml(path: os.PathLike[str] | str) -> Any:
    """A YAML file's content, or None when it is missing, unreadable or not YAML."""
    try:
        return read_yaml(Path(path))
    except (OSError, RecordError, UnicodeDecodeError, ValueError):
        return None


def metadata(paths: SweepPaths) -> dict[str, Any]:
    data = safe_yaml(paths.metadata)
    return data if isinstance(data, dict) else {}


def created_time(paths: SweepPaths, meta: dict[str, Any] | None = None) -> float | None:
    """When the sweep was created: sweep_metadata.yaml, else the task mapping's mtime."""
    meta = metadata(paths) if meta is None else meta
    created = parse_time(meta.get("created"))
    if created is not None:
        return created
    try:
        return os.stat(paths.task_mapping).st_mtime
    except OSError:
        return None


def project_record(paths: SweepPaths) -> dict[str, Any]:
    """The sweep's project_config.yaml (``project``, ``runner``, ``resources``...), or {}."""
    data = safe_yaml(paths.project_config)
    return data if isinstance(data, dict) else {}


def tail_lines(path: os.PathLike[str] | str, count: int = 10) -> list[str]:
    """The last ``count`` non-empty-trailing lines of a log, decoded leniently; [] if unreadable."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").rstrip("\n").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first line is probably cut
    return [line.rstrip("\r") for line in lines[-count:]]


def task_metrics(files: TaskFiles, name: str, status: dict[str, Any] | None) -> dict[str, Any]:
    """Metrics of a task: status.yaml ``metrics``, else its metrics.json; {} when neither is usable.

    A final status with ``metrics: null`` means the runner found none (it reads metrics.json
    itself): metrics.json is not opened again for it.
    """
    status = status or {}
    metrics = status.get("metrics")
    if isinstance(metrics, dict):
        return metrics
    if metrics is None and "metrics" in status:
        return {}
    try:
        with open(files.metrics(name), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def status_mtime(files: TaskFiles, name: str) -> float | None:
    """When a task's status.yaml was last written (at its end, for a finished task), sub-second."""
    try:
        return os.stat(files.status(name)).st_mtime
    except OSError:
        return None


def text(value: Any) -> str:
    """A cell value as text: strings as they are, everything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if type(value) is int or type(value) is float and math.isfinite(value):
        return repr(value)  # as json.dumps writes them, without its call: a report has ~100,000 cells
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def load_sweep_index(root: os.PathLike[str] | str) -> SweepIndex:
    """:func:`~hsm_snake.layout.index.load_index` for the monitoring commands, which also work when
    project_config.yaml is damaged (they do not need the resources it records), and refuse a
    mapping whose parameters are not mappings.

    Raises SweepStateError (a clean message, exit status 2) only when task_mapping.yaml itself
    cannot be read.
    """
    index = load_index(root, with_settings=False)
    bad = [t.name for t in index.tasks.values() if not isinstance(t.params, dict)]
    if bad:
        raise SweepStateError(f"{index.paths.task_mapping} is damaged: the parameters of {bad[0]} are not a mapping")
    return index
