#!/usr/bin/env python
"""Trivial tasks on a Slurm cluster reached over SSH (`run --remote`), next to the same sweep run
on the cluster itself (`run --profile slurm`, as on the login node) and a bare `sbatch --array` of
the same script there (the floor), side by side.

    . /tmp/hsm-testbed/env.sh && python bench/remote_slurm_bench.py --tasks 100 --repeats 2

On the test bed the login node is the loopback sshd hsmtb-lo in front of the test Slurm. Each
round runs the three back to back (--remote, --profile slurm, bare array). Counting pass-throughs
first on PATH log every local ``ssh`` and ``rsync`` call of the --remote run (for ssh: what it ran
on the login node: sbatch, squeue, sacct, rsync's transport, probe, ...) and every sbatch/squeue/
sacct/scontrol call of the on-cluster run. CPU per element is sacct's TotalCPU of each array
element; the local CPU of a run is the user + system time of its whole local process tree. The
figures of every round are printed, then the median and range of each over the rounds.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import yaml
from calls import Call, counting_path, logged_calls
from run_bench import PYTHON, TRIVIAL_SCRIPT, hsm_snake_command, machine_description, write_project, write_sweep_file
from slurm_bench import COUNTED, accounting, hsm_run

import hsm_snake

LOGIN = "hsmtb-lo"


def ssh_purpose(call: Call) -> str:
    """What one local ssh call did on the login node."""
    words = call.arguments.split()
    if "-O" in words:
        return "master control (-O)"
    if "rsync" in words and "--server" in words:
        return "rsync transport"
    if "command -v" in call.arguments:
        return "Slurm tools check"
    if "squeue" in words and "--me" in words:
        return "squeue (poll)"
    tool = next((word for word in words if word in ("sbatch", "sacct", "scancel")), None)
    if tool:
        return tool
    if {"scontrol", "sacctmgr", "squeue"} & set(words) or ("id" in words and "-un" in words):
        return "limits query (id, scontrol, sacctmgr, squeue)"
    if "test" in words and "-d" in words:
        return "sweep copy check"
    return "probe, storage (python -c)"


def rsync_direction(call: Call) -> str:
    """rsync push (local sources, remote destination) or pull."""
    return "rsync push" if ":" in call.arguments.split()[-1] else "rsync pull"


def classify(calls: list[Call]) -> Counter:
    counts: Counter = Counter()
    for call in calls:
        counts[rsync_direction(call) if call.name == "rsync" else f"ssh: {ssh_purpose(call)}"] += 1
    return counts


def task_span(project: Path) -> float:
    """Seconds from the first task's start to the last task's end (their status.yaml)."""
    statuses = [yaml.safe_load(path.read_text()) for path in project.glob("sweeps/outputs/*/tasks/*/status.yaml")]
    started = min(datetime.fromisoformat(s["started"]) for s in statuses)
    finished = max(datetime.fromisoformat(s["finished"]) for s in statuses)
    return (finished - started).total_seconds()


def job_ids(sweeps: Path) -> list[str]:
    """The Slurm job ids the tasks of the sweeps under ``sweeps`` recorded (status.yaml)."""
    return [str(yaml.safe_load(path.read_text())["job_id"]) for path in sweeps.glob("*/tasks/*/status.yaml")]


def local_cpu(run: Callable[[], object]) -> tuple[object, float]:
    """``run()``'s answer and the user + system seconds of the local processes it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    answer = run()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return answer, round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)


def bare_array(tasks: int, folder: Path, partition: str) -> tuple[float, str]:
    """The floor: one sbatch --array whose elements run the script, waited for with squeue every
    0.5 s (``sbatch --wait`` notices the end 13-20 s late); (wall seconds, array id)."""
    folder.mkdir()
    (folder / "triv.py").write_text(TRIVIAL_SCRIPT)
    start = time.perf_counter()
    job = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--array=1-{tasks}",
            f"--partition={partition}",
            "--mem=100M",
            "--output=/dev/null",
            "--wrap",
            f"{shlex.quote(PYTHON)} triv.py i=$SLURM_ARRAY_TASK_ID",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        time.sleep(0.5)
    return time.perf_counter() - start, job


