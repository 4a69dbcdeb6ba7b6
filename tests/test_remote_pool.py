"""A Slurm cluster reached over SSH as a member of the SSH pool (``--profile ssh``, v1's ``--mode
distributed``): local slots, an SSH host (hsmtb-h1) and the test bed's Slurm behind its loopback
login node (hsmtb-lo, as in test_remote_slurm.py) share one sweep.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from background import Output, held_tasks_started, kill_everything, start_run, started, wait_for
from click.testing import CliRunner
from conftest import read_status, remote_name
from test_remote_slurm import cluster  # noqa: F401  (the fixture this module's builds on)
from test_remote_slurm_storage import assert_completed_once_there, back_after_the_tasks_ended
from test_ssh import HOSTILE

from hsm_snake.cli.v1 import hsm
from hsm_snake.engine.lock import lock_holder
from hsm_snake.executors.remote_cluster import slurm as array
from hsm_snake.executors.ssh.hosts import Ssh
from hsm_snake.layout import names
from hsm_snake.layout.paths import SweepPaths

pytestmark = pytest.mark.testbed

# Records its argv and each run in the run log (the task's env names it: ssh passes no environment).
RECORDING_APP = """
import json, os, sys, time
args = sys.argv[1:]
with open(os.path.join(os.environ["HSM_RESULTS_DIR"], "seen.json"), "w", encoding="utf-8") as out:
    json.dump(args, out, ensure_ascii=False)
time.sleep(float(dict(a.partition("=")[::2] for a in args).get("sleep") or 0))
with open(os.environ["RUN_LOG"], "a") as log:
    log.write(os.environ["HSM_TASK_ID"] + " done\\n")
"""


@pytest.fixture
def pool(cluster, tb, tmp_path):  # noqa: F811 (the imported fixture)
    """test_remote_slurm's project (a folder with spaces and quotes, hsmtb-lo as the login node of
    the test Slurm) with one local slot and hsmtb-h1 (one slot) next to the cluster, whose
    requests are v1's per-remote ``spec:``; the app records its argv (``project.configure_pool``
    sets it up again with another script, more of ``distributed`` or of the cluster's remote)."""
    tb.need("hsmtb-h1")
    project = cluster
    (project.root / "app.py").write_text(RECORDING_APP)
    partition = tb.facts["env"].get("HSM_TB_SLURM_PARTITION", "debug")
    h1 = {
        "project_dir": f"{tb.facts['ssh']['hosts']['hsmtb-h1']['project_dir']}/{remote_name(tmp_path)}",
        "max_parallel_jobs": 1,
        "python_path": "python3",
    }

    def configure_pool(script: str, distributed: dict | None = None, **remote) -> None:
        project.configure(
            script,
            env={"RUN_LOG": str(project.run_log)},
            pool={"strategy": "round_robin", "local_slots": 1, "remotes": {"hsmtb-h1": h1}, **(distributed or {})},
            slurm={},
            spec={"partition": partition, "mem": "200M", "walltime": "00:05:00"},
            **remote,
        )

    project.configure_pool = configure_pool
    configure_pool("app.py")
    return project


def running_on_cluster(sweep_dir: Path, alias: str = "tbslurm") -> set[str]:
    """Tasks whose local status.yaml says they run on the cluster ``alias``."""
    found = set()
    for task in (sweep_dir / "tasks").glob("task_*"):
        try:
            status = read_status(task)
        except FileNotFoundError:
            continue
        if status.get("status") == "running" and status.get("host_alias") == alias:
            found.add(task.name)
    return found


def text_of(path: Path) -> str:
    """A log's text, empty before it is written."""
    return path.read_text() if path.exists() else ""


def submitted_tasks(sweep_dir: Path, scheduler: str = "slurm") -> set[str]:
    """Tasks the run submitted to a cluster (its record of arrays, .hsm/remote-<scheduler>-jobs)."""
    record = sweep_dir / ".hsm" / f"remote-{scheduler}-jobs"
    return {name for line in record.read_text().splitlines() for name in json.loads(line)["tasks"]}


@contextmanager
def pool_run(project, **values):
    """A run of 4 tasks (x=0..3, with ``values``) over the pool, in the background; killed at the end if still alive."""
    project.write_sweep({"grid": {"x": list(range(4)), **{key: [value] for key, value in values.items()}}})
    proc = start_run(project, "run", "sweep.yaml", "--profile", "ssh")
    try:
        wait_for(lambda: project.sweep_dirs(), 120, "the sweep directory")
        (sweep_dir,) = project.sweep_dirs()
        yield proc, sweep_dir
    finally:
        if proc.poll() is None:
            kill_everything(project, proc)


