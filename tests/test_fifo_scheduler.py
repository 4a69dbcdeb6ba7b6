"""The hsm-fifo scheduler plugin: tasks start in task order, as many as the free resources allow."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from conftest import read_status

from hsm_snake.engine.fifo_scheduler import Scheduler, in_job_id_order


@dataclass(eq=False)
class Job:
    jobid: int
    # As Snakemake gives them: every job counts 1 against the job budget.
    scheduler_resources: dict = field(default_factory=lambda: {"_cores": 1, "_nodes": 1, "_job_count": 1})


def select(jobs, **free):
    scheduler = Scheduler.__new__(Scheduler)  # select_jobs uses no state of the plugin
    return scheduler.select_jobs(jobs, jobs, free, {})


@pytest.mark.parametrize("seed", range(5))
def test_the_lowest_job_ids_that_fit_are_selected_in_order(seed):
    jobs = [Job(i) for i in range(1, 201)]
    random.Random(seed).shuffle(jobs)
    assert [job.jobid for job in select(jobs, _cores=3, _nodes=10**9, _job_count=10**9)] == [1, 2, 3]
    assert [job.jobid for job in select(jobs, _cores=10**9, _nodes=10**9, _job_count=4)] == [1, 2, 3, 4]


def test_a_job_that_does_not_fit_is_skipped_for_the_next_that_does():
    big = Job(1, {"_cores": 4, "_nodes": 1, "_job_count": 1})
    jobs = [Job(3), big, Job(2)]
    assert [job.jobid for job in select(jobs, _cores=2, _nodes=10, _job_count=10)] == [2, 3]


def test_no_free_cores_selects_nothing():
    assert select([Job(1), Job(2)], _cores=0, _nodes=10, _job_count=10) == []


def test_order_helper_puts_the_lowest_first_and_keeps_every_job():
    jobs = [Job(i) for i in (5, 3, 9, 1, 7)]
    ordered = list(in_job_id_order(jobs, 2))
    assert [job.jobid for job in ordered[:2]] == [1, 3]
    assert sorted(job.jobid for job in ordered) == [1, 3, 5, 7, 9]


def test_a_local_run_starts_tasks_in_task_order(project):
    project.write_project({"local": {"max_parallel": 1}})
    project.write_sweep({"grid": {"x": list(range(12))}})
    project.cli("run", "sweep.yaml")
    starts = [line.split()[0] for line in project.runs() if line.endswith("start")]
    assert starts == [f"task_{i:03d}" for i in range(1, 13)]
    (sweep_dir,) = project.sweep_dirs()
    assert read_status(sweep_dir / "tasks" / "task_012")["status"] == "completed"