def on_cluster(folder: Path, tasks: int, partition: str) -> dict:
    """The same sweep run where the cluster's commands are (``--profile slurm``), same requests."""
    project = write_project(folder)
    config = yaml.safe_load((project / "hsm.yaml").read_text())
    config["slurm"] = {"partition": partition, "mem": "100M"}
    (project / "hsm.yaml").write_text(yaml.safe_dump(config))
    sweep = write_sweep_file(project / "sweep.yaml", {"i": list(range(tasks))})
    calls_log = folder / "slurm_calls.log"
    env = {**os.environ, "PATH": counting_path(folder / "bin", calls_log, COUNTED)}
    started = time.time()
    (seconds, ids), cpu = local_cpu(lambda: hsm_run(project, sweep, "slurm", env))
    calls = Counter(call.name for call in logged_calls(calls_log) if not call.in_job)
    return {
        "wall_s": round(seconds, 1),
        "local_cpu_s": cpu,
        **accounting(ids, tasks, started, seconds),
        "calls": {name: calls[name] for name in COUNTED},
    }


def write_remote_project(project: Path, remote_base: Path, tasks: int, partition: str) -> Path:
    """A project whose only remote is the test bed's Slurm behind hsmtb-lo; its sweep file."""
    project.mkdir(parents=True)
    (project / "triv.py").write_text(TRIVIAL_SCRIPT)
    (project / "hsm.yaml").write_text(
        yaml.safe_dump(
            {
                "paths": {"python_interpreter": PYTHON, "train_script": "triv.py"},
                "task": {"arg_style": "raw", "output_dir_arg": None},
                "distributed": {
                    "remotes": {
                        "cluster": {
                            "backend": "slurm",
                            "host": LOGIN,
                            "project_dir": str(remote_base),
                            "python_path": PYTHON,
                            "slurm": {"partition": partition, "mem": "100M"},
                        }
                    }
                },
            }
        )
    )
    return write_sweep_file(project / "sweep.yaml", {"i": list(range(tasks))})


def over_ssh(root: Path, tasks: int, partition: str, ssh_config: str) -> dict:
    """``hsm-snake run --remote``: wall, local CPU, the elements' accounting, every ssh/rsync call."""
    project = root / "project"
    sweep = write_remote_project(project, Path(os.environ["HSM_TB_SSH_LO_PROJECT_DIR"]) / root.name, tasks, partition)
    calls_log = root / "calls.log"
    env = {**os.environ, "HSM_SSH_CONFIG": ssh_config, "PATH": counting_path(root / "bin", calls_log, ("ssh", "rsync"))}
    argv = [*hsm_snake_command(), "run", str(sweep), "--remote", "cluster"]
    started = time.time()
    start = time.perf_counter()
    done, cpu = local_cpu(lambda: subprocess.run(argv, cwd=project, env=env, capture_output=True))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stdout.decode()[-3000:] + done.stderr.decode()[-3000:])
    counts = classify(logged_calls(calls_log))
    ssh_calls = sum(count for what, count in counts.items() if what.startswith("ssh: "))
    polls = counts["ssh: squeue (poll)"]
    # What a poll costs: its squeue, the pull of the tasks that left the queue, sacct for the unexplained.
    per_poll = counts["ssh: squeue (poll)"] + counts["rsync pull"] + counts["ssh: sacct"]
    return {
        "wall_s": round(seconds, 1),
        "local_cpu_s": cpu,
        "tasks_first_start_to_last_end_s": round(task_span(project), 1),
        **accounting(job_ids(project / "sweeps" / "outputs"), tasks, started, seconds),
        "calls": dict(sorted(counts.items())),
        "ssh_calls": ssh_calls,
        "ssh_calls_per_task": round(ssh_calls / tasks, 2),
        "polls": polls,
        "ssh_calls_per_poll": round(per_poll / polls, 2) if polls else None,
    }


def with_queue_wait(figures: dict) -> dict:
    """``figures`` (wall and accounting of one run) with the seconds its elements waited in the
    queue: the wall time neither before the first submission, nor between the first element's
    start and the last one's end, nor after it (other users' jobs ahead, on a shared cluster)."""
    parts = ("until_first_submit_s", "first_start_to_last_end_s", "after_last_end_s")
    if all(figures.get(part) is not None for part in parts):
        figures["queue_wait_s"] = round(figures["wall_s"] - sum(figures[part] for part in parts), 1)
    return figures


