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
