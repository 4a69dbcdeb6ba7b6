"""Retries of the failures worth retrying, with the request grown by the task's history."""

from __future__ import annotations

import json
import textwrap

from conftest import read_status

from hsm_snake.layout.paths import TaskPaths
from hsm_snake.runner.escalation import failure_history, scaled

SLOW = """
    import sys, time
    time.sleep(float(sys.argv[1].partition("=")[2]))
    if sys.argv[2] == "boom=1":
        raise ValueError("a plain bug: retrying would only fail again")
"""


def test_timeout_is_retried_with_more_time_but_a_bug_is_not(project):
    (project.root / "slow.py").write_text(textwrap.dedent(SLOW))
    project.write_project({"paths": {"train_script": "slow.py"}, "local": {"walltime": "00:00:02"}})
    (project.root / "hsm.yaml").write_text((project.root / "hsm.yaml").read_text() + "retries: 2\n")
    project.write_sweep({"paired": [{"cases": {"sleep": [3, 0], "boom": [0, 1]}}]})
    result = project.cli("run", "sweep.yaml", expect=1)
    assert "1 completed" in result.output and "1 failed" in result.output
    (sweep_dir,) = project.sweep_dirs()
    slow = read_status(sweep_dir / "tasks" / "task_001")
    assert slow["status"] == "completed" and slow["attempt"] == 2
    assert failure_history(TaskPaths(sweep_dir / "tasks" / "task_001")) == ["timeout"]
    bug = read_status(sweep_dir / "tasks" / "task_002")
    assert bug["attempt"] == 1 and bug["error_category"] == "python_exception"
    assert "retry 1" in (sweep_dir / "logs" / "sweep.log").read_text()
    status = json.loads(project.cli("status", "--json").output)
    assert status["counts"] == {"completed": 1, "failed": 1}


def test_scaled_request_respects_the_cap():
    assert scaled(1000, 0, 2, None) == 1000
    assert scaled(1000, 2, 2, None) == 4000
    assert scaled(1000, 5, 2, 8000) == 8000
    assert scaled(60, 1, 1.5, None) == 90


def test_a_task_without_a_memory_request_grows_from_the_default_it_had(tmp_path):
    from types import SimpleNamespace

    from hsm_snake.layout.paths import SweepPaths
    from hsm_snake.layout.status import write_status
    from hsm_snake.runner.escalation import rule_resources

    task = TaskPaths(tmp_path / "tasks" / "task_001")
    (task.attempts / "1").mkdir(parents=True)
    resources = rule_resources({"runtime": 60}, {"mem_factor": 2}, SweepPaths(tmp_path))
    wildcards = SimpleNamespace(task="task_001")
    assert resources["mem_mb"](wildcards) == 0  # no --mem: the cluster's default
    oom = {"status": "failed", "error_category": "out_of_memory", "mem_request_mb": 500}
    write_status(task.attempts / "1" / "status.yaml", {**oom, "attempt": 1})
    assert resources["mem_mb"](wildcards) == 1000
    write_status(task.status, {**oom, "attempt": 2, "mem_request_mb": 1000})
    assert resources["mem_mb"](wildcards) == 2000  # the first default, grown twice
    # PBS: no accounting tells the request; the job's cgroup limit the runner recorded does.
    write_status(
        task.attempts / "1" / "status.yaml", {**oom, "attempt": 1, "mem_request_mb": None, "mem_limit_mb": 300}
    )
    write_status(task.status, {**oom, "attempt": 2, "mem_request_mb": None, "mem_limit_mb": 600})
    assert resources["mem_mb"](wildcards) == 1200


def test_retry_caps_of_hsm_yaml_bound_the_grown_requests(project):
    from types import SimpleNamespace

    from hsm_snake import sweeps
    from hsm_snake.config.project import load_project
    from hsm_snake.config.sweep_file import load_sweep
    from hsm_snake.layout.index import load_index
    from hsm_snake.layout.status import write_status
    from hsm_snake.runner.escalation import rule_resources

    project.write_project({"slurm": {"mem": "1G", "walltime": "00:40:00"}})
    text = (project.root / "hsm.yaml").read_text()
    (project.root / "hsm.yaml").write_text(
        text + "retries: 3\nretry: {mem_factor: 4, time_factor: 2, max_mem: 3G, max_walltime: '01:00:30'}\n"
    )
    sweep = project.write_sweep({"grid": {"x": [1]}})
    index = sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], "capped")
    index = load_index(index.paths.root)
    assert index.retry["max_mem_mb"] == 3072 and index.retry["max_walltime_s"] == 3630
    assert index.retry["max_runtime"] == 61  # minutes, rounded up
    resources = rule_resources(index.resources["slurm"], index.retry, index.paths)
    task, wildcards = index.paths.task("task_001"), SimpleNamespace(task="task_001")
    assert (resources["mem_mb"](wildcards), resources["runtime"](wildcards)) == (1024, 40)
    (task.attempts / "1").mkdir(parents=True)
    write_status(task.attempts / "1" / "status.yaml", {"status": "failed", "error_category": "out_of_memory"})
    write_status(task.status, {"status": "failed", "error_category": "timeout", "attempt": 2})
    assert (resources["mem_mb"](wildcards), resources["runtime"](wildcards)) == (3072, 61)  # 4096 and 80, capped
