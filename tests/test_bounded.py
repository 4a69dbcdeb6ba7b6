"""Scheduler tools are run with a time limit (hsm_snake.executors.common)."""

from __future__ import annotations

import time

from hsm_snake.executors.common import run_bounded, stdout_of


def test_a_tool_that_hangs_is_given_up_on_after_its_time_limit():
    start = time.monotonic()
    assert run_bounded(["sleep", "30"], 0.5) is None
    assert time.monotonic() - start < 10


def test_a_missing_tool_or_a_failing_one_gives_no_output():
    assert run_bounded(["hsm-no-such-tool"], 5) is None
    assert stdout_of(["sh", "-c", "echo partial; exit 3"], 5) is None
    assert run_bounded(["sh", "-c", "exit 3"], 5).returncode == 3


def test_the_output_of_a_tool_that_succeeds():
    assert stdout_of(["sh", "-c", "echo 1001"], 5) == "1001\n"
