"""How many more jobs Slurm lets this user submit (MaxSubmitJobs), so that a big sweep never
asks for more.

Slurm counts every array element as one job against ``MaxSubmitJobs`` (of the user's
association) and ``MaxSubmitJobsPerUser`` (of the job's QOS); a submission past either limit is
refused outright. Before a Slurm run, hsm-snake reads both limits with ``sacctmgr``, subtracts
the user's jobs already in the queue (``squeue -r``: other sweeps count too), and caps
Snakemake's ``--jobs`` (jobs in the queue at once) and the array size to what is left. No limit
found, or a tool that fails or hangs (bounded by a timeout), means no cap.

``MaxJobCount`` bounds the jobs slurmctld holds for all users together, array elements one each
and finished jobs too until ``MinJobAge`` has passed; past it sbatch is refused ("Resource
temporarily unavailable"). Its room (``squeue -r -t all`` counts what is held) caps a run like
the others.

``MaxArraySize`` bounds array *indices*, not only sizes. hsm-slurm numbers each array's elements
1..N, but a job that is not a task goes through snakemake-executor-plugin-slurm 2.8, which numbers
the elements of the jobs Snakemake hands it in one round 1, 2, … across its chunks. So the jobs
handed over per round (``--max-jobs-per-timespan N/1s``) are capped at MaxArraySize - 1
(``scontrol show config``); Snakemake's default, 100 per second, stays when Slurm cannot tell.

Every query goes through a ``Query`` (argv list -> stdout, None when the tool failed or hung): here
the local Slurm's tools; for a cluster reached over SSH (executors/remote_cluster) the same argv run
on its login node, so one parser serves both.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsm_snake.engine.backends import SLURM_MAX_ARRAY_SIZE, slurm_array_limit
from hsm_snake.executors.common import stdout_of
from hsm_snake.layout.records import read_yaml

QUERY_TIMEOUT_S = 15
# sbatch refuses a job script over SchedulerParameters max_script_size (4 MB by default); the array
# script hsm-slurm writes takes one `case` line per element (~35 bytes: executors/slurm/executor.py).
DEFAULT_MAX_SCRIPT_SIZE = 4 * 1024 * 1024
BYTES_PER_ARRAY_ELEMENT = 64


@dataclass(frozen=True)
class SubmitRoom:
    limit: int  # the lowest MaxSubmitJobs that applies
    queued: int  # the user's jobs (array elements one each) in the queue now
    source: str  # which limit it is, for the log

    @property
    def free(self) -> int:
        return max(1, self.limit - self.queued)


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_assoc(text: str, account: str | None) -> tuple[int | None, str | None]:
    """``Account|MaxSubmit|DefaultQOS`` lines of the user's associations → (limit, default QOS).

    With an account, only its associations count; else the lowest limit of any (the job may
    land in any of them).
    """
    limits, default_qos = [], None
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 3 or (account and fields[0] != account):
            continue
        value = _int_or_none(fields[1])
        if value is not None:
            limits.append(value)
        default_qos = default_qos or (fields[2].strip() or None)
    return (min(limits) if limits else None), default_qos


def parse_qos(text: str) -> int | None:
    """``MaxSubmitPU`` of one QOS (``sacctmgr -nP show qos NAME format=MaxSubmitPU``)."""
    values = [v for v in (_int_or_none(line.split("|")[0]) for line in text.splitlines()) if v is not None]
    return min(values) if values else None


Query = Callable[[list[str]], "str | None"]


def local_query(argv: list[str]) -> str | None:
    """Run a Slurm tool on this machine (bounded by QUERY_TIMEOUT_S)."""
    return stdout_of(argv, QUERY_TIMEOUT_S)


def jobs_listed(*selector: str, query: Query = local_query) -> int | None:
    """How many jobs ``squeue`` lists for ``selector`` (array elements one each); None when it cannot tell."""
    listing = query(["squeue", "-h", "-r", *selector, "-o", "%i"])
    return len(listing.split()) if listing is not None else None


def queued_jobs(user: str, *selector: str, query: Query = local_query) -> int:
    """The user's jobs in the queue, e.g. of one QOS: ``-q NAME``."""
    return jobs_listed("-u", user, *selector, query=query) or 0


