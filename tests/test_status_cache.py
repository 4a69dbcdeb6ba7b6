"""The status cache (.hsm/status-cache) never changes what the monitoring commands report.

Tasks are run by the real task runner (``python -m hsm_snake.runner <task folder>``), which
writes status.yaml and then the marker, as on every backend.
"""

from __future__ import annotations

import json
import marshal
import os
import random
import signal
import subprocess
import sys
import threading
import time

from hsm_snake import sweeps
from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep
from hsm_snake.layout.status import write_status
from hsm_snake.monitor import scan
from hsm_snake.monitor.readers import load_sweep_index
from hsm_snake.monitor.status_cache import HEADER


def make_sweep(project, n: int):
    sweep = project.write_sweep({"grid": {"x": list(range(n))}})
    return sweeps.create(load_sweep(sweep), load_project(None, cwd=project.root), ["test"], "cached")


def run_task(index, name: str) -> None:
    subprocess.run([sys.executable, "-m", "hsm_snake.runner", str(index.paths.task(name).dir)], check=True)


def cached(index) -> dict:
    data = index.paths.status_cache.read_bytes()
    assert data.startswith(HEADER)
    return marshal.loads(data[len(HEADER) :])


def write_cache(index, entries) -> None:
    index.paths.status_cache.write_bytes(HEADER + marshal.dumps(entries))


def states(index) -> dict[str, tuple[str, dict | None]]:
    return {
        t.task.name: (t.state, t.status) for t in scan.scan(load_sweep_index(index.paths.root), with_status=True).tasks
    }


def fresh_states(index) -> dict[str, tuple[str, dict | None]]:
    """What a scan sees with no cache at all."""
    index.paths.status_cache.unlink(missing_ok=True)
    try:
        return states(index)
    finally:
        index.paths.status_cache.unlink(missing_ok=True)


def test_commands_print_the_same_with_a_cold_and_a_warm_cache(project):
    index = make_sweep(project, 6)
    project.cli("complete", "cached")
    index.paths.status_cache.unlink(missing_ok=True)  # the run's summary read the records already
    cold = {args: project.cli(*args).output for args in (("status", "cached", "--json"), ("results", "cached"))}
    assert index.paths.status_cache.exists()
    assert sorted(cached(index)) == [f"task_00{i}" for i in range(1, 7)]
    warm = {args: project.cli(*args).output for args in cold}
    assert warm == cold
    assert json.loads(warm[("status", "cached", "--json")])["counts"] == {"completed": 6}


def test_a_rerun_task_is_read_again(project):
    index = make_sweep(project, 3)
    for name in ("task_001", "task_002", "task_003"):
        run_task(index, name)
    first = states(index)
    assert {s["attempt"] for _, s in first.values()} == {1}
    run_task(index, "task_002")  # a new attempt: the runner removes the marker, then writes a new status and marker
    second = states(index)
    assert second["task_002"][0] == scan.COMPLETED and second["task_002"][1]["attempt"] == 2
    assert second["task_001"] == first["task_001"]
    assert second == fresh_states(index)


def test_a_stale_cache_never_shows_a_task_as_completed_or_changes_its_state(project):
    index = make_sweep(project, 4)
    for name in ("task_001", "task_002", "task_003"):
        run_task(index, name)
    states(index)  # fills the cache
    # task_001: its marker is gone (Snakemake deletes outputs before it reruns a job);
    # task_002: it failed since (a rerun that failed: no marker, a failed status);
    # task_004 never ran, but the cache (hand-made here) has a completed record for it.
    index.paths.task("task_001").marker.unlink()
    marker = index.paths.task("task_002").marker
    marker.unlink()
    write_status(index.paths.task("task_002").status, {"status": "failed", "task_id": "task_002", "attempt": 2})
    entries = cached(index)
    entries["task_004"] = entries["task_003"]
    write_cache(index, entries)
    seen = states(index)
    assert {name: state for name, (state, _) in seen.items()} == {
        "task_001": scan.INTERRUPTED,  # status says completed, no marker, no run records it
        "task_002": scan.FAILED,
        "task_003": scan.COMPLETED,
        "task_004": scan.PENDING,
    }
    assert set(cached(index)) == {"task_003"}
    assert seen == fresh_states(index)


