"""The SSH pool: hosts from the sweep's project_config.yaml, ssh command lines, health checks.

Every ssh/rsync call uses ``BatchMode=yes`` and ``StrictHostKeyChecking=yes`` (an unknown or
changed host key is refused, never accepted), the user's ~/.ssh/config (or ``ssh -F
$HSM_SSH_CONFIG``), and one shared connection per host (ControlMaster/ControlPersist) with its
socket in a private directory of this run.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsm_snake.engine.backends import CLUSTER_SCHEDULERS
from hsm_snake.executors.common import run_bounded
from hsm_snake.layout import names
from hsm_snake.runner import conda
from hsm_snake.runner.setup import setup_script

SSH_CONFIG_ENV = "HSM_SSH_CONFIG"
LOCAL = names.LOCAL_ALIAS
HEALTH_TIMEOUT_S = 30
DEFAULT_MIN_FREE_GB = 1.0
DEFAULT_HEALTH_INTERVAL_S = 60
# Run by the host's Python with the directory to check as argv[1]; prints one JSON line. Standard
# library only, so that a missing PyYAML is reported rather than crashing the probe.
PROBE_CODE = """
import json, os, shutil, subprocess, sys
d = os.path.abspath(os.path.expanduser(os.path.expandvars(sys.argv[1])))
p = d
while not os.path.isdir(p):
    p = os.path.dirname(p)
try:
    import yaml
    y = getattr(yaml, "__version__", "?")
except Exception as e:
    y = None
def smi(*args):
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
gpus = None
listed = smi("-L")
if listed is not None:
    gpus = {}
    for line in listed.splitlines():
        head, _, name = line.partition(":")
        if head.startswith("GPU ") and head[4:].strip().isdigit():
            gpus[head[4:].strip()] = {"index": int(head[4:]), "name": name.split("(UUID")[0].strip()}
    fields = "index,name,memory.used,memory.total,utilization.gpu"
    for line in (smi("--query-gpu=" + fields, "--format=csv,noheader,nounits") or "").splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == 5 and cells[0] in gpus:
            gpus[cells[0]].update(zip(("mem_used_mb", "mem_total_mb", "util_pct"), cells[2:]))
    gpus = sorted(gpus.values(), key=lambda g: g["index"])
print(json.dumps({"python": sys.version.split()[0], "yaml": y, "dir": d, "free": shutil.disk_usage(p).free,
                  "writable": os.access(p, os.W_OK), "rsync": shutil.which("rsync"),
                  "tar": shutil.which("tar"), "gpus": gpus}))
