"""The task runner: runs one task of a sweep on whatever host Snakemake put it.

It reads the task's ``params.yaml`` and the sweep's ``project_config.yaml``, builds the argv of
the user's script (no shell ever sees a parameter value), runs it with stdout/stderr going to the
task's log files, records ``status.yaml`` at start and end, extracts metrics, classifies a failure,
and writes the completion marker (the Snakemake target) only after a clean exit.

The workflow calls :func:`run_task` from a ``run:`` block (in Snakemake's own process with
``--force-use-threads``, which saves a Python start per task); ``python -m hsm_snake.runner
TASK_DIR`` runs it as a process of its own, forwarding SIGTERM/SIGINT to the script.

Runs on compute nodes and remote hosts: standard library, PyYAML and the path module only.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hsm_snake.errors import TaskFailedError
from hsm_snake.layout.paths import SweepPaths, TaskPaths, map_path
from hsm_snake.layout.records import (
    RecordError,
    read_record,
    read_yaml,
    tail,
    write_text_atomic,
)
from hsm_snake.layout.status import now_iso, write_status
from hsm_snake.runner import escalation, failures, gpu_slots, memory_limit, parent_death, trackers
from hsm_snake.runner.render import render_override, render_overrides

# Backends whose jobs run in a cgroup of their own, whose memory limit the runner records.
CLUSTER_BACKENDS = ("slurm", "pbs")
# Seconds between SIGTERM and SIGKILL when a task passes its walltime.
KILL_GRACE_S = 10.0
STDERR_TAIL_BYTES = 16384
# Metrics come from the last JSON line of stdout (or regexes) within this tail.
STDOUT_METRICS_TAIL_BYTES = 1 << 20

_settings_cache: dict[Path, tuple[float, dict[str, Any]]] = {}
_settings_lock = threading.Lock()


class TaskFailed(TaskFailedError):
    """The task's script did not finish cleanly; ``status`` has the recorded outcome."""

    def __init__(self, task: str, status: dict[str, Any]) -> None:
        self.task = task
        self.status = status
        super().__init__(f"{task} {status['status']}: {status.get('error_category')}: {status.get('error_summary')}")


@dataclass(frozen=True)
class Launch:
    """What the runner starts: argv, environment, working directory, time limit."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    timeout_s: float | None
    # Whether a set-up shell runs first and must report reaching the script (with_setup).
    checks_start: bool = False


def sweep_record(sweep: SweepPaths) -> dict[str, Any]:
    """The sweep's project_config.yaml (runner settings, retry policy), cached per process."""
    path = sweep.project_config
    mtime = path.stat().st_mtime
    with _settings_lock:
        cached = _settings_cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
    record = read_yaml(path)
    with _settings_lock:
        _settings_cache[path] = (mtime, record)
    return record


def host_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The runner settings as this host sees them.

    An SSH host's own settings (``HSM_HOST_SETTINGS``, set by the SSH executor from the remote's
    config) replace the ssh set-up script, and the time limit when the remote has its own; its
    thread variables go under the user's task.env. On a shared-fs host that mounts the sweep under other prefixes
    (``HSM_PATH_MAP``), the project folder, the script and an interpreter under a mapped prefix
    are mapped."""
    own = json.loads(os.environ.get("HSM_HOST_SETTINGS") or "{}")
    if own:
        timeouts = dict(settings.get("timeout_s") or {})
        if own.get("timeout_s") is not None:
            timeouts["ssh"] = own["timeout_s"]
        settings = {
            **settings,
            "pre_scripts": {**(settings.get("pre_scripts") or {}), "ssh": own.get("pre_script")},
            "timeout_s": timeouts,
            "env": {**own.get("env", {}), **(settings.get("env") or {})},
        }
    path_map = json.loads(os.environ.get("HSM_PATH_MAP") or "{}")
    if not path_map:
        return settings
    mapped = {**settings, "python_command": [map_path(word, path_map) for word in settings["python_command"]]}
    for key in ("workdir", "train_script"):
        if mapped.get(key):
            mapped[key] = map_path(mapped[key], path_map)
    return mapped


def build_argv(settings: dict[str, Any], params: dict[str, Any], task_dir: str, sweep_id: str) -> list[str]:
    """The exact argv of the user's script for one task (``task_dir``: absolute path)."""
    style = settings.get("arg_style", "hydra")
    # A sweep recorded before bool_style existed passed booleans as values.
    bools = settings.get("bool_style", "value")
    lists = settings.get("list_style", "nargs")
    argv = list(settings["python_command"])
    if settings.get("train_script"):
        argv.append(settings["train_script"])
    if settings.get("hydra_run_dir"):
        # First: a hydra.run.dir the user passes (extra_args, a parameter) comes later and wins.
        argv += render_override("hydra.run.dir", task_dir, "hydra")
    argv += list(settings.get("extra_args") or [])
    argv += render_overrides(params, style, bools, lists)
    # v1's order: wandb.group=<sweep id> output.dir=<task folder>.
    if settings.get("wandb_group_arg"):
        argv += render_override(settings["wandb_group_arg"], trackers.wandb_group(settings, sweep_id), style)
    if settings.get("output_dir_arg"):
        argv += render_override(settings["output_dir_arg"], task_dir, style)
    return argv


