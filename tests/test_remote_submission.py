"""A submission (sbatch, qsub) on a cluster's login node whose ssh call fails: its answer is read
back once the login node answers again, so an array is never taken for unsent when it went out
(its tasks would run twice) nor for submitted when it never ran (``remote_cluster/submission.py``).

The shell text is checked with a local ``sh``; the lost connections go through a real sshd of the
test's own (``login_node``) that the test stops while the submission runs and starts again.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from pathlib import Path

import pytest
from background import wait_for

from hsm_snake.executors.remote_cluster import submission
from hsm_snake.executors.remote_cluster.cluster import Cluster, NotSubmitted, SubmitError, tools_problem
from hsm_snake.executors.ssh.hosts import SSH_CONFIG_ENV
from hsm_snake.layout.paths import SweepPaths


def sh(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=60)


def test_the_answer_is_printed_and_kept_for_a_later_question(tmp_path):
    answer = str(tmp_path / "a dir" / "job's.sh.submission")
    Path(answer).parent.mkdir()
    command = f"cd {shlex.quote(str(tmp_path))} && echo ran >> count && echo 'a  b' && echo warn >&2 && echo 4242"
    first = submission.read(sh(submission.detached(command, answer, 30)))
    assert first == submission.Answer(0, "a  b\n4242", "warn\n")
    assert submission.read(sh(submission.question(answer))) == first
    assert (tmp_path / "count").read_text() == "ran\n"


def test_a_refusal_keeps_its_exit_code_and_stderr(tmp_path):
    found = submission.read(sh(submission.detached("echo 'no such partition' >&2; exit 3", str(tmp_path / "r"), 30)))
    assert found == submission.Answer(3, "", "no such partition\n")


def test_a_question_that_comes_first_makes_sure_the_submission_never_runs(tmp_path):
    answer = str(tmp_path / "late")
    assert submission.read(sh(submission.question(answer))) == submission.NEVER
    # The session that was to submit starts only now (a slow login shell): it does nothing.
    assert submission.read(sh(submission.detached("echo ran >> count", answer, 30))) == submission.NEVER
    assert submission.read(sh(submission.question(answer))) == submission.NEVER
    assert not (tmp_path / "count").exists()


def test_a_submission_slower_than_its_call_is_pending_then_answered(tmp_path):
    answer = str(tmp_path / "slow")
    assert submission.read(sh(submission.detached("sleep 2; echo 77", answer, 0.4))) is None
    assert submission.read(sh(submission.question(answer))) == submission.PENDING
    wait_for(lambda: submission.read(sh(submission.question(answer))) != submission.PENDING, 30, "the answer")
    assert submission.read(sh(submission.question(answer))) == submission.Answer(0, "77", "")


@pytest.mark.parametrize(
    "stdout",
    ["", "hsm-submission-exit x\n", "motd\n"],
)
def test_what_is_not_an_answer_reads_as_none(stdout):
    assert submission.read(subprocess.CompletedProcess([], 0, stdout, "")) is None
    assert submission.read(subprocess.CompletedProcess([], 255, "hsm-submission-exit 0\n", "")) is None
    assert submission.read(None) is None


# -- over a real ssh connection that drops ---------------------------------------------------


@pytest.fixture
def over_ssh(login_node, tmp_path, monkeypatch):
    """(a Cluster on the test's own sshd, the folder 'there' its commands run in)."""
    monkeypatch.setenv(SSH_CONFIG_ENV, str(login_node.client_config))
    there = tmp_path / "there"
    there.mkdir()
    remote = {"host": "hsmtb-drop", "backend": "slurm"}
    with Cluster.connected(SweepPaths(tmp_path / "local" / "s"), "drop", remote) as cluster:
        yield cluster, there


def in_background(action) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


@pytest.mark.testbed
def test_an_answer_lost_with_the_connection_is_read_back_once_the_login_node_is_back(over_ssh, login_node):
    cluster, there = over_ssh
    count = there / "count"
    command = f"cd {shlex.quote(str(there))} && echo ran >> count && sleep 4 && echo 4242"

    def drop_while_it_runs():
        wait_for(count.exists, 60, "the submission to start")
        login_node.stop()
        time.sleep(1)
        login_node.start()

    thread = in_background(drop_while_it_runs)
    try:
        said = cluster.submit_command(command, "sbatch", str(there / "job.sh.submission"))
    finally:
        thread.join()
    assert said.strip() == "4242"
    assert count.read_text() == "ran\n"  # ran once: taken for submitted, not sent again
    log = cluster.paths.source_log("drop").read_text()
    assert "asking whether it was submitted" in log and "its answer read back (exit 0)" in log


@pytest.mark.testbed
def test_a_submission_the_connection_never_carried_is_certainly_not_submitted(over_ssh, login_node):
    cluster, there = over_ssh
    login_node.stop()

    def come_back():
        time.sleep(3)
        login_node.start()

    thread = in_background(come_back)
    try:
        with pytest.raises(NotSubmitted, match="did not run"):
            cluster.submit_command(f"cd {shlex.quote(str(there))} && echo ran >> count", "sbatch", str(there / "j"))
    finally:
        thread.join()
    assert not (there / "count").exists()
    assert (there / "j.never").exists()  # a late session would now do nothing


@pytest.mark.testbed
def test_an_sbatch_slower_than_the_ssh_timeout_is_waited_for_not_sent_twice(over_ssh):
    cluster, there = over_ssh
    command = f"cd {shlex.quote(str(there))} && echo ran >> count && sleep 5 && echo 99"
    said = cluster.submit_command(command, "sbatch", str(there / "slow"), timeout_s=2)
    assert said.strip() == "99"
    assert (there / "count").read_text() == "ran\n"


@pytest.mark.testbed
def test_a_refusal_over_ssh_is_a_submit_error_with_what_the_scheduler_said(over_ssh):
    cluster, there = over_ssh
    with pytest.raises(SubmitError, match="exit 1: sbatch: error: invalid partition"):
        cluster.submit_command("echo 'sbatch: error: invalid partition' >&2; exit 1", "sbatch", str(there / "r"))


@pytest.mark.testbed
def test_the_login_node_check_asks_for_setsid_with_the_scheduler_tools(over_ssh):
    cluster, _ = over_ssh
    assert tools_problem(cluster.ssh, cluster.host, "slurm", ("sbatch", "squeue"), 30) is None
    problem = tools_problem(cluster.ssh, cluster.host, "slurm", ("sbatch", "hsm-no-such-tool"), 30)
    assert problem.startswith("drop lacks hsm-no-such-tool on the PATH of an ssh session: load slurm"), problem