"""


@dataclass
class Host:
    alias: str
    host: str
    port: int | None = None
    user: str | None = None
    ssh_key: str | None = None
    python: list[str] = field(default_factory=lambda: ["python3"])
    project_dir: str = "~/hsm-project"
    # Where the sweeps' copies go (<workdir>/<sweep id>); None: <project_dir>/sweeps/outputs.
    workdir: str | None = None
    # ssh: runs tasks itself; slurm, pbs: a cluster's login node (run --remote ALIAS, or a pool member).
    backend: str = "ssh"
    slots: int = 1
    shared_fs: bool = False
    # shared_fs only: local path prefix -> the prefix under which this host sees it.
    path_map: dict[str, str] = field(default_factory=dict)
    min_free_gb: float = DEFAULT_MIN_FREE_GB
    # GPU device slots: device id -> tasks it can still take; a task takes gpus_per_task distinct ones.
    gpu_free: dict[str, int] = field(default_factory=dict)
    gpus_per_task: int = 0
    # GPUs per task but no visible_gpus: the devices are what the host's nvidia-smi lists at a check.
    detect_gpus: bool = False
    tasks_per_gpu: int = 1
    # max_parallel_jobs 0/unset: as many tasks as the GPU slots allow.
    slots_from_gpus: bool = False
    # The host's GPUs at the last check (nvidia-smi): index, name, memory and use.
    gpus: list[dict[str, Any]] = field(default_factory=list)
    # Shell set-up before the runner (and the health probe): modules, then pre_script.
    setup: str | None = None
    # The remote's own walltime (seconds; project_config.yaml runner.remote_timeouts_s), else the pool's.
    walltime_s: int | None = None
    threads: int | None = None
    rsync_excludes: list[str] = field(default_factory=list)
    keep_remote_on_success: bool = False
    running: int = 0
    healthy: bool = True
    reason: str = ""

    @property
    def is_local(self) -> bool:
        return self.alias == LOCAL

    def load(self) -> float:
        return self.running / self.slots if self.slots else 1.0

    def has_room(self) -> bool:
        if self.running >= self.slots:
            return False
        return sum(1 for left in self.gpu_free.values() if left > 0) >= self.gpus_per_task

    def take_gpus(self) -> list[str]:
        """gpus_per_task distinct devices, the least shared first (caller holds the pool lock)."""
        chosen = sorted((d for d, left in self.gpu_free.items() if left > 0), key=lambda d: -self.gpu_free[d])
        chosen = chosen[: self.gpus_per_task]
        for device in chosen:
            self.gpu_free[device] -= 1
        return chosen

    def give_back_gpus(self, devices: list[str]) -> None:
        for device in devices:
            self.gpu_free[device] += 1


def python_of(remote: dict[str, Any], default_env: str | None = None) -> list[str]:
    """A remote's Python: its python_path, else its conda_env (default: the project's), else python3."""
    if remote.get("python_path"):
        return [str(remote["python_path"])]
    env = remote.get("conda_env") or default_env
    if env:
        return [*conda.run_prefix(str(env), remote.get("conda_root")), "python"]
    return ["python3"]


def distributed_of(record: dict[str, Any]) -> dict[str, Any]:
    return ((record.get("project") or {}).get("distributed")) or {}


def strategy_of(record: dict[str, Any]) -> str:
    strategy = distributed_of(record).get("strategy") or "round_robin"
    return "least_loaded" if strategy == "capability_based" else strategy


def health_interval_of(record: dict[str, Any]) -> float:
    return float(distributed_of(record).get("health_interval") or DEFAULT_HEALTH_INTERVAL_S)


def gpu_slots(remote: dict[str, Any]) -> tuple[dict[str, int], int]:
    """(device -> shares, GPUs per task) of a remote: visible_gpus x tasks_per_gpu (no visible_gpus:
    none until a health check lists the host's GPUs)."""
    per_task = int(remote.get("gpus") or 0) if isinstance(remote.get("gpus"), int) else 0
    devices = remote.get("visible_gpus") or []
    if not devices or per_task == 0:
        return {}, per_task
    shares = max(1, int(remote.get("tasks_per_gpu") or 1))
    return {str(device): shares for device in devices}, per_task


def host_from_remote(alias: str, remote: dict[str, Any], project: dict[str, Any] | None = None) -> Host:
    """One remote of ``distributed.remotes`` with the pool's and the project's defaults. Its names
    are checked again here: the sweep's copy of the config (read by `cancel` and `complete`) may
    have been edited since hsm.yaml was."""
    names.check_alias(str(alias))
    names.check_host(str(remote.get("host") or alias))
    if remote.get("user"):
        names.check_user(remote["user"])
    project = project or {}
    distributed = project.get("distributed") or {}
    # A cluster's GPUs are Slurm's to hand out (its slurm: gpus), not device slots of ours.
    gpu_free, per_task = gpu_slots(remote) if remote.get("backend", "ssh") == "ssh" else ({}, 0)
    detect = per_task > 0 and remote.get("visible_gpus") is None
    slots = int(remote.get("max_parallel_jobs") or 0)
    slots_from_gpus = slots <= 0
    if slots_from_gpus:
        slots = max(1, sum(gpu_free.values()) // per_task) if gpu_free else 1
    return Host(
        alias=str(alias),
        host=str(remote.get("host") or alias),
        port=remote.get("port"),
        user=remote.get("user"),
        ssh_key=os.path.expanduser(remote["ssh_key"]) if remote.get("ssh_key") else None,
        python=python_of(remote, (project.get("paths") or {}).get("conda_env")),
        project_dir=str(remote.get("project_dir") or f"~/hsm-projects/{alias}"),
        workdir=str(remote["workdir"]) if remote.get("workdir") else None,
        backend=str(remote.get("backend") or "ssh"),
        slots=slots,
        shared_fs=bool(remote.get("shared_fs")),
        path_map={str(local): str(there) for local, there in (remote.get("path_map") or {}).items()},
        min_free_gb=float(remote.get("min_free_gb", distributed.get("min_free_gb", DEFAULT_MIN_FREE_GB))),
        gpu_free=gpu_free,
        gpus_per_task=per_task if gpu_free or detect else 0,
        detect_gpus=detect,
        tasks_per_gpu=max(1, int(remote.get("tasks_per_gpu") or 1)),
        slots_from_gpus=slots_from_gpus,
        setup=setup_script(remote),
        threads=remote.get("cpus_per_task"),
        rsync_excludes=[str(p) for p in (remote.get("rsync_excludes") or distributed.get("rsync_excludes") or [])],
        keep_remote_on_success=bool(
            remote.get("keep_remote_on_success", distributed.get("keep_remote_on_success", False))
        ),
    )


def pool_from_record(record: dict[str, Any], local_python: list[str], clusters: bool = False) -> list[Host]:
    """The hosts of project_config.yaml ``project.distributed`` (plus this machine if local_slots),
    only those of ``distributed.use`` when it is set (v1's ``--remote ALIAS``). ``clusters``: the
    ``backend: slurm``/``pbs`` remotes too (their login nodes, to which the hsm-ssh executor submits)."""
    project = record.get("project") or {}
    distributed = distributed_of(record)
    use = distributed.get("use")
    timeouts = (record.get("runner") or {}).get("remote_timeouts_s") or {}
    backends = ("ssh", *CLUSTER_SCHEDULERS) if clusters else ("ssh",)
    hosts = [
        host_from_remote(str(alias), remote or {}, project)
        for alias, remote in (distributed.get("remotes") or {}).items()
        if (remote or {}).get("enabled") is not False
        and (remote or {}).get("backend", "ssh") in backends
        and (use is None or str(alias) in use)
    ]
    for host in hosts:
        host.walltime_s = timeouts.get(host.alias)
    local_slots = int(distributed.get("local_slots") or 0)
    if local_slots > 0 and (use is None or LOCAL in use):
        hosts.append(Host(alias=LOCAL, host=LOCAL, python=list(local_python), project_dir="", slots=local_slots))
    return hosts


class Ssh:
    """ssh/rsync command lines sharing one master connection per host."""

    def __init__(self, control_dir: Path) -> None:
        self.control_dir = control_dir
        self.config = os.environ.get(SSH_CONFIG_ENV) or None
        self._folder: tempfile.TemporaryDirectory | None = None

    @classmethod
    def private(cls, prefix: str = "hsm-ssh-") -> Ssh:
        """An Ssh whose master sockets go in a new folder only this user can enter (mkdtemp's
        0700), removed by ``discard`` (or at the end of a ``with`` block)."""
        folder = tempfile.TemporaryDirectory(prefix=prefix)
        ssh = cls(Path(folder.name))
        ssh._folder = folder
        return ssh

    def discard(self) -> None:
        """Remove the folder of a ``private`` Ssh (masters still running end on their own)."""
        if self._folder is not None:
            self._folder.cleanup()

    def __enter__(self) -> Ssh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def options(self, host: Host) -> list[str]:
        opts = []
        if self.config:
            opts += ["-F", self.config]
        opts += [
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.control_dir}/%C",
            "-o",
            "ControlPersist=120",
            # A dead host or network is noticed within ~30 s, not at the next TCP timeout.
            "-o",
            "ServerAliveInterval=10",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "ConnectTimeout=15",
        ]
        if host.port:
            opts += ["-p", str(host.port)]
        if host.user:
            opts += ["-l", host.user]
        if host.ssh_key:
            opts += ["-i", host.ssh_key, "-o", "IdentitiesOnly=yes"]
        return opts

    def command(self, host: Host, remote_command: str) -> list[str]:
        return ["ssh", *self.options(host), "--", host.host, remote_command]

    def on(self, host: Host, shell_command: str) -> list[str]:
        """``shell_command`` run on ``host``: over ssh, or by sh for this machine's local slots."""
        return ["sh", "-c", shell_command] if host.is_local else self.command(host, shell_command)

    def stop_group(self, host: Host, pgid: int, timeout_s: float) -> str | None:
        """SIGTERM to process group ``pgid`` on ``host`` (a task's runner and script; the runner
        records ``cancelled``). None when sent or the group is gone, else why it could not be."""
        if host.is_local:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            return None
        if run_bounded(self.command(host, f"kill -TERM -- -{int(pgid)}"), timeout_s) is None:
            return f"ssh to {host.alias} did not answer within {timeout_s:g} s"
        return None

    def rsync_shell(self, host: Host) -> str:
        """The ``rsync -e`` value: the same ssh options."""
        return shlex.join(["ssh", *self.options(host)])

    def close(self, host: Host) -> None:
        subprocess.run(
            ["ssh", *self.options(host), "-O", "exit", "--", host.host],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )


def explain_ssh_failure(stderr: str, returncode: int) -> str:
    text = stderr.strip()
    if (
        "Host key verification failed" in text
        or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text
        or "No ED25519 host key is known" in text
        or "host key" in text.lower()
        and "known" in text.lower()
    ):
        return (
            "host key verification failed: the host's key is not the one in known_hosts (or not known "
            "at all); hsm-snake never accepts unknown keys (StrictHostKeyChecking=yes) — "
            "check the host and add its key with ssh-keyscan/ssh once by hand. ssh said: " + text[-500:]
        )
    if "Permission denied" in text:
        return "authentication failed (BatchMode: no password prompts); ssh said: " + text[-500:]
    if returncode == 255:
        return "connection failed or lost (ssh exit 255)" + (": " + text[-500:] if text else "")
    return f"exit {returncode}: " + (text[-500:] or "no output")


@dataclass
class Probe:
    """What a host's Python reported about itself, or why it could not (error)."""

    error: str = ""
    python: str = ""
    yaml: str | None = None
    directory: str = ""
    free_bytes: int = 0
    writable: bool = False
    rsync: str | None = None
    tar: str | None = None
    gpus: list[dict[str, Any]] | None = None
    """nvidia-smi's GPUs there (None: no working nvidia-smi)."""

    def problems(self, min_free_gb: float, copies_files: bool = True) -> list[str]:
        if self.error:
            return [self.error]
        found = []
        if self.yaml is None:
            found.append(
                f"python {self.python} there cannot import yaml: install PyYAML in it "
                "(python3 -m pip install pyyaml) or set python_path/conda_env to a Python that has it"
            )
        if not self.writable:
            found.append(f"{self.directory} is not writable there")
        if copies_files and not self.rsync:
            found.append("rsync is not installed there (needed to copy tasks; or set shared_fs: true)")
        if copies_files and not self.tar:
            found.append("tar is not installed there (needed to copy tasks; or set shared_fs: true)")
        if self.free_bytes < min_free_gb * 1e9:
            found.append(f"only {self.free_bytes / 1e9:.2f} GB free in {self.directory} (min_free_gb: {min_free_gb:g})")
        return found


def python_name(host: Host) -> str:
    return conda.describe(host.python) or shlex.join(host.python)


def with_setup(host: Host, argv: list[str]) -> list[str]:
    """``argv`` run after the host's set-up (modules, pre_script), which sees it as "$@"."""
    return ["bash", "-c", f'{host.setup}\nexec "$@"', "hsm-setup", *argv] if host.setup else argv


def probe(ssh: Ssh, host: Host, directory: str) -> Probe:
    """Run PROBE_CODE on the host (ssh + its Python, after its set-up) for ``directory``."""
    code = shlex.join(with_setup(host, [*host.python, "-c", PROBE_CODE, directory]))
    try:
        done = subprocess.run(
            ssh.command(host, code),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=HEALTH_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Probe(error=f"no answer within {HEALTH_TIMEOUT_S} s")
    if done.returncode == 255:
        return Probe(error=explain_ssh_failure(done.stderr, done.returncode))
    if conda.MISSING_MARK in done.stderr:
        return Probe(error=done.stderr.strip()[done.stderr.find(conda.MISSING_MARK) :][:1000])
    if done.returncode == 127 or "No such file or directory" in done.stderr and done.returncode != 0:
        return Probe(
            error=f"no Python '{python_name(host)}' there ({done.stderr.strip()[-200:]}): "
            "install Python 3 there or set python_path (or conda_env) of this remote"
        )
    try:
        facts = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return Probe(error=f"{python_name(host)} failed there (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return Probe(
        python=facts["python"],
        yaml=facts["yaml"],
        directory=facts["dir"],
        free_bytes=int(facts["free"]),
        writable=bool(facts["writable"]),
        rsync=facts["rsync"],
        tar=facts["tar"],
        gpus=facts.get("gpus"),
    )


def check(ssh: Ssh, host: Host, shared_dir: str = "") -> None:
    """Health check (ssh, Python + yaml, rsync, disk): sets healthy/reason and the absolute project_dir.
    A shared-fs host is checked in ``shared_dir`` (where its tasks write)."""
    if host.is_local:
        return
    found = probe(ssh, host, shared_dir if host.shared_fs else host.project_dir)
    problems = found.problems(host.min_free_gb, copies_files=not host.shared_fs)
    host.healthy = not problems
    if problems:
        host.reason = "; ".join(problems)
        return
    host.gpus = list(found.gpus or [])
    if host.detect_gpus and not host.gpu_free:
        if not host.gpus:
            host.healthy = False
            host.reason = (
                f"gpus: {host.gpus_per_task} per task, but nvidia-smi lists no GPU there"
                + ("" if found.gpus is not None else " (no nvidia-smi on its PATH after its pre_script)")
                + ": set visible_gpus, or gpus: 0 for CPU tasks"
            )
            return
        host.gpu_free = {str(gpu["index"]): host.tasks_per_gpu for gpu in host.gpus}
        if host.slots_from_gpus:
            host.slots = max(1, sum(host.gpu_free.values()) // host.gpus_per_task)
    if not host.shared_fs:
        host.project_dir = found.directory
    gpus = f", GPUs {','.join(host.gpu_free)}" if host.gpu_free else ""
    host.reason = f"python {found.python}, {found.free_bytes / 1e9:.1f} GB free{gpus}"
