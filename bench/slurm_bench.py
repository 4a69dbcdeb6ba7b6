#!/usr/bin/env python
"""Trivial tasks on Slurm and PBS, side by side with a bare job array running the same script.

    . /tmp/hsm-testbed/env.sh && python bench/slurm_bench.py             # 100 tasks, Slurm and PBS
    python bench/slurm_bench.py --tasks 1000 --backend slurm --partition debug
    python bench/slurm_bench.py --tasks 10000 --submit-only              # submissions of 10,000 held tasks

For each backend, one run of each, back to back on the same cluster (``--repeats N``: N such
rounds, every one printed):

- **bare array** (the floor): one ``sbatch --array=1-N --wait`` (PBS: ``qsub -t 1-N``, waited for
  with qstat) of a script that runs ``python triv.py i=<index-1>`` in the project folder, as the
  predecessor's array script does; no memory request (the cluster's default).
- **hsm-snake**: ``hsm-snake run sweep.yaml --profile slurm|pbs`` of the same N tasks (grid
  ``i: [0..N-1]``), hsm.yaml with a partition/queue and a walltime but no ``mem:`` (the default
  request).

Printed per backend: wall time, CPU per array element (sacct ``TotalCPU`` of each element: the
PBS test bed's jobs are Slurm jobs underneath) and the memory request (sacct ``ReqMem``), as
ratios to the bare array. Counting pass-throughs on the hsm-snake Slurm run's PATH log every
``sbatch``, ``squeue``, ``sacct`` and ``scontrol`` call (calls made inside jobs apart). See
bench/README.md for the latest figures.

``--submit-only`` submits every task held (``sbatch --hold``), counts the sbatch calls and the
time until all are queued, then cancels the sweep (``hsm-snake cancel``): submission at sizes
the test node could not run in a session.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import yaml
from calls import counting_path, logged_calls
from run_bench import PYTHON, Workspace, hsm_snake_command, machine_description, write_project, write_sweep_file

import hsm_snake
from hsm_snake.engine.leftovers import slurm_job_ids
from hsm_snake.layout.paths import SweepPaths

COUNTED = ("sbatch", "squeue", "sacct", "scontrol")


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"exit {done.returncode}: {' '.join(argv)}\n{done.stderr[-3000:]}")
    return seconds


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


# The floor's job script: the task script itself, as the predecessor's array script runs it.
BARE_SCRIPT = """#!/bin/sh
#PBS -l walltime=00:10:00
#PBS -q {queue}
cd {project} || exit 1
index=${{SLURM_ARRAY_TASK_ID:-${{PBS_ARRAYID:-$PBS_ARRAY_INDEX}}}}
exec {python} triv.py i=$((index - 1))
"""
POLL_S = 0.5


def bare_script(project: Path, queue: str) -> Path:
    path = project / "bare_array.sh"
    path.write_text(BARE_SCRIPT.format(queue=queue, project=project, python=PYTHON))
    path.chmod(0o755)
    return path


def bare_slurm(project: Path, tasks: int, partition: str) -> tuple[float, list[str]]:
    """(wall seconds, job ids) of one ``sbatch --array --wait`` of the bare script."""
    script = bare_script(project, partition)
    argv = ["sbatch", "--parsable", "--wait", f"--array=1-{tasks}", "-p", partition, "-t", "10"]
    argv += ["-o", "/dev/null", "-J", "bare_array", "-D", str(project), str(script)]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bare sbatch array failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return seconds, [done.stdout.strip().split(";")[0]]


def bare_pbs(project: Path, tasks: int, queue: str) -> tuple[float, list[str]]:
    """(wall seconds, job ids) of one ``qsub -t 1-N`` of the bare script, waited for with qstat."""
    script = bare_script(project, queue)
    start = time.perf_counter()
    argv = ["qsub", "-V", "-t", f"1-{tasks}", "-o", "/dev/null", "-e", "/dev/null", str(script)]
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bare qsub array failed (exit {done.returncode}): {done.stderr[-2000:]}")
    job_id = done.stdout.strip().splitlines()[-1]
    while not pbs_finished(job_id):
        time.sleep(POLL_S)
    return time.perf_counter() - start, [job_id]


def pbs_finished(job_id: str) -> bool:
    """qstat shows the job finished (C, or it is gone)."""
    done = subprocess.run(["qstat", job_id], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return True
    for line in done.stdout.splitlines():
        words = line.split()
        if words and words[0].split(".")[0] == job_id.split(".")[0]:
            return words[-2] == "C"
    return True


def hsm_run(project: Path, sweep_file: Path, profile: str, env: dict[str, str]) -> tuple[float, list[str]]:
    """(wall seconds, job ids from the tasks' status.yaml) of one ``hsm-snake run``."""
    sweep_id = f"on_{profile}"
    argv = [*hsm_snake_command(), "run", str(sweep_file), "--sweep-id", sweep_id, "--profile", profile]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"exit {done.returncode}: {' '.join(argv)}\n{done.stderr[-3000:]}")
    statuses = [yaml.safe_load(p.read_text()) for p in (only_sweep(project, sweep_id) / "tasks").glob("*/status.yaml")]
    if sum(1 for status in statuses if status.get("status") == "completed") != len(statuses):
        raise SystemExit(f"not every task of {sweep_id} completed")
    return seconds, [str(status["job_id"]) for status in statuses]