def submit_room(
    account: str | None, qos: str | None, user: str | None = None, query: Query = local_query
) -> SubmitRoom | None:
    """The user's tightest room under MaxSubmitJobs, or None when no limit applies or Slurm cannot tell.

    An association's limit counts the user's jobs in it, a QOS's limit the user's jobs of that QOS.
    """
    user = user or getpass.getuser()
    assoc = query(["sacctmgr", "-nP", "show", "assoc", "where", f"user={user}", "format=Account,MaxSubmit,DefaultQOS"])
    if assoc is None:
        return None
    assoc_limit, default_qos = parse_assoc(assoc, account)
    qos_name = qos or default_qos or "normal"
    qos_text = query(["sacctmgr", "-nP", "show", "qos", qos_name, "format=MaxSubmitPU"])
    qos_limit = parse_qos(qos_text) if qos_text is not None else None
    rooms = []
    if assoc_limit is not None:
        in_assoc = queued_jobs(user, *(["-A", account] if account else []), query=query)
        rooms.append(SubmitRoom(assoc_limit, in_assoc, f"MaxSubmitJobs of user {user}"))
    if qos_limit is not None:
        in_qos = queued_jobs(user, "-q", qos_name, query=query)
        rooms.append(SubmitRoom(qos_limit, in_qos, f"MaxSubmitJobsPerUser of QOS {qos_name}"))
    return min(rooms, key=lambda room: room.free) if rooms else None


def cluster_config(query: Query = local_query) -> str:
    """``scontrol show config`` ("" when Slurm cannot tell)."""
    return query(["scontrol", "show", "config"]) or ""


def config_number(config: str, key: str) -> int | None:
    found = re.search(rf"^{key}\s*=\s*(\d+)", config, re.MULTILINE)
    return int(found.group(1)) if found else None


def max_array_index(config: str) -> int | None:
    """The highest array index Slurm accepts (MaxArraySize - 1), or None when it cannot tell."""
    size = config_number(config, "MaxArraySize")
    return size - 1 if size and size > 1 else None


def max_script_size(config: str) -> int:
    found = re.search(r"^SchedulerParameters\s*=.*\bmax_script_size=(\d+)", config, re.MULTILINE)
    return int(found.group(1)) if found else DEFAULT_MAX_SCRIPT_SIZE


def array_limit(slurm: dict[str, Any], config: str) -> tuple[int, str | None]:
    """Tasks per array: slurm.max_array_size, above SLURM_MAX_ARRAY_SIZE only as far as the cluster takes
    it (MaxArraySize - 1, and the array script under max_script_size); and a line for the sweep log when
    the cluster lowered it."""
    asked = int(slurm.get("max_array_size") or 0)
    if asked <= SLURM_MAX_ARRAY_SIZE:
        return slurm_array_limit(slurm), None
    index = max_array_index(config)
    if index is None:
        return SLURM_MAX_ARRAY_SIZE, (
            f"slurm.max_array_size is {asked} but Slurm's MaxArraySize could not be read: "
            f"arrays of at most {SLURM_MAX_ARRAY_SIZE} tasks"
        )
    by_script = max_script_size(config) // BYTES_PER_ARRAY_ELEMENT
    limit = min(asked, index, by_script)
    if limit == asked:
        return limit, None
    return limit, (
        f"slurm.max_array_size is {asked}; this cluster takes arrays of at most {limit} tasks "
        f"(MaxArraySize {index + 1}, a job script of at most {max_script_size(config)} bytes)"
    )


