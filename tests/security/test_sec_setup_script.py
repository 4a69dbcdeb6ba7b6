"""A set-up script (pre_script) can never turn a task that did not run its script into "completed"."""

from __future__ import annotations

import pytest
from conftest import read_status

from hsm_snake.layout.paths import MARKER_NAME

# Each ends the set-up shell with status 0 before the old `exec "$@"` line could run the script.
SETUPS = {
    "consumes_its_arguments": "while [ $# -gt 0 ]; do shift; done",
    "trailing_backslash": "export MARK=1 \\",
    "exits": "exit 0",
    "open_here_document": "cat <<EOF >/dev/null",
}


@pytest.mark.parametrize("setup", SETUPS.values(), ids=SETUPS.keys())
def test_a_set_up_that_skips_the_script_never_completes_the_task(project, setup):
    project.write_project({"local": {"pre_script": setup}})
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s", expect=None)
    task = project.sweep_dirs()[0] / "tasks" / "task_001"
    ran = "task_001 done" in project.runs()
    status = read_status(task)
    if ran:  # the set-up let the script start: it really ran and completed
        assert status["status"] == "completed"
    else:
        assert status["status"] == "failed"
        assert status["error_category"] == "launch_error"
        assert "without starting the script" in status["error_summary"]
        assert not (task / MARKER_NAME).exists()


@pytest.mark.parametrize("setup", [SETUPS["consumes_its_arguments"], SETUPS["trailing_backslash"]])
def test_set_ups_that_consume_arguments_or_end_in_a_backslash_still_run_the_script(project, setup):
    project.write_project({"local": {"pre_script": setup}})
    project.write_sweep({"grid": {"x": [1, 2]}})
    project.cli("run", "sweep.yaml")
    assert project.completions() == {"task_001": 1, "task_002": 1}
