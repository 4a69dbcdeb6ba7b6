"""A Snakemake scheduler plugin for sweeps: take ready jobs as they come while they fit.

Snakemake's greedy scheduler solves a small knapsack problem over every ready job at every
scheduling round: O(ready jobs × selected jobs) Python work per round, so a sweep of n
independent tasks costs O(n²) in the scheduler alone. Sweep tasks are alike (one rule, the
same resources) and independent, so there is nothing to optimise: the first jobs that fit
are as good as any. "First" is by Snakemake's job id, which numbers a sweep's jobs in task
order: tasks start as numbered (as in v1), on every backend, and Slurm arrays list them in
order. Snakemake hands the ready jobs over as an unordered collection, so each round picks the
few with the lowest ids (``heapq.nsmallest``, O(ready jobs) with a small constant: Snakemake's
own checks of every ready job each round cost more) before looking at the rest.

Snakemake finds it as ``--scheduler hsm-fifo`` through the shim package
``snakemake_scheduler_plugin_hsm_fifo``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
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
        startable = min(free.get("_cores", len(selectable_jobs)), free.get("_job_count", len(selectable_jobs)))
        for job in in_job_id_order(selectable_jobs, max(startable, 0)):
            needs = [(n, a) for n, a in job.scheduler_resources.items() if n in free and isinstance(a, int)]
            if all(free[name] >= amount for name, amount in needs):
                for name, amount in needs:
                    free[name] -= amount
                selected.append(job)
            # Nothing more can start once the cores or the job budget are used up.
            if free.get("_cores", 1) <= 0 or free.get("_job_count", 1) <= 0:
                break
        return selected


_JOB_ID = attrgetter("jobid")


def in_job_id_order(jobs: Sequence[Any], first: int) -> Iterable[Any]:
    """The ``first`` jobs with the lowest ids, in order, then every other job in any order."""
    if first >= len(jobs):
        return sorted(jobs, key=_JOB_ID)
    lowest = heapq.nsmallest(first, jobs, key=_JOB_ID)
    taken = {id(job) for job in lowest}
    return itertools.chain(lowest, (job for job in jobs if id(job) not in taken))
