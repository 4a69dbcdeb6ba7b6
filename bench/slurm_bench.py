#!/usr/bin/env python
"""Many trivial tasks on Slurm: submissions, status queries and wall time against the local profile.

    . /tmp/hsm-testbed/env.sh && python bench/slurm_bench.py            # 1,000 tasks on the test cluster
    python bench/slurm_bench.py --tasks 100 --partition debug            # any Slurm you can submit to
    python bench/slurm_bench.py --tasks 10000 --submit-only              # submissions of 10,000 held tasks

The same sweep (trivial Python tasks) runs with `--profile local` (2 at a time) and with
`--profile slurm`. Counting pass-throughs first on the Slurm run's PATH log every `sbatch`,
`squeue`, `sacct` and `scontrol` call (hsm-snake's and the Slurm plugin's) and run the real
command. hsm-snake's own time is the run's wall time minus the life of its Snakemake processes
(from logs/engine.log and logs/sweep.log). See bench/README.md for the latest figures.

``--submit-only`` submits every task held (``sbatch --hold``), counts the sbatch calls and the
time until all are queued, then cancels the sweep (``hsm-snake cancel``): submission at sizes
the test node could not run in a session.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import yaml
from run_bench import Workspace, hsm_snake_command, machine_description, write_project, write_sweep_file

from hsm_snake.engine.leftovers import slurm_job_ids
from hsm_snake.layout.paths import SweepPaths

COUNTED = ("sbatch", "squeue", "sacct", "scontrol")


def counting_path(folder: Path, calls_log: Path) -> str:
    """A PATH whose first folder holds pass-throughs that log each call of a Slurm command."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in COUNTED:
        real = shutil.which(name)
        if real is None:
            raise SystemExit(f"{name} not found: start the test bed (. /tmp/hsm-testbed/env.sh) or load Slurm")
        shim = folder / name
        # Calls made inside a job (the Snakemake that runs each array element) are logged apart.
        shim.write_text(f'#!/bin/sh\necho "{name}${{SLURM_JOB_ID:+_in_jobs}}" >> "{calls_log}"\nexec "{real}" "$@"\n')
        shim.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"exit {done.returncode}: {' '.join(argv)}\n{done.stderr[-3000:]}")
    return seconds


def engine_seconds(sweep_dir: Path) -> float:
    """How long the run's Snakemake processes lived: engine.log start stamps to sweep.log end stamps."""
    starts = [
        datetime.fromisoformat(line.split()[1])
        for line in (sweep_dir / "logs" / "engine.log").read_text().splitlines()
        if line.startswith("=== ")
    ]
    ends = [
        datetime.fromisoformat(line.split()[0])
        for line in (sweep_dir / "logs" / "sweep.log").read_text().splitlines()
        if " ended (Snakemake exit" in line
    ]
    return sum((end - start).total_seconds() for start, end in zip(starts, ends, strict=True))


def only_sweep(project: Path, sweep_id: str) -> Path:
    path = project / "sweeps" / "outputs" / sweep_id
    if not path.is_dir():
        raise SystemExit(f"no sweep directory {path}")
    return path


