"""Pure logic of the remote Slurm executor: what sbatch/squeue answer, the array script, job ids."""

from __future__ import annotations

import subprocess

import pytest

from hsm_snake.executors.remote_cluster import slurm as array
from hsm_snake.executors.ssh.hosts import Ssh
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import read_record
from hsm_snake.layout.status import write_status


@pytest.mark.parametrize(
    ("answer", "job"),
    [("123\n", "123"), ("4567;hsmtb\n", "4567"), ("site banner\n89\n", "89")],
)
def test_sbatch_answers(answer, job):
    assert array.parse_sbatch(answer) == job


@pytest.mark.parametrize("answer", ["", "Submitted batch job 12\n", "12; rm -rf ~\n", "12abc"])
def test_sbatch_answers_that_are_not_a_job_id_are_refused(answer):
    with pytest.raises(array.SubmitError):
        array.parse_sbatch(answer)


def test_squeue_lines():
    assert array.parse_squeue("12_1|RUNNING\n12_2|PENDING\n\n13|COMPLETING\n") == {
        "12_1": "RUNNING",
        "12_2": "PENDING",
        "13": "COMPLETING",
    }


@pytest.mark.parametrize("job", ["12 13", "-1", "12_x", "$(id)", "12;true", ""])
def test_only_job_ids_reach_a_remote_shell(job):
    with pytest.raises(array.SubmitError):
        array.checked_job_ids(["12", job])


def test_sbatch_options_from_rule_resources():
    options = array.sbatch_options(
        {
            "runtime": 90,
            "mem_mb": 2048,
            "cpus_per_task": 4,
            "slurm_partition": "gpu",
            "slurm_account": "lab",
            "gpu": 1,
            "gpu_model": "A100",
            "slurm_extra": "--mail-type=FAIL --exclude=node01",
        }
    )
    assert options == [
        "--time=90",
        "--mem=2048M",
        "--cpus-per-task=4",
        "--partition=gpu",
        "--account=lab",
        "--gpus=A100:1",
        "--mail-type=FAIL",
        "--exclude=node01",
    ]