def hostile_sweep_came_back(project, sweep_dir: Path, count: int, sleep: int) -> dict[str, dict]:
    """Each of the ``count`` tasks of a sweep of x, ``sleep`` and HOSTILE values completed once,
    its app saw exactly its values; {task: status}."""
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, count + 1)}
    statuses = {}
    for i in range(1, count + 1):
        task = sweep_dir / "tasks" / f"task_{i:03d}"
        seen = json.loads((task / "results" / "seen.json").read_text(encoding="utf-8"))
        assert seen == [f"x={i - 1}", f"sleep={sleep}", *(f"v{n}={value}" for n, value in enumerate(HOSTILE))]
        statuses[task.name] = read_status(task)
        assert statuses[task.name]["status"] == "completed" and (task / ".completed").exists(), statuses[task.name]
    return statuses


def test_one_sweep_over_local_slots_an_ssh_host_and_a_cluster(pool):
    """v1's command line of the HQ pattern, ``hsm sweep run --mode distributed``."""
    project = pool
    project.configure_pool("app.py", keep_remote_on_success=True)  # the cluster's copy stays, to be looked at
    project.write_sweep(
        {"grid": {"x": list(range(8)), "sleep": [2], **{f"v{i}": [value] for i, value in enumerate(HOSTILE)}}}
    )
    result = CliRunner().invoke(hsm, ["sweep", "run", "-c", "sweep.yaml", "--mode", "distributed"])
    assert result.exit_code == 0 and "8 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    where = {}
    for task, status in hostile_sweep_came_back(project, sweep_dir, 8, sleep=2).items():
        # The pool's tasks say backend ssh and job_id local or the host; the cluster's, slurm and the element.
        where[task] = (status["backend"], status["job_id"] if status["backend"] == "ssh" else "tbslurm")
        if status["backend"] == "slurm":
            assert array.ELEMENT_ID.match(status["job_id"]) and status["host_alias"] == "tbslurm", status
    assert set(where.values()) == {("ssh", "local"), ("ssh", "hsmtb-h1"), ("slurm", "tbslurm")}, where
    # The cluster's tasks went out as arrays (one sbatch per batch), their copy in its workdir.
    on_cluster = sorted(name for name, (backend, _) in where.items() if backend == "slurm")
    scripts = list((sweep_dir / "scripts" / "job_scripts").glob("remote-slurm-*.sh"))
    assert 1 <= len(scripts) <= len(on_cluster), scripts
    for name in on_cluster:
        assert (project.remote_base / "scratch runs" / sweep_dir.name / "tasks" / name / "status.yaml").exists()
    log = (sweep_dir / "logs" / "sources" / "ssh.log").read_text()
    assert "host tbslurm: ok" in log, log


def test_a_pool_run_archives_the_clusters_copy_and_removes_it(pool):
    """The cluster's storage tiers after a pool run as after run --remote: archive_on: completed
    archives the copy on the login node (its .archived sentinel), then the workdir copy goes."""
    project = pool
    archive = project.remote_base / "shares 'grp'"
    project.configure_pool("app.py", archive_dir=str(archive), archive_on="completed")
    project.write_sweep({"grid": {"x": list(range(6)), "sleep": [1]}})
    out = project.cli("run", "sweep.yaml", "--profile", "ssh").output
    (sweep_dir,) = project.sweep_dirs()
    on_cluster = {task.name for task in (sweep_dir / "tasks").iterdir() if read_status(task)["backend"] == "slurm"}
    assert on_cluster and "6 completed" in out, out
    copy = project.remote_base / "scratch runs" / sweep_dir.name
    target = archive / sweep_dir.name
    assert f"tbslurm: storage: {copy}: archived to {target} (.archived written); removed {copy}" in out, out
    assert not copy.exists() and yaml.safe_load((target / ".archived").read_text())["any_failed"] is False
    for name in on_cluster:
        assert yaml.safe_load((target / "tasks" / name / "status.yaml").read_text())["status"] == "completed"
    # Settled for this outcome: a later complete asks the login node nothing.
    again = project.cli("complete", sweep_dir.name).output
    assert "storage" not in again, again


def test_status_says_running_on_the_cluster_and_a_killed_run_is_adopted(pool):
    """While an element runs, `status` shows the task running on the cluster (the local record
    written from squeue); kill -9 of the run, then `complete` waits for the cluster's jobs and
    runs nothing twice. The tasks hold until the test releases them, once `complete` waits."""
    project = pool
    project.configure_pool("echo.py")
    with pool_run(project, hold=1) as (proc, sweep_dir):
        wait_for(lambda: running_on_cluster(sweep_dir), 300, "a task running on the cluster")
        shown = project.cli("status", sweep_dir.name, "--all-status").output
        assert re.search(r"tbslurm: \d+ running", shown), shown
        kill_everything(project, proc)
    # A killed multi-threaded process holds the sweep lock until its last thread has exited.
    wait_for(lambda: lock_holder(SweepPaths(sweep_dir)) is None, 60, "the sweep lock to be released")
    assert submitted_tasks(sweep_dir)
    completing = start_run(project, "complete", sweep_dir.name, "--profile", "ssh")
    output = Output(completing)
    try:
        wait_for(lambda: output.has("on tbslurm"), 300, "complete to wait for the cluster's jobs")
        said = output.text()
        project.release()
        out = output.finish(completing, timeout=600)
    finally:
        if completing.poll() is None:
            kill_everything(project, completing)
    assert re.search(r"Slurm job \d+_\d+ on tbslurm", said), said  # waited for
    assert completing.returncode == 0 and "4 completed" in out, out
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 5)}


