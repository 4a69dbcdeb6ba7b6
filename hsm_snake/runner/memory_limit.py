"""The memory limit a task runs under on a cluster, and whether the kernel's out-of-memory killer
struck under it: read from this process's memory cgroup and its ancestors (cgroup v1 memory
controller, or v2).

Slurm (task/cgroup) and PBS Pro / Torque (their cgroup hooks) enforce a job's memory there, the
cluster's default when the job asked for none. A job killed at that limit shows the runner only a
SIGKILL; the cgroup's ``oom_kill`` count says why. The limit is what a retry's memory request
grows from when hsm.yaml asked for none (escalation.py), where no scheduler accounting tells the
request (PBS; Slurm's comes from sacct). Standard library only: the runner imports it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CGROUP_ROOT = "/sys/fs/cgroup"
# At or above this, a limit is no limit (v1 writes 2**63 rounded down to a page).
NO_LIMIT_BYTES = 1 << 60


@dataclass(frozen=True)
class MemoryCgroup:
    dirs: tuple[str, ...]  # this process's memory cgroup and its ancestors, innermost first
    v2: bool

    def limit_mb(self) -> int | None:
        """The tightest memory limit on the way up, in MB; None without one."""
        name = "memory.max" if self.v2 else "memory.limit_in_bytes"
        limits = [value for value in (_number(os.path.join(d, name)) for d in self.dirs) if value is not None]
        limits = [value for value in limits if value < NO_LIMIT_BYTES]
        return max(1, min(limits) // (1024 * 1024)) if limits else None

    def oom_kills(self) -> int:
        """Processes the out-of-memory killer has killed in these cgroups so far."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        return sum(_counter(os.path.join(d, name), "oom_kill") for d in self.dirs)


def own_memory_cgroup(proc_cgroup: str = "/proc/self/cgroup", root: str = CGROUP_ROOT) -> MemoryCgroup | None:
    """This process's memory cgroup (v1 ``N:memory:/path`` first, else v2 ``0::/path``); None when
    there is none to read."""
    try:
        with open(proc_cgroup, encoding="utf-8") as lines:
            entries = [line.rstrip("\n").split(":", 2) for line in lines]
    except OSError:
        return None
    v1 = [path for _, controllers, path in (e for e in entries if len(e) == 3) if "memory" in controllers.split(",")]
    if v1:
        return _cgroup(os.path.join(root, "memory"), v1[0], v2=False)
    v2 = [path for hierarchy, controllers, path in (e for e in entries if len(e) == 3) if hierarchy == "0"]
    if v2 and os.path.exists(os.path.join(root, "cgroup.controllers")):
        return _cgroup(root, v2[0], v2=True)
    return None


def _cgroup(base: str, path: str, v2: bool) -> MemoryCgroup | None:
    parts = [part for part in path.split("/") if part and part not in (".", "..")]
    dirs = tuple(os.path.join(base, *parts[:depth]) for depth in range(len(parts), 0, -1))
    return MemoryCgroup(dirs, v2) if dirs else None


def _number(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as file:
            text = file.read().strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() else None


def _counter(path: str, key: str) -> int:
    try:
        with open(path, encoding="ascii") as file:
            for line in file:
                name, _, value = line.partition(" ")
                if name == key and value.strip().isdigit():
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0
