"""The project's test bed for backend tests: a session fixture over tests/testbed/start.sh.

Uses the running test bed described by $HSM_TESTBED_DIR/testbed.json (default /tmp/hsm-testbed),
or starts it. Where it cannot come up (a laptop, not root) the tests skip with the reason; under
CI=true a test bed that does not come up is a failure.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from background import wait_for
from procs import live_processes, pid_alive

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


# -- an sshd of a test's own ----------------------------------------------------------------
# Lines of the test bed's sshd_config (hsmtb-lo) replaced in the copy for this test's own sshd.
OWN_SSHD = {"Port": "{port}", "HostKey": "{dir}/host_key", "PidFile": "{dir}/sshd.pid"}


def pid_in(pidfile: Path) -> int:
    """The pid a daemon wrote to pidfile, 0 while the file is absent or still empty (sshd
    creates it before it writes the number)."""
    try:
        digits = pidfile.read_text().strip()
    except FileNotFoundError:
        return 0
    return int(digits) if digits.isdigit() else 0


class LoginNode:
    """An sshd of this test (the test bed's own keys and user, another port): a login node of the
    test Slurm that can go away and come back."""

    def __init__(self, tb, root: Path) -> None:
        testbed_config = Path(tb.facts["ssh"]["config"])
        self.dir = root
        root.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host_key")], check=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        lines = (Path(tb.facts["ssh"]["hosts"]["hsmtb-lo"]["sshd_log"]).parent / "sshd_config").read_text().splitlines()
        own = {key: value.format(port=self.port, dir=root) for key, value in OWN_SSHD.items()}

        def own_line(line: str) -> str:
            key = line.split(maxsplit=1)[0] if line.strip() else ""
            return f"{key} {own[key]}" if key in own else line

        self.config = root / "sshd_config"
        self.config.write_text("\n".join(own_line(line) for line in lines) + "\n")
        host_key = " ".join((root / "host_key.pub").read_text().split()[:2])
        (root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_key}\n")
        # The test bed's client settings (user, key, strict host key checking) under Host hsmtb-*,
        # after this host's address and its known_hosts (ssh takes the first value of each key).
        self.client_config = root / "ssh_config"
        self.client_config.write_text(
            f"Host hsmtb-drop\n    HostName 127.0.0.1\n    Port {self.port}\n"
            f'    UserKnownHostsFile "{root / "known_hosts"}"\n\n' + testbed_config.read_text()
        )
        self.pid: int | None = None

    def start(self) -> None:
        subprocess.run(["/usr/sbin/sshd", "-f", str(self.config), "-E", str(self.dir / "sshd.log")], check=True)
        pidfile = self.dir / "sshd.pid"
        self.pid = wait_for(lambda: pid_in(pidfile), 10, "sshd's pid")

        def answers() -> bool:
            argv = ["ssh", "-F", str(self.client_config), "hsmtb-drop", "true"]
            return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0

        wait_for(answers, 30, "ssh to the test's own sshd")

    def stop(self) -> None:
        """The sshd and every connection it serves go (their processes, not the Slurm jobs)."""
        if self.pid is None:
            return
        children: dict[int, list[int]] = {}
        for pid, fields in live_processes():
            children.setdefault(int(fields[1]), []).append(pid)
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        listener, self.pid = self.pid, None
        wait_for(lambda: not pid_alive(listener), 10, "the sshd to go")
        (self.dir / "sshd.pid").unlink(missing_ok=True)