def build_launch(
    settings: dict[str, Any], params: dict[str, Any], task: TaskPaths, sweep: SweepPaths, backend: str
) -> Launch:
    argv = build_argv(settings, params, str(task.dir.resolve()), sweep.sweep_id)
    env = dict(os.environ)
    # The user's task.env wins over the tracker variables, hsm-snake's own variables win over both.
    env.update(trackers.tracker_env(settings, sweep.sweep_id, task.name, task.dir.resolve()))
    env.update({str(k): str(v) for k, v in (settings.get("env") or {}).items()})
    env.update(
        {
            "HSM_SWEEP_ID": sweep.sweep_id,
            "HSM_SWEEP_DIR": str(sweep.root.resolve()),
            "HSM_TASK_ID": task.name,
            "HSM_TASK_DIR": str(task.dir.resolve()),
            "HSM_RESULTS_DIR": str(task.results.resolve()),
            "HSM_BACKEND": backend,
            "PYTHONUNBUFFERED": "1",
        }
    )
    pre_script = (settings.get("pre_scripts") or {}).get(backend)
    # A job script that ran the set-up before Snakemake (hsm-pbs) says so: not twice.
    if env.pop("HSM_SETUP_DONE", None) == backend:
        pre_script = None
    if pre_script:
        argv = with_setup(pre_script, argv)
    cwd = str(task.dir.resolve()) if settings.get("run_in_task_dir") else settings.get("workdir") or os.getcwd()
    return Launch(argv=argv, env=env, cwd=cwd, timeout_s=None, checks_start=bool(pre_script))


def with_setup(pre_script: str, argv: list[str]) -> list[str]:
    """``argv`` run after the set-up snippet, in one bash.

    The snippet is the only shell part; the script's argv reaches bash as "$@" and is saved
    before the snippet runs, so no parameter value is parsed by a shell and a snippet that
    consumes its arguments (``shift`` loops of module/conda set-up scripts) cannot empty it.
    The blank line ends a trailing ``\\`` continuation. Just before exec the shell writes one
    byte to the pipe ``$HSM_START_FD`` (when the runner passed one; a dry run does not) and closes
    it: a set-up that ends the shell early (``exit 0``, an open here-document) leaves the pipe
    empty and the runner fails the task instead of calling it completed (:func:`_run_script`).
    """
    launcher = (
        '__hsm_argv=("$@"); __hsm_start_fd=$HSM_START_FD; unset HSM_START_FD\n'
        f"{pre_script}\n\n"
        '[ -z "$__hsm_start_fd" ] || { printf s >&"$__hsm_start_fd"; exec {__hsm_start_fd}>&-; }\n'
        'exec "${__hsm_argv[@]}"'
    )
    return ["bash", "-c", launcher, "hsm-task", *argv]


def task_timeout(settings: dict[str, Any], retry: dict[str, Any], task: TaskPaths, backend: str) -> float | None:
    """The walltime the runner enforces (local backend), grown after earlier timeouts of the task."""
    base = (settings.get("timeout_s") or {}).get(backend)
    if base is None:
        return None
    timeouts = escalation.timeout_failures(escalation.failure_history(task))
    return escalation.scaled(base, timeouts, float(retry.get("time_factor", 2)), retry.get("max_walltime_s"))


def assign_gpus(settings: dict[str, Any], backend: str) -> tuple[str | None, gpu_slots.HeldSlots | None]:
    """The task's CUDA_VISIBLE_DEVICES (None: left as the environment has it) and the slots held for it.

    Devices an executor assigned (``HSM_GPU_DEVICES``, the SSH backend) are used as they are. On
    the local backend with devices configured or detected, a task asking for k GPUs holds a slot on
    k distinct devices, and a task asking for none sees none (an empty CUDA_VISIBLE_DEVICES).
    Schedulers (Slurm, PBS) set the variable themselves.
    """
    assigned = os.environ.get("HSM_GPU_DEVICES")
    if assigned is not None:
        return assigned, None
    gpus = settings.get("gpus") or {}
    if backend != "local" or not gpus.get("visible"):
        return None, None
    if not gpus.get("per_task"):
        return "", None
    held = gpu_slots.acquire(list(gpus["visible"]), int(gpus["tasks_per_gpu"]), int(gpus["per_task"]))
    return ",".join(str(device) for device in held.devices), held


