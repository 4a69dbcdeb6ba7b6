"""kill -9 of a run whose tasks live outside it: Slurm and PBS jobs, processes on SSH hosts.

After the kill the jobs (and remote process groups) run on. `complete` must finish the sweep with
every task done exactly once: results of jobs that finished after the kill are kept, jobs still
queued or running are not run a second time.
"""

from __future__ import annotations

import signal

import pytest
from background import kill_9_once, started, wait_for
from conftest import TESTBED_QUEUE_KEY, on_testbed, read_status, remote_name
from procs import sweep_processes

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

# hold=0 tasks finish at once; hold=1 tasks (4-6) wait for the release. The test bed's node has
# 2 CPUs and the SSH pool 2 slots: two held tasks (which two is Snakemake's order) hold them when
# the run is killed, the third waits.
SWEEP = {"grid": {"hold": [0, 1], "x": [1, 2, 3]}}
HELD = {"task_004", "task_005", "task_006"}
# The test bed's Slurm node is shared: our jobs may queue behind another user's for minutes.
QUEUE_WAIT_S = 900
# Limits on waits for a step that normally takes seconds: they catch a hang, not slowness (a loaded
# 2-core CI machine under coverage starts a Python command in several seconds).
HANG_GUARD_S = 300


def run_killed_with_two_held_tasks_running(project, background):
    """A run of SWEEP on the project's backend, killed -9 once two held tasks run; its sweep dir."""
    project.write_sweep(SWEEP)
    proc = background("run", "sweep.yaml", *project.where)
    return kill_9_once(
        project, proc, lambda: len(started(project) & HELD) >= 2, "two held tasks to start", timeout=QUEUE_WAIT_S
    )


@pytest.fixture(params=["slurm", "pbs", "ssh", "remote-slurm", "remote-pbs"])
def backend_project(request, project, tb, monkeypatch, tmp_path):
    backend = request.param
    project.where = ["--profile", backend]
    if backend.startswith("remote-"):
        # The test bed's Slurm (or its PBS wrappers) through its loopback sshd as the login node.
        scheduler = backend.removeprefix("remote-")
        tb.need(scheduler)
        tb.need("hsmtb-lo")
        monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
        queue = tb.facts["env"].get("HSM_TB_SLURM_PARTITION", "debug")
        requests = {"mem": "500M", TESTBED_QUEUE_KEY[scheduler]: queue}
        remote = {
            "backend": scheduler,
            "host": "hsmtb-lo",
            "project_dir": f"{tb.facts['ssh']['hosts']['hsmtb-lo']['project_dir']}/{remote_name(tmp_path)}",
            "python_path": "python3",
            scheduler: requests,
        }
        project.write_project(
            {"task": {"env": {"RUN_LOG": str(project.run_log)}}, "distributed": {"remotes": {"tbcluster": remote}}}
        )
        project.where = ["--remote", "tbcluster"]
    elif backend == "ssh":
        tb.need("hsmtb-h1")
        tb.need("hsmtb-h2")
        monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
        hosts = tb.facts["ssh"]["hosts"]
        remotes = {
            alias: {
                "project_dir": f"{hosts[alias]['project_dir']}/{remote_name(tmp_path)}",
                "max_parallel_jobs": 1,
                "python_path": "python3",
            }
            for alias in ("hsmtb-h1", "hsmtb-h2")
        }
        project.write_project({"task": {"env": {"RUN_LOG": str(project.run_log)}}, "distributed": {"remotes": remotes}})
    else:
        on_testbed(project, tb, monkeypatch, backend, walltime="00:05:00", mem="500M")
    project.backend = backend
    return project


def test_kill_9_while_tasks_run_outside_then_complete_runs_each_task_once(backend_project, background):
    project = backend_project
    sweep_dir = run_killed_with_two_held_tasks_running(project, background)
    completer = background("complete", sweep_dir.name, *project.where)
    # The held tasks must still be running while `complete` decides what to run.
    wait_for(
        lambda: completer.poll() is not None or "waiting for" in sweep_log(sweep_dir),
        HANG_GUARD_S,
        "complete to look at the killed run's tasks",
    )
    project.release()
    output, _ = completer.communicate(timeout=QUEUE_WAIT_S)
    assert completer.returncode == 0, output
    assert project.completions() == {f"task_00{i}": 1 for i in range(1, 7)}, (project.runs(), output)
    for i in range(1, 7):
        task_dir = sweep_dir / "tasks" / f"task_00{i}"
        assert read_status(task_dir)["status"] == "completed", read_status(task_dir)
        assert (task_dir / ".completed").exists()
    status = project.cli("status", sweep_dir.name).output
    assert "6 completed" in status and "running" not in status.split("\n")[0], status


def sweep_log(sweep_dir) -> str:
    path = sweep_dir / "logs" / "sweep.log"
    return path.read_text() if path.exists() else ""


def test_cancel_after_a_kill_9_stops_the_jobs_left_behind_and_complete_reruns_them(backend_project, background):
    project = backend_project
    sweep_dir = run_killed_with_two_held_tasks_running(project, background)
    # The user's way out of the wait: Ctrl-C (nothing was started), then cancel.
    completer = background("complete", sweep_dir.name, *project.where)
    wait_for(lambda: "waiting for" in sweep_log(sweep_dir), HANG_GUARD_S, "complete to wait for the killed run's tasks")
    completer.send_signal(signal.SIGINT)
    output, _ = completer.communicate(timeout=300)
    assert completer.returncode == 130 and f"hsm-snake cancel {sweep_dir.name}" in output, output
    assert "Traceback" not in output, output
    result = project.cli("cancel", sweep_dir.name)
    assert "cancelled" in result.output, result.output
    wait_for(lambda: not sweep_processes(str(project.run_log)), HANG_GUARD_S, "the cancelled tasks' processes to end")
    project.release()
    output = project.cli("complete", sweep_dir.name, *project.where).output
    # The held tasks were stopped before the release, so none of them logged done before complete.
    assert project.completions() == {f"task_00{i}": 1 for i in range(1, 7)}, (project.runs(), output)
