"""kill -9 at seeded random moments of each process of a local run, then `complete`.

Victims (what a crash of each part of a run looks like on one machine):
- ``hsm-snake``: the CLI process alone; its engine runs on to the end by design.
- ``engine``: the Snakemake process alone. Locally each task runner is a Snakemake worker thread
  (force-use-threads), so this is also "a task runner dies": the runners die, their scripts stay.
- ``engine-group``: Snakemake and every task script at once (a lost machine, an OOM-killed group).
- ``script``: one running user script.
The moment: after k tasks have started (k drawn per seed), plus a drawn delay; k = 0 means any
time after the sweep folder appears (possibly before Snakemake starts).
Invariants after `complete`: every task completed exactly once in total (the script's run log),
every task's files intact, nothing shown running, no process of the sweep left.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
from background import engine_pid, wait_for
from conftest import read_status
from procs import pid_alive, sweep_processes

from hsm_snake.engine.lock import holder_record, lock_holder
from hsm_snake.layout.paths import SweepPaths

VICTIMS = ("hsm-snake", "engine", "engine-group", "script")
SEEDS = range(24)
TASKS = 6


def _script_pids(project) -> list[int]:
    pids = []
    for pid in sweep_processes(str(project.run_log)):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"echo.py" in cmdline:
            pids.append(pid)
    return sorted(pids)


def _started(project) -> int:
    return sum(1 for line in project.runs() if line.endswith("start"))


def _engine_known(sweep_dir) -> bool:
    record = holder_record(SweepPaths(sweep_dir))
    return bool(record and record.get("snakemake_pid"))


def _task_of(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for entry in environ:
        if entry.startswith(b"HSM_TASK_ID="):
            return entry.split(b"=", 1)[1].decode()
    return None


def _kill(project, proc, victim: str, rng: random.Random, seed_note: str) -> str:
    """Wait for the drawn moment, kill the victim; return what was killed (for messages)."""
    k = rng.randrange(0, TASKS)
    delay = rng.uniform(0, 1.0 if k == 0 else 0.3)
    wait_for(lambda: project.sweep_dirs() or proc.poll() is not None, what=f"the sweep folder ({seed_note})")
    if k:
        wait_for(lambda: _started(project) >= k or proc.poll() is not None, what=f"{k} task starts ({seed_note})")
    time.sleep(delay)
    (sweep_dir,) = project.sweep_dirs()
    if victim == "hsm-snake":
        os.kill(proc.pid, signal.SIGKILL)
        return f"hsm-snake pid {proc.pid} after {k} starts + {delay:.2f}s"
    if victim in ("engine", "engine-group"):
        wait_for(lambda: _engine_known(sweep_dir) or proc.poll() is not None, what=f"the engine ({seed_note})")
        if not _engine_known(sweep_dir):
            return f"nothing: the run ended before its engine was seen ({k} starts)"
        engine = engine_pid(sweep_dir)
        try:
            (os.killpg if victim == "engine-group" else os.kill)(engine, signal.SIGKILL)
        except ProcessLookupError:
            return f"nothing: engine {engine} already gone"
        # SIGKILL is sent at once but a big process takes milliseconds to die, and its scripts get
        # their parent-death signal only then: a script may log "done" in between, and that counts
        # as before the kill. So the log is read once the engine is dead (a zombie at most).
        wait_for(lambda: not pid_alive(engine), what=f"engine {engine} to die ({seed_note})")
        return f"{victim} pid {engine} after {k} starts + {delay:.2f}s"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        scripts = _script_pids(project)
        if scripts:
            target = rng.choice(scripts)
            task = _task_of(target)
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                continue
            return f"script pid {target} ({task}) after {k} starts + {delay:.2f}s"
        time.sleep(0.02)
    return f"nothing: no script was running ({k} starts)"


def _last_event(log: list[str], task: str) -> str:
    events = [line for line in log if line.startswith(f"{task} ")]
    return events[-1] if events else ""


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_at_a_random_moment_then_complete_finishes_each_task_once(project, background, seed):
    rng = random.Random(seed)
    victim = VICTIMS[seed % len(VICTIMS)]
    sleep = rng.choice([0.1, 0.3, 0.6])
    sweep = project.write_sweep({"grid": {"x": list(range(1, TASKS + 1)), "sleep": [sleep]}})
    proc = background("run", str(sweep))
    note = f"seed {seed}, victim {victim}"
    what = _kill(project, proc, victim, rng, note)
    logged_at_kill = project.runs()
    note = f"{note}: killed {what}"

    # Whatever survived the kill (an engine whose hsm-snake died, orphaned scripts) ends by itself.
    wait_for(
        lambda: not sweep_processes(str(project.run_log)), timeout=120, what=f"the run's processes to end ({note})"
    )
    if proc.poll() is None:
        proc.wait(timeout=30)
    (sweep_dir,) = project.sweep_dirs()
    wait_for(lambda: lock_holder(SweepPaths(sweep_dir)) is None, what=f"the sweep lock to be released ({note})")

    expected = {f"task_{i:03d}": 1 for i in range(1, TASKS + 1)}
    # The script logs "done" a moment before it exits. Killed in that moment it failed (signal),
    # nothing recorded it as completed, and it is rightly run again. Only a "done" logged before
    # the kill counts: a script still running after its runner died must not get to finish.
    for task in expected:
        if (
            _last_event(logged_at_kill, task) == f"{task} done"
            and read_status(sweep_dir / "tasks" / task)["status"] != "completed"
        ):
            expected[task] = 2

    result = project.cli("complete", sweep_dir.name, expect=None)
    assert result.exit_code == 0, f"{note}\n{result.output}"

    assert project.completions() == expected, f"{note}\n{project.runs()}"
    for i in range(1, TASKS + 1):
        task_dir = sweep_dir / "tasks" / f"task_{i:03d}"
        status = read_status(task_dir)
        assert status["status"] == "completed", f"{note}: {task_dir.name} {status}"
        assert (task_dir / ".completed").exists(), f"{note}: {task_dir.name} has no marker"
        assert json.loads((task_dir / "results" / "argv.json").read_text()) == [f"x={i}", f"sleep={sleep}"], note
    state = json.loads(project.cli("status", sweep_dir.name, "--json").output)
    assert state["counts"] == {"completed": TASKS}, f"{note}: {state['counts']}"
    assert state["running_by"] is None, note
    assert not sweep_processes(str(project.run_log)), f"{note}: processes left"