def detect_backend() -> tuple[str, str | None]:
    """(backend, scheduler job id) of the environment this runner runs in."""
    # A job script that names its backend wins: PBS jobs of Slurm's torque wrappers are Slurm
    # jobs underneath (SLURM_JOB_ID is set), and hsm-pbs's scripts export HSM_BACKEND=pbs and
    # HSM_JOB_ID=$PBS_JOBID.
    if os.environ.get("HSM_BACKEND") and os.environ.get("HSM_JOB_ID"):
        return os.environ["HSM_BACKEND"], os.environ["HSM_JOB_ID"]
    if os.environ.get("SLURM_JOB_ID"):
        job = os.environ["SLURM_JOB_ID"]
        array_task = os.environ.get("SLURM_ARRAY_TASK_ID")
        array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
        if array_job and array_task:
            job = f"{array_job}_{array_task}"
        return "slurm", job
    if os.environ.get("PBS_JOBID"):
        return "pbs", os.environ["PBS_JOBID"]
    return os.environ.get("HSM_BACKEND", "local"), os.environ.get("HSM_JOB_ID")


def previous_status(task: TaskPaths) -> dict[str, Any]:
    try:
        return read_record(task.status)
    except (FileNotFoundError, RecordError):
        return {}


def keep_previous_attempt(task: TaskPaths, attempt: int) -> None:
    """Move the logs and status of an earlier attempt to ``attempts/<n>/`` (nothing is lost)."""
    files = [p for p in (task.stdout, task.stderr, task.status) if p.exists()]
    if not files:
        return
    target = task.attempts / str(attempt)
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        if path == task.status:
            shutil.copy2(path, target / path.name)
        else:
            os.replace(path, target / path.name)