def one_round(tasks: int, partition: str, ssh_config: str, keep: bool) -> dict:
    root = Path(tempfile.mkdtemp(prefix="hsm-rbench-"))
    load_before = os.getloadavg()[0]
    queued_before = len(subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.splitlines())
    remote = with_queue_wait(over_ssh(root, tasks, partition, ssh_config))
    cluster = with_queue_wait(on_cluster(root / "on-cluster", tasks, partition))
    bare_started = time.time()
    bare_s, bare_id = bare_array(tasks, root / "bare", partition)
    bare = with_queue_wait({"wall_s": round(bare_s, 1), **accounting([bare_id], tasks, bare_started, bare_s)})
    figures = {
        "tasks": tasks,
        "load_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "jobs_in_the_queue_before": queued_before,
        "bare_array": bare,
        "on_cluster": cluster,
        "remote": remote,
        "ratios": {
            "remote / bare wall": ratio(remote["wall_s"], bare["wall_s"]),
            "remote / on-cluster wall": ratio(remote["wall_s"], cluster["wall_s"]),
            "on-cluster / bare wall": ratio(cluster["wall_s"], bare["wall_s"]),
            "remote / bare CPU per element": ratio(remote["cpu_per_element_s"], bare["cpu_per_element_s"]),
            "remote / on-cluster CPU per element": ratio(remote["cpu_per_element_s"], cluster["cpu_per_element_s"]),
            "remote / on-cluster local CPU": ratio(remote["local_cpu_s"], cluster["local_cpu_s"]),
        },
    }
    if keep:
        figures["kept"] = str(root)
    else:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(Path(os.environ["HSM_TB_SSH_LO_PROJECT_DIR"]) / root.name, ignore_errors=True)
    return figures


def ratio(value: float | None, floor: float | None) -> float | None:
    return round(value / floor, 2) if value is not None and floor else None


SUMMARY = (
    ("bare array wall s", ("bare_array", "wall_s")),
    ("on-cluster wall s", ("on_cluster", "wall_s")),
    ("--remote wall s", ("remote", "wall_s")),
    ("--remote / bare wall", ("ratios", "remote / bare wall")),
    ("--remote / on-cluster wall", ("ratios", "remote / on-cluster wall")),
    ("on-cluster / bare wall", ("ratios", "on-cluster / bare wall")),
    ("--remote: tasks' first start to last end s", ("remote", "tasks_first_start_to_last_end_s")),
    ("bare: after last end s", ("bare_array", "after_last_end_s")),
    ("on-cluster: until first submit s", ("on_cluster", "until_first_submit_s")),
    ("on-cluster: after last end s", ("on_cluster", "after_last_end_s")),
    ("--remote: until first submit s", ("remote", "until_first_submit_s")),
    ("--remote: after last end s", ("remote", "after_last_end_s")),
    ("queue wait s: bare", ("bare_array", "queue_wait_s")),
    ("queue wait s: on-cluster", ("on_cluster", "queue_wait_s")),
    ("queue wait s: --remote", ("remote", "queue_wait_s")),
    ("CPU per element s: bare", ("bare_array", "cpu_per_element_s")),
    ("CPU per element s: on-cluster", ("on_cluster", "cpu_per_element_s")),
    ("CPU per element s: --remote", ("remote", "cpu_per_element_s")),
    ("local CPU s: on-cluster run", ("on_cluster", "local_cpu_s")),
    ("local CPU s: --remote run", ("remote", "local_cpu_s")),
    ("--remote ssh calls", ("remote", "ssh_calls")),
    ("--remote ssh calls per task", ("remote", "ssh_calls_per_task")),
    ("--remote polls (squeue)", ("remote", "polls")),
    ("--remote ssh calls per poll", ("remote", "ssh_calls_per_poll")),
)


def summary(rounds: list[dict]) -> dict[str, dict]:
    """Median and range of each figure over the rounds."""
    found = {}
    for label, (part, key) in SUMMARY:
        values = [each[part].get(key) for each in rounds if each[part].get(key) is not None]
        if values:
            found[label] = {"median": round(statistics.median(values), 3), "range": [min(values), max(values)]}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--partition", default=os.environ.get("HSM_TB_SLURM_PARTITION", "debug"))
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the three, back to back (default 2)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument("--keep", action="store_true", help="Keep each round's folders (printed) for a look.")
    args = parser.parse_args(argv)
    ssh_config = os.environ.get("HSM_TB_SSH_CONFIG")
    if not ssh_config:
        raise SystemExit("start the test bed first: . /tmp/hsm-testbed/env.sh")
    # The on-cluster elements import the runner from this checkout: byte-compiled, as a wheel install is.
    compileall.compile_dir(Path(hsm_snake.__file__).parent, quiet=1)
    figures: dict = {"machine": machine_description(), "rounds": []}
    for _ in range(args.repeats):
        figures["rounds"].append(one_round(args.tasks, args.partition, ssh_config, args.keep))
        print(json.dumps(figures["rounds"][-1], indent=1), flush=True)
    figures["summary"] = summary(figures["rounds"])
    print(json.dumps({"machine": figures["machine"], "summary": figures["summary"]}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
