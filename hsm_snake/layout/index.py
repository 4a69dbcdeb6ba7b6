"""The tasks of a sweep directory as read from ``task_mapping.yaml``, and task selections.

Read by the workflow at every Snakemake start and by status/missing: JSON speed, no Snakemake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsm_snake.errors import ConfigError, SweepStateError
from hsm_snake.layout import names
from hsm_snake.layout.paths import SweepPaths, task_number
from hsm_snake.layout.records import RecordError, read_json_document, read_yaml

_SELECTION = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


@dataclass(slots=True)
class TaskEntry:
    """One task of the mapping. Not frozen: a frozen dataclass's __init__ costs three times as much
    (object.__setattr__ per field), and every status/missing/Snakemake start builds one per task."""

    name: str
    param_hash: str
    params: dict[str, Any]
    retired: bool = False

    @property
    def number(self) -> int:
        return task_number(self.name)


@dataclass
class SweepIndex:
    paths: SweepPaths
    tasks: dict[str, TaskEntry]
    resources: dict[str, Any] = field(default_factory=dict)
    retry: dict[str, Any] = field(default_factory=dict)

    @property
    def sweep_id(self) -> str:
        return self.paths.sweep_id

    def active(self) -> list[TaskEntry]:
        """Tasks of the current expansion (retired ones were dropped from sweep.yaml)."""
        return [t for t in self.tasks.values() if not t.retired]

    def select(self, selection: str | None) -> list[TaskEntry]:
        """Active tasks, or the ones named by a selection such as ``"1,5,10-20"``."""
        active = self.active()
        if not selection:
            return active
        wanted = parse_task_selection(selection)
        chosen = [t for t in active if t.number in wanted]
        unknown = sorted(wanted - {t.number for t in active})
        if unknown:
            shown = ", ".join(str(n) for n in unknown[:10])
            raise ConfigError(
                f"no such task number(s) in sweep {self.sweep_id}: {shown}",
                key="tasks",
                hint=f"task numbers of this sweep run from 1 to {max((t.number for t in active), default=0)}",
            )
        return chosen

    def targets(self, selection: str | None = None) -> list[str]:
        return [self.paths.marker_target(t.name) for t in self.select(selection)]


def format_task_selection(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` → ``"1-3,7"``: the inverse of :func:`parse_task_selection`, short enough for a
    command line even for 10,000 tasks."""
    ordered = sorted(set(numbers))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_task_selection(text: str) -> set[int]:
    """``"1,5,10-20"`` → {1, 5, 10, …, 20}; ConfigError naming the bad part."""
    numbers: set[int] = set()
    for part in str(text).split(","):
        match = _SELECTION.match(part)
        if not match:
            raise ConfigError(
                f"cannot read task selection part {part.strip()!r}",
                key="tasks",
                hint="use task numbers and ranges separated by commas, e.g. 1,5,10-20",
            )
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first:
            raise ConfigError(f"range {part.strip()!r} runs backwards", key="tasks", hint=f"write it as {last}-{first}")
        numbers.update(range(first, last + 1))
    return numbers


def task_selection_from_file(path: str | Path) -> str:
    """The selection a file lists (v1's ``--task-ids @file``): numbers and ranges, by commas or
    one per line, ``#`` comments and blank lines skipped; checked, as ``"1,5,10-20"``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read task list {path}: {exc}", key="tasks") from None
    parts = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        for part in line.replace(" ", ",").split(","):
            if part:
                try:
                    parse_task_selection(part)
                except ConfigError as error:
                    raise ConfigError(error.message, file=path, line=number, key="tasks", hint=error.hint) from None
                parts.append(part)
    if not parts:
        raise ConfigError("lists no task numbers", file=path, key="tasks", hint="one number or range (10-20) a line")
    return ",".join(parts)


def load_index(root: str | Path, with_settings: bool = True) -> SweepIndex:
    """Read a sweep directory's task mapping, and (``with_settings``) the rule resources and
    retry policy of its project_config.yaml, which reading states alone does not need."""
    paths = SweepPaths(Path(root))
    try:
        mapping = read_json_document(paths.task_mapping)
    except FileNotFoundError:
        raise SweepStateError(
            f"{paths.root} has no task_mapping.yaml: it is not a sweep directory, or its mapping was deleted"
        ) from None
    except (RecordError, UnicodeDecodeError, OSError) as exc:
        raise SweepStateError(f"cannot read {paths.task_mapping}: {exc}") from None
    try:
        tasks = {
            name: TaskEntry(name, entry["hash"], entry.get("params") or {}, bool(entry.get("retired")))
            for name, entry in mapping["tasks"].items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise SweepStateError(f"{paths.task_mapping} is damaged: missing {exc}") from None
    bad = next((name for name in tasks if not names.is_task_name(name)), None)
    if bad is not None:
        raise SweepStateError(
            f"{paths.task_mapping} is damaged: {bad!r} is not a task name (task_ and digits, e.g. task_007)"
        )
    recorded: Any = {}
    if with_settings and paths.project_config.exists():
        try:
            recorded = read_yaml(paths.project_config) or {}
        except RecordError as exc:
            raise SweepStateError(f"cannot read {paths.project_config}: {exc}") from None
    if not isinstance(recorded, dict):
        raise SweepStateError(f"{paths.project_config} is damaged: not a mapping")
    return SweepIndex(paths, tasks, recorded.get("resources") or {}, recorded.get("retry") or {})


def mapping_document(tasks: dict[str, TaskEntry], sweep_id: str) -> dict[str, Any]:
    entries = {}
    for entry in tasks.values():
        record: dict[str, Any] = {"hash": entry.param_hash, "params": entry.params}
        if entry.retired:
            record["retired"] = True
        entries[entry.name] = record
    return {"sweep_id": sweep_id, "tasks": entries}
