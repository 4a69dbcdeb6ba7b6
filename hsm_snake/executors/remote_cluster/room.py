"""A Slurm remote's submit room (MaxSubmitJobs of association/QOS, MaxJobCount: ``slurm/limits.py``)
as a run off the cluster sees it, asked over ssh on the login node.

- ``run --remote ALIAS``: read once before Snakemake starts (``remote_caps``), on a connection of
  its own, and turned into ``--jobs`` and the array size, as ``slurm/limits.submission_caps`` does
  for an on-cluster run.
- A cluster in the SSH pool: read at the start and again every ``ROOM_EVERY_S`` (``RoomWatch``),
  all its queries in one ssh call, so its slots follow the user's other jobs there. The pool's own
  elements are left out of the listings it counts, since the slots already hold them.
"""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path
from typing import Any

from hsm_snake.executors.remote_cluster.cluster import Cluster
from hsm_snake.executors.remote_cluster.slurm import SlurmCluster
from hsm_snake.executors.slurm import limits
from hsm_snake.layout.paths import SweepPaths

# How often a pooled cluster's room is read again (one ssh call each time).
ROOM_EVERY_S = 60.0


def caps_within(room: limits.SubmitRoom | None, jobs: int | None, array_limit: int) -> list[str]:
    """The executor's array size, and ``--jobs`` within ``room`` when the profile's ``jobs`` would pass it."""
    if room is None or (jobs is not None and jobs <= room.free):
        return ["--hsm-remote-slurm-array-limit", str(array_limit)]
    return ["--hsm-remote-slurm-array-limit", str(min(array_limit, room.free)), "--jobs", str(room.free)]


def remote_caps(
    paths: SweepPaths, alias: str, remote: dict[str, Any], section: dict[str, Any], profile_dir: Path
) -> tuple[list[str], list[str]]:
    """Snakemake arguments that keep a ``--remote ALIAS`` run within the cluster's MaxArraySize and
    submit room, and lines for the run's output; its queries over one ssh connection of their own."""
    with SlurmCluster.connected(paths, alias, remote) as cluster:
        room, size, notes = cluster.limits(section)
    args = caps_within(room, limits.profile_jobs(profile_dir), size)
    if room is not None and "--jobs" in args:
        notes = [note for note in notes if not note.startswith(room.source)]
        notes.append(limits.cap_message(room, f" on {alias}"))
    return args, notes


class Recording:
    """A ``limits.Query`` that remembers what it was asked (to ask it all again in one call)."""

    def __init__(self, query: limits.Query) -> None:
        self.query = query
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, argv: list[str]) -> str | None:
        if tuple(argv) not in self.asked:
            self.asked.append(tuple(argv))
        return self.query(argv)


def batch_command(queries: list[tuple[str, ...]], token: str) -> str:
    """One shell command running every query, each answer followed by a line ``<token> <exit status>``."""
    return "; ".join(f"{shlex.join(argv)} 2>/dev/null; printf '\\n%s %s\\n' {token} $?" for argv in queries)


def split_batch(stdout: str, token: str, queries: list[tuple[str, ...]]) -> dict[tuple[str, ...], str | None]:
    """Each query's stdout (None when it failed) from ``batch_command``'s output; {} when garbled."""
    pieces = re.split(rf"\n{re.escape(token)} (\d+)\n", stdout)
    if len(pieces) != 2 * len(queries) + 1:
        return {}
    return {argv: (pieces[2 * n] if pieces[2 * n + 1] == "0" else None) for n, argv in enumerate(queries)}


def without_jobs(listing: str | None, job_ids: set[str]) -> str | None:
    """An ``squeue -o %i`` listing without the lines of ``job_ids``."""
    if listing is None or not job_ids:
        return listing
    return "".join(line for line in listing.splitlines(keepends=True) if line.strip() not in job_ids)


class RoomWatch:
    """A pooled cluster's room: the first read as ``Cluster.limits``, later ones in one ssh call
    (a PBS cluster's limits ask nothing: no room, never read again)."""

    def __init__(self, cluster: Cluster, section: dict[str, Any]) -> None:
        self.cluster = cluster
        self.section = section
        self.recorded = Recording(cluster.query)

    def first(self) -> tuple[limits.SubmitRoom | None, int, list[str]]:
        """(room, tasks per array, lines for the log), remembering the queries it took."""
        return self.cluster.limits(self.section, self.recorded)

    def again(self, own: set[str]) -> limits.SubmitRoom | None:
        """The room now, the pool's own queued elements (``own``: their job ids) not counted; None
        when the login node did not answer. A query the first read did not make (the answers
        changed its course) is asked on its own."""
        queries = list(self.recorded.asked)
        if not queries:
            return None
        token = f"hsm-room-{secrets.token_hex(6)}"
        done = self.cluster.remote(batch_command(queries, token), 2 * limits.QUERY_TIMEOUT_S)
        answers = split_batch(done.stdout, token, queries) if done is not None and done.returncode == 0 else {}
        if not answers:
            return None

        def answer(argv: list[str]) -> str | None:
            found = answers[tuple(argv)] if tuple(argv) in answers else self.recorded(argv)
            return without_jobs(found, own) if argv[0] == "squeue" else found

        room, _, _ = self.cluster.limits(self.section, answer)
        return room
