"""The project's test bed (tests/testbed/start.sh) works: real Slurm + accounting, PBS wrappers, sshd hosts.

Uses the running test bed described by $HSM_TESTBED_DIR/testbed.json (default /tmp/hsm-testbed),
or starts it. Where it cannot come up (a laptop, not root) the tests skip with the reason; under
CI=true a test bed that does not come up is a failure.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from testbed_support import SSH_ALIASES, Bed, unavailable

pytestmark = pytest.mark.testbed

# ---------------------------------------------------------------------------------------------
# Slurm through sbatch/sacct


def test_sacct_reports_a_failed_job_and_its_exit_code(tb: Bed, tmp_path: Path):
    tb.need("slurm")
    job = tb.sbatch("-J", "hsmtb-exit3", "-o", str(tmp_path / "out-%j"), "--wrap", "echo about to fail; exit 3")
    [(_, state, exit_code)] = tb.wait_final(job)
    assert (state, exit_code) == ("FAILED", "3:0")
    assert (tmp_path / f"out-{job}").read_text() == "about to fail\n"


def test_a_job_over_its_memory_is_killed_out_of_memory(tb: Bed, tmp_path: Path):
    tb.need("slurm")
    # b"x" * n really touches 1 GB (a bytearray(n) would stay unbacked zero pages); the sleep keeps
    # the process alive past a polling interval where memory is only polled (overmemorykill).
    code = "import time; b = b'x' * (1 << 30); time.sleep(10); print('survived')"
    job = tb.sbatch(
        "-J",
        "hsmtb-oom",
        "--mem=100M",
        "-o",
        str(tmp_path / "out-%j"),
        "--wrap",
        f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}",
    )
    [(_, state, exit_code)] = tb.wait_final(job)
    assert state != "COMPLETED", f"job {job} was not killed: {state} {exit_code}"
    assert "survived" not in (tmp_path / f"out-{job}").read_text()
    mode = tb.facts["slurm"]["mem_enforcement"]
    if mode != "cgroup":
        unavailable(
            f"memory enforcement is {mode!r} here: the job was killed ({state}) but only "
            "cgroup enforcement makes sacct report OUT_OF_MEMORY"
        )
    assert state == "OUT_OF_MEMORY", f"job {job}: {state} {exit_code}"


def test_job_arrays_up_to_max_array_size(tb: Bed, tmp_path: Path):
    tb.need("slurm")
    top = tb.facts["slurm"]["max_array_size"] - 1
    job = tb.sbatch(
        "-J",
        "hsmtb-array",
        f"--array=0-2,{top}",
        "-o",
        str(tmp_path / "out-%a"),
        "--wrap",
        "echo task $SLURM_ARRAY_TASK_ID",
    )
    rows = tb.wait_final(job, count=4)
    assert sorted(row[0] for row in rows) == sorted(f"{job}_{i}" for i in (0, 1, 2, top))
    assert {row[1] for row in rows} == {"COMPLETED"}
    assert (tmp_path / f"out-{top}").read_text() == f"task {top}\n"
    over = tb.run("sbatch", f"--array={top + 1}", "--wrap", "true", check=False)
    assert over.returncode != 0 and "array" in over.stderr.lower()


# ---------------------------------------------------------------------------------------------
# PBS: slurm-wlm-torque's qsub/qstat/qdel over the same cluster


def test_qsub_qstat_run_a_pbs_script(tb: Bed, tmp_path: Path):
    tb.need("pbs")
    script = tmp_path / "job.pbs"
    script.write_text(
        '#!/bin/bash\n#PBS -N hsmtb_pbs\n#PBS -l walltime=00:05:00,nodes=1:ppn=1\necho "PBS_JOBID=$PBS_JOBID"\n'
    )
    out, err = tmp_path / "job.out", tmp_path / "job.err"
    # `#PBS -o/-e` in the script are ignored by these wrappers: qsub -o/-e are honoured.
    job = tb.run("qsub", "-o", str(out), "-e", str(err), str(script)).stdout.strip()
    assert re.fullmatch(r"\d+(\.\S+)?", job), job
    job = job.split(".")[0]
    assert tb.wait_qstat(job, "C") == "C"  # every finished job shows C
    [(_, state, exit_code)] = tb.wait_final(job)
    assert (state, exit_code) == ("COMPLETED", "0:0")
    assert out.read_text() == f"PBS_JOBID={job}\n"
    assert "hsmtb_pbs" in tb.run("qstat", job).stdout


def test_qdel_cancels_a_running_job(tb: Bed, tmp_path: Path):
    tb.need("pbs")
    script = tmp_path / "sleep.pbs"
    script.write_text("#!/bin/bash\n#PBS -N hsmtb_sleep\nsleep 300\n")
    job = tb.run("qsub", "-o", "/dev/null", "-e", "/dev/null", str(script)).stdout.strip().split(".")[0]
    tb.wait_qstat(job, "R")
    tb.run("qdel", job)
    tb.wait_qstat(job, "C", timeout=30)
    [(_, state, _)] = tb.wait_final(job)
    assert state.startswith("CANCELLED")


def test_qstat_of_an_unknown_job_fails(tb: Bed):
    tb.need("pbs")
    proc = tb.run("qstat", "987654321", check=False)
    assert proc.returncode != 0


# ---------------------------------------------------------------------------------------------
# SSH hosts


@pytest.mark.parametrize("alias", SSH_ALIASES)
def test_ssh_host_runs_python(tb: Bed, alias: str):
    tb.need(alias)
    assert tb.ssh(alias, "python3 -c 'print(1)'").stdout == "1\n"
    # The host has its own address: the server side of the connection is the alias's address.
    host = tb.facts["ssh"]["hosts"][alias]
    server = tb.ssh(alias, "echo $SSH_CONNECTION").stdout.split()
    assert server[2:] == [host["addr"], str(host["port"])]


@pytest.mark.parametrize("alias", SSH_ALIASES)
def test_rsync_into_the_hosts_project_dir(tb: Bed, alias: str, tmp_path: Path):
    tb.need(alias)
    project_dir = Path(tb.facts["ssh"]["hosts"][alias]["project_dir"])
    (tmp_path / "payload.txt").write_text(f"for {alias}\n")
    target = f"{alias}:{project_dir}/test_testbed-{os.getpid()}/"
    ssh = f"ssh -F {shlex.quote(tb.facts['ssh']['config'])}"
    tb.run("rsync", "-a", "-e", ssh, f"{tmp_path}/", target)
    copied = project_dir / f"test_testbed-{os.getpid()}"
    try:
        assert (copied / "payload.txt").read_text() == f"for {alias}\n"
    finally:
        tb.ssh(alias, f"rm -rf {shlex.quote(str(copied))}", check=False)


def test_a_wrong_host_key_is_refused(tb: Bed):
    tb.need("badkey")
    proc = tb.ssh(tb.facts["ssh"]["badkey"]["alias"], "true", check=False)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr
