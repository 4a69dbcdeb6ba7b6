"""Read-only views of a Slurm cluster's queue (``hsm-snake queue``; v1's ``hsm queue``).

Each view is one ``squeue`` or ``scontrol`` call, bounded by a timeout (a controller that does not
answer must not hang the command), with a fixed tab-separated ``--format`` so column widths never
matter. The job name, the one free-text field, comes last so a tab in it cannot shift the others.
Rows that still do not parse are counted, not guessed at.
"""

from __future__ import annotations

import getpass
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field

from hsm_snake.errors import HsmError
from hsm_snake.executors.common import run_bounded

QUERY_TIMEOUT_S = 15
# job id, user, state, reason/nodes, partition, tres per job, expected start, priority, name
SQUEUE_FORMAT = "%i\t%u\t%T\t%R\t%P\t%b\t%S\t%Q\t%j"
_FIELDS = 9
# Slurm 23+: gres/gpu:h100=1 (typed) or gres/gpu=1 / gres:gpu:1 (untyped).
_GRES = re.compile(r"gres[/:]gpu(?::([A-Za-z0-9_.-]+))?[=:](\d+)", re.IGNORECASE)
_RESERVATION_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9_]*)=(\S*)")
UNTYPED = "<untyped>"


class SchedulerUnavailable(HsmError):
    """No Slurm here, or it did not answer: nothing to show (exit 1, not a usage error)."""

    exit_code = 1


@dataclass(frozen=True)
class QueueJob:
    job_id: str
    user: str
    state: str
    reason: str
    partition: str
    tres: str
    expected_start: str
    priority: int
    name: str
    gpu_count: int = 0
    gpu_type: str | None = None

    @property
    def gpus(self) -> str:
        if not self.gpu_count:
            return ""
        return f"{self.gpu_count}x{self.gpu_type}" if self.gpu_type else str(self.gpu_count)


@dataclass
class Listing:
    jobs: list[QueueJob] = field(default_factory=list)
    unparsed: int = 0


@dataclass(frozen=True)
class Reservation:
    name: str
    start: str
    end: str
    duration: str
    nodes: str
    node_count: int


def gpus_of(tres: str) -> tuple[int, str | None]:
    """(count, type) of the GPUs a job asks for; a typed request wins over an untyped one."""
    count = 0
    for match in _GRES.finditer(tres or ""):
        if match.group(1):
            return int(match.group(2)), match.group(1)
        count = max(count, int(match.group(2)))
    return count, None


def _priority(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


def parse_squeue(text: str) -> Listing:
    listing = Listing()
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t", _FIELDS - 1)
        if len(parts) != _FIELDS or not parts[0].strip():
            listing.unparsed += 1
            continue
        job_id, user, state, reason, partition, tres, start, priority, name = parts
        count, gpu_type = gpus_of(tres)
        listing.jobs.append(
            QueueJob(
                job_id.strip(),
                user.strip(),
                state.strip(),
                reason.strip(),
                partition.strip(),
                tres.strip(),
                start.strip(),
                _priority(priority),
                name,
                count,
                gpu_type,
            )
        )
    return listing


def parse_reservations(text: str) -> list[Reservation]:
    found = []
    for stanza in re.split(r"\n\s*\n", text.strip()):
        if not stanza.strip() or stanza.lower().startswith("no reservations"):
            continue
        fields = dict(_RESERVATION_FIELD.findall(stanza))
        if "ReservationName" not in fields:
            continue
        count = fields.get("NodeCnt", "0")
        found.append(
            Reservation(
                fields["ReservationName"],
                fields.get("StartTime", "?"),
                fields.get("EndTime", "?"),
                fields.get("Duration", "?"),
                fields.get("Nodes", "?"),
                int(count) if count.isdigit() else 0,
            )
        )
    return found


def sweep_of(job_name: str, sweep_ids: set[str]) -> str:
    """The sweep a job belongs to: hsm-snake's Slurm jobs are named ``<sweep id>-<task>``."""
    prefix = job_name.rpartition("-")[0]
    return prefix if prefix in sweep_ids else ""


def current_user() -> str:
    return getpass.getuser()


def _query(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        raise SchedulerUnavailable(f"no Slurm here: {argv[0]} is not on PATH (hsm-snake queue is for Slurm clusters)")
    done = run_bounded(argv, QUERY_TIMEOUT_S)
    if done is None:
        raise SchedulerUnavailable(f"{argv[0]} did not answer within {QUERY_TIMEOUT_S} s (is slurmctld up?)")
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-500:]
        raise SchedulerUnavailable(f"{' '.join(argv[:2])} failed (exit {done.returncode}): {said or 'no output'}")
    return done.stdout


def _squeue(*selector: str) -> Listing:
    return parse_squeue(_query(["squeue", "--noheader", "--array", f"--format={SQUEUE_FORMAT}", *selector]))


def user_jobs(user: str) -> Listing:
    """Every job of ``user``, any state, array elements one row each."""
    return _squeue(f"--user={user}")


def pending_gpu_jobs() -> Listing:
    """The cluster's pending GPU jobs, highest priority first (the order Slurm starts them in)."""
    listing = _squeue("--state=PENDING", "--sort=-Q")
    listing.jobs = [j for j in listing.jobs if j.state == "PENDING" and j.gpu_count > 0]
    listing.jobs.sort(key=lambda job: -job.priority)
    return listing


def gpu_depth(jobs: list[QueueJob], user: str | None = None) -> dict[str, Counter]:
    """GPUs asked for per GPU type and job state (of ``user``'s jobs only, when given)."""
    depth: dict[str, Counter] = {}
    for job in jobs:
        if job.gpu_count and (user is None or job.user == user):
            depth.setdefault(job.gpu_type or UNTYPED, Counter())[job.state] += job.gpu_count
    return depth


def all_jobs() -> Listing:
    return _squeue()


def reservations() -> list[Reservation]:
    return parse_reservations(_query(["scontrol", "show", "reservations"]))
