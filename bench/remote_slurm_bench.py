#!/usr/bin/env python
"""Trivial tasks on a Slurm cluster reached over SSH (`run --remote`), next to the same sweep run
on the cluster itself (`run --profile slurm`, as on the login node) and a bare `sbatch --array` of
the same script there (the floor), side by side.

    . /tmp/hsm-testbed/env.sh && python bench/remote_slurm_bench.py --tasks 100

On the test bed the login node is the loopback sshd hsmtb-lo in front of the test Slurm. Counting
pass-throughs first on PATH log every local `ssh` and `rsync` call and, for ssh, which command it
ran on the login node (sbatch, squeue, sacct, scancel, rsync, probe, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import yaml
from run_bench import PYTHON, TRIVIAL_SCRIPT, hsm_snake_command, machine_description, write_project, write_sweep_file
from slurm_bench import hsm_run

LOGIN = "hsmtb-lo"


def counting_path(folder: Path, calls_log: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ssh", "rsync"):
        real = shutil.which(name)
        shim = folder / name
        # One line per call: the tool and its last argument (for ssh: the remote command).
        shim.write_text(
            f'#!/bin/sh\nfor last; do :; done\nprintf "%s\\t%.200s\\n" {name} "$last" >> "{calls_log}"\n'
            f'exec "{real}" "$@"\n'
        )
        shim.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def classify(calls_log: Path) -> Counter:
    counts: Counter = Counter()
    for line in calls_log.read_text().splitlines():
        if not line.strip():
            continue
        tool, _, last = line.partition("\t")
        if tool == "rsync":
            counts["rsync"] += 1
            continue
        words = last.split()
        if "command -v" in last:
            counts["ssh tools check"] += 1
            continue
        what = next((w for w in ("sbatch", "squeue", "sacct", "scancel") if w in words), None)
        if what is None and "exit" in words:
            what = "master exit"
        counts[f"ssh {what or ('probe' if '-c' in words else 'other')}"] += 1
    return counts


def task_span(project: Path) -> float:
    """Seconds from the first task's start to the last task's end (their status.yaml)."""
    statuses = [yaml.safe_load(path.read_text()) for path in project.glob("sweeps/outputs/*/tasks/*/status.yaml")]
    started = min(datetime.fromisoformat(s["started"]) for s in statuses)
    finished = max(datetime.fromisoformat(s["finished"]) for s in statuses)
    return (finished - started).total_seconds()


def bare_array(tasks: int, folder: Path, partition: str, env: dict[str, str]) -> float:
    """The floor: one sbatch --array whose elements run the script, waited for with squeue."""
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
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    while subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True).stdout.strip():
        time.sleep(0.5)
    return time.perf_counter() - start


def on_cluster(folder: Path, tasks: int, partition: str) -> float:
    """The same sweep run where the cluster's commands are (``--profile slurm``), same requests."""
    project = write_project(folder)
    config = yaml.safe_load((project / "hsm.yaml").read_text())
    config["slurm"] = {"partition": partition, "mem": "100M"}
    (project / "hsm.yaml").write_text(yaml.safe_dump(config))
    sweep = write_sweep_file(project / "sweep.yaml", {"i": list(range(tasks))})
    seconds, _ = hsm_run(project, sweep, "slurm", os.environ.copy())
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--partition", default=os.environ.get("HSM_TB_SLURM_PARTITION", "debug"))
    parser.add_argument("--keep", action="store_true", help="Keep the project and its sweep (printed) for a look.")
    args = parser.parse_args(argv)
    config = os.environ.get("HSM_TB_SSH_CONFIG")
    if not config:
        raise SystemExit("start the test bed first: . /tmp/hsm-testbed/env.sh")
    root = Path(tempfile.mkdtemp(prefix="hsm-rbench-"))
    project = root / "project"
    project.mkdir()
    (project / "triv.py").write_text(TRIVIAL_SCRIPT)
    remote_base = Path(os.environ["HSM_TB_SSH_LO_PROJECT_DIR"]) / root.name
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
                            "slurm": {"partition": args.partition, "mem": "100M"},
                        }
                    }
                },
            }
        )
    )
    sweep = write_sweep_file(project / "sweep.yaml", {"i": list(range(args.tasks))})
    queued_before = len(subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.splitlines())
    calls = root / "calls.log"
    env = {**os.environ, "HSM_SSH_CONFIG": config, "PATH": counting_path(root / "bin", calls)}
    start = time.perf_counter()
    done = subprocess.run(
        [*hsm_snake_command(), "run", str(sweep), "--remote", "cluster"], cwd=project, env=env, capture_output=True
    )
    remote_s = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stdout.decode()[-3000:] + done.stderr.decode()[-3000:])
    task_span_s = task_span(project)
    on_cluster_s = on_cluster(root / "on-cluster", args.tasks, args.partition)
    (root / "bare").mkdir()
    floor_s = bare_array(args.tasks, root / "bare", args.partition, os.environ.copy())
    counts = classify(calls)
    result = {
        "tasks": args.tasks,
        "bare sbatch --array (s)": round(floor_s, 1),
        "run --remote (s)": round(remote_s, 1),
        "ratio": round(remote_s / floor_s, 2),
        "run --profile slurm on the cluster (s)": round(on_cluster_s, 1),
        "ratio --remote / --profile slurm": round(remote_s / on_cluster_s, 2),
        "run --remote, first task start to last task end (s)": round(task_span_s, 1),
        "jobs in the queue before the bench (other users)": queued_before,
        "local ssh/rsync calls": dict(sorted(counts.items())),
        "machine": machine_description(),
    }
    print(json.dumps(result, indent=2))
    if args.keep:
        print(f"kept: {project} (its copy on the login node: {remote_base})")
    else:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(remote_base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
