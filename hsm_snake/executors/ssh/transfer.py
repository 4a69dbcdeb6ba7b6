"""rsync pushes and pulls of the SSH pool (push/pull mode: the host shares no file system; a
``shared_fs: true`` host sees the sweep at the same path and gets none of this).

On a host, under its ``project_dir``:
- ``.hsm-runner/hsm_snake/``: the task runner's packages (standard library + PyYAML only);
- the project folder (the sweep's ``runner.workdir``), without ``sweeps/``;
- ``sweeps/outputs/<sweep_id>/project_config.yaml``: a copy whose ``runner`` paths name the
  host's project folder and Python (the user's files are never rewritten);
- ``sweeps/outputs/<sweep_id>/tasks/<task>/``: pushed before the task, pulled back after it.

The setup goes with rsync, once per host. A task's folder travels inside the one ssh session that
runs it: as a tar on the session's stdin, unpacked before the runner starts, and back as a tar on
its stdout after the runner ends (the runner's own output goes to stderr). rsync pulls a task
folder only when that stream broke (a lost connection).
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

import hsm_snake
from hsm_snake.errors import HsmError
from hsm_snake.executors.common import run_bounded
from hsm_snake.executors.ssh.hosts import Host, Ssh
from hsm_snake.layout.paths import TaskPaths, map_path
from hsm_snake.layout.records import PRIVATE_FILE_MODE, write_yaml

# What a host needs to run ``python -m hsm_snake.runner``: these packages whole, and the top-level
# modules they may import (tests/test_contracts.py checks that the runner imports nothing else).
RUNNER_PACKAGES = ("runner", "layout")
RUNNER_TOP_MODULES = ("__init__.py", "errors.py")
RSYNC_TIMEOUT_S = 3600
# The parts of project_config.yaml the runner reads (hsm_snake/runner/task.py: run_task).
HOST_RECORD_KEYS = ("runner", "retry")


class TransferError(HsmError):
    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


def sweep_dir_under_project(sweep_id: str) -> str:
    """Where a sweep's files go under a host's project_dir."""
    return f"sweeps/outputs/{sweep_id}"


def remote_sweep_dir(host: Host, sweep_id: str) -> str:
    if host.workdir:
        return f"{host.workdir}/{sweep_id}"
    return f"{host.project_dir}/{sweep_dir_under_project(sweep_id)}"


def host_record(record: dict[str, Any], host: Host) -> dict[str, Any]:
    """project_config.yaml as the host must see it: what its runner reads (runner settings, retry
    policy), paths mapped into its project_dir. The rest of hsm.yaml (other hosts, clusters, the
    config's own path) stays here."""
    mapped = copy.deepcopy({key: record[key] for key in HOST_RECORD_KEYS if key in record})
    runner = mapped.setdefault("runner", {})
    workdir = runner.get("workdir")
    script = runner.get("train_script")
    if script and workdir:
        try:
            relative = Path(script).relative_to(workdir)
        except ValueError:
            relative = None
        if relative is not None:
            runner["train_script"] = f"{host.project_dir}/{relative.as_posix()}"
    runner["workdir"] = host.project_dir
    runner["python_command"] = list(host.python)
    return mapped


# v1's default excludes, and hsm-snake's own folders.
DEFAULT_EXCLUDES = (
    "/sweeps/",
    "/.hsm-runner/",
    ".git/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "venv/",
    "*.ckpt",
    "*.pt",
    "wandb/",
)
GIT_TIMEOUT_S = 60


def upload_excludes(workdir: Path, extra: list[str], train_script: str | None) -> list[str]:
    """rsync exclude patterns of the project folder's upload: the defaults, the config's own, and
    what git ignores there (untracked files such as .env or keys never leave this machine) except
    the training script itself."""
    script = None
    if train_script:
        try:
            script = Path(train_script).relative_to(workdir).as_posix()
        except ValueError:
            pass
    ignored = [
        path
        for path in git_ignored(workdir)
        if "\n" not in path and not (script and (script == path or script.startswith(path.rstrip("/") + "/")))
    ]
    return [*DEFAULT_EXCLUDES, *extra, *(f"/{_rsync_literal(path)}" for path in ignored)]


def git_ignored(workdir: Path) -> list[str]:
    """Untracked files and folders git ignores in ``workdir`` (relative; folders end in /); none
    outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(workdir), "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [name for name in done.stdout.decode(errors="surrogateescape").split("\0") if name]


def _rsync_literal(path: str) -> str:
    """``path`` as an rsync pattern matching only itself (wildcard characters escaped)."""
    return "".join("\\" + char if char in "*?[\\" else char for char in path)


def remove_remote_sweep(ssh: Ssh, host: Host, sweep_id: str, timeout_s: float) -> str | None:
    """Delete the host's copy of the sweep (v1's clean-up after a successful run); None when done,
    else why not."""
    done = run_bounded(ssh.command(host, "rm -rf -- " + shlex.quote(remote_sweep_dir(host, sweep_id))), timeout_s)
    if done is None:
        return f"no answer within {timeout_s:g} s"
    return None if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-300:]}"


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def host_settings(host: Host) -> dict[str, Any]:
    """What the runner takes from the remote's own config (see runner.task.host_settings)."""
    threads = {name: str(host.threads) for name in THREAD_VARIABLES} if host.threads else {}
    return {"pre_script": host.setup, "timeout_s": host.walltime_s, "env": threads}


