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
from background import kill_everything, start_run, wait_for
from click.testing import CliRunner
from conftest import read_status, remote_name
from test_remote_slurm import cluster  # noqa: F401  (the fixture this module's builds on)
from test_ssh import HOSTILE

from hsm_snake.cli.v1 import hsm
from hsm_snake.executors.remote_cluster import slurm as array

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
    requests are v1's per-remote ``spec:``."""
    tb.need("hsmtb-h1")
    project = cluster
    (project.root / "app.py").write_text(RECORDING_APP)
    partition = tb.facts["env"].get("HSM_TB_SLURM_PARTITION", "debug")
    h1 = {
        "project_dir": f"{tb.facts['ssh']['hosts']['hsmtb-h1']['project_dir']}/{remote_name(tmp_path)}",
        "max_parallel_jobs": 1,
        "python_path": "python3",
    }
    project.configure(
        "app.py",
        env={"RUN_LOG": str(project.run_log)},
        pool={"strategy": "round_robin", "local_slots": 1, "remotes": {"hsmtb-h1": h1}},
        slurm={},
        spec={"partition": partition, "mem": "200M", "walltime": "00:05:00"},
    )
    return project


def running_on_cluster(sweep_dir: Path) -> set[str]:
    """Tasks whose local status.yaml says they run on the cluster."""
    found = set()
    for task in (sweep_dir / "tasks").glob("task_*"):
        try:
            status = read_status(task)
        except FileNotFoundError:
            continue
        if status.get("status") == "running" and status.get("host_alias") == "tbslurm":
            found.add(task.name)
    return found


@contextmanager
def pool_run(project, sleep: float):
    """A run of 4 tasks of ``sleep`` seconds over the pool, in the background; killed at the end if still alive."""
    project.write_sweep({"grid": {"x": list(range(4)), "sleep": [sleep]}})
    proc = start_run(project, "run", "sweep.yaml", "--profile", "ssh")
    try:
        wait_for(lambda: project.sweep_dirs(), 120, "the sweep directory")
        (sweep_dir,) = project.sweep_dirs()
        yield proc, sweep_dir
    finally:
        if proc.poll() is None:
            kill_everything(project, proc)


def test_one_sweep_over_local_slots_an_ssh_host_and_a_cluster(pool):
    """v1's command line of the HQ pattern, ``hsm sweep run --mode distributed``."""
    project = pool
    project.write_sweep(
        {"grid": {"x": list(range(8)), "sleep": [2], **{f"v{i}": [value] for i, value in enumerate(HOSTILE)}}}
    )
    result = CliRunner().invoke(hsm, ["sweep", "run", "-c", "sweep.yaml", "--mode", "distributed"])
    assert result.exit_code == 0 and "8 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 9)}
    where = {}
    for i in range(1, 9):
        task = sweep_dir / "tasks" / f"task_{i:03d}"
        seen = json.loads((task / "results" / "seen.json").read_text(encoding="utf-8"))
        assert seen == [f"x={i - 1}", "sleep=2", *(f"v{n}={value}" for n, value in enumerate(HOSTILE))]
        status = read_status(task)
        assert status["status"] == "completed" and (task / ".completed").exists(), status
        # The pool's tasks say backend ssh and job_id local or the host; the cluster's, slurm and the element.
        where[task.name] = (status["backend"], status["job_id"] if status["backend"] == "ssh" else "tbslurm")
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


def test_status_says_running_on_the_cluster_and_a_killed_run_is_adopted(pool):
    """While an element runs, `status` shows the task running on the cluster (the local record
    written from squeue); kill -9 of the run, then `complete` waits for the cluster's jobs and
    runs nothing twice."""
    project = pool
    with pool_run(project, sleep=25) as (proc, sweep_dir):
        wait_for(lambda: running_on_cluster(sweep_dir), 300, "a task running on the cluster")
        shown = project.cli("status", sweep_dir.name, "--all-status").output
        assert re.search(r"tbslurm: \d+ running", shown), shown
        kill_everything(project, proc)
    assert (sweep_dir / ".hsm" / "remote-slurm-jobs").exists()
    result = project.cli("complete", sweep_dir.name, "--profile", "ssh")
    assert "Slurm job" in result.output and "on tbslurm" in result.output, result.output  # waited for
    assert "4 completed" in result.output, result.output
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 5)}


def test_the_clusters_limits_are_read_on_its_login_node(pool, tmp_path):
    """MaxArraySize and MaxJobCount of the test Slurm (tests/testbed/start.sh: 1001 and Slurm's
    default 10000), asked over ssh with the same queries as for the local Slurm."""
    from hsm_snake.executors.remote_cluster.slurm import SlurmCluster
    from hsm_snake.layout.paths import SweepPaths

    project = pool
    control_dir = Path(tempfile.mkdtemp(prefix="hsm-t-"))  # a socket path under the 108-byte limit
    login = SlurmCluster(SweepPaths(tmp_path / "sweep"), "tbslurm", {"host": "hsmtb-lo"}, control_dir)
    try:
        room, size, notes = login.limits({"max_array_size": 5000})
    finally:
        login.close()
        shutil.rmtree(control_dir)
    assert size == 1000 and any("MaxArraySize 1001" in note for note in notes), notes
    assert room is not None and room.limit == 10000 and 0 <= room.queued < room.limit, room
    assert login.user and project.root.exists()


def test_cancel_stops_the_clusters_elements_and_records_why(pool):
    project = pool
    with pool_run(project, sleep=300) as (proc, sweep_dir):
        wait_for(lambda: (sweep_dir / ".hsm" / "remote-slurm-jobs").exists(), 300, "an array on the cluster")
        submitted = [json.loads(line) for line in (sweep_dir / ".hsm" / "remote-slurm-jobs").read_text().splitlines()]
        on_cluster = {name for entry in submitted for name in entry["tasks"]}
        wait_for(lambda: running_on_cluster(sweep_dir) == on_cluster, 300, "the cluster's elements to run")
        result = project.cli("cancel", sweep_dir.name)
        assert "stopped the run" in result.output, result.output
        proc.communicate(timeout=180)
    for name in on_cluster:
        status = read_status(sweep_dir / "tasks" / name)
        assert status["status"] == "cancelled" and status["backend"] == "slurm", status
        assert array.ELEMENT_ID.match(status["job_id"]), status
    arrays = {entry["array_id"] for entry in submitted}
    queue = subprocess.run(array.SQUEUE_ARGV, capture_output=True, text=True, check=True).stdout
    assert not any(
        state in array.ACTIVE_STATES and job.split("_")[0] in arrays for job, state in array.parse_squeue(queue).items()
    ), queue
    assert "scancel" in (sweep_dir / "logs" / "sources" / "tbslurm.log").read_text()
