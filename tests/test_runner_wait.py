"""The runner's wait for the task script: exit codes, signals and the walltime."""

import signal
import subprocess
import sys

import pytest

from hsm_snake.runner.task import wait_for_exit


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.mark.parametrize("timeout_s", [None, 60.0])
def test_returns_the_exit_code(timeout_s):
    assert wait_for_exit(start("raise SystemExit(3)"), timeout_s) == 3


def test_a_signal_is_a_negative_code():
    child = start("import time; time.sleep(60)")
    child.send_signal(signal.SIGTERM)
    assert wait_for_exit(child, 60.0) == -signal.SIGTERM


def test_raises_when_the_walltime_passes_and_leaves_the_child_alone():
    child = start("import time; time.sleep(60)")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_for_exit(child, 0.2)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_an_already_reaped_child():
    child = start("pass")
    child.wait()
    assert wait_for_exit(child, 5.0) == 0