def rsync(
    ssh: Ssh,
    host: Host,
    sources: list[str],
    dest: str,
    *extra: str,
    pull: bool = False,
    timeout: float = RSYNC_TIMEOUT_S,
) -> None:
    args = [f"{host.host}:{src}" for src in sources] + [dest] if pull else [*sources, f"{host.host}:{dest}"]
    command = ["rsync", "-a", "--mkpath", "-e", ssh.rsync_shell(host), *extra, "--", *args]
    done = subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise TransferError(
            f"rsync {'from' if pull else 'to'} {host.alias} failed (exit {done.returncode}): "
            f"{done.stderr.strip()[-800:]}",
            done.returncode,
        )


def push_setup(ssh: Ssh, host: Host, record: dict[str, Any], sweep_id: str, scratch: Path) -> None:
    """Once per host per run: runner modules, project folder, the host's project_config.yaml."""
    package = Path(hsm_snake.__file__).parent
    rsync(
        ssh,
        host,
        [str(package / name) for name in (*RUNNER_TOP_MODULES, *RUNNER_PACKAGES)],
        f"{host.project_dir}/.hsm-runner/hsm_snake/",
        "--exclude=__pycache__/",
    )
    runner = record.get("runner") or {}
    workdir = runner.get("workdir")
    if workdir and Path(workdir).is_dir():
        excludes = scratch / f"excludes.{host.alias}"
        patterns = upload_excludes(Path(workdir), host.rsync_excludes, runner.get("train_script"))
        excludes.write_text("".join(f"{pattern}\n" for pattern in patterns), encoding="utf-8")
        rsync(ssh, host, [str(Path(workdir)) + "/"], f"{host.project_dir}/", f"--exclude-from={excludes}")
    config = scratch / f"project_config.{host.alias}.yaml"
    write_yaml(config, host_record(record, host), mode=PRIVATE_FILE_MODE)
    rsync(ssh, host, [str(config)], f"{remote_sweep_dir(host, sweep_id)}/project_config.yaml")


def remote_task_dir(host: Host, sweep_id: str, task_dir: Path) -> str:
    return f"{remote_sweep_dir(host, sweep_id)}/tasks/{task_dir.name}"


def pack_task(task_dir: Path, archive: IO[bytes]) -> None:
    """The task folder as a tar (its contents, relative names) into ``archive``."""
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for entry in sorted(task_dir.iterdir()):
            tar.add(entry, arcname=entry.name)
    archive.seek(0)


