"""Running `hsm-snake` in the background for tests that interrupt, watch or race it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from procs import group_gone

from hsm_snake.engine.lock import lock_holder
from hsm_snake.layout.paths import SweepPaths


def start_run(project, *args: str, sigint_ignored: bool = False) -> subprocess.Popen:
    """``sigint_ignored``: as a shell starts a background job (``nohup``, ``&`` in a script)."""
    command = [sys.executable, "-m", "hsm_snake.cli.main", *args]
    if sigint_ignored:
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    return subprocess.Popen(
        command,
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


class Output:
    """A background run's output lines as they come (a thread reads them), so that a test can wait
    for one without blocking on the pipe."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self.read, args=(proc.stdout,), daemon=True)
        self.reader.start()

    def read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def text(self) -> str:
        return "".join(list(self.lines))

    def finish(self, proc: subprocess.Popen, timeout: float) -> str:
        """All of it, once the run has ended."""
        proc.wait(timeout=timeout)
        self.reader.join(timeout=timeout)
        return self.text()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    """The predicate's first true value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def started(project) -> set[str]:
    return {line.split()[0] for line in project.runs() if line.endswith("start")}


def held_tasks_started(project, count: int):
    return lambda: len(started(project)) >= count


def start_held_run(project, background, *run_args: str, sigint_ignored: bool = False, timeout: float = 60.0):
    """``hsm-snake run`` of a two-task sweep whose tasks wait for ``project.release()``, in the
    background; returns the run and its sweep directory once both tasks run."""
    sweep = project.write_sweep({"grid": {"hold": [1], "x": [1, 2]}})
    proc = background("run", str(sweep), *run_args, sigint_ignored=sigint_ignored)
    wait_for(held_tasks_started(project, 2), timeout=timeout, what="both held tasks to start")
    (sweep_dir,) = project.sweep_dirs()
    return proc, sweep_dir


def engine_pid(sweep_dir) -> int:
    holder = json.loads((sweep_dir / ".hsm" / "run.lock").read_text())
    return holder["snakemake_pid"]


def kill_everything(project, proc: subprocess.Popen) -> None:
    """kill -9 of hsm-snake's group and of its engine's group (it runs in a group of its own)."""
    for lock in project.root.glob("sweeps/outputs/*/.hsm/run.lock"):
        try:
            kill_group(json.loads(lock.read_text())["snakemake_pid"])
        except (ValueError, KeyError, OSError):
            pass
    kill_group(proc.pid)
    proc.wait(timeout=30)


def kill_9_once(project, proc: subprocess.Popen, ready, what: str, timeout: float = 60.0) -> Path:
    """kill -9 of a background run (hsm-snake and its engine) once ``ready()``; returns its sweep
    directory when the engine's processes are gone and the kernel has dropped the sweep lock."""
    try:
        wait_for(ready, timeout, what=what)
        (sweep_dir,) = project.sweep_dirs()
        engine = engine_pid(sweep_dir)
    finally:
        kill_everything(project, proc)
    wait_for(lambda: group_gone(engine), what="the engine's processes to die")
    lock_released(sweep_dir)
    return sweep_dir


def lock_released(sweep_dir: Path) -> None:
    """After a kill -9: a killed multi-threaded process shows as a zombie before its last thread
    has exited and closed its files; wait for the kernel to drop the sweep lock."""
    wait_for(lambda: lock_holder(SweepPaths(sweep_dir)) is None, what="the sweep lock to be released")


@pytest.fixture
def background(project):
    """Start `hsm-snake ...` in the background; whatever is left is killed after the test."""
    started_procs = []

    def start(*args: str, sigint_ignored: bool = False) -> subprocess.Popen:
        proc = start_run(project, *args, sigint_ignored=sigint_ignored)
        started_procs.append(proc)
        return proc

    yield start
    project.release()
    for proc in started_procs:
        if proc.poll() is None:
            kill_everything(project, proc)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
