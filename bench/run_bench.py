#!/usr/bin/env python
"""hsm-snake benchmarks, each printed as a ratio to a baseline measured side by side in the same run.

    python bench/run_bench.py              # default sizes (several minutes)
    python bench/run_bench.py --quick      # small sizes, < 60 s (the smoke test runs this)
    python bench/run_bench.py --big        # adds 50k-task planning and 100k-task status rows
    python bench/run_bench.py --only status --json figures.json

Every measured command runs as its own process tree (interpreter start included) under
/usr/bin/time, or under a small Python wrapper when that is missing; both report the peak RSS
of the largest process of the tree. A command's non-zero exit stops the bench; a slow timing never does.
See bench/README.md for what each row means and the latest figures.
"""

from __future__ import annotations

import argparse
import compileall
import itertools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

import hsm_snake
from hsm_snake import package_data as resources
from hsm_snake import sweeps
from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import write_record

SECTIONS = ("planning", "status", "monitor", "local", "scale", "ssh")
# scale runs 10,000 tasks three ways (~15 min); ssh needs the test bed (tests/testbed/start.sh): only with --only
DEFAULT_SECTIONS = ("planning", "status", "monitor", "local")
TESTBED_JSON = Path(os.environ.get("HSM_TESTBED_DIR", "/tmp/hsm-testbed")) / "testbed.json"
SSH_HOSTS = ("hsmtb-lo", "hsmtb-h1")
PYTHON = sys.executable  # the real interpreter: a pyenv shim adds ~50 ms to every start
TIME_BIN = Path("/usr/bin/time")
V1_REFERENCE = "HPC Sweep Manager v1 measured 1.40× on this machine kind (from the perf issue)"
MARKED_EVERY = 10  # every 10th task has its completion marker: about 10% done

# Started as `python triv.py i=<n> [sleep=<s>]`: sleeps, writes out/<n>.txt under the cwd, exits.
TRIVIAL_SCRIPT = """\
import sys, time
from pathlib import Path
params = dict(arg.split("=", 1) for arg in sys.argv[1:])
time.sleep(float(params.get("sleep", 0)))
Path("out").mkdir(exist_ok=True)
Path("out", params["i"] + ".txt").write_text("done\\n")
"""

# The status floor: list every task folder and stat each of its entries, nothing else.
SCANDIR_WALK = """\
import os, sys
for task in os.scandir(sys.argv[1]):
    for entry in os.scandir(task.path):
        entry.stat(follow_symlinks=False)
"""

# The monitoring floor: the CLI's own start, then a plain read of every task's status.yaml.
MONITOR_FLOOR = """\
import os, sys
import hsm_snake.cli.main
tasks = sys.argv[1]
for name in os.listdir(tasks):
    try:
        with open(f"{tasks}/{name}/status.yaml", "rb") as handle:
            handle.read()
    except FileNotFoundError:
        pass
"""

# Runs a command until the first task has run, then stops it. Prints {"seconds", "rss_kb"}: the
# seconds until the first task's output folder (triv.py's out/) appeared, and the peak RSS so far
# of the largest process of the run. The run is killed at once (its session: hsm-snake, the engine
# in its own process group, the tasks), so its stop is not counted.
FIRST_TASK_DRIVER = """\
import json, os, signal, subprocess, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
run = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
while not os.path.isdir(out):
    if run.poll() is not None:
        sys.exit(f"the run ended (exit {run.returncode}) before a task ran: {run.stderr.read().decode()[-2000:]}")
    time.sleep(0.002)
seconds = time.perf_counter() - start
session, peak_kb = [], 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if int(stat.read().rsplit(")", 1)[1].split()[3]) != run.pid:  # field 6: session
                continue
        with open(f"/proc/{pid}/status") as status:
            peak_kb = max([peak_kb] + [int(line.split()[1]) for line in status if line.startswith("VmHWM:")])
        session.append(int(pid))
    except (OSError, ValueError):
        pass
for pid in session:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
run.wait()
print(json.dumps({"seconds": seconds, "rss_kb": peak_kb}))
"""

# Fallback for machines without /usr/bin/time. RUSAGE_CHILDREN is a maximum over every child so
# far, so each measurement gets a fresh wrapper process whose only child is the measured command.
RUSAGE_WRAPPER = """\
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({"code": code, "seconds": seconds, "rss_kb": usage.ru_maxrss, "cpu_s": cpu}))
"""


# -- what to run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    planning: tuple[int, ...]
    status: tuple[int, ...]
    monitor: tuple[int, ...]
    local_tasks: int
    sleep_tasks: int
    scale: tuple[int, ...]
    repeats: int
    ssh_tasks: int = 200