def test_the_array_script_gives_each_element_its_task(tmp_path):
    script = array.array_script(
        comment="test",
        tasks=["task_001", "task_002"],
        remote_sweep=str(tmp_path / "sweep 'x'"),
        workdir=str(tmp_path),
        runner_path="/r",
        python=["echo"],
        alias="c",
        setup="export SET_UP=yes",
    )
    path = tmp_path / "job.sh"
    path.write_text(script)
    for index, task in ((1, "task_001"), (2, "task_002")):
        done = subprocess.run(
            ["bash", str(path)],
            env={"SLURM_ARRAY_TASK_ID": str(index), "SLURM_ARRAY_JOB_ID": "7", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip() == f"-m hsm_snake.runner {tmp_path}/sweep 'x'/tasks/{task}"
    done = subprocess.run(["bash", str(path)], env={"SLURM_ARRAY_TASK_ID": "3"}, capture_output=True, text=True)
    assert done.returncode == 2 and "no task for array index 3" in done.stderr


def test_v1_remote_of_a_slurm_remote_maps_to_run_remote(tmp_path, monkeypatch):
    from hsm_snake.cli.v1 import translate

    (tmp_path / "hsm.yaml").write_text(
        "distributed:\n  remotes:\n    uzh: {backend: slurm, host: uzh}\n    box: {host: box}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert translate("sweep run -c sweep.yaml --remote uzh --mode array").argv == [
        "run",
        "sweep.yaml",
        "--remote",
        "uzh",
    ]
    assert translate("sweep complete S --remote uzh").argv == ["complete", "S", "--remote", "uzh"]
    assert translate("sweep run -c sweep.yaml --remote box").argv[2:4] == ["--profile", "ssh"]


def test_remote_names_a_slurm_remote_of_the_sweeps_project_config(project):
    import yaml

    config = yaml.safe_load((project.root / "hsm.yaml").read_text())
    config["distributed"] = {"remotes": {"cluster": {"backend": "slurm", "host": "127.0.0.1"}, "box": {"host": "::1"}}}
    (project.root / "hsm.yaml").write_text(yaml.safe_dump(config))
    project.write_sweep({"grid": {"x": [1]}})
    out = project.cli("run", "sweep.yaml", "--remote", "clustr", "--sweep-id", "s", expect=2).output
    assert "--remote: 'clustr' is not a remote with backend: slurm or pbs in this sweep's project config" in out
    assert "hint: did you mean 'cluster'? cluster remotes: cluster" in out
    out = project.cli("complete", "s", "--remote", "box", expect=2).output  # an SSH host, not a Slurm remote
    assert "'box' is not a remote with backend: slurm or pbs" in out and "did you mean" not in out
    status = project.cli("status", "s").output
    assert "1 pending" in status and "no run in progress" in status  # nothing ran, the lock was let go
    assert project.runs() == []


def test_a_running_record_of_the_element_is_not_its_result():
    """note_running writes the element's own job id with status running: the leftovers of a killed
    run must still wait for that element, not take it for back."""
    entry = {"array_id": "41", "alias": "c"}
    assert array.SlurmCluster.came_back({"job_id": "41_2", "status": "completed"}, entry, 2)
    assert array.SlurmCluster.came_back({"job_id": "41_2", "status": "failed"}, entry, 2)
    assert not array.SlurmCluster.came_back({"job_id": "41_2", "status": "running"}, entry, 2)
    assert not array.SlurmCluster.came_back({"job_id": "41_1", "status": "completed"}, entry, 2)


def test_cancel_gives_a_run_with_cluster_remotes_time_to_cancel_over_ssh(tmp_path):
    """`cancel` SIGKILLs a run that has not stopped after its grace; a run with cluster remotes
    scancels/qdels over ssh, waits for the queue and pulls the folders back before it exits, so
    its grace covers that wait (a kill meanwhile left the cancelled tasks unrecorded)."""
    from hsm_snake.engine.cancel import CANCEL_WAIT_S, STOP_GRACE_S, stop_grace_s
    from hsm_snake.layout.records import write_yaml

    paths = SweepPaths(tmp_path / "sweep")
    paths.root.mkdir()
    assert stop_grace_s(paths) == STOP_GRACE_S  # no record yet: a local run's
    write_yaml(paths.project_config, {"project": {"distributed": {"remotes": {"box": {"host": "h"}}}}})
    assert stop_grace_s(paths) == STOP_GRACE_S
    for scheduler in ("slurm", "pbs"):
        remotes = {"box": {"host": "h"}, "hpc": {"host": "login", "backend": scheduler}}
        write_yaml(paths.project_config, {"project": {"distributed": {"remotes": remotes}}})
        assert stop_grace_s(paths) > CANCEL_WAIT_S + 30


def test_an_ended_element_is_not_judged_while_sacct_cannot_be_reached(tmp_path):
    """sacct's ssh call failing after the pull (the login node went away) decides nothing: taken for
    "no record", an OOM kill would be recorded killed and retried without more memory."""
    sweep = SweepPaths(tmp_path / "local" / "sweep_1")
    task = sweep.task("task_001")
    task.dir.mkdir(parents=True)
    running = {"task_id": "task_001", "status": "running", "attempt": 1, "job_id": "7_1", "backend": "slurm"}
    write_status(task.status, running)
    # A port nothing listens on: a real ssh that fails as a dropped login node does (exit 255).
    cluster = array.SlurmCluster(sweep, "c", {"host": "127.0.0.1", "port": 1, "backend": "slurm"}, Ssh(tmp_path))
    assert cluster.sacct(["7_1"]) is None
    assert cluster.record_verdicts([array.Element(task, "7", 1)]) == []
    assert read_record(task.status) == running
    assert "sacct on c did not answer; 1 ended task(s) asked about again" in sweep.source_log("c").read_text()