def test_a_damaged_or_unwritable_cache_is_ignored(project):
    index = make_sweep(project, 2)
    for name in ("task_001", "task_002"):
        run_task(index, name)
    expected = fresh_states(index)
    cache = index.paths.status_cache
    cache.parent.mkdir(exist_ok=True)
    states(index)
    full = cache.read_bytes()
    other_python = HEADER.replace(b"python 3.", b"python 2.")
    for content in (
        b"",
        b"\xff\xfe garbage",
        full[: len(full) // 2],  # cut short
        HEADER + b"\x00\x01 not marshal",
        HEADER + marshal.dumps([1, 2]),
        other_python + marshal.dumps({}),
    ):
        cache.write_bytes(content)
        assert states(index) == expected
        assert sorted(cached(index)) == ["task_001", "task_002"]  # rebuilt
    write_cache(index, {"task_001": [1, 2, 3], "task_002": "x", "task_009": [[1, 2, 3], {}]})
    assert states(index) == expected
    cache.unlink()
    cache.mkdir()  # cannot be replaced: the commands go without a cache
    assert states(index) == expected
    assert json.loads(project.cli("status", "cached", "--json").output)["counts"] == {"completed": 2}


def test_tasks_finishing_while_scans_read_are_seen_as_they_finish(project):
    index = make_sweep(project, 12)
    names = [t.name for t in index.active()]
    done = threading.Event()
    failure: list[BaseException] = []

    def finish_tasks() -> None:
        try:
            for name in names:
                run_task(index, name)
            run_task(index, names[0])  # and one rerun
        except BaseException as exc:  # reported by the test below
            failure.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=finish_tasks)
    writer.start()
    completed_before: set[str] = set()
    scans = 0
    while not done.is_set() or scans == 0:
        seen = states(index)
        scans += 1
        completed = {name for name, (state, _) in seen.items() if state == scan.COMPLETED}
        for name in completed:
            record = seen[name][1]
            assert record is not None and record["status"] == "completed", (name, record)
        # Completed stays completed, except for the task being rerun (its marker goes first).
        assert completed_before - completed <= {names[0]}
        completed_before = completed
    writer.join()
    assert not failure, failure
    final = states(index)
    assert {state for state, _ in final.values()} == {scan.COMPLETED}
    assert final[names[0]][1]["attempt"] == 2
    assert final == fresh_states(index)
    assert scans > 1


# Scans in a loop, each writing the cache anew (it is removed before each scan).
SCAN_LOOP = """
import sys
from pathlib import Path
from hsm_snake.monitor import scan
from hsm_snake.monitor.readers import load_sweep_index
from hsm_snake.monitor.status_cache import HEADER
root = Path(sys.argv[1])
print("ready", flush=True)
while True:
    (root / ".hsm" / "status-cache").unlink(missing_ok=True)
    scan.scan(load_sweep_index(root), with_status=True)
"""


def test_kill_9_at_any_moment_leaves_a_cache_that_reads_the_same(project):
    index = make_sweep(project, 1500)
    names = sorted(t.name for t in index.active())
    for name in names:
        task = index.paths.task(name)
        write_status(task.status, {"status": "completed", "task_id": name, "attempt": 1, "duration_s": 1.5}, False)
        task.marker.touch()
    expected = fresh_states(index)
    rng = random.Random(18)
    for _ in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", SCAN_LOOP, str(index.paths.root)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        cache = index.paths.status_cache
        if cache.exists():  # whole, never a part
            assert sorted(cached(index)) == names
        assert states(index) == expected  # and it writes the cache whole again
    assert sorted(cached(index)) == names
    leftovers = [p.name for p in index.paths.status_cache.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