def unpack_task(stream: IO[bytes], task_dir: Path, staging_parent: Path) -> None:
    """Unpack a task folder's tar from ``stream`` over ``task_dir``, as rsync would: every file is
    renamed into place whole, status.yaml and then the completion marker last, so a reader (or a
    kill) never sees a half-written file or a marker before its status. TransferError if the
    stream is cut or not a clean tar."""
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{task_dir.name}.", dir=staging_parent))
    try:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise TransferError(f"the task folder did not come back whole: {exc}", 1) from exc
        task = TaskPaths(task_dir)
        last = [staging / task.status.name, staging / task.marker.name]
        entries = sorted(staging.rglob("*"))
        for folder in (p for p in entries if p.is_dir() and not p.is_symlink()):
            (task_dir / folder.relative_to(staging)).mkdir(parents=True, exist_ok=True)
        files = [p for p in entries if (p.is_symlink() or not p.is_dir()) and p not in last]
        for path in [*files, *(p for p in last if p.exists())]:
            os.replace(path, task_dir / path.relative_to(staging))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pull_task(ssh: Ssh, host: Host, task_dir: Path, remote: str, timeout: float = RSYNC_TIMEOUT_S) -> None:
    """The task folder back by rsync (when the tar stream was cut). ``--safe-links`` drops what
    unpack_task's ``data`` filter refuses: symlinks that are absolute or lead out of the folder."""
    rsync(ssh, host, [remote + "/"], str(task_dir) + "/", "--safe-links", pull=True, timeout=timeout)


def runner_command(
    host: Host, remote_task: str, alias: str, gpu_devices: list[str] | None = None, shared_workdir: str | None = None
) -> str:
    """The remote shell command: a new session (so cancel can kill its process group), whose
    id is printed first; then the runner. Only our own paths are in it, never a parameter.

    Push/pull host: the task folder is unpacked from stdin first and packed to stdout after the
    runner (see the module doc). A shared-fs host runs this machine's hsm_snake package in
    ``shared_workdir``, both as it sees them through ``path_map``."""
    if host.shared_fs:
        pythonpath = map_path(str(Path(hsm_snake.__file__).parent.parent), host.path_map)
        workdir = map_path(shared_workdir or host.project_dir, host.path_map)
    else:
        pythonpath, workdir = f"{host.project_dir}/.hsm-runner", host.project_dir
    inner = shlex.join(
        [
            "env",
            f"PYTHONPATH={pythonpath}",
            "HSM_BACKEND=ssh",
            f"HSM_JOB_ID={alias}",
            f"HSM_HOST_ALIAS={alias}",
            *([f"HSM_GPU_DEVICES={','.join(gpu_devices)}"] if gpu_devices else []),
            *([f"HSM_PATH_MAP={json.dumps(host.path_map)}"] if host.shared_fs and host.path_map else []),
            f"HSM_HOST_SETTINGS={json.dumps(host_settings(host))}",
            *host.python,
            "-m",
            "hsm_snake.runner",
            remote_task,
        ]
    )
    if host.shared_fs:
        script = f'echo "HSM_PGID $$"; exec {inner}'
        return f"cd {shlex.quote(workdir)} && exec setsid -w sh -c {shlex.quote(script)}"
    script = f'echo "HSM_PGID $$"; exec {inner} >&2'
    task = shlex.quote(remote_task)
    return (
        f"mkdir -p {task} && tar -x -f - -C {task} && cd {shlex.quote(workdir)} && "
        f"{{ setsid -w sh -c {shlex.quote(script)}; rc=$?; tar -c -f - -C {task} .; exit $rc; }}"
    )


def local_runner_argv(python: list[str], task_dir: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    package_parent = str(Path(hsm_snake.__file__).parent.parent)
    env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update({"HSM_BACKEND": "ssh", "HSM_JOB_ID": "local"})
    return [*python, "-m", "hsm_snake.runner", str(task_dir)], env
