"""Pure logic of the remote PBS executor: its array script, qsub line, qsub answers and job ids,
the one-ssh-call poll (run here by bash with a stand-in qstat), and a PBS remote's config."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_snake.executors.remote_cluster import pbs
from hsm_snake.executors.remote_cluster.cluster import SubmitError
from hsm_snake.executors.ssh.hosts import Ssh
from hsm_snake.layout.paths import SweepPaths


def test_the_array_script_gives_each_element_its_task_and_logs(tmp_path):
    sweep = tmp_path / "sweep 'x' é"
    (sweep / "logs" / "pbs").mkdir(parents=True)
    text = pbs.array_script(
        name="s-task_001+1",
        options=["-N s-task_001+1", "-l walltime=00:05:00"],
        tasks=[("task_001", "logs/pbs/a"), ("task_002", "logs/pbs/b")],
        remote_sweep=str(sweep),
        project_dir=str(tmp_path),
        python=["echo"],
        alias="c",
        setup="export SET_UP=yes",
    )
    assert "#PBS -l walltime=00:05:00" in text
    path = tmp_path / "job.sh"
    path.write_text(text)
    for index, (task, log) in enumerate((("task_001", "a"), ("task_002", "b")), start=1):
        env = {"PBS_ARRAY_INDEX": str(index), "PBS_JOBID": f"7[{index}]", "PATH": "/usr/bin:/bin"}
        subprocess.run(["bash", str(path)], env=env, check=True)
        out = (sweep / "logs" / "pbs" / f"{log}.out").read_text()
        assert out.strip() == f"-m hsm_snake.runner {sweep}/tasks/{task}"
        assert (sweep / "logs" / "pbs" / f"{log}.jobid").read_text() == f"7[{index}]\n"
    done = subprocess.run(["bash", str(path)], env={"PBS_ARRAY_INDEX": "3"}, capture_output=True, text=True)
    assert done.returncode == 2 and "no task for array index '3'" in done.stderr


@pytest.mark.parametrize(("flavor", "option"), [("torque", "-t"), ("pro", "-J")])
def test_qsub_command_quotes_every_word_and_names_the_logs_relative(flavor, option):
    command = pbs.qsub_command("/scratch/a b/s'1", "scripts/job_scripts/x.sh", 3, flavor, "logs/pbs/arr")
    cd, _, rest = command.partition(" && mkdir -p logs/remote-pbs && ")
    assert shlex.split(cd) == ["cd", "/scratch/a b/s'1"]
    assert shlex.split(rest) == [
        "qsub",
        "-V",
        option,
        "1-3",
        "-o",
        "logs/pbs/arr.out",
        "-e",
        "logs/pbs/arr.err",
        "scripts/job_scripts/x.sh",
    ]


@pytest.mark.parametrize(("answer", "job"), [("123\n", "123"), ("45[].pbs01\n", "45[].pbs01"), ("hi\n89\n", "89")])
def test_qsub_answers(answer, job):
    assert pbs.parse_qsub(answer) == job


@pytest.mark.parametrize("answer", ["", "qsub: job rejected\n", "12; rm -rf ~\n"])
def test_qsub_answers_that_are_not_a_job_id_are_refused(answer):
    with pytest.raises(SubmitError):
        pbs.parse_qsub(answer)


@pytest.mark.parametrize("job", ["12 13", "-1", "$(id)", "12;true", "", "`id`"])
def test_only_job_ids_reach_a_remote_shell(job):
    with pytest.raises(SubmitError):
        pbs.checked_job_ids(["12[].server", job])


QSTAT_TABLE = """#!/bin/sh
printf '%s\\n' "$*" >> "{log}"
cat <<'END'
Job id              Name             Username        Time Use S Queue
------------------- ---------------- --------------- -------- - ---------------
7                   s                root            00:00:00 R debug
9                   s                root            00:00:00 C debug
END
"""


def test_one_call_learns_started_elements_and_asks_qstat(tmp_path, monkeypatch):
    """The poll's shell command, run by bash here against a stand-in qstat: the .jobid files of
    unstarted elements are read, an id that is no job id is ignored, then one qstat answers."""
    remote_sweep = tmp_path / "copy 'x'"
    (remote_sweep / "logs" / "pbs").mkdir(parents=True)
    (remote_sweep / "logs" / "pbs" / "a.jobid").write_text("9\n")
    (remote_sweep / "logs" / "pbs" / "c.jobid").write_text("$(touch pwned)\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "qstat").write_text(QSTAT_TABLE.format(log=tmp_path / "qstat.calls"))
    (bin_dir / "qstat").chmod(0o755)
    sweep = SweepPaths(tmp_path / "local" / "sweep_1")
    cluster = pbs.PbsCluster(sweep, "c", {"host": "c", "python_path": sys.executable}, Ssh(tmp_path))
    cluster.remote_sweep = str(remote_sweep)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def here(command, timeout_s=60):
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, cwd=tmp_path)

    monkeypatch.setattr(cluster, "remote", here)
    items = [
        pbs.element(sweep.task(f"task_00{i}"), "7", i, f"logs/pbs/{log}", 300) for i, log in enumerate("abc", start=1)
    ]
    answer = cluster.poll(items)
    assert answer.ok and answer.get("7").state == "R"
    assert [item.track.job_id for item in items] == ["9", None, None]
    assert not (tmp_path / "pwned").exists() and not (remote_sweep / "pwned").exists()
    # The first call asked about the array only; the next one about the started element too.
    assert (tmp_path / "qstat.calls").read_text().splitlines()[-1].split()[-1:] == ["7"]
    answer = cluster.poll(items)
    assert (tmp_path / "qstat.calls").read_text().splitlines()[-1].split()[-2:] == ["9", "7"]
    assert pbs.PbsCluster.may_have_ended(items[0], answer) is True  # 9 finished (C)
    assert pbs.PbsCluster.may_have_ended(items[1], answer) is False  # not started


def test_a_pbs_remote_gets_its_own_resources_set_up_and_run_options(tmp_path):
    from hsm_snake.config.project import load_project
    from hsm_snake.config.sweep_file import load_sweep
    from hsm_snake.sweep.create import project_record
    from hsm_snake.sweeps import remote_run

    (tmp_path / "hsm.yaml").write_text(
        "pbs: {queue: batch, mem: 1G, modules: [cuda]}\n"
        "distributed:\n  remotes:\n"
        "    hpc: {backend: pbs, host: hpc, pbs: {mem: 4G, pre_script: 'source env.sh', max_array_size: 50}}\n"
        "    old: {backend: pbs, host: old, spec: {walltime: '02:00:00', queue: long, gpus: 1}}\n"
    )
    (tmp_path / "sweep.yaml").write_text("grid: {lr: [1]}\n")
    project = load_project(tmp_path / "hsm.yaml", cwd=tmp_path)
    record = project_record(project, load_sweep(tmp_path / "sweep.yaml"))
    hpc = record["resources"]["pbs@hpc"]
    assert hpc["mem_mb"] == 4096 and hpc["pbs_queue"] == "batch" and hpc["pbs_flavor"] == "torque"
    assert record["runner"]["pre_scripts"]["pbs@hpc"] == "module load cuda\nsource env.sh"
    old = record["resources"]["pbs@old"]
    assert old["runtime"] == 120 and old["pbs_queue"] == "long"  # v1 spec: read into its pbs: block
    assert "gpus ignored" in "\n".join(project.notices)
    assert remote_run(project.data, {}, "hpc") == (
        "remote-pbs",
        ["--hsm-remote-pbs-alias", "hpc", "--hsm-remote-pbs-array-limit", "50"],
    )
    assert remote_run(project.data, {}, "old") == ("remote-pbs", ["--hsm-remote-pbs-alias", "old"])


def test_v1_remote_of_a_pbs_remote_maps_to_run_remote(tmp_path, monkeypatch):
    from hsm_snake.cli.v1 import translate

    (tmp_path / "hsm.yaml").write_text("distributed:\n  remotes:\n    hpc: {backend: pbs, host: hpc}\n")
    monkeypatch.chdir(tmp_path)
    assert translate("sweep run -c sweep.yaml --remote hpc --mode array").argv == [
        "run",
        "sweep.yaml",
        "--remote",
        "hpc",
    ]


def test_the_plugin_is_found_under_its_name():
    import snakemake_executor_plugin_hsm_remote_pbs as plugin
    from hsm_snake.executors.remote_cluster.executor import PbsExecutor

    assert plugin.Executor is PbsExecutor and Path(plugin.__file__).parent.name.endswith("remote_pbs")


def test_ended_elements_of_a_sweep_copy_gone_from_the_cluster_are_recorded_lost(tmp_path, monkeypatch):
    """The base's pull (shared with Slurm): a failed pull whose sweep copy is still there decides
    nothing; once ``test -d`` says the copy is gone, the ended elements are failed (host_lost)
    with their PBS job id, so the run stops waiting for them."""
    from hsm_snake.executors.ssh import transfer
    from hsm_snake.layout.records import read_record

    def failed_rsync(*args, **kwargs):
        raise transfer.TransferError("rsync: connection unexpectedly closed", 12)

    monkeypatch.setattr(transfer, "rsync", failed_rsync)
    sweep = SweepPaths(tmp_path / "local" / "sweep_1")
    task = sweep.task("task_001")
    task.dir.mkdir(parents=True)
    cluster = pbs.PbsCluster(sweep, "c", {"host": "c", "python_path": sys.executable}, Ssh(tmp_path))
    cluster.remote_sweep = str(tmp_path / "copy 'x'")
    (tmp_path / "copy 'x'").mkdir()
    monkeypatch.setattr(
        cluster, "remote", lambda command, timeout_s=60: subprocess.run(["bash", "-c", command], capture_output=True)
    )
    item = pbs.element(task, "7", 1, "logs/remote-pbs/a", 300)
    item.track.job_id = "9"
    assert cluster.settle([item]) is False and not task.status.exists()
    (tmp_path / "copy 'x'").rmdir()
    assert cluster.settle([item]) is True
    status = read_record(task.status)
    assert status["status"] == "failed" and status["error_category"] == "host_lost", status
    assert status["backend"] == "pbs" and status["job_id"] == "9" and status["host_alias"] == "c", status
    assert "is gone" in status["error_summary"] and not task.marker.exists()
