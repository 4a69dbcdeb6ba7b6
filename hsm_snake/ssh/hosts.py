"""The SSH pool: hosts from the sweep's project_config.yaml, ssh command lines, health checks.

Every ssh/rsync call uses ``BatchMode=yes`` and ``StrictHostKeyChecking=yes`` (an unknown or
changed host key is refused, never accepted), the user's ~/.ssh/config (or ``ssh -F
$HSM_SSH_CONFIG``), and one shared connection per host (ControlMaster/ControlPersist) with its
socket in a private directory of this run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SSH_CONFIG_ENV = "HSM_SSH_CONFIG"
LOCAL = "local"
HEALTH_TIMEOUT_S = 30
# Printed by the health check: Python version and the remote home (to expand ~ in project_dir).
HEALTH_CODE = "import os, sys, yaml; print(sys.version.split()[0]); print(os.path.expanduser('~'))"


@dataclass
class Host:
    alias: str
    host: str
    port: int | None = None
    user: str | None = None
    ssh_key: str | None = None
    python: list[str] = field(default_factory=lambda: ["python3"])
    project_dir: str = "~/hsm-project"
    slots: int = 1
    running: int = 0
    healthy: bool = True
    reason: str = ""

    @property
    def is_local(self) -> bool:
        return self.alias == LOCAL

    def load(self) -> float:
        return self.running / self.slots if self.slots else 1.0


def python_of(remote: dict[str, Any]) -> list[str]:
    if remote.get("python_path"):
        return [str(remote["python_path"])]
    if remote.get("conda_env"):
        return ["conda", "run", "--no-capture-output", "-n", str(remote["conda_env"]), "python"]
    return ["python3"]


def pool_from_record(record: dict[str, Any], local_python: list[str]) -> list[Host]:
    """The hosts of project_config.yaml ``project.distributed`` (plus this machine if local_slots)."""
    distributed = ((record.get("project") or {}).get("distributed")) or {}
    hosts = []
    for alias, remote in (distributed.get("remotes") or {}).items():
        remote = remote or {}
        if remote.get("enabled") is False:
            continue
        hosts.append(
            Host(
                alias=str(alias),
                host=str(remote.get("host") or alias),
                port=remote.get("port"),
                user=remote.get("user"),
                ssh_key=os.path.expanduser(remote["ssh_key"]) if remote.get("ssh_key") else None,
                python=python_of(remote),
                project_dir=str(remote.get("project_dir") or f"~/hsm-projects/{alias}"),
                slots=max(1, int(remote.get("max_parallel_jobs") or 1)),
            )
        )
    local_slots = int(distributed.get("local_slots") or 0)
    if local_slots > 0:
        hosts.append(Host(alias=LOCAL, host=LOCAL, python=list(local_python), project_dir="", slots=local_slots))
    return hosts


class Ssh:
    """ssh/rsync command lines sharing one master connection per host."""

    def __init__(self, control_dir: Path) -> None:
        self.control_dir = control_dir
        self.config = os.environ.get(SSH_CONFIG_ENV) or None

    def options(self, host: Host) -> list[str]:
        opts = []
        if self.config:
            opts += ["-F", self.config]
        opts += [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self.control_dir}/%C",
            "-o", "ControlPersist=120",
            # A dead host or network is noticed within ~30 s, not at the next TCP timeout.
            "-o", "ServerAliveInterval=10",
            "-o", "ServerAliveCountMax=3",
            "-o", "ConnectTimeout=15",
        ]
        if host.port:
            opts += ["-p", str(host.port)]
        if host.user:
            opts += ["-l", host.user]
        if host.ssh_key:
            opts += ["-i", host.ssh_key, "-o", "IdentitiesOnly=yes"]
        return opts

    def command(self, host: Host, remote_command: str) -> list[str]:
        return ["ssh", *self.options(host), host.host, remote_command]

    def rsync_shell(self, host: Host) -> str:
        """The ``rsync -e`` value: the same ssh options."""
        return shlex.join(["ssh", *self.options(host)])

    def close(self, host: Host) -> None:
        subprocess.run(["ssh", *self.options(host), "-O", "exit", host.host], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=10, check=False)


def explain_ssh_failure(stderr: str, returncode: int) -> str:
    text = stderr.strip()
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text \
            or "No ED25519 host key is known" in text or "host key" in text.lower() and "known" in text.lower():
        return ("host key verification failed: the host's key is not the one in known_hosts (or not known "
                "at all); hsm-snake never accepts unknown keys (StrictHostKeyChecking=yes) — "
                "check the host and add its key with ssh-keyscan/ssh once by hand. ssh said: " + text[-500:])
    if "Permission denied" in text:
        return "authentication failed (BatchMode: no password prompts); ssh said: " + text[-500:]
    if returncode == 255:
        return "connection failed or lost (ssh exit 255)" + (": " + text[-500:] if text else "")
    return f"exit {returncode}: " + (text[-500:] or "no output")


def check(ssh: Ssh, host: Host) -> None:
    """Health check: the host answers and its Python imports yaml. Sets healthy/reason/project_dir."""
    if host.is_local:
        return
    code = shlex.join([*host.python, "-c", HEALTH_CODE])
    try:
        done = subprocess.run(ssh.command(host, code), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=HEALTH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        host.healthy, host.reason = False, f"no answer within {HEALTH_TIMEOUT_S} s"
        return
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or len(lines) < 2:
        host.healthy = False
        if done.returncode in (0, 255):
            host.reason = explain_ssh_failure(done.stderr, done.returncode)
        else:
            host.reason = (f"{shlex.join(host.python)} cannot import yaml there (exit {done.returncode}): "
                           f"{done.stderr.strip()[-300:]}")
        return
    home = lines[1]
    if host.project_dir == "~":
        host.project_dir = home
    elif host.project_dir.startswith("~/"):
        host.project_dir = home + host.project_dir[1:]
    elif not host.project_dir.startswith("/"):
        host.project_dir = f"{home}/{host.project_dir}"
    host.reason = f"python {lines[0]}"
