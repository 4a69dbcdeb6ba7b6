"""One lock from sweep creation through the run: two runs of one --sweep-id never mix their files."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from background import start_run

from hsm_snake.errors import SweepLockedError


def test_two_runs_of_one_sweep_id_started_together_never_mix(project):
    project.write_sweep({"grid": {"x": [1, 2]}}, "a.yaml")
    project.write_sweep({"grid": {"y": [7, 8]}}, "b.yaml")
    first = start_run(project, "run", "a.yaml", "--sweep-id", "x")
    time.sleep(0.02)
    second = start_run(project, "run", "b.yaml", "--sweep-id", "x")
    outputs = [proc.communicate(timeout=120)[0] for proc in (first, second)]
    codes = sorted(proc.returncode for proc in (first, second))
    # One of them ran its file to the end; the other was refused while it held the sweep, or
    # (when the first had already finished) re-expanded the sweep with its own file and ran that.
    assert codes[0] == 0, outputs
    assert codes[1] in (0, 2), outputs
    refused = [out for proc, out in zip((first, second), outputs, strict=True) if proc.returncode == 2]
    assert all("already being run" in out for out in refused), outputs
    sweep = project.root / "sweeps" / "outputs" / "x"
    completed = []
    for task in sorted((sweep / "tasks").iterdir()):
        status_file = task / "status.yaml"
        if status_file.exists() and yaml.safe_load(status_file.read_text())["status"] == "completed":
            params = yaml.safe_load((task / "params.yaml").read_text())
            # What the script ran with is what the task's params say.
            assert (task / "results" / "argv.json").read_text() == json.dumps([f"{k}={v}" for k, v in params.items()])
            completed.append(params)
    # A run that reports success ran every task of its own file (not the other file's).
    for proc, wanted in ((first, [{"x": 1}, {"x": 2}]), (second, [{"y": 7}, {"y": 8}])):
        if proc.returncode == 0:
            assert all(params in completed for params in wanted), (wanted, completed, outputs)


def test_the_lock_taken_to_create_a_sweep_is_the_one_its_run_goes_on_under(project):
    """The window the race above needs, held open: between writing the sweep and running it."""
    from hsm_snake import sweeps
    from hsm_snake.config.project import load_project
    from hsm_snake.config.sweep_file import load_sweep

    config = load_project(None, cwd=project.root)
    a = load_sweep(project.write_sweep({"grid": {"x": [1, 2]}}, "a.yaml"))
    b = load_sweep(project.write_sweep({"grid": {"y": [7, 8]}}, "b.yaml"))
    index, lock = sweeps.create_locked(a, config, ["a"], "x")
    try:
        with pytest.raises(SweepLockedError, match="already being run"):
            sweeps.create(b, config, ["b"], "x")
        outcome = sweeps.run(index.paths, sweeps.RunRequest(profile="local", command=["a"]), lock=lock)
    finally:
        lock.release()
    assert outcome.ok
    assert project.completions() == {"task_001": 1, "task_002": 1}
    assert lock.fd is None  # run released it


@pytest.mark.parametrize("record", [b"", b"{not json\n"])
def test_a_holder_without_a_readable_record_is_named_another_process(tmp_path, record):
    import fcntl
    import os

    from hsm_snake.engine.lock import SweepLock
    from hsm_snake.layout.paths import SweepPaths

    paths = SweepPaths(tmp_path / "s")
    paths.lock.parent.mkdir(parents=True)
    paths.lock.write_bytes(record)  # taken, its record not written yet (or torn)
    fd = os.open(paths.lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(SweepLockedError, match="sweep s is already being run by another process"):
            SweepLock(paths).acquire(["test"])
    finally:
        os.close(fd)


def test_which_recorded_engines_count_as_alive():
    import os
    import socket
    import subprocess

    from hsm_snake.engine.lock import engine_alive, is_recorded_engine, process_start

    here = socket.gethostname()
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert engine_alive({"snakemake_pid": os.getpid(), "host": here})
    assert not engine_alive({"snakemake_pid": gone.pid, "host": here})
    assert engine_alive({"snakemake_pid": gone.pid, "host": "another-node"})  # cannot be asked: assumed running
    assert not engine_alive({"host": here})
    me = {"snakemake_pid": os.getpid(), "snakemake_started": process_start(os.getpid()), "host": here}
    assert is_recorded_engine(me)
    assert not is_recorded_engine({**me, "snakemake_started": me["snakemake_started"] + 1})  # a reused pid
    assert not is_recorded_engine({**me, "host": "another-node"})
    for pid in (True, 1, "42", None):
        assert not is_recorded_engine({**me, "snakemake_pid": pid})