def queued_elements(sweep_dir: Path) -> int:
    """Array elements (and single jobs) of the sweep in the queue, by the ids sbatch answered."""
    job_ids = slurm_job_ids(SweepPaths(sweep_dir))
    if not job_ids:
        return 0
    done = subprocess.run(
        ["squeue", "-h", "-r", "-j", ",".join(sorted(job_ids)), "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return len(done.stdout.split())


def submit_only(project: Path, sweep_file: Path, env: dict[str, str], args: argparse.Namespace) -> dict:
    """Submit every task held, time it until all are queued, then cancel the sweep."""
    start = time.perf_counter()
    run = subprocess.Popen(
        [*hsm_snake_command(), "run", str(sweep_file), "--sweep-id", "held", "--profile", "slurm"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sweep_dir = project / "sweeps" / "outputs" / "held"
    try:
        while queued_elements(sweep_dir) < args.tasks:
            if run.poll() is not None:
                raise SystemExit(
                    f"the run ended (exit {run.returncode}) before every task was queued:\n{run.stderr.read()[-3000:]}"
                )
            time.sleep(1)
        submitted_s = time.perf_counter() - start
    finally:
        subprocess.run(
            [*hsm_snake_command(), "cancel", "held"],
            cwd=project,
            env=env,
            capture_output=True,
            timeout=600,
            check=False,
        )
        run.wait(timeout=600)
    return {
        "submitted_seconds": round(submitted_s, 1),
        "kept_sbatch_calls": len(list((sweep_dir / "scripts" / "job_scripts").glob("sbatch-*.sh"))),
        "left_in_queue_after_cancel": queued_elements(sweep_dir),
    }


def run_everything(
    project: Path, sweep_file: Path, env: dict[str, str], calls_log: Path, args: argparse.Namespace
) -> dict:
    """The sweep with the local profile, then with the Slurm one: calls, wall times, own overhead."""
    local_s = timed([*hsm_snake_command(), "run", str(sweep_file), "--sweep-id", "on_local"], project, env)
    env = {**env, "PATH": counting_path(calls_log.parent / "counting_bin", calls_log)}
    slurm_s = timed(
        [*hsm_snake_command(), "run", str(sweep_file), "--sweep-id", "on_slurm", "--profile", "slurm"], project, env
    )
    sweep_dir = only_sweep(project, "on_slurm")
    calls = Counter(calls_log.read_text().split())
    statuses = [yaml.safe_load(p.read_text()) for p in sorted((sweep_dir / "tasks").glob("task_*/status.yaml"))]
    return {
        "machine": machine_description(),
        "tasks": args.tasks,
        "completed_on_slurm": sum(1 for s in statuses if s.get("status") == "completed"),
        "array_jobs": len({str(s.get("job_id", "")).split("_")[0] for s in statuses}),
        "kept_sbatch_calls": len(list((sweep_dir / "scripts" / "job_scripts").glob("sbatch-*.sh"))),
        "calls_by_the_run": {name: calls.get(name, 0) for name in COUNTED},
        "calls_in_jobs": {name: calls.get(f"{name}_in_jobs", 0) for name in COUNTED},
        "local_seconds": round(local_s, 1),
        "slurm_seconds": round(slurm_s, 1),
        "slurm_to_local": round(slurm_s / local_s, 2),
        # engine.log and sweep.log stamp whole seconds: this is ±1 s.
        "hsm_snake_own_seconds": round(max(0.0, slurm_s - engine_seconds(sweep_dir))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks in the sweep (default 1000)")
    parser.add_argument("--partition", default=os.environ.get("HSM_TB_SLURM_PARTITION", "debug"))
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument(
        "--submit-only",
        action="store_true",
        help="submit every task held, count sbatch calls, then cancel (no task runs)",
    )
    args = parser.parse_args(argv)

    ws = Workspace()
    try:
        project = write_project(ws.fresh_folder("slurm_project"), max_parallel=2)
        config = yaml.safe_load((project / "hsm.yaml").read_text())
        config["slurm"] = {
            "partition": args.partition,
            "walltime": "00:10:00",
            "mem": "1000M",
            **({"extra_directives": ["--hold"]} if args.submit_only else {"max_array_size": 1000}),
        }
        (project / "hsm.yaml").write_text(yaml.safe_dump(config))
        sweep_file = write_sweep_file(project / "sweep.yaml", {"i": list(range(args.tasks))})
        calls_log = ws.root / "slurm_calls.log"
        env = dict(os.environ)
        if args.submit_only:
            env["PATH"] = counting_path(ws.root / "counting_bin", calls_log)
            figures = {
                "machine": machine_description(),
                "tasks": args.tasks,
                **submit_only(project, sweep_file, env, args),
            }
            calls = Counter(calls_log.read_text().split())
            figures["calls_by_the_run"] = {name: calls.get(name, 0) for name in COUNTED}
        else:
            figures = run_everything(project, sweep_file, env, calls_log, args)
    finally:
        ws.remove()
    print(json.dumps(figures, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False))
    if args.submit_only:
        return 0 if figures["left_in_queue_after_cancel"] == 0 else 1
    return 0 if figures["completed_on_slurm"] == args.tasks else 1


if __name__ == "__main__":
    sys.exit(main())
