"""What is missing from a sweep and the exact command each missing task would run."""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hsm_snake.errors import ConfigError
from hsm_snake.layout.index import TaskEntry, load_index
from hsm_snake.layout.paths import SweepPaths, TaskFiles
from hsm_snake.layout.records import read_yaml
from hsm_snake.monitor import scan
from hsm_snake.runner import failures
from hsm_snake.runner.task import build_argv


@dataclass(frozen=True)
class PlannedTask:
    """A task that would run, with the exact argv its runner would start."""

    entry: TaskEntry
    argv: list[str]
    state: str = scan.PENDING


def planned_tasks(
    paths: SweepPaths, entries: list[TaskEntry], runner: dict[str, Any], states: dict[str, str] | None = None
) -> list[PlannedTask]:
    states = states or {}
    files = TaskFiles(paths.tasks_dir.resolve())
    return [
        PlannedTask(
            entry,
            build_argv(runner, entry.params, files.dir(entry.name), paths.sweep_id),
            states.get(entry.name, scan.PENDING),
        )
        for entry in entries
    ]


def runner_settings_of(paths: SweepPaths) -> dict[str, Any]:
    return read_yaml(paths.project_config)["runner"]


_ENDED = (scan.FAILED, scan.CANCELLED)


def select_missing(
    state: scan.SweepState, retry_failed: bool = True, only_category: str | None = None
) -> list[TaskEntry]:
    """The missing tasks a run would start: all of them, or without failed ones, or one category
    (refused with the categories present when no failed task has it)."""
    if only_category is not None:
        check_category(state, only_category)
    chosen = []
    for task in state.missing():
        if not retry_failed and task.state in _ENDED:
            continue
        if only_category is not None and (
            task.state not in _ENDED
            or failures.recorded_category(task.status, task.state == scan.CANCELLED) != only_category
        ):
            continue
        chosen.append(task.task)
    return chosen


def check_category(state: scan.SweepState, category: str) -> None:
    """ConfigError unless some failed/cancelled task of ``state`` has ``category``: a typo, or a
    category no task has, would otherwise select nothing and run nothing without a word."""
    present = Counter(
        failures.recorded_category(t.status, t.state == scan.CANCELLED) for t in state.tasks if t.state in _ENDED
    )
    if category in present:
        return
    listing = ", ".join(f"{name} ({count})" for name, count in present.most_common())
    hint = f"categories of its failed tasks: {listing}" if present else "no task of it failed or was cancelled"
    close = difflib.get_close_matches(category, [*present, *failures.CATEGORIES], n=1, cutoff=0.6)
    if close and close[0] != category:
        hint = f"did you mean {close[0]!r}? {hint}"
    known = category in failures.CATEGORIES
    raise ConfigError(
        f"no failed task of sweep {state.index.sweep_id} has error category {category!r}"
        if known
        else f"{category!r} is not an error category",
        key="--only-category",
        hint=hint,
    )


def missing_tasks(
    paths: SweepPaths, *, retry_failed: bool = True, tasks: str | None = None, only_category: str | None = None
) -> tuple[scan.SweepState, list[PlannedTask]]:
    state = scan.scan(load_index(paths.root), selection=tasks)
    states = {t.task.name: t.state for t in state.missing()}
    chosen = select_missing(state, retry_failed, only_category)
    return state, planned_tasks(paths, chosen, runner_settings_of(paths), states)
