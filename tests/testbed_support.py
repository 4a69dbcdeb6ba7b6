"""The project's test bed for backend tests: a session fixture over tests/testbed/start.sh.

Uses the running test bed described by $HSM_TESTBED_DIR/testbed.json (default /tmp/hsm-testbed),
or starts it. Where it cannot come up (a laptop, not root) the tests skip with the reason; under
CI=true a test bed that does not come up is a failure.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from procs import pid_alive

from hsm_snake.engine.leftovers import SLURM_FINAL_STATES

START = Path(__file__).parent / "testbed" / "start.sh"
TB_DIR = Path(os.environ.get("HSM_TESTBED_DIR") or "/tmp/hsm-testbed")
IN_CI = os.environ.get("CI", "").lower() == "true"
SSH_ALIASES = ["hsmtb-lo", "hsmtb-h1", "hsmtb-h2"]
JOB_TIMEOUT = 90  # seconds for a tiny job to reach a final state in sacct


def unavailable(reason: str):
    """Skip on a machine without the test bed, but fail under CI, where it must come up."""
    if IN_CI:
        pytest.fail(f"test bed not available (CI=true, so this is a failure): {reason}", pytrace=False)
    pytest.skip(f"test bed not available: {reason}")


def load_facts() -> dict | None:
    try:
        return json.loads((TB_DIR / "testbed.json").read_text())
    except (OSError, ValueError):
        return None


def still_running(facts: dict) -> bool:
    """The daemons testbed.json names are alive (it may be left over from a killed session)."""
    pids = list(facts["slurm"]["pids"].values()) if facts["slurm"]["up"] else []
    pids += [host["sshd_pid"] for host in facts["ssh"]["hosts"].values() if host["up"]]
    return all(pid_alive(pid) for pid in pids)


class Bed:
    def __init__(self, facts: dict) -> None:
        self.facts = facts
        self.env = {**os.environ, **facts["env"]}

    def need(self, service: str) -> None:
        flags = {
            "slurm": self.facts["slurm"]["up"],
            "pbs": self.facts["pbs"]["up"],
            "badkey": self.facts["ssh"]["badkey"]["up"],
            **{alias: host["up"] for alias, host in self.facts["ssh"]["hosts"].items()},
        }
        if not flags.get(service):
            failures = "; ".join(self.facts["failures"]) or "no failure recorded"
            unavailable(f"{service} did not come up: {failures}")

    def run(self, *cmd: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if check:
            assert proc.returncode == 0, f"{shlex.join(cmd)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        return proc

    # --- Slurm ---
    def sbatch(self, *args: str) -> str:
        out = self.run("sbatch", "--parsable", *args).stdout.strip()
        return out.split(";")[0]

    def sacct(self, job: str) -> list[tuple[str, str, str]]:
        """(JobID, State, ExitCode) of the job's allocations (array tasks included), no steps."""
        out = self.run("sacct", "-n", "-X", "-P", "-o", "JobID,State,ExitCode", "-j", job).stdout
        return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]

    def wait_final(self, job: str, count: int = 1) -> list[tuple[str, str, str]]:
        """Poll sacct until `count` allocations of the job are in a final state."""
        deadline = time.monotonic() + JOB_TIMEOUT
        rows: list = []
        while time.monotonic() < deadline:
            rows = self.sacct(job)
            if len(rows) >= count and all(row[1].partition(" ")[0] in SLURM_FINAL_STATES for row in rows):
                return rows
            time.sleep(0.5)
        raise AssertionError(f"job {job} not final in sacct after {JOB_TIMEOUT} s: {rows}")

    # --- PBS ---
    def qstat_state(self, job: str) -> str | None:
        """The S column of `qstat JOB` (Torque table), or None when qstat does not know the job."""
        proc = self.run("qstat", job, check=False)
        for line in proc.stdout.splitlines():
            fields = line.split()
            if fields and fields[0].split(".")[0] == job:
                return fields[-2]
        return None

    def wait_qstat(self, job: str, states: str, timeout: float = JOB_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.qstat_state(job)
            if state is not None and state in states:
                return state
            time.sleep(0.5)
        raise AssertionError(f"qstat {job}: state {state!r}, wanted one of {states!r}")

    # --- SSH ---
    def ssh(self, alias: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("ssh", "-F", self.facts["ssh"]["config"], alias, command, timeout=30, check=check)


def start_testbed() -> Bed:
    facts = load_facts()
    if facts is not None and facts["ok"] and still_running(facts):
        return Bed(facts)
    if os.geteuid() != 0:
        unavailable(f"{START} needs root (apt-get, network namespaces, /etc/slurm)")
    try:
        proc = subprocess.run(
            ["bash", str(START)],
            env={**os.environ, "HSM_TESTBED_DIR": str(TB_DIR)},
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        unavailable(f"{START} did not finish within 900 s")
    facts = load_facts()
    if facts is None:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        unavailable(f"{START} exited {proc.returncode} and wrote no testbed.json:\n{tail}")
    return Bed(facts)  # parts that failed are skipped (failed under CI) by need()