def test_the_clusters_limits_are_read_on_its_login_node(pool, tmp_path):
    """MaxArraySize and MaxJobCount of the test Slurm (tests/testbed/start.sh: 1001 and Slurm's
    default 10000), asked over ssh with the same queries as for the local Slurm."""
    from hsm_snake.executors.remote_cluster.slurm import SlurmCluster

    project = pool
    control_dir = Path(tempfile.mkdtemp(prefix="hsm-t-"))  # a socket path under the 108-byte limit
    login = SlurmCluster(SweepPaths(tmp_path / "sweep"), "tbslurm", {"host": "hsmtb-lo"}, Ssh(control_dir))
    try:
        room, size, notes = login.limits({"max_array_size": 5000})
    finally:
        login.close()
        shutil.rmtree(control_dir)
    assert size == 1000 and any("MaxArraySize 1001" in note for note in notes), notes
    assert room is not None and room.limit == 10000 and 0 <= room.queued < room.limit, room
    assert login.user and project.root.exists()


def cancel_pool_run(project, alias: str, scheduler: str) -> tuple[Path, list[dict]]:
    """`cancel` of a pool run once the elements of the cluster ``alias`` run: each of them is
    recorded cancelled with its backend and job id. (The sweep directory, the arrays submitted.)"""
    with pool_run(project, sleep=300) as (proc, sweep_dir):
        jobs = sweep_dir / ".hsm" / f"remote-{scheduler}-jobs"
        wait_for(jobs.exists, 300, "an array on the cluster")
        wait_for(
            lambda: running_on_cluster(sweep_dir, alias) == submitted_tasks(sweep_dir, scheduler),
            300,
            "the cluster's elements to run",
        )
        result = project.cli("cancel", sweep_dir.name)
        assert "stopped the run" in result.output, result.output
        proc.communicate(timeout=180)
    for name in submitted_tasks(sweep_dir, scheduler):
        status = read_status(sweep_dir / "tasks" / name)
        assert status["status"] == "cancelled" and status["backend"] == scheduler, status
        assert status["host_alias"] == alias and names.is_job_id(status["job_id"]), status
    return sweep_dir, [json.loads(line) for line in jobs.read_text().splitlines()]


def test_cancel_stops_the_clusters_elements_and_records_why(pool):
    sweep_dir, submitted = cancel_pool_run(pool, "tbslurm", "slurm")
    arrays = {entry["array_id"] for entry in submitted}
    queue = subprocess.run(array.SQUEUE_ARGV, capture_output=True, text=True, check=True).stdout
    assert not any(
        state in array.ACTIVE_STATES and job.split("_")[0] in arrays for job, state in array.parse_squeue(queue).items()
    ), queue
    assert "scancel" in (sweep_dir / "logs" / "sources" / "tbslurm.log").read_text()


def test_a_login_node_lost_mid_sweep_and_back_loses_nothing_in_the_pool(pool, login_node, monkeypatch):
    """The cluster's login node (an sshd of the test's own, testbed_support.LoginNode) goes away
    while two elements run there: a health check finds it gone, the other hosts take the tasks
    that wait for a slot, the elements end meanwhile; once it is back, their folders come back.
    Every task ran once, every status.yaml is whole."""
    project = pool
    monkeypatch.setenv("HSM_SSH_CONFIG", str(login_node.client_config))
    project.configure_pool("echo.py", {"health_interval": 3}, host="hsmtb-drop", max_parallel_jobs=2)
    project.write_sweep({"grid": {"hold": [1], "x": list(range(6))}})
    names = {f"task_{i:03d}" for i in range(1, 7)}
    proc = start_run(project, "run", "sweep.yaml", "--profile", "ssh")
    try:
        # hsmtb-h1, the local slot and the cluster's two slots each hold a task; two wait for a slot.
        wait_for(held_tasks_started(project, 4), 300, "four held tasks to run")
        (sweep_dir,) = project.sweep_dirs()
        on_cluster = submitted_tasks(sweep_dir)
        assert len(on_cluster) == 2 and on_cluster <= started(project), on_cluster
        login_node.stop()
        ssh_log = sweep_dir / "logs" / "sources" / "ssh.log"
        wait_for(lambda: "host tbslurm: UNHEALTHY" in ssh_log.read_text(), 120, "a health check to miss the cluster")
        project.release()
        cluster_log = sweep_dir / "logs" / "sources" / "tbslurm.log"

        def others_done_and_a_poll_missed() -> None:
            wait_for(lambda: set(project.completions()) == names, 300, "the other hosts to run the waiting tasks")
            wait_for(lambda: "squeue did not answer" in cluster_log.read_text(), 120, "a poll to miss the cluster")

        out = back_after_the_tasks_ended(
            project, proc, login_node, sweep_dir, on_cluster, others_done_and_a_poll_missed
        )
    finally:
        if proc.poll() is None:
            kill_everything(project, proc)
    assert proc.returncode == 0 and "6 completed" in out, out
    assert project.completions() == dict.fromkeys(names, 1)
    assert_completed_once_there(sweep_dir, on_cluster)
    for name in names - on_cluster:
        status = read_status(sweep_dir / "tasks" / name)
        assert status["status"] == "completed" and status["attempt"] == 1 and status["backend"] == "ssh", status
        assert (sweep_dir / "tasks" / name / ".completed").exists()
    assert "host tbslurm: BACK" in ssh_log.read_text() and "squeue answers again" in cluster_log.read_text()


def test_a_task_handed_to_a_cluster_whose_login_node_went_away_is_not_sent(tb, login_node, tmp_path, monkeypatch):
    """A task handed to the cluster after its login node went away, before a health check
    noticed: the push fails, sbatch never runs, nothing is recorded, and the answer says so (the
    hsm-ssh executor then loses the cluster and the task takes another host, as after a failed
    push to an SSH host)."""
    from hsm_snake.executors.remote_cluster.pool import PooledCluster
    from hsm_snake.executors.ssh.hosts import host_from_remote
    from hsm_snake.layout.paths import SweepPaths

    monkeypatch.setenv("HSM_SSH_CONFIG", str(login_node.client_config))
    base = Path(tb.facts["ssh"]["hosts"]["hsmtb-lo"]["project_dir"]) / remote_name(tmp_path)
    remote = {"backend": "slurm", "host": "hsmtb-drop", "project_dir": f"{base}/proj", "workdir": f"{base}/scratch"}
    paths = SweepPaths(tmp_path / "sweep_1")
    task = paths.task("task_001")
    task.dir.mkdir(parents=True)
    control_dir = Path(tempfile.mkdtemp(prefix="hsm-t-"))  # a socket path under the 108-byte limit
    host = host_from_remote("tbslurm", remote)
    ssh = Ssh(control_dir)
    pooled = PooledCluster(paths, host, ssh, {"project": {"distributed": {"remotes": {"tbslurm": remote}}}})
    try:
        assert any("slot(s)" in note for note in pooled.start())
        login_node.stop()
        answer = pooled.run(task)
    finally:
        pooled.stop()
        ssh.close(host)
        shutil.rmtree(control_dir)
        shutil.rmtree(base, ignore_errors=True)
    assert answer.unsent and answer.element is None and "task_001 on tbslurm: not submitted" in answer.message
    assert not paths.submitted_jobs("remote-slurm").exists() and not task.status.exists()


def test_a_task_whose_push_to_the_cluster_fails_runs_on_another_host(pool):
    """The sweep's copy on the cluster takes no task folder (its tasks/ immutable): the push
    fails, nothing is submitted, the cluster is lost for the run and its task runs on another
    host, once."""
    project = pool
    project.configure_pool("echo.py")
    project.write_sweep({"grid": {"x": list(range(4))}})
    project.cli("run", "sweep.yaml", "--max-tasks", "1")  # here; the sweep's name is known before the pool runs
    (sweep_dir,) = project.sweep_dirs()
    blocked = project.remote_base / "scratch runs" / sweep_dir.name / "tasks"
    blocked.mkdir(parents=True)
    subprocess.run(["chattr", "+i", str(blocked)], check=True)  # even root cannot add to it
    try:
        result = project.cli("complete", sweep_dir.name, "--profile", "ssh")
    finally:
        subprocess.run(["chattr", "-i", str(blocked)], check=True)
    assert "4 completed" in result.output, result.output
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 5)}
    log = (sweep_dir / "logs" / "sources" / "ssh.log").read_text()
    assert "host tbslurm: LOST" in log and "not submitted" in log, log
    for name in ("task_002", "task_003", "task_004"):
        status = read_status(sweep_dir / "tasks" / name)
        assert status["status"] == "completed" and status["backend"] == "ssh" and status["attempt"] == 1, status
    assert not (sweep_dir / ".hsm" / "remote-slurm-jobs").exists() and not any(blocked.iterdir())
