"""executors/polling.py: how hsm-slurm and hsm-pbs notice finished tasks and stop waiting (pure
logic; the executors' runs on the test bed are in test_slurm.py and test_pbs.py)."""

import asyncio
import time
from types import SimpleNamespace

from hsm_snake.executors import polling
from hsm_snake.executors.pbs.accounting import same_job
from hsm_snake.layout.paths import TaskPaths
from hsm_snake.layout.status import write_status


def test_a_task_counts_done_only_when_its_runner_recorded_completion_in_that_job(tmp_path):
    task = TaskPaths(tmp_path / "tasks" / "task_001")
    task.dir.mkdir(parents=True)
    write_status(task.status, {"status": "completed", "job_id": "41_3"})
    assert not polling.recorded_done(task, "41_3")  # no marker yet: the runner writes it last
    task.marker.touch()
    assert polling.recorded_done(task, "41_3")
    assert not polling.recorded_done(task, None)  # a PBS element that has not told its id
    assert not polling.recorded_done(None, "41_3")
    write_status(task.status, {"status": "completed", "job_id": "40_3"})  # an earlier job's record
    assert not polling.recorded_done(task, "41_3")
    write_status(task.status, {"status": "failed", "job_id": "41_3"})
    assert not polling.recorded_done(task, "41_3")


def test_a_pbs_job_id_matches_with_or_without_its_server(tmp_path):
    task = TaskPaths(tmp_path / "task_001")
    task.dir.mkdir()
    write_status(task.status, {"status": "completed", "job_id": "123.pbs-server"})
    task.marker.touch()
    assert polling.recorded_done(task, "123", same_job)
    assert not polling.recorded_done(task, "123")


def test_the_scheduler_is_asked_at_most_once_per_interval():
    pace = polling.SchedulerPace(60)
    assert not pace.due()  # the executor has just submitted: not yet
    pace.last -= 61
    assert pace.due()
    assert not pace.due()


def test_a_pause_ends_early_once_snakemake_stops_waiting():
    executor = SimpleNamespace(wait=True)

    async def stop_soon():
        await asyncio.sleep(0.01)
        executor.wait = False

    async def both():
        await asyncio.gather(polling.pause(executor), stop_soon())

    start = time.monotonic()
    asyncio.run(both())
    stopped = time.monotonic() - start
    executor.wait = True
    start = time.monotonic()
    asyncio.run(polling.pause(executor))
    # Relative, not absolute: the early end is well under a full pause.
    assert stopped < (time.monotonic() - start) / 2


def test_checks_space_out_with_many_active_tasks():
    assert polling.poll_interval(0) == polling.poll_interval(100) == polling.POLL_S
    assert polling.POLL_S < polling.poll_interval(4000) < polling.MAX_POLL_S
    assert polling.poll_interval(1_000_000) == polling.MAX_POLL_S


def test_the_remote_cluster_executors_pause_between_polls_ends_once_snakemake_stops_waiting(monkeypatch):
    # Snakemake's shutdown joins the polling thread: a plain sleep there made every --remote run
    # wait out one whole seconds-between-status-checks after its last task (Slurm and PBS alike).
    from hsm_snake.executors.remote_cluster.executor import ClusterExecutor

    settings = SimpleNamespace(seconds_between_status_checks=60)
    executor = SimpleNamespace(wait=True, workflow=SimpleNamespace(remote_execution_settings=settings))
    asked = []

    async def sleep(seconds):
        asked.append(seconds)
        executor.wait = False  # Snakemake stops waiting

    monkeypatch.setattr(polling, "asyncio", SimpleNamespace(sleep=sleep))
    asyncio.run(ClusterExecutor.sleep(executor))
    assert asked and sum(asked) < 60
