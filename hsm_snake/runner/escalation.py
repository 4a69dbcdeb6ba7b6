"""Grow a task's memory or time request after it ran out of either.

A task's history is its earlier attempts (``attempts/<n>/status.yaml``) and its current
status.yaml: each earlier out-of-memory failure multiplies the memory request by
``retry.mem_factor``, each timeout the walltime by ``retry.time_factor``, up to ``retry.max_mem``
/ ``retry.max_walltime``. The history lives in the task folder, so the growth holds across
Snakemake's own retries, ``hsm-snake complete`` and a change of backend.

A task whose hsm.yaml asks for no memory gets the cluster's default; after it ran out of memory,
the request grows from the default its first out-of-memory job had (``mem_request_mb``, from
sacct on Slurm; else ``mem_limit_mb``, the job's cgroup limit the runner recorded: PBS).
Imported by the task runner (local walltime) and the workflow (cluster requests): standard
library, PyYAML and the path module only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from hsm_snake.layout.paths import SweepPaths, TaskPaths
from hsm_snake.layout.records import RecordError, read_record_text
from hsm_snake.runner.failures import CUDA_OOM, OUT_OF_MEMORY, TIMEOUT

MEMORY_FAILURES = {OUT_OF_MEMORY, CUDA_OOM}


def failure_history(task: TaskPaths) -> list[str]:
    """Error categories of the task's failed attempts, oldest first."""
    return [record["error_category"] for record in failed_attempts(task)]


def failed_attempts(task: TaskPaths) -> list[dict[str, Any]]:
    """The records of the task's failed attempts (with an error category), oldest first."""
    records = []
    try:
        attempts = sorted(os.listdir(task.attempts), key=lambda name: int(name) if name.isdigit() else -1)
    except FileNotFoundError:
        attempts = []
    paths = [str(task.attempt_status(name)) for name in attempts] + [str(task.status)]
    seen_attempts = set()
    for path in paths:
        try:
            record = read_record_text(path)
        except (FileNotFoundError, RecordError):
            continue
        # attempts/<n>/status.yaml is a copy of status.yaml when attempt n+1 started.
        if record.get("attempt") in seen_attempts:
            continue
        seen_attempts.add(record.get("attempt"))
        if record.get("status") == "failed" and record.get("error_category"):
            records.append(record)
    return records


def first_memory_request(records: list[dict[str, Any]]) -> int | None:
    """The memory (MB) the task's first out-of-memory attempt had: its request as the scheduler
    reported it (``mem_request_mb``, recorded by the Slurm verdict pass), else the limit the
    runner found on its job's cgroup (``mem_limit_mb``)."""
    for record in records:
        if record["error_category"] in MEMORY_FAILURES:
            granted = record.get("mem_request_mb") or record.get("mem_limit_mb")
            if granted:
                return int(granted)
    return None


def scaled(base: float, failures: int, factor: float, cap: float | None) -> int:
    value = base * factor**failures
    if cap is not None:
        value = min(value, max(cap, base))
    return int(math.ceil(value))


def memory_failures(history: list[str]) -> int:
    return sum(1 for category in history if category in MEMORY_FAILURES)


def timeout_failures(history: list[str]) -> int:
    return history.count(TIMEOUT)


def rule_resources(static: dict[str, Any], retry: dict[str, Any], sweep: SweepPaths) -> dict[str, Any]:
    """Resources for the task rule: static values, and callables that grow mem/runtime per task."""
    resources: dict[str, Any] = dict(static)

    def grows(name: str, count: Callable[[list[str]], int], factor_key: str, cap_key: str) -> None:
        base = static[name]

        def value(wildcards: Any) -> int:
            history = failure_history(sweep.task(wildcards.task))
            return scaled(base, count(history), float(retry.get(factor_key, 2)), retry.get(cap_key))

        resources[name] = value

    for name in ("mem_mb", "mem_mb_per_cpu"):
        if name in static:
            grows(name, memory_failures, "mem_factor", "max_mem_mb")
    if "mem_mb" not in static and "mem_mb_per_cpu" not in static:

        def from_default(wildcards: Any) -> int:
            # No request asked (the cluster's default) until the task ran out of memory; then the
            # default it had, grown. 0 = no --mem.
            records = failed_attempts(sweep.task(wildcards.task))
            base = first_memory_request(records)
            if base is None:
                return 0
            failures = memory_failures([record["error_category"] for record in records])
            return scaled(base, failures, float(retry.get("mem_factor", 2)), retry.get("max_mem_mb"))

        resources["mem_mb"] = from_default
    if "runtime" in static:
        grows("runtime", timeout_failures, "time_factor", "max_runtime")
    return resources
