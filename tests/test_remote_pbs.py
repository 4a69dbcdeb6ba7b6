"""A PBS cluster reached over SSH (``backend: pbs`` remote, ``run --remote ALIAS``) against the test
bed: its loopback sshd hsmtb-lo is the login node, whose qsub/qstat/qdel are Slurm's torque wrappers
over the test bed's Slurm. The project lives in a local folder of its own; its copy on the
"cluster" in another folder, reached only through ssh and rsync. A logging shim in front of ssh
counts the calls each poll makes.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from background import kill_everything, start_run, started, wait_for
from conftest import Project, read_status
from test_remote_slurm import SOMETIMES_FAILS
from test_ssh import ARGV_APP, HOSTILE

from hsm_snake.layout import names

pytestmark = pytest.mark.testbed


@pytest.fixture
def cluster(tb, tmp_path, monkeypatch):
    """A project in a folder with spaces and quotes, whose hsm.yaml names hsmtb-lo as a PBS remote."""
    tb.need("pbs")
    tb.need("hsmtb-lo")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    root = tmp_path / "lab 'proj' é"
    root.mkdir()
    project = Project(root, monkeypatch)
    remote_base = Path(tb.facts["ssh"]["hosts"]["hsmtb-lo"]["project_dir"]) / tmp_path.name
    queue = tb.facts["env"].get("HSM_TB_SLURM_PARTITION", "debug")

    def configure(script: str, env: dict | None = None, **remote):
        project.write_project(
            {
                "paths": {"python_interpreter": sys.executable, "train_script": script},
                "task": {"arg_style": "raw", "output_dir_arg": None, "env": env or {}},
                "distributed": {
                    "remotes": {
                        "tbpbs": {
                            "backend": "pbs",
                            "host": "hsmtb-lo",
                            "project_dir": f"{remote_base}/proj dir",
                            "workdir": f"{remote_base}/scratch runs",
                            "python_path": "python3",
                            "pbs": {"queue": queue, "mem": "200M", "walltime": "00:05:00"},
                            **remote,
                        }
                    }
                },
            }
        )

    project.configure = configure
    project.remote_base = remote_base
    yield project
    shutil.rmtree(remote_base, ignore_errors=True)  # the cluster's copies (the login node is this machine)


def test_hostile_values_run_on_the_pbs_cluster_and_come_back(cluster):
    project = cluster
    (project.root / "app.py").write_text(ARGV_APP)
    project.configure("app.py")
    project.write_sweep({"grid": {f"v{i}": [value] for i, value in enumerate(HOSTILE)}})

    result = project.cli("run", "sweep.yaml", "--remote", "tbpbs")
    assert "1 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    task = sweep_dir / "tasks" / "task_001"
    seen = json.loads((task / "results" / "seen.json").read_text(encoding="utf-8"))
    assert seen == [f"v{i}={value}" for i, value in enumerate(HOSTILE)]
    status = read_status(task)
    assert status["backend"] == "pbs" and status["status"] == "completed", status
    assert names.is_job_id(status["job_id"]) and status["host_alias"] == "tbpbs", status
    assert (task / ".completed").exists()
    assert (project.remote_base / "scratch runs" / sweep_dir.name / "tasks" / "task_001" / "status.yaml").exists()
    assert (project.remote_base / "proj dir" / "app.py").exists()
    (script,) = (sweep_dir / "scripts" / "job_scripts").glob("remote-pbs-*.sh")
    text = script.read_text()
    assert "qsub" in text and "-t 1-1" in text, text
    # No parameter value in the job script: the runner reads them from the task folder.
    assert "two words" not in text and "`id`" not in text


def test_an_array_per_batch_a_failure_keeps_its_logs_and_cause(cluster):
    project = cluster
    (project.root / "fails.py").write_text(SOMETIMES_FAILS)
    project.configure("fails.py")
    project.write_sweep({"paired": [{"p": {"x": [1, 2, 3], "fail": [0, 1, 0]}}]})
    result = project.cli("run", "sweep.yaml", "--remote", "tbpbs", expect=1)
    assert "2 completed" in result.output and "1 failed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    statuses = {name: read_status(sweep_dir / "tasks" / name) for name in ("task_001", "task_002", "task_003")}
    assert {status["backend"] for status in statuses.values()} == {"pbs"}
    assert len({status["job_id"] for status in statuses.values()}) == 3, statuses
    (script,) = (sweep_dir / "scripts" / "job_scripts").glob("remote-pbs-*.sh")
    assert "-t 1-3" in script.read_text()  # the three tasks went out as one qsub array
    failed = statuses["task_002"]
    assert failed["status"] == "failed" and failed["error_category"] == "nonzero_exit", failed
    assert failed["exit_code"] == 3, failed
    assert "giving up on purpose" in (sweep_dir / "tasks" / "task_002" / "stderr.log").read_text()
    assert not (sweep_dir / "tasks" / "task_002" / ".completed").exists()
    assert json.loads((sweep_dir / "tasks" / "task_003" / "metrics.json").read_text()) == {"x": 3}
    source_log = (sweep_dir / "logs" / "sources" / "tbpbs.log").read_text()
    assert "array " in source_log and "task_002" in source_log
    # Each element's own log came back with its folder.
    assert list((sweep_dir / "logs" / "pbs").glob("*.jobid")), list((sweep_dir / "logs").rglob("*"))


def test_cancel_stops_the_pbs_jobs_and_complete_reruns_only_them(cluster):
    project = cluster
    project.configure("echo.py", env={"RUN_LOG": str(project.run_log)})
    project.write_sweep({"grid": {"hold": [0, 1], "x": [1, 2]}})
    proc = start_run(project, "run", "sweep.yaml", "--remote", "tbpbs")
    try:
        wait_for(lambda: {"task_003", "task_004"} <= started(project), 300, "the held tasks to start on the cluster")
        (sweep_dir,) = project.sweep_dirs()
        result = project.cli("cancel", sweep_dir.name)
        assert "stopped the run" in result.output, result.output
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            kill_everything(project, proc)
    for name in ("task_003", "task_004"):
        status = read_status(sweep_dir / "tasks" / name)
        assert status["status"] == "cancelled" and status["backend"] == "pbs", status
    project.release()
    project.cli("complete", sweep_dir.name, "--remote", "tbpbs")
    assert project.completions() == {f"task_00{i}": 1 for i in range(1, 5)}


def test_remote_test_checks_the_pbs_commands_of_a_pbs_remote(cluster):
    project = cluster
    project.configure("app.py")
    result = project.cli("remote", "test", "tbpbs")
    assert "qsub, qstat, qdel" in result.output and "tbpbs is ready" in result.output, result.output
    assert "backend pbs" in project.cli("remote", "list").output