def choose_sizes(quick: bool, big: bool, repeats: int | None) -> Sizes:
    if quick:
        return Sizes(
            planning=(100, 300),
            status=(100, 300),
            monitor=(200,),
            local_tasks=20,
            sleep_tasks=4,
            scale=(20, 60),
            repeats=repeats or 1,
            ssh_tasks=20,
        )
    return Sizes(
        planning=(1000, 10000) + ((50000,) if big else ()),
        status=(1000, 10000) + ((50000, 100000) if big else ()),
        monitor=(10000,),
        local_tasks=500,
        # 100 one-second tasks, 2 at a time: a 50 s floor, so the row measures the per-task cost
        # and not only the ~1.5 s it takes to start Snakemake once.
        sleep_tasks=100,
        scale=(1000, 10000),
        repeats=repeats or 3,
    )


def repeats_for(n: int, sizes: Sizes) -> int:
    """The median of several runs for the small sizes; the big ones run once."""
    return sizes.repeats if n <= 10000 else 1


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    argv: list[str]
    cwd: Path | None = None
    # The command prints its own {"seconds", "rss_kb"} (FIRST_TASK_DRIVER): used instead of wall and /usr/bin/time.
    measures_itself: bool = False


@dataclass(frozen=True)
class Measurement:
    seconds: float
    rss_mb: float
    cpu_s: float | None = None  # user + system time of the whole tree (None: the command measures itself)


class CommandFailed(RuntimeError):
    def __init__(self, command: Command, code: int, stderr: str) -> None:
        where = f" (in {command.cwd})" if command.cwd else ""
        tail = "\n".join(stderr.splitlines()[-20:])
        super().__init__(f"exit {code}: {' '.join(command.argv)}{where}\n{tail}")


def run_measured(command: Command) -> Measurement:
    if command.measures_itself:
        return _run_measuring_itself(command)
    if TIME_BIN.exists():
        return _run_under_time(command)
    return _run_under_wrapper(command)