def last_json_object(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def extract_metrics(task: TaskPaths, stdout_tail: str, regexes: dict[str, str]) -> dict[str, Any] | None:
    """metrics.json written by the script wins; else the last JSON line of stdout; else regexes."""
    if task.metrics.exists():
        try:
            value = json.loads(task.metrics.read_text(encoding="utf-8"))
            return value if isinstance(value, dict) else {"value": value}
        except (ValueError, UnicodeDecodeError):
            return None
    metrics = last_json_object(stdout_tail)
    if metrics is None and regexes:
        metrics = {}
        for name, pattern in regexes.items():
            found = re.findall(pattern, stdout_tail)
            if found:
                metrics[name] = _number_or_text(found[-1])
        metrics = metrics or None
    if metrics is not None:
        # Not fsynced: the metrics also go into the (durable) final status.yaml.
        write_text_atomic(task.metrics, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", durable=False)
    return metrics


def _number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _run_child(launch: Launch, task: TaskPaths) -> tuple[int, bool, bool]:
    """Run the script; return (returncode, timed_out, started). Negative returncode = signal.

    ``started`` is False only when a set-up shell (:func:`with_setup`) ended without reaching
    the script. A runner in a process of its own (an SSH host, local_slots) starts the script in
    a process group of its own and signals that whole group, so that a walltime or a cancel also
    stops what the script started (data loaders, a shell's children). In a Snakemake worker
    thread the script stays in Snakemake's group, where Ctrl-C of the run reaches it.
    """
    own_group = threading.current_thread() is threading.main_thread()
    env, report_fds = launch.env, ()
    if launch.checks_start:
        read_end, write_end = os.pipe()
        env, report_fds = {**env, "HSM_START_FD": str(write_end)}, (write_end,)
    try:
        with open(task.stdout, "wb") as out, open(task.stderr, "wb") as err:
            child = subprocess.Popen(
                parent_death.with_parent_death_signal(launch.argv, launch.cwd, env),
                cwd=launch.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=report_fds,
                process_group=0 if own_group else None,
            )
    except BaseException:
        if launch.checks_start:
            os.close(read_end)
        raise
    finally:
        for fd in report_fds:
            os.close(fd)
    signal_script = _group_signaller(child) if own_group else child.send_signal
    restore = _forward_signals_to(signal_script) if own_group else (lambda: None)
    try:
        try:
            returncode, timed_out = wait_for_exit(child, launch.timeout_s), False
        except subprocess.TimeoutExpired:
            signal_script(signal.SIGTERM)
            try:
                wait_for_exit(child, KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                signal_script(signal.SIGKILL)
                child.wait()
            if own_group:
                signal_script(signal.SIGKILL)  # whatever of the group outlived the script
            returncode, timed_out = child.returncode, True
    finally:
        restore()
    return returncode, timed_out, _reported_start(read_end) if launch.checks_start else True


def _reported_start(read_end: int) -> bool:
    # Non-blocking: a process the set-up left in the background may still hold the write end.
    os.set_blocking(read_end, False)
    try:
        return os.read(read_end, 1) == b"s"
    except BlockingIOError:
        return False
    finally:
        os.close(read_end)


def wait_for_exit(child: subprocess.Popen, timeout_s: float | None) -> int:
    """``child.wait(timeout_s)`` woken by the exit itself. Popen.wait with a timeout polls, sleeping
    up to 50 ms between polls, which added ~25 ms to every task that has a walltime; a pidfd
    (Linux ≥ 5.3) becomes readable the moment the process exits."""
    if timeout_s is None or child.returncode is not None:  # reaped: its pid may be another's now
        return child.wait()
    try:
        pidfd = os.pidfd_open(child.pid)
    except (AttributeError, OSError):
        return child.wait(timeout=timeout_s)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0, math.ceil(timeout_s * 1000))):
            raise subprocess.TimeoutExpired(child.args, timeout_s)
    finally:
        os.close(pidfd)
    return child.wait()


def _group_signaller(child: subprocess.Popen) -> Any:
    def send(signum: int) -> None:
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    return send


def _forward_signals_to(send: Any) -> Any:
    """Pass SIGTERM/SIGINT on to the script's group and let it decide (main thread only: a
    Snakemake worker thread cannot set handlers)."""
    previous = {}

    def forward(signum: int, _frame: Any) -> None:
        send(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, forward)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def run_task(task_dir: str | Path) -> dict[str, Any]:
    """Run one task to the end and return its final status; raise TaskFailed unless it completed."""
    task = TaskPaths(Path(task_dir))
    # Resolved: Snakemake passes a relative task dir, and the sweep id is the folder's name.
    sweep = SweepPaths(task.dir.resolve().parent.parent)
    backend, job_id = detect_backend()
    previous = previous_status(task)
    attempt = int(previous.get("attempt") or 0) + 1
    keep_previous_attempt(task, attempt - 1)
    task.marker.unlink(missing_ok=True)
    task.results.mkdir(parents=True, exist_ok=True)

    record = sweep_record(sweep)
    settings = host_settings(record["runner"])
    params = read_yaml(task.params)
    launch = build_launch(settings, params or {}, task, sweep, backend)
    launch = replace(launch, timeout_s=task_timeout(settings, record.get("retry") or {}, task, backend))
    if settings.get("wandb") is not None:
        (task.dir / "wandb").mkdir(exist_ok=True)
    held = devices = launch_error = None
    if params is None:
        launch_error = failures.Failure(
            "failed",
            failures.LAUNCH_ERROR,
            f"{task.params} is empty (a machine crash while the sweep was created?); "
            "`hsm-snake complete` rewrites it from task_mapping.yaml",
        )
    else:
        try:
            devices, held = assign_gpus(settings, backend)
        except (gpu_slots.NoFreeSlots, gpu_slots.UnsafeSlotDir) as exc:
            launch_error = failures.Failure("failed", failures.LAUNCH_ERROR, str(exc))
    if devices is not None:
        launch = replace(launch, env={**launch.env, "CUDA_VISIBLE_DEVICES": devices})
    try:
        return _run_and_record(task, launch, backend, job_id, attempt, devices, launch_error, settings)
    finally:
        if held is not None:
            held.release()


def _run_and_record(
    task: TaskPaths,
    launch: Launch,
    backend: str,
    job_id: str | None,
    attempt: int,
    devices: str | None,
    launch_error: failures.Failure | None,
    settings: dict[str, Any],
) -> dict[str, Any]:
    started = time.time()
    status: dict[str, Any] = {
        "status": "running",
        "task_id": task.name,
        "attempt": attempt,
        "started": now_iso(),
        "finished": None,
        "duration_s": None,
        "exit_code": None,
        "signal": None,
        "host": socket.gethostname(),
        # The pool's name for the host (the SSH executor's remote alias): what `status` groups by.
        "host_alias": os.environ.get("HSM_HOST_ALIAS"),
        "pid": os.getpid(),
        "backend": backend,
        "job_id": job_id,
        "error_category": None,
        "error_summary": None,
        "command": launch.argv,
        "cuda_visible_devices": devices,
        "tracker_url": None,
    }
    cgroup = memory_limit.own_memory_cgroup() if backend in CLUSTER_BACKENDS else None
    if cgroup is not None and (limit_mb := cgroup.limit_mb()) is not None:
        status["mem_limit_mb"] = limit_mb
    oom_kills = cgroup.oom_kills() if cgroup is not None else 0
    # Not fsynced: soon replaced by the final status (one disk flush per task, not three).
    write_status(task.status, status, durable=False)

    if launch_error is not None:
        returncode, timed_out, failure = None, False, launch_error
    else:
        returncode, timed_out, failure = _run_script(launch, task)
    # Each log's tail is read once: for the failure's cause, the tracker URL and the metrics.
    stderr_tail = tail(task.stderr, STDERR_TAIL_BYTES)
    if failure is None and (returncode != 0 or timed_out):
        failure = failures.classify(
            returncode, timed_out=timed_out, timeout_s=launch.timeout_s, stderr_tail=stderr_tail
        )
        # PBS tells no out-of-memory kill (Slurm's sacct pass does): the job's cgroup does.
        if backend == "pbs" and failure.category == failures.KILLED and cgroup and cgroup.oom_kills() > oom_kills:
            failure = failures.out_of_memory_kill(status.get("mem_limit_mb"))
    metrics_from_stdout = failure is None and not task.metrics.exists()
    stdout_tail = tail(task.stdout, STDOUT_METRICS_TAIL_BYTES if metrics_from_stdout else STDERR_TAIL_BYTES)
    status.update(
        finished=now_iso(),
        duration_s=round(time.time() - started, 3),
        exit_code=returncode if returncode is not None and returncode >= 0 else None,
        signal=failures.signal_name(-returncode) if returncode is not None and returncode < 0 else None,
        tracker_url=trackers.find_run_url(stdout_tail[-STDERR_TAIL_BYTES:], stderr_tail)
        or _tracker_url_from_files(settings, task, launch, started),
    )
    if failure is None:
        metrics = extract_metrics(task, stdout_tail, settings.get("metrics_regex") or {})
        status.update(status="completed", metrics=metrics)
        if metrics is None and task.metrics.exists():
            status["metrics_error"] = f"{task.metrics} is not a JSON object (half-written?): no metrics recorded"
        write_status(task.status, status, durable=final_status_durable(backend))
        # Last: the marker is what makes the task count as done. Creating an empty file is atomic.
        task.marker.touch()
        return status
    status.update(status=failure.status, error_category=failure.category, error_summary=failure.summary)
    write_status(task.status, status, durable=final_status_durable(backend))
    raise TaskFailed(task.name, status)


def final_status_durable(backend: str) -> bool:
    """Whether the final status is fsynced: on a cluster node or SSH host, which can die while the
    file system holding the sweep lives on; not on the local backend, where a crash takes the
    page cache with it and the results the script just wrote (never fsynced) go with it, so a
    flushed status could only vouch for results that are gone (docs/design.md, "State files")."""
    return backend != "local"


def _tracker_url_from_files(settings: dict[str, Any], task: TaskPaths, launch: Launch, started: float) -> str | None:
    if settings.get("wandb") is None and settings.get("mlflow") is None:
        return None
    return trackers.find_run_url_in_files(task.dir.resolve(), launch.env, launch.cwd, started)


def _run_script(launch: Launch, task: TaskPaths) -> tuple[int | None, bool, failures.Failure | None]:
    """Run the script; (returncode, timed_out, a launch failure or None)."""
    try:
        returncode, timed_out, started = _run_child(launch, task)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument or the environment
        summary = f"could not start {launch.argv[0]!r}: {exc}"
        return None, False, failures.Failure("failed", failures.LAUNCH_ERROR, summary)
    if not started and returncode == 0:
        summary = (
            "the set-up (pre_script / modules of hsm.yaml) ended without starting the script: "
            "does it call `exit`, or leave a here-document or quote open?"
        )
        return returncode, timed_out, failures.Failure("failed", failures.LAUNCH_ERROR, summary)
    return returncode, timed_out, None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hsm_snake.runner TASK_DIR", file=sys.stderr)
        return 2
    try:
        run_task(args[0])
    except TaskFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0