def job_count_room(config: str, held: int | None) -> SubmitRoom | None:
    """Room under the cluster's MaxJobCount: every job slurmctld holds counts, of every user
    (``held``: ``jobs_held()``)."""
    limit = config_number(config, "MaxJobCount")
    if not limit or held is None:
        return None
    return SubmitRoom(limit, held, "MaxJobCount of the cluster (all users' jobs)")


def jobs_held(query: Query = local_query) -> int | None:
    """The jobs slurmctld holds, of every user, finished ones included."""
    return jobs_listed("-t", "all", query=query)


def least_room(*rooms: SubmitRoom | None) -> SubmitRoom | None:
    """The room with the fewest free places, or None when no limit applies."""
    known = [room for room in rooms if room]
    return min(known, key=lambda each: each.free) if known else None


def tightest_room(
    slurm: dict[str, Any], config: str, user: str | None = None, query: Query = local_query
) -> SubmitRoom | None:
    """The least room of MaxSubmitJobs (association, QOS) and MaxJobCount (queries side by side)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        submit = pool.submit(submit_room, slurm.get("account"), slurm.get("qos"), user, query)
        held = pool.submit(jobs_held, query)
        return least_room(submit.result(), job_count_room(config, held.result()))


def jobs_per_round_args(index_limit: int | None) -> list[str]:
    """Hand the plugin at most ``index_limit`` jobs per round, so no array index passes it."""
    return [] if index_limit is None else ["--max-jobs-per-timespan", f"{index_limit}/1s"]


def profile_jobs(profile_dir: Path) -> int | None:
    """The profile's ``jobs:`` (jobs in the queue at once)."""
    try:
        value = (read_yaml(profile_dir / "config.yaml") or {}).get("jobs")
    except OSError:
        return None
    return int(value) if isinstance(value, int) or str(value).isdigit() else None


def capped_submission_args(room: SubmitRoom | None, jobs: int | None, max_array_size: int | None) -> list[str]:
    """``--jobs``/``--hsm-slurm-array-limit`` that keep a run within the room left (nothing if it fits)."""
    if room is None or (jobs is not None and jobs <= room.free):
        return []
    args = ["--jobs", str(room.free)]
    if room.free < 2:
        # The plugin refuses array submission with arrays of fewer than 2 elements.
        args += ["--hsm-slurm-array-jobs", ""]
    elif not max_array_size or int(max_array_size) > room.free:
        args += ["--hsm-slurm-array-limit", str(room.free)]
    return args


def submission_caps(profile_dir: Path, slurm: dict[str, Any]) -> tuple[list[str], str | None]:
    """Snakemake arguments for MaxArraySize and the tightest room (MaxSubmitJobs, MaxJobCount), and a line for the
    sweep log when the room caps the run. The queries run side by side (each ~0.1 s)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        config_query = pool.submit(cluster_config)
        submit_query = pool.submit(submit_room, slurm.get("account"), slurm.get("qos"))
        held_query = pool.submit(jobs_held)
        config, submit, held = config_query.result(), submit_query.result(), held_query.result()
    per_round = jobs_per_round_args(max_array_index(config))
    size, why = array_limit(slurm, config)
    if int(slurm.get("max_array_size") or 0) > SLURM_MAX_ARRAY_SIZE:
        per_round += ["--hsm-slurm-array-limit", str(size)]
    room = least_room(submit, job_count_room(config, held))
    args = capped_submission_args(room, profile_jobs(profile_dir), size)
    if not args:
        return per_round, why
    return [*per_round, *args], "; ".join(filter(None, (why, cap_message(room))))


def cap_message(room: SubmitRoom, where: str = "") -> str:
    """The sweep log's line for a run capped by ``room`` (``where``: " on ALIAS" for a remote cluster)."""
    return (
        f"Slurm's {room.source}{where} is {room.limit} and {room.queued} job(s) count against it: "
        f"at most {room.free} task(s) in the queue at once"
    )