def _run_under_time(command: Command) -> Measurement:
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        start = time.perf_counter()
        proc = subprocess.run(
            [str(TIME_BIN), "-f", "%M %U %S", "-o", report.name, *command.argv],
            cwd=command.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise CommandFailed(command, proc.returncode, proc.stderr)
        rss_kb, user, system = report.read().split()[-3:]
    return Measurement(seconds, int(rss_kb) / 1024, float(user) + float(system))


def _run_measuring_itself(command: Command) -> Measurement:
    proc = subprocess.run(command.argv, cwd=command.cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CommandFailed(command, proc.returncode, proc.stderr)
    result = json.loads(proc.stdout)
    return Measurement(result["seconds"], result["rss_kb"] / 1024)


def _run_under_wrapper(command: Command) -> Measurement:
    argv = [PYTHON, "-c", RUSAGE_WRAPPER, *command.argv]
    proc = subprocess.run(argv, cwd=command.cwd, capture_output=True, text=True)
    if proc.returncode != 0:  # the wrapper itself failed, e.g. the program does not exist
        raise CommandFailed(command, proc.returncode, proc.stderr)
    result = json.loads(proc.stdout)
    if result["code"] != 0:
        raise CommandFailed(command, result["code"], proc.stderr)
    return Measurement(result["seconds"], result["rss_kb"] / 1024, result["cpu_s"])


@dataclass(frozen=True)
class Summary:
    seconds: float  # median
    runs: list[float]
    spread: float | None  # slowest / fastest - 1: how much the runs disagreed (None: one run)
    rss_mb: float  # highest peak
    cpu_s: float | None = None  # median


def summarize(runs: list[Measurement]) -> Summary:
    seconds = [run.seconds for run in runs]
    spread = max(seconds) / min(seconds) - 1 if len(seconds) > 1 else None
    cpu = [run.cpu_s for run in runs if run.cpu_s is not None]
    return Summary(
        statistics.median(seconds),
        seconds,
        spread,
        max(run.rss_mb for run in runs),
        statistics.median(cpu) if cpu else None,
    )


def measure_side_by_side(commands: dict[str, Callable[[], Command]], repeats: int) -> dict[str, Summary]:
    """Run every command `repeats` times, round-robin, each time freshly made.

    Round-robin, not one command's repeats in a row: a burst of load from elsewhere on the
    machine then slows every variant alike instead of skewing one ratio.
    """
    runs: dict[str, list[Measurement]] = {what: [] for what in commands}
    for _ in range(repeats):
        for what, make_command in commands.items():
            runs[what].append(run_measured(make_command()))
    return {what: summarize(measured) for what, measured in runs.items()}


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    limit: float
    unit: str  # "×" compares the ratio, "s" the seconds

    def met_by(self, row: Row) -> bool | None:
        value = row.ratio if self.unit == "×" else row.seconds
        return None if value is None else value <= self.limit

    def __str__(self) -> str:
        return f"≤ {self.limit:g}{self.unit}"


@dataclass
class Row:
    section: str
    what: str
    n: int
    seconds: float
    spread: float | None
    rss_mb: float
    baseline: str  # `what` of the row with the same N that this one is divided by
    target: Target | None = None
    ratio: float | None = None
    runs: list[float] = field(default_factory=list)  # seconds of every run, in order
    cpu_s: float | None = None
    cpu_ratio: float | None = None

    def as_json(self) -> dict:
        data = asdict(self)
        data["target"] = str(self.target) if self.target else None
        data["target_met"] = self.target.met_by(self) if self.target else None
        return data


@dataclass(frozen=True)
class Growth:
    what: str
    n1: int
    n2: int
    exponent: float
    rss_exponent: float


def fill_ratios(rows: list[Row]) -> None:
    seconds_of = {(row.what, row.n): row.seconds for row in rows}
    cpu_of = {(row.what, row.n): row.cpu_s for row in rows}
    for row in rows:
        row.ratio = row.seconds / seconds_of[(row.baseline, row.n)]
        baseline_cpu = cpu_of[(row.baseline, row.n)]
        if row.cpu_s is not None and baseline_cpu:
            row.cpu_ratio = row.cpu_s / baseline_cpu


def growth_of(rows: list[Row]) -> list[Growth]:
    """t ∝ N^k between consecutive sizes: k = log(t2/t1) / log(N2/N1); 1 is linear."""
    by_what: dict[str, list[Row]] = {}
    for row in rows:
        by_what.setdefault(row.what, []).append(row)
    growth = []
    for what, series in by_what.items():
        series.sort(key=lambda r: r.n)
        for small, large in itertools.pairwise(series):
            steps = math.log(large.n / small.n)
            exponent = math.log(large.seconds / small.seconds) / steps
            growth.append(Growth(what, small.n, large.n, exponent, math.log(large.rss_mb / small.rss_mb) / steps))
    return growth


# -- fixtures -------------------------------------------------------------------------------------


def hsm_snake_command() -> list[str]:
    """The console script beside the real interpreter (not a shim), else the module."""
    script = Path(PYTHON).parent / "hsm-snake"
    return [str(script)] if script.exists() else [PYTHON, "-m", "hsm_snake.cli.main"]


def snakemake_command() -> list[str]:
    return [PYTHON, "-m", "snakemake"]


def write_project(root: Path, max_parallel: int = 2) -> Path:
    """A project folder: hsm.yaml running triv.py with the real interpreter, raw key=value args."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "triv.py").write_text(TRIVIAL_SCRIPT)
    config = {
        "paths": {"python_interpreter": PYTHON, "train_script": "triv.py"},
        "task": {"arg_style": "raw", "output_dir_arg": None},
        "local": {"max_parallel": max_parallel},
    }
    (root / "hsm.yaml").write_text(yaml.safe_dump(config))
    return root


def write_sweep_file(path: Path, grid: dict[str, list]) -> Path:
    # Flow-style lists, as a person writes a long list of values.
    path.write_text(yaml.safe_dump({"grid": grid}, default_flow_style=None, width=1 << 20))
    return path


def grid_of(n: int) -> dict[str, list]:
    """A two-axis grid expanding to exactly n tasks."""
    assert n % 10 == 0, n
    return {"lr_index": list(range(n // 10)), "seed": list(range(10))}


def write_one_rule_snakefile(folder: Path, n: int, output: str, shell: str) -> Path:
    """rule all with expand() over n outputs, one rule making each output with a shell command."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Snakefile").write_text(
        f"rule all:\n"
        f"    input: expand({output!r}, i=range({n}))\n\n"
        f"rule one:\n"
        f"    output: {output!r}\n"
        f"    shell: {shell!r}\n"
    )
    return folder


def mark_completed(paths: SweepPaths, task_name: str) -> None:
    """What the runner leaves behind for a finished task: status.yaml, then the marker."""
    task = paths.task(task_name)
    status = {
        "status": "completed",
        "task_id": task_name,
        "attempt": 1,
        "exit_code": 0,
        "duration_s": 1.0,
        "backend": "local",
        "command": [PYTHON, "triv.py"],
    }
    write_record(task.status, status)
    task.marker.touch()


class Workspace:
    """Temp folders for one bench run; sweep directories are built once per N and reused."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hsm-bench-"))
        self.grid_project = write_project(self.root / "grid_project")
        self._sweeps: dict[int, SweepPaths] = {}
        self._folders = 0

    def fresh_folder(self, label: str) -> Path:
        self._folders += 1
        folder = self.root / f"{label}_{self._folders}"
        folder.mkdir()
        return folder

    def sweep_file(self, n: int) -> Path:
        path = self.grid_project / f"sweep_{n}.yaml"
        return path if path.exists() else write_sweep_file(path, grid_of(n))

    def sweep_dir(self, n: int) -> SweepPaths:
        """A real sweep directory of n tasks, every MARKED_EVERY-th one completed."""
        if n not in self._sweeps:
            spec = load_sweep(self.sweep_file(n))
            project = load_project(self.grid_project / "hsm.yaml", cwd=self.grid_project)
            index = sweeps.create(spec, project, ["bench"], f"sweep_{n}")
            for entry in index.active()[::MARKED_EVERY]:
                mark_completed(index.paths, entry.name)
            self._sweeps[n] = index.paths
        return self._sweeps[n]

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# -- one set of side-by-side rows ------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One row to measure: what it is, how to make its command, what it is divided by."""

    what: str
    make_command: Callable[[], Command]
    baseline: str
    target: Target | None = None


def measure_rows(section: str, n: int, specs: list[Spec], repeats: int) -> list[Row]:
    summaries = measure_side_by_side({spec.what: spec.make_command for spec in specs}, repeats)
    return [
        Row(
            section,
            spec.what,
            n,
            summaries[spec.what].seconds,
            summaries[spec.what].spread,
            summaries[spec.what].rss_mb,
            spec.baseline,
            spec.target,
            runs=summaries[spec.what].runs,
            cpu_s=summaries[spec.what].cpu_s,
        )
        for spec in specs
    ]


# -- section 1: planning --------------------------------------------------------------------------

DRY_RUN, MISSING, BARE_DRY_RUN, WORKFLOW_DRY_RUN, RUN_START = (
    "(a) hsm-snake run --dry-run --json",
    "(b) hsm-snake missing --json",
    "(c) snakemake -n, one-rule Snakefile",
    "(d) snakemake -n, hsm-snake workflow",
    "(e) hsm-snake run, until a task ran",
)
DRY_RUN_TARGET = Target(1.15, "×")
MISSING_TARGET_S = {10000: 0.3}


def bench_planning(ws: Workspace, sizes: Sizes) -> list[Row]:
    return [
        row for n in sizes.planning for row in measure_rows("planning", n, planning_specs(ws, n), repeats_for(n, sizes))
    ]


def planning_specs(ws: Workspace, n: int) -> list[Spec]:
    sweep_file, sweep = ws.sweep_file(n), ws.sweep_dir(n)
    one_rule = write_one_rule_snakefile(
        ws.fresh_folder(f"one_rule_{n}"), n, "tasks/task_{i}/.completed", "touch {output}"
    )
    dry_run = Command([*hsm_snake_command(), "run", str(sweep_file), "--dry-run", "--json"], ws.grid_project)
    missing = Command([*hsm_snake_command(), "missing", str(sweep.root), "--json"])
    bare_dry_run = Command([*snakemake_command(), "-n", "--cores", "1"], one_rule)
    workflow_dry_run = Command(
        [
            *snakemake_command(),
            "-n",
            "--snakefile",
            str(resources.workflow_dir() / "Snakefile"),
            "--directory",
            str(sweep.root),
            "--workflow-profile",
            str(resources.profiles_dir() / "default"),
            "--cores",
            "1",
        ]
    )
    missing_target = Target(MISSING_TARGET_S[n], "s") if n in MISSING_TARGET_S else None
    return [
        Spec(DRY_RUN, lambda: dry_run, BARE_DRY_RUN, DRY_RUN_TARGET),
        Spec(MISSING, lambda: missing, BARE_DRY_RUN, missing_target),
        Spec(BARE_DRY_RUN, lambda: bare_dry_run, BARE_DRY_RUN),
        Spec(WORKFLOW_DRY_RUN, lambda: workflow_dry_run, BARE_DRY_RUN, DRY_RUN_TARGET),
        Spec(RUN_START, lambda: run_until_a_task_ran(ws, n), BARE_DRY_RUN, DRY_RUN_TARGET),
    ]


def run_until_a_task_ran(ws: Workspace, n: int) -> Command:
    """A real `hsm-snake run` of n trivial tasks (a new project, so no out/ yet), stopped when the
    first task has written its output."""
    project = write_project(ws.fresh_folder(f"run_start_{n}"), max_parallel=2)
    sweep_file = write_sweep_file(project / "sweep.yaml", {"i": list(range(n))})
    run = [*hsm_snake_command(), "run", str(sweep_file)]
    return Command([PYTHON, "-c", FIRST_TASK_DRIVER, str(project / "out"), *run], project, measures_itself=True)


# -- section 2: status ----------------------------------------------------------------------------

STATUS, SCANDIR_FLOOR = "hsm-snake status --json", "os.scandir walk of tasks/ (floor)"
STATUS_TARGET_S = {10000: 0.3, 100000: 3.0}


def bench_status(ws: Workspace, sizes: Sizes) -> list[Row]:
    return [row for n in sizes.status for row in measure_rows("status", n, status_specs(ws, n), repeats_for(n, sizes))]


def status_specs(ws: Workspace, n: int) -> list[Spec]:
    sweep = ws.sweep_dir(n)
    status = Command([*hsm_snake_command(), "status", str(sweep.root), "--json"])
    walk = Command([PYTHON, "-c", SCANDIR_WALK, str(sweep.tasks_dir)])
    target = Target(STATUS_TARGET_S[n], "s") if n in STATUS_TARGET_S else None
    return [
        Spec(STATUS, lambda: status, SCANDIR_FLOOR, target),
        Spec(SCANDIR_FLOOR, lambda: walk, SCANDIR_FLOOR),
    ]


# -- section 2b: monitoring a finished sweep --------------------------------------------------------

MONITOR_FLOOR_ROW = "(a) CLI start + read every status.yaml (floor)"
# Issue 18: status --json and results within 1.5x the floor, report within 3x.
MONITOR_TARGETS = {
    "(c) hsm-snake status --json": Target(1.5, "×"),
    "(e) hsm-snake results --format csv": Target(1.5, "×"),
    "(f) hsm-snake report": Target(3.0, "×"),
}
MONITOR_COLD = "(c') status --json, no status cache yet"


def bench_monitor(ws: Workspace, sizes: Sizes) -> list[Row]:
    return [
        row for n in sizes.monitor for row in measure_rows("monitor", n, monitor_specs(ws, n), repeats_for(n, sizes))
    ]


def monitor_specs(ws: Workspace, n: int) -> list[Spec]:
    sweep = finished_sweep(ws, n)
    hsm = hsm_snake_command()
    root = str(sweep.root)
    commands = {
        "(b) hsm-snake status": [*hsm, "status", root],
        "(c) hsm-snake status --json": [*hsm, "status", root, "--json"],
        "(d) hsm-snake missing": [*hsm, "missing", root],
        "(e) hsm-snake results --format csv": [*hsm, "results", root, "--format", "csv"],
        "(f) hsm-snake report": [*hsm, "report", root],
    }
    floor = Command([PYTHON, "-c", MONITOR_FLOOR, str(sweep.tasks_dir)])
    # (c), (e), (f) measure a sweep whose status cache exists, as after its first monitoring
    # command; without this, the first round's (c) would be (c') again.
    subprocess.run(commands["(c) hsm-snake status --json"], stdout=subprocess.DEVNULL, check=True)

    def cold_status() -> Command:
        sweep.status_cache.unlink(missing_ok=True)
        return Command(commands["(c) hsm-snake status --json"])

    return [
        Spec(MONITOR_FLOOR_ROW, lambda: floor, MONITOR_FLOOR_ROW),
        *(
            Spec(what, lambda argv=argv: Command(argv), MONITOR_FLOOR_ROW, MONITOR_TARGETS.get(what))
            for what, argv in commands.items()
        ),
        Spec(MONITOR_COLD, cold_status, MONITOR_FLOOR_ROW),
    ]


def finished_sweep(ws: Workspace, n: int) -> SweepPaths:
    """A real sweep directory of n tasks, all completed as the runner leaves them: a final status.yaml
    (metrics, host, times), then the marker, both with the task's finish time as mtime. Tasks of 1 s
    finish every 0.25 s on 4 hosts, each host running one at a time."""
    spec = load_sweep(ws.sweep_file(n))
    project = load_project(ws.grid_project / "hsm.yaml", cwd=ws.grid_project)
    index = sweeps.create(spec, project, ["bench"], f"finished_{n}")
    base = time.time() - 86400
    for i, entry in enumerate(index.active()):
        task = index.paths.task(entry.name)
        started = base + i * 0.25
        status = {
            "status": "completed",
            "task_id": entry.name,
            "attempt": 1,
            "started": datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds"),
            "finished": datetime.fromtimestamp(started + 1).astimezone().isoformat(timespec="seconds"),
            "duration_s": 1.0,
            "exit_code": 0,
            "signal": None,
            "host": f"node{i % 4}",
            "host_alias": None,
            "pid": 10000 + i,
            "backend": "local",
            "job_id": None,
            "error_category": None,
            "error_summary": None,
            "command": [PYTHON, "triv.py", *(f"{key}={value}" for key, value in entry.params.items())],
            "cuda_visible_devices": None,
            "tracker_url": None,
            "metrics": {"loss": round(1 / (i + 1), 6), "acc": round(i / n, 6)},
        }
        write_record(task.status, status, durable=False)
        task.marker.touch()
        for path in (task.status, task.marker):
            os.utime(path, (started + 1, started + 1))
    return index.paths


# -- section 3: local runs ------------------------------------------------------------------------

XARGS, HSM_RUN, BARE_TUNED, BARE_DEFAULT = (
    "(a) xargs -P 2 (floor)",
    "(b) hsm-snake run, max_parallel 2",
    "(c) snakemake --cores 2, greedy, 1000/1s",
    "(d) snakemake --cores 2, defaults",
)
XARGS_SLEEP, HSM_RUN_SLEEP = "xargs -P 2, 1-s tasks (floor)", "hsm-snake run, 1-s tasks"


def task_arguments(n: int, sleep: float) -> list[str]:
    """What each task gets, in the order hsm-snake renders the grid {i: ..., sleep: [...]}."""
    return [f"i={i}" + (f" sleep={sleep!r}" if sleep else "") for i in range(n)]


def xargs_command(ws: Workspace, script: Path, n: int, sleep: float) -> Command:
    folder = ws.fresh_folder("xargs")
    arguments = folder / "arguments.txt"
    arguments.write_text("\n".join(task_arguments(n, sleep)) + "\n")
    return Command(["xargs", "-a", str(arguments), "-P", "2", "-L", "1", PYTHON, str(script)], folder)


def hsm_run_command(project: Path, n: int, sleep: float) -> Command:
    grid = {"i": list(range(n))} | ({"sleep": [sleep]} if sleep else {})
    sweep_file = write_sweep_file(project / f"sweep_{n}_{sleep:g}.yaml", grid)
    return Command([*hsm_snake_command(), "run", str(sweep_file)], project)  # a new sweep every run


def bare_snakemake_command(ws: Workspace, script: Path, n: int, options: list[str]) -> Command:
    folder = write_one_rule_snakefile(
        ws.fresh_folder("bare_local"), n, "out/{i}.txt", f"{PYTHON} {script} i={{wildcards.i}}"
    )
    return Command([*snakemake_command(), "--cores", "2", *options], folder)


def bench_local(ws: Workspace, sizes: Sizes) -> list[Row]:
    project = write_project(ws.fresh_folder("local_project"), max_parallel=2)
    script = project / "triv.py"
    n, n_sleep = sizes.local_tasks, sizes.sleep_tasks
    tuned = ["--scheduler", "greedy", "--max-jobs-per-timespan", "1000/1s"]
    trivial = measure_rows(
        "local",
        n,
        [
            Spec(XARGS, lambda: xargs_command(ws, script, n, 0), XARGS),
            Spec(HSM_RUN, lambda: hsm_run_command(project, n, 0), XARGS, Target(1.40, "×")),
            Spec(BARE_TUNED, lambda: bare_snakemake_command(ws, script, n, tuned), XARGS),
            Spec(BARE_DEFAULT, lambda: bare_snakemake_command(ws, script, n, []), XARGS),
        ],
        sizes.repeats,
    )
    one_second = measure_rows(
        "local",
        n_sleep,
        [
            Spec(XARGS_SLEEP, lambda: xargs_command(ws, script, n_sleep, 1.0), XARGS_SLEEP),
            Spec(HSM_RUN_SLEEP, lambda: hsm_run_command(project, n_sleep, 1.0), XARGS_SLEEP, Target(1.03, "×")),
        ],
        1,
    )  # long rows: one round each
    return trivial + one_second


# -- section 4: scale (opt-in) ---------------------------------------------------------------------

SCALE_XARGS, SCALE_HSM, SCALE_BARE = (
    "(a) xargs -P 2 (floor)",
    "(b) hsm-snake run to completion",
    "(c) snakemake --cores 2, greedy, 1000/1s",
)


def bench_scale(ws: Workspace, sizes: Sizes) -> list[Row]:
    """Trivial tasks run to completion at growing N, one round each (a 10k round takes minutes)."""
    project = write_project(ws.fresh_folder("scale_project"), max_parallel=2)
    script = project / "triv.py"
    tuned = ["--scheduler", "greedy", "--max-jobs-per-timespan", "1000/1s"]
    return [
        row
        for n in sizes.scale
        for row in measure_rows(
            "scale",
            n,
            [
                Spec(SCALE_XARGS, lambda n=n: xargs_command(ws, script, n, 0), SCALE_XARGS),
                Spec(SCALE_HSM, lambda n=n: hsm_run_command(project, n, 0), SCALE_XARGS),
                Spec(SCALE_BARE, lambda n=n: bare_snakemake_command(ws, script, n, tuned), SCALE_XARGS),
            ],
            1,
        )
    ]


# -- section 5: ssh (opt-in) -----------------------------------------------------------------------

SSH_LOCAL, SSH_PUSH, SSH_SHARED = (
    "(a) hsm-snake run --profile local, 2 at a time",
    "(b) --profile ssh, 2 hosts x 1 slot, push/pull",
    "(c) --profile ssh, 2 hosts x 1 slot, shared_fs",
)


def testbed_ssh() -> tuple[dict | None, str]:
    """The test bed's ssh facts, or why the ssh section cannot run."""
    try:
        facts = json.loads(TESTBED_JSON.read_text())
    except (OSError, ValueError):
        return None, f"no running test bed ({TESTBED_JSON} missing): start it with sudo tests/testbed/start.sh"
    down = [alias for alias in SSH_HOSTS if not facts["ssh"]["hosts"].get(alias, {}).get("up")]
    if down:
        return None, f"test bed hosts not up: {', '.join(down)} (see {TESTBED_JSON})"
    return facts["ssh"], ""


def write_ssh_project(root: Path, facts: dict, shared_fs: bool) -> Path:
    project = write_project(root, max_parallel=2)
    config = yaml.safe_load((project / "hsm.yaml").read_text())
    config["distributed"] = {
        "remotes": {
            alias: {
                "project_dir": f"{facts['hosts'][alias]['project_dir']}/bench-{root.name}",
                "max_parallel_jobs": 1,
                "python_path": "python3",
                **({"shared_fs": True} if shared_fs else {}),
            }
            for alias in SSH_HOSTS
        }
    }
    (project / "hsm.yaml").write_text(yaml.safe_dump(config))
    return project


def bench_ssh(ws: Workspace, sizes: Sizes) -> list[Row]:
    facts, why_not = testbed_ssh()
    if facts is None:
        print(f"ssh: skipped: {why_not}")
        return []
    os.environ["HSM_SSH_CONFIG"] = facts["config"]
    n = sizes.ssh_tasks
    local = write_project(ws.fresh_folder("ssh_local"), max_parallel=2)
    pushed = write_ssh_project(ws.fresh_folder("ssh_push"), facts, shared_fs=False)
    shared = write_ssh_project(ws.fresh_folder("ssh_shared"), facts, shared_fs=True)

    def ssh_run(project: Path) -> Command:
        command = hsm_run_command(project, n, 0)
        return Command([*command.argv, "--profile", "ssh"], command.cwd)

    try:
        return measure_rows(
            "ssh",
            n,
            [
                Spec(SSH_LOCAL, lambda: hsm_run_command(local, n, 0), SSH_LOCAL),
                Spec(SSH_PUSH, lambda: ssh_run(pushed), SSH_LOCAL),
                Spec(SSH_SHARED, lambda: ssh_run(shared), SSH_LOCAL),
            ],
            1,
        )
    finally:
        for alias in SSH_HOSTS:
            for folder in Path(facts["hosts"][alias]["project_dir"]).glob("bench-ssh_*"):
                shutil.rmtree(folder, ignore_errors=True)


def ssh_per_task_lines(rows: list[Row]) -> list[str]:
    base = next(row for row in rows if row.what == SSH_LOCAL)
    return [
        f"{row.what}: {row.n / row.seconds:.1f} tasks/s"
        + ("" if row is base else f", {(row.seconds - base.seconds) / row.n * 1000:+.0f} ms per task vs (a)")
        for row in rows
    ]


# -- report ---------------------------------------------------------------------------------------

SECTION_TITLES = {
    "planning": "planning: listing what would run (ratios to (c))",
    "status": "status: counting task states (ratios to the scandir floor)",
    "monitor": "monitor: a finished sweep, every task completed (ratios to the CLI start + status.yaml reads)",
    "local": "local: running trivial tasks 2 at a time (ratios to the xargs floor)",
    "ssh": "ssh: trivial tasks over 2 test-bed sshd hosts (ratios to the local profile)",
    "scale": "scale: trivial tasks run to completion, 2 at a time (ratios to the xargs floor)",
}


def machine_description() -> dict[str, str]:
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "python": f"{platform.python_version()} ({PYTHON})",
        "snakemake": version("snakemake"),
        "hsm-snake": version("hsm-snake"),
        "rss_probe": "/usr/bin/time" if TIME_BIN.exists() else "getrusage wrapper",
        "load": " ".join(f"{load:.1f}" for load in os.getloadavg()),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def target_cell(row: Row) -> str:
    if row.target is None:
        return ""
    return f"{row.target} {'ok' if row.target.met_by(row) else 'MISSED'}"


def results_table(section: str, rows: list[Row]) -> Table:
    table = Table(title=SECTION_TITLES[section], title_justify="left")
    for column, justify in (
        ("what", "left"),
        ("N", "right"),
        ("seconds", "right"),
        ("spread", "right"),
        ("peak RSS MB", "right"),
        ("ratio", "right"),
        ("CPU s", "right"),
        ("CPU ratio", "right"),
        ("target", "left"),
    ):
        table.add_column(column, justify=justify)
    for row in rows:
        spread = "" if row.spread is None else f"{row.spread:.0%}"
        table.add_row(
            row.what,
            f"{row.n:,}",
            f"{row.seconds:.3f}",
            spread,
            f"{row.rss_mb:.0f}",
            f"{row.ratio:.2f}×",
            "" if row.cpu_s is None else f"{row.cpu_s:.3f}",
            "" if row.cpu_ratio is None else f"{row.cpu_ratio:.2f}×",
            target_cell(row),
        )
    return table


def growth_table(section: str, growth: list[Growth]) -> Table:
    table = Table(title=f"{section} growth: t ∝ N^k, peak RSS ∝ N^m (1 is linear)", title_justify="left")
    for column in ("what", "N1 → N2", "k", "m"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for item in growth:
        table.add_row(item.what, f"{item.n1:,} → {item.n2:,}", f"{item.exponent:.2f}", f"{item.rss_exponent:.2f}")
    return table


def report(console: Console, section: str, rows: list[Row]) -> list[Growth]:
    console.print(results_table(section, rows))
    growth = growth_of(rows) if section in ("planning", "status", "scale") else []
    if growth:
        console.print(growth_table(section, growth))
    if section == "local":
        console.print(V1_REFERENCE)
    if section == "ssh":
        for line in ssh_per_task_lines(rows):
            console.print(line)
    console.print()
    return growth


# -- main -----------------------------------------------------------------------------------------

BENCHES: dict[str, Callable[[Workspace, Sizes], list[Row]]] = {
    "planning": bench_planning,
    "status": bench_status,
    "monitor": bench_monitor,
    "local": bench_local,
    "ssh": bench_ssh,
    "scale": bench_scale,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (a smoke test, < 60 s)")
    parser.add_argument("--big", action="store_true", help="also 50k-task planning and 100k-task status")
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run only this section (repeatable); scale and ssh (test bed) run only when named",
    )
    parser.add_argument(
        "--repeats", type=int, help="runs per command for sizes up to 10k tasks, median kept (default 3; --quick 1)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = choose_sizes(args.quick, args.big, args.repeats)
    # Where a Slurm client is installed but no controller answers (a laptop with the test bed
    # down), snakemake-executor-plugin-slurm waits 10 s for `scontrol` at every Snakemake start,
    # local runs included: that would be the bare Snakemake rows' whole time. hsm-snake avoids it
    # by itself; the baselines get the same: no Slurm config unless one is set.
    os.environ.setdefault("SLURM_CONF", "/dev/null")
    # hsm-snake's modules compiled to bytecode, as an installed package has them (pip compiles at
    # install). From a checkout under PYTHONDONTWRITEBYTECODE every start would compile them from
    # source again (~30 ms), a cost no installed copy pays.
    compileall.compile_dir(Path(hsm_snake.__file__).parent, quiet=1)
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    machine = machine_description()
    console.print("  ".join(f"{key}: {value}" for key, value in machine.items()), soft_wrap=True)
    console.print()
    ws = Workspace()
    results: dict[str, dict] = {}
    try:
        for section in args.only or DEFAULT_SECTIONS:
            started = time.perf_counter()
            rows = BENCHES[section](ws, sizes)
            if not rows:
                continue
            fill_ratios(rows)
            growth = report(console, section, rows)
            results[section] = {
                "rows": [r.as_json() for r in rows],
                "growth": [asdict(g) for g in growth],
                "bench_seconds": round(time.perf_counter() - started, 1),
            }
    except CommandFailed as failure:
        console.print("a measured command failed:", style="red")
        console.print(str(failure), markup=False, soft_wrap=True)
        return 1
    finally:
        ws.remove()
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "sizes": asdict(sizes), "sections": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
