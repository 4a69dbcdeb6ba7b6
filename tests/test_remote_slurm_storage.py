"""A Slurm remote's storage tiers and its connection, on the test bed (see test_remote_slurm.py):
the sweep's copy in workdir, archived by the login node to archive_dir with v1's .archived
sentinel, `remote clean` of what is left; and a login node whose sshd goes away mid-sweep and
comes back (an sshd of this test's own, never the test bed's)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from background import kill_everything, start_run, started, wait_for
from conftest import read_status
from test_remote_slurm import SOMETIMES_FAILS, cluster  # noqa: F401 (the fixture)

from hsm_snake.executors.remote_cluster import slurm as array

pytestmark = pytest.mark.testbed


def test_a_completed_sweep_is_archived_and_leaves_the_workdir(cluster):  # noqa: F811
    project = cluster
    (project.root / "fails.py").write_text(SOMETIMES_FAILS)
    archive = project.remote_base / "shares 'grp' é & co"
    project.configure("fails.py", archive_dir=str(archive))
    project.write_sweep({"grid": {"x": [1, 2]}})
    out = project.cli("run", "sweep.yaml", "--remote", "tbslurm").output
    (sweep_dir,) = project.sweep_dirs()
    copy = project.remote_base / "scratch runs" / sweep_dir.name
    target = archive / sweep_dir.name
    assert f"tbslurm: storage: {copy}: archived to {target} (.archived written); removed {copy}" in out, out
    for name in ("task_001", "task_002"):
        archived = yaml.safe_load((target / "tasks" / name / "status.yaml").read_text())
        assert (
            archived["status"] == "completed"
            and archived["job_id"] == read_status(sweep_dir / "tasks" / name)["job_id"]
        )
    sentinel = yaml.safe_load((target / ".archived").read_text())
    assert (
        sentinel["sweep_id"] == sweep_dir.name and sentinel["source"] == str(copy) and sentinel["any_failed"] is False
    )
    assert not copy.exists()  # completed: the scratch copy goes (v1's keep_remote_on_success: false)
    assert "archived to" in (sweep_dir / "logs" / "sources" / "tbslurm.log").read_text()
    out = project.cli("remote", "clean", "tbslurm", "--sweep", sweep_dir.name, "-y").output
    assert out.strip() == f"tbslurm: nothing at {copy}", out
    assert (target / ".archived").exists()  # an archive is never cleaned


def test_a_failed_sweep_stays_in_workdir_until_cleaned_and_archived_as_archive_on_asks(cluster):  # noqa: F811
    project = cluster
    (project.root / "fails.py").write_text(SOMETIMES_FAILS)
    archive = project.remote_base / "archive"
    project.configure("fails.py", archive_dir=str(archive), archive_on="always")
    project.write_sweep({"paired": [{"p": {"x": [1, 2], "fail": [0, 1]}}]})
    project.cli("run", "sweep.yaml", "--remote", "tbslurm", expect=1)
    (sweep_dir,) = project.sweep_dirs()
    sweep_id = sweep_dir.name
    copy = project.remote_base / "scratch runs" / sweep_id
    assert (copy / "tasks" / "task_002" / "stderr.log").exists()  # kept for inspection
    assert yaml.safe_load((archive / sweep_id / ".archived").read_text())["any_failed"] is True
    # A task whose element has not come back (a record of a submission): nothing is removed.
    record = sweep_dir / ".hsm" / "remote-slurm-jobs"
    kept = record.read_text()
    entry = {"alias": "tbslurm", "array_id": "999999", "remote_sweep": str(copy), "tasks": ["task_002"]}
    record.write_text(kept + json.dumps({**entry, "submitted": "2999-01-01T00:00:00+00:00"}) + "\n")
    out = project.cli("remote", "clean", "--sweep", sweep_id, "-y", expect=2).output
    assert "have not come back (task_002)" in out and f"complete {sweep_id} --remote tbslurm" in out, out
    record.write_text(kept)
    # archive_on: always wants an archive: without one, the copy stays.
    (archive / sweep_id / ".archived").unlink()
    out = project.cli("remote", "clean", "--sweep", sweep_id, "-y", expect=1).output
    assert "not archived" in out and "archive_on: always" in out and copy.is_dir(), out
    # complete runs the failed task again (it fails again), and the ended sweep is archived again.
    project.cli("complete", sweep_id, "--remote", "tbslurm", expect=1)
    assert (archive / sweep_id / ".archived").exists()
    out = project.cli("remote", "clean", "--sweep", sweep_id, "-y").output
    assert out.strip() == f"tbslurm: removed {copy}", out
    assert not copy.exists() and (archive / sweep_id / "tasks" / "task_002").is_dir()
    assert read_status(sweep_dir / "tasks" / "task_001")["status"] == "completed"  # local results untouched


# Fails (exit 3) with fail=1 on the cluster only: a plain `complete` here finishes the sweep.
FAILS_ON_THE_CLUSTER = """
import os, sys
args = dict(a.partition("=")[::2] for a in sys.argv[1:])
sys.exit(3 if args.get("fail") == "1" and os.environ.get("HSM_BACKEND") != "local" else 0)
"""


def finished_here_after_the_cluster(project, alias: str, archive_on: str) -> None:
    """A sweep with a task failed on the cluster remote ``alias``, then finished by a plain
    ``complete`` here: its copy there is archived as ``archive_on`` asks (once per outcome), then removed."""
    (project.root / "fails.py").write_text(FAILS_ON_THE_CLUSTER)
    archive = project.remote_base / "archive"
    project.configure("fails.py", archive_dir=str(archive), archive_on=archive_on)
    project.write_sweep({"paired": [{"p": {"x": [1, 2], "fail": [0, 1]}}]})
    out = project.cli("run", "sweep.yaml", "--remote", alias, expect=1).output
    (sweep_dir,) = project.sweep_dirs()
    copy = project.remote_base / "scratch runs" / sweep_dir.name
    target = archive / sweep_dir.name
    assert copy.is_dir(), out  # a failed sweep's copy stays
    if archive_on == "always":
        assert f"{alias}: storage: {copy}: archived to {target} (.archived written)\n" in out, out
        assert yaml.safe_load((target / ".archived").read_text())["any_failed"] is True
    else:
        assert "storage" not in out and not target.exists(), out
    # The failed task runs here and completes: the sweep has ended well.
    out = project.cli("complete", sweep_dir.name).output
    assert read_status(sweep_dir / "tasks" / "task_002")["backend"] == "local"
    # Archived (always: the failed sweep's archive brought up to date, as v1's rsync does), then removed.
    assert f"{alias}: storage: {copy}: archived to {target} (.archived written); removed {copy}" in out, out
    assert yaml.safe_load((target / ".archived").read_text())["any_failed"] is False
    assert read_status(target / "tasks" / "task_002")["status"] == "failed"  # the cluster's own attempt
    assert not copy.exists() and (target / "tasks" / "task_001" / "status.yaml").exists()
    assert "storage" not in project.cli("complete", sweep_dir.name).output  # settled: no second step


@pytest.mark.parametrize("archive_on", ["completed", "always"])
def test_a_sweep_finished_by_a_plain_complete_is_archived_as_archive_on_asks(cluster, archive_on):  # noqa: F811
    finished_here_after_the_cluster(cluster, "tbslurm", archive_on)


def test_a_login_node_lost_mid_sweep_and_back_loses_nothing(cluster, login_node, monkeypatch):  # noqa: F811
    project = cluster
    monkeypatch.setenv("HSM_SSH_CONFIG", str(login_node.client_config))
    project.configure("echo.py", env={"RUN_LOG": str(project.run_log)}, host="hsmtb-drop")
    project.write_sweep({"grid": {"hold": [1], "x": [1, 2]}})
    proc = start_run(project, "run", "sweep.yaml", "--remote", "tbslurm")
    try:
        wait_for(lambda: {"task_001", "task_002"} <= started(project), 300, "both held tasks to run on the cluster")
        (sweep_dir,) = project.sweep_dirs()
        login_node.stop()
        engine_log = sweep_dir / "logs" / "engine.log"
        wait_for(lambda: "did not answer" in engine_log.read_text(), 120, "a poll to find the login node gone")
        # The tasks end while the login node is away: their results wait on the cluster.
        project.release()
        out = back_after_the_tasks_ended(project, proc, login_node, sweep_dir, {"task_001", "task_002"}, poll_missed)
    finally:
        if proc.poll() is None:
            kill_everything(project, proc)
    assert proc.returncode == 0 and "2 completed" in out, out
    assert project.completions() == {"task_001": 1, "task_002": 1}
    assert_completed_once_there(sweep_dir, {"task_001", "task_002"})


def poll_missed() -> None:
    time.sleep(6)  # at least one more poll without an answer


def back_after_the_tasks_ended(project, proc, login_node, sweep_dir: Path, there: set[str], while_away) -> str:
    """Once the tasks ``there`` have ended on the cluster while its login node is away (their
    results wait in the sweep's copy) and ``while_away()`` returned, the run still waits for them;
    the login node comes back: the run's output."""
    copy = project.remote_base / "scratch runs" / sweep_dir.name / "tasks"
    wait_for(lambda: all((copy / name / ".completed").exists() for name in there), 120, "the elements to end")
    while_away()
    assert not any((sweep_dir / "tasks" / name / ".completed").exists() for name in there)
    assert proc.poll() is None, proc.communicate()[0]
    login_node.start()
    return proc.communicate(timeout=300)[0]


def assert_completed_once_there(sweep_dir: Path, there: set[str]) -> None:
    """The tasks ``there`` completed in one attempt as elements on tbslurm, their folders back."""
    for name in there:
        status = read_status(sweep_dir / "tasks" / name)
        assert status["status"] == "completed" and status["attempt"] == 1, status
        assert array.ELEMENT_ID.match(status["job_id"]) and status["host_alias"] == "tbslurm", status
        assert (sweep_dir / "tasks" / name / ".completed").exists()
