"""The process table, read from /proc: which live processes belong to a test's run.

Zombies do not count: PID 1 here may not reap orphans.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def live_processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[0] != "Z":
            yield int(entry), fields


def pid_alive(pid: int | None) -> bool:
    """A live process that is not a zombie (PID 1 here may not reap stopped daemons)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def group_gone(pgid: int) -> bool:
    """No live process left in the process group."""
    return not any(int(fields[2]) == pgid for _, fields in live_processes())


def sweep_processes(marker: str) -> list[int]:
    """Live processes other than this one whose environment or command line holds ``marker``
    (the test's run-log path: every task script and hsm-snake process inherits it)."""
    needle = marker.encode()
    found = []
    for pid, _ in live_processes():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in environ or needle in cmdline:
            found.append(pid)
    return found


def children_by_name(root_pid: int) -> dict[int, str]:
    """Every live descendant of ``root_pid`` with its command line."""
    parents = {pid: int(fields[1]) for pid, fields in live_processes()}
    found: dict[int, str] = {}
    frontier = {root_pid}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        for pid in frontier:
            try:
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                pass
    return found


# A task script that records the command lines of its ancestors, nearest first, up to PID 1, in
# results/ancestry.json: what started it inside a cluster job (and $SETUP_MARK, for a set-up).
ANCESTRY_SCRIPT = """
import json, os
chain, pid = [], os.getppid()
while pid > 1:
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode().strip()
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        break
    chain.append(cmdline)
    pid = int(status.split("PPid:")[1].split()[0])
with open(os.path.join(os.environ["HSM_RESULTS_DIR"], "ancestry.json"), "w") as out:
    json.dump({"ancestors": chain, "setup_mark": os.environ.get("SETUP_MARK")}, out)
"""


def run_ancestry_sweep(project, profile: str) -> Path:
    """A 3-task sweep of ANCESTRY_SCRIPT run with ``--profile <profile>``, whose backend set-up
    (``<profile>: pre_script``) marks the environment; checks that each task's script was started
    by the runner alone, after that set-up. The sweep directory."""
    (project.root / "ancestry.py").write_text(ANCESTRY_SCRIPT)
    project.write_project(
        {"paths": {"train_script": "ancestry.py"}, profile: {"pre_script": f"export SETUP_MARK={profile}-set-up"}}
    )
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    project.cli("run", "sweep.yaml", "--profile", profile)
    (sweep_dir,) = project.sweep_dirs()
    for i in (1, 2, 3):
        seen = assert_runner_alone(sweep_dir / "tasks" / f"task_00{i}")
        assert seen["setup_mark"] == f"{profile}-set-up", seen
    return sweep_dir


def assert_runner_alone(task_dir: Path) -> dict:
    """The task's script was started by the task runner, and no Snakemake is among its ancestors;
    what it recorded."""
    import json

    seen = json.loads((task_dir / "results" / "ancestry.json").read_text())
    chain = seen["ancestors"]
    assert chain and "-m hsm_snake.runner tasks/" in chain[0], chain
    assert not [cmd for cmd in chain if "snakemake" in cmd.lower()], chain
    return seen
