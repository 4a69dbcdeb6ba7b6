"""A PBS cluster reached over SSH (``backend: pbs`` remote, ``run --remote ALIAS``) against the test
bed: its loopback sshd hsmtb-lo is the login node, whose qsub/qstat/qdel are Slurm's torque wrappers
over the test bed's Slurm. The project lives in a local folder of its own; its copy on the
"cluster" in another folder, reached only through ssh and rsync. The tests shared with the Slurm
remote are in test_remote_slurm.py.
"""

from __future__ import annotations

import pytest
from test_remote_slurm import (
    cancel_held_then_complete,
    cluster_project,
    run_hostile_values,
    run_one_failing_of_three,
    walltime_kill_retried_with_more_time,
)
from test_remote_slurm_storage import finished_here_after_the_cluster

from hsm_snake.layout import names

pytestmark = pytest.mark.testbed


@pytest.fixture
def cluster(tb, tmp_path, monkeypatch):
    yield from cluster_project(tb, tmp_path, monkeypatch, "tbpbs", "pbs", {"mem": "200M", "walltime": "00:05:00"})


def test_hostile_values_run_on_the_pbs_cluster_and_come_back(cluster):
    sweep_dir, status = run_hostile_values(cluster, "tbpbs", "pbs")
    assert names.is_job_id(status["job_id"]), status
    (script,) = (sweep_dir / "scripts" / "job_scripts").glob("remote-pbs-*.sh")
    text = script.read_text()
    assert "qsub" in text and "-t 1-1" in text, text
    # No parameter value in the job script: the runner reads them from the task folder.
    assert "two words" not in text and "`id`" not in text


def test_an_array_per_batch_a_failure_keeps_its_logs_and_cause(cluster):
    sweep_dir, statuses = run_one_failing_of_three(cluster, "tbpbs", "pbs")
    assert {status["backend"] for status in statuses.values()} == {"pbs"}
    assert len({status["job_id"] for status in statuses.values()}) == 3, statuses
    (script,) = (sweep_dir / "scripts" / "job_scripts").glob("remote-pbs-*.sh")
    assert "-t 1-3" in script.read_text()  # the three tasks went out as one qsub array
    # Each element's own logs and job id came back with its folder.
    assert len(list((sweep_dir / "logs" / "remote-pbs").glob("*.jobid"))) == 3
    assert not (sweep_dir / "logs" / "pbs").exists()  # where this machine's PBS jobs leave their ids


def test_cancel_stops_the_pbs_jobs_and_complete_reruns_only_them(cluster):
    statuses = cancel_held_then_complete(cluster, "tbpbs", "pbs")
    assert all(names.is_job_id(status["job_id"]) for status in statuses.values()), statuses


def test_remote_test_checks_the_pbs_commands_of_a_pbs_remote(cluster):
    project = cluster
    project.configure("app.py")
    result = project.cli("remote", "test", "tbpbs")
    assert "qsub, qstat, qdel" in result.output and "tbpbs is ready" in result.output, result.output
    assert "backend pbs" in project.cli("remote", "list").output


def test_a_pbs_sweep_finished_by_a_plain_complete_is_archived_then_leaves_the_workdir(cluster):
    finished_here_after_the_cluster(cluster, "tbpbs", "always")


def test_a_walltime_kill_on_the_pbs_cluster_is_retried_with_twice_the_time(cluster):
    walltime_kill_retried_with_more_time(cluster, "tbpbs", "pbs", "walltime=00:02:00")