def cpu_seconds(text: str) -> float:
    """sacct's TotalCPU ([D-][HH:]MM:SS[.mmm]) in seconds."""
    days, _, clock = text.rpartition("-")
    parts = [float(part) for part in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    return int(days or 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def accounting(job_ids: list[str], expected: int, started: float, wall_s: float) -> dict:
    """CPU per element and memory request of the elements (sacct allocation lines), and where the
    command's wall time went: before the first element was submitted, from the first element's
    start to the last one's end (what the queue and the node did), after the last end (sacct's
    times are whole seconds)."""
    cpu: dict[str, float] = {}
    requests: Counter[str] = Counter()
    times: dict[str, tuple[float, float, float]] = {}
    for _ in range(60):  # slurmdbd may take a moment to hold the last elements
        done = subprocess.run(
            [
                "sacct",
                "-n",
                "-P",
                "-j",
                ",".join(sorted(set(job_ids))),
                "-o",
                "JobID,TotalCPU,ReqMem,State,Submit,Start,End",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        cpu, requests, times = {}, Counter(), {}
        for line in done.stdout.splitlines():
            job, total, mem, state, *submit_start_end = line.split("|")[:7]
            if "." in job or not state.startswith("COMPLETED"):
                continue
            cpu[job] = cpu_seconds(total)
            requests[mem] += 1
            times[job] = tuple(datetime.fromisoformat(stamp).timestamp() for stamp in submit_start_end)
        if len(cpu) >= expected:
            break
        time.sleep(1)
    values = sorted(cpu.values())
    return {
        "elements": len(values),
        "cpu_per_element_s": round(statistics.mean(values), 3) if values else None,
        "cpu_per_element_max_s": round(values[-1], 3) if values else None,
        "memory_request": requests.most_common(1)[0][0] if requests else None,
        **timeline(times, started, wall_s),
    }


def timeline(times: dict[str, tuple[float, float, float]], started: float, wall_s: float) -> dict:
    if not times:
        return {}
    first_submit = min(submit for submit, _, _ in times.values())
    first_start = min(start for _, start, _ in times.values())
    last_end = max(end for _, _, end in times.values())
    return {
        "until_first_submit_s": round(first_submit - started, 1),
        "first_start_to_last_end_s": round(last_end - first_start, 1),
        "after_last_end_s": round(started + wall_s - last_end, 1),
    }


def mem_mb(request: str | None) -> float | None:
    """sacct's ReqMem (``500M``, ``1G``, ``4000Mn`` of older versions) in MB."""
    if not request:
        return None
    text = request.rstrip("nc")
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}.get(text[-1:].upper())
    return float(text[:-1]) * scale if scale else float(text)


def side_by_side(ws: Workspace, backend: str, args: argparse.Namespace) -> dict:
    """The bare array, then hsm-snake, for one backend: figures and hsm-snake's ratios to the floor."""
    project = write_project(ws.fresh_folder(f"{backend}_project"), max_parallel=2)
    config = yaml.safe_load((project / "hsm.yaml").read_text())
    queue_key = "partition" if backend == "slurm" else "queue"
    config[backend] = {queue_key: args.partition, "walltime": "00:10:00", "max_array_size": 1000}
    (project / "hsm.yaml").write_text(yaml.safe_dump(config))
    sweep_file = write_sweep_file(project / "sweep.yaml", {"i": list(range(args.tasks))})
    env = dict(os.environ)
    calls_log = ws.root / f"{backend}_calls.log"
    if backend == "slurm":
        env["PATH"] = counting_path(ws.root / "counting_bin", calls_log, COUNTED)
        bare_started = time.time()
        bare_s, bare_ids = bare_slurm(project, args.tasks, args.partition)
    else:
        bare_started = time.time()
        bare_s, bare_ids = bare_pbs(project, args.tasks, args.partition)
    hsm_started = time.time()
    hsm_s, hsm_ids = hsm_run(project, sweep_file, backend, env)
    bare = {"wall_s": round(bare_s, 1), **accounting(bare_ids, args.tasks, bare_started, bare_s)}
    hsm = {"wall_s": round(hsm_s, 1), **accounting(hsm_ids, args.tasks, hsm_started, hsm_s)}
    figures = {
        "tasks": args.tasks,
        "bare_array": bare,
        "hsm_snake": hsm,
        "ratios": {
            "wall": round(hsm["wall_s"] / bare["wall_s"], 2),
            "cpu_per_element": ratio(hsm["cpu_per_element_s"], bare["cpu_per_element_s"]),
            "memory_request": ratio(mem_mb(hsm["memory_request"]), mem_mb(bare["memory_request"])),
        },
    }
    if backend == "slurm":
        calls = Counter((call.name, call.in_job) for call in logged_calls(calls_log))
        figures["calls_by_the_run"] = {name: calls[name, False] for name in COUNTED}
        figures["calls_in_jobs"] = {name: calls[name, True] for name in COUNTED}
        figures["targets"] = {
            "wall <= 1.3x": figures["ratios"]["wall"] <= 1.3,
            "cpu per element <= 0.3 s": (hsm["cpu_per_element_s"] or 0) <= 0.3,
            "memory request <= 512M": (mem_mb(hsm["memory_request"]) or 0) <= 512,
        }
    return figures


def ratio(value: float | None, floor: float | None) -> float | None:
    return round(value / floor, 2) if value is not None and floor else None


TIMELINE_ROWS = (
    ("until_first_submit_s", "s until the first element was submitted"),
    ("first_start_to_last_end_s", "s from the first element's start to the last one's end"),
    ("after_last_end_s", "s after the last element's end"),
)


def print_table(figures: dict) -> None:
    for backend in ("slurm", "pbs"):
        for round_number, each in enumerate(figures.get(backend, []), start=1):
            print_round(backend, round_number, each)


def print_round(backend: str, round_number: int, each: dict) -> None:
    bare, hsm, ratios = each["bare_array"], each["hsm_snake"], each["ratios"]
    print(f"\n{backend}, {each['tasks']} trivial tasks, round {round_number} | bare array (floor) | hsm-snake | ratio")
    print(f"wall s | {bare['wall_s']} | {hsm['wall_s']} | {ratios['wall']}x")
    print(
        f"CPU per element s (sacct TotalCPU) | {bare['cpu_per_element_s']} | {hsm['cpu_per_element_s']} | "
        f"{ratios['cpu_per_element']}x"
    )
    print(f"memory request | {bare['memory_request']} | {hsm['memory_request']} | {ratios['memory_request']}x")
    for key, label in TIMELINE_ROWS:
        print(f"{label} | {bare.get(key)} | {hsm.get(key)} |")
    for target, met in (each.get("targets") or {}).items():
        print(f"target {target}: {'ok' if met else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="tasks in the sweep (default 100)")
    parser.add_argument(
        "--backend",
        action="append",
        choices=("slurm", "pbs"),
        help="backends to measure (repeatable; default both)",
    )
    parser.add_argument(
        "--partition",
        default=os.environ.get("HSM_TB_SLURM_PARTITION", "debug"),
        help="Slurm partition, and the PBS queue",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of bare array + hsm-snake per backend, back to back (default 1); every round is printed",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument(
        "--submit-only",
        action="store_true",
        help="submit every task held, count sbatch calls, then cancel (no task runs)",
    )
    args = parser.parse_args(argv)

    # Every element imports the runner from this checkout: byte-compile it once, as pip does when
    # it installs the wheel (else, with PYTHONDONTWRITEBYTECODE or a read-only checkout, each
    # element compiles ~15 modules: ~0.1 s of CPU).
    compileall.compile_dir(Path(hsm_snake.__file__).parent, quiet=1)
    ws = Workspace()
    try:
        if args.submit_only:
            project = write_project(ws.fresh_folder("slurm_project"), max_parallel=2)
            config = yaml.safe_load((project / "hsm.yaml").read_text())
            config["slurm"] = {"partition": args.partition, "walltime": "00:10:00", "extra_directives": ["--hold"]}
            (project / "hsm.yaml").write_text(yaml.safe_dump(config))
            sweep_file = write_sweep_file(project / "sweep.yaml", {"i": list(range(args.tasks))})
            calls_log = ws.root / "slurm_calls.log"
            env = {**os.environ, "PATH": counting_path(ws.root / "counting_bin", calls_log, COUNTED)}
            figures = {
                "machine": machine_description(),
                "tasks": args.tasks,
                **submit_only(project, sweep_file, env, args),
            }
            calls = Counter(call.name for call in logged_calls(calls_log) if not call.in_job)
            figures["calls_by_the_run"] = {name: calls[name] for name in COUNTED}
        else:
            backends = args.backend or ["slurm", "pbs"]
            figures = {"machine": machine_description(), **{backend: [] for backend in backends}}
            for _ in range(args.repeats):
                for backend in backends:
                    figures[backend].append(side_by_side(ws, backend, args))
    finally:
        ws.remove()
    print(json.dumps(figures, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False))
    if args.submit_only:
        return 0 if figures["left_in_queue_after_cancel"] == 0 else 1
    print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
