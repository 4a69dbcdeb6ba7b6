"""A Snakemake scheduler plugin for sweeps: take ready jobs as they come while they fit.

Snakemake's greedy scheduler solves a small knapsack problem over every ready job at every
scheduling round: O(ready jobs × selected jobs) Python work per round, so a sweep of n
independent tasks costs O(n²) in the scheduler alone. Sweep tasks are alike (one rule, the
same resources) and independent, so there is nothing to optimise: the first jobs that fit
are as good as any. This selection is O(selected + skipped) per round.

Snakemake finds it as ``--scheduler hsm-fifo`` through the shim package
``snakemake_scheduler_plugin_hsm_fifo``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from snakemake_interface_scheduler_plugins.base import SchedulerBase


class Scheduler(SchedulerBase):
    def select_jobs(
        self,
        selectable_jobs: Sequence[Any],
        remaining_jobs: Sequence[Any],
        available_resources: Mapping[str, int | str],
        input_sizes: dict[Any, int],
    ) -> Sequence[Any]:
        # Only resources Snakemake limits globally count, as in its greedy scheduler.
        free = {name: value for name, value in available_resources.items() if isinstance(value, int)}
        selected = []
        for job in selectable_jobs:
            needs = [(n, a) for n, a in job.scheduler_resources.items() if n in free and isinstance(a, int)]
            if all(free[name] >= amount for name, amount in needs):
                for name, amount in needs:
                    free[name] -= amount
                selected.append(job)
            # Nothing more can start once the cores or the job budget are used up.
            if free.get("_cores", 1) <= 0 or free.get("_job_count", 1) <= 0:
                break
        return selected
