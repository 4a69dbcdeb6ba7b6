"""A cluster remote's storage tiers (v1's ``workdir`` / ``archive_dir`` / ``archive_on``): the
sweep's copy lives in ``<workdir>/<sweep id>`` (e.g. scratch) while it runs; once the sweep has
ended (whatever ran its last tasks: ``--remote``, the SSH pool or a plain local ``complete``), the
login node copies it to ``<archive_dir>/<sweep id>/`` itself (rsync there, one ssh call) and writes
v1's ``.archived`` sentinel (once per outcome: an archive whose sentinel says the same
``any_failed`` is not copied again; a sweep archived failed and completed later is copied over
it, as v1's rsync does each time); a sweep
whose every task completed then leaves the workdir (unless ``keep_remote_on_success``), a failed
one stays there for inspection. ``remote clean`` removes what is left, never an archive the
remote's ``archive_on`` still asks for.

Everything happens in one program run by the login node's Python with its arguments as argv
(no path ever passes through a shell there); it answers one JSON line.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hsm_snake.errors import SweepStateError
from hsm_snake.executors.remote_cluster.cluster import Cluster, pending_elements
from hsm_snake.executors.remote_cluster.schedulers import BY_SCHEDULER
from hsm_snake.executors.ssh import hosts as hostmod
from hsm_snake.layout.index import load_index
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import RecordError, read_record, write_record
from hsm_snake.monitor import scan

ARCHIVE_ON = ("completed", "always", "never")
DEFAULT_ARCHIVE_ON = "completed"
SENTINEL = ".archived"
STORAGE_TIMEOUT_S = 3600  # an archive of a large sweep is a copy of all of it

# argv: source, archive_dir ('' = none), sweep id, archive (0/1), require_archived (0/1), remove (0/1), any_failed.
STORAGE_CODE = r"""
import json, os, re, shutil, subprocess, sys, tempfile
from datetime import datetime
source, archive_dir, sweep_id = sys.argv[1:4]
archive, require, remove = (flag == "1" for flag in sys.argv[4:7])
any_failed = sys.argv[7] == "1"
facts = {"source": source}
def done(**more):
    facts.update(more)
    print(json.dumps(facts))
    sys.exit(0)
def plain(value):
    return value if re.fullmatch(r"[\w./@%+=:,~-]+", value) else json.dumps(value)
if not os.path.isabs(source) or os.path.basename(source.rstrip("/")) != sweep_id:
    done(error="refused: not a sweep copy hsm-snake made")
target = ""
if archive_dir:
    base = os.path.abspath(os.path.expanduser(os.path.expandvars(archive_dir)))
    target = facts["target"] = os.path.join(base, sweep_id)
    real_source, real_target = os.path.realpath(source), os.path.realpath(target)
    inside = real_target.startswith(real_source + os.sep) or real_source.startswith(real_target + os.sep)
    if real_target == real_source or inside:
        done(error=f"refused: archive_dir {base} holds the sweep's copy itself (use another folder)")
if not os.path.isdir(source):
    done(missing=True, archived=bool(target) and os.path.isfile(os.path.join(target, ".archived")))
def archived_as():
    try:
        with open(os.path.join(target, ".archived"), encoding="utf-8") as sentinel:
            return re.search(r"^any_failed: (\w+)$", sentinel.read(), re.M).group(1)
    except (OSError, AttributeError, UnicodeDecodeError):
        return None
if archive and archived_as() == str(any_failed):
    archive, facts["archived_before"] = False, True
if archive:
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as e:
        done(error=f"cannot create {target}: {e.strerror or e}")
    copied = subprocess.run(["rsync", "-a", "--", source + "/", target + "/"], capture_output=True, text=True)
    if copied.returncode != 0:
        done(error=f"rsync to {target} failed (exit {copied.returncode}): {copied.stderr.strip()[-600:]}")
    sentinel = "".join(f"{key}: {value}\n" for key, value in (
        ("archived_at", datetime.now().isoformat()), ("source", plain(source)),
        ("sweep_id", plain(sweep_id)), ("any_failed", any_failed)))
    fd, temporary = tempfile.mkstemp(dir=target, prefix=".archived.")
    with os.fdopen(fd, "w") as out:
        out.write(sentinel)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(temporary, 0o644)
    os.replace(temporary, os.path.join(target, ".archived"))
    facts["archived"] = True
if require and not os.path.isfile(os.path.join(target, ".archived")):
    done(error="not archived")
if remove:
    try:
        shutil.rmtree(source)
    except OSError as e:
        done(error=f"cannot remove {source}: {e.strerror or e}")
    facts["removed"] = True
done()
"""


@dataclass
class StorageStep:
    """What the login node did with a sweep's copy (``source``) and archive (``target``)."""

    alias: str
    source: str
    target: str = ""
    archived: bool = False
    archived_before: bool = False
    removed: bool = False
    missing: bool = False
    error: str = ""

    @property
    def path(self) -> str:
        return self.source


def archive_settings(remote: dict[str, Any]) -> tuple[str, str]:
    """(archive_dir or '', archive_on) of a remote as hsm.yaml gives them (validated at load)."""
    return str(remote.get("archive_dir") or ""), str(remote.get("archive_on") or DEFAULT_ARCHIVE_ON)


def archive_wanted(remote: dict[str, Any], outcome: str | None) -> bool:
    """Whether the remote's archive_on asks for an archive of a sweep that ended so:
    ``completed`` (every task completed), ``failed`` (some failed) or None (not ended)."""
    archive_dir, archive_on = archive_settings(remote)
    if not archive_dir or outcome is None:
        return False
    return archive_on == "always" or (archive_on == "completed" and outcome == "completed")


def sweep_outcome(paths: SweepPaths) -> str | None:
    """``completed`` when every task of the sweep completed, ``failed`` when every task ended and
    some failed, None while any task is still to run, running or was cancelled."""
    state = scan.scan(load_index(paths.root), with_status=True)
    counts = state.counts()
    if counts[scan.COMPLETED] == len(state.tasks):
        return "completed"
    return "failed" if counts[scan.COMPLETED] + counts[scan.FAILED] == len(state.tasks) else None


def recorded_entries(paths: SweepPaths) -> list[dict[str, Any]]:
    """The arrays the sweep sent to cluster remotes, as recorded when they were submitted."""
    return [entry for kind in BY_SCHEDULER.values() for entry in kind.recorded(paths)]


def recorded_copies(paths: SweepPaths) -> dict[str, str]:
    """{alias: the sweep's copy there} of the cluster remotes the sweep's arrays went to (as recorded
    when they were submitted: the workdir resolved on the login node)."""
    return {str(entry["alias"]): str(entry["remote_sweep"]) for entry in recorded_entries(paths)}


def on_login_node(
    cluster: Cluster,
    remote: dict[str, Any],
    source: str,
    *,
    archive: bool,
    require_archived: bool,
    remove: bool,
    any_failed: bool,
) -> StorageStep:
    """Archive and/or remove the sweep's copy ``source`` there (one ssh call)."""
    archive_dir, _ = archive_settings(remote)
    flags = ["1" if flag else "0" for flag in (archive, require_archived, remove, any_failed)]
    argv = [*cluster.host.python, "-c", STORAGE_CODE, source, archive_dir, cluster.paths.sweep_id, *flags]
    done = cluster.remote(shlex.join(argv), STORAGE_TIMEOUT_S)
    try:
        facts = json.loads(done.stdout.strip().splitlines()[-1]) if done is not None else None
    except (IndexError, ValueError):
        facts = None
    if not isinstance(facts, dict):
        why = f"no answer within {STORAGE_TIMEOUT_S} s" if done is None else cluster.failure(done)
        return StorageStep(cluster.alias, source, error=why)
    return StorageStep(
        cluster.alias,
        str(facts.get("source") or source),
        target=str(facts.get("target") or ""),
        archived=bool(facts.get("archived")),
        archived_before=bool(facts.get("archived_before")),
        removed=bool(facts.get("removed")),
        missing=bool(facts.get("missing")),
        error=str(facts.get("error") or ""),
    )


def finish(paths: SweepPaths, project_data: dict[str, Any]) -> list[StorageStep]:
    """At the end of a run or complete that was not interrupted, however it ran (``--remote``, the
    SSH pool, plain local): once the sweep has ended, each cluster it has a copy on
    (:func:`recorded_copies`) gets what the sweep's outcome asks for (:func:`finish_copy`). A copy
    already settled for this outcome, with no array sent there since, costs no ssh call."""
    copies = recorded_copies(paths)
    outcome = sweep_outcome(paths) if copies else None
    if outcome is None:
        return []
    settled = _settled(paths)
    arrays = Counter(str(entry["alias"]) for entry in recorded_entries(paths))
    steps = []
    for alias, source in copies.items():
        state = {"outcome": outcome, "arrays": arrays[alias]}
        if settled.get(alias) == state:
            continue
        step = finish_copy(paths, alias, source, outcome, project_data)
        if step is not None:
            steps.append(step)
        if step is None or not step.error:
            settled[alias] = state
    write_record(paths.cluster_storage, settled, header="hsm-snake: storage steps done per cluster remote")
    return steps


def _settled(paths: SweepPaths) -> dict[str, Any]:
    # A lost or damaged record costs one ssh call: the step is idempotent (sentinel, missing copy).
    try:
        return read_record(paths.cluster_storage)
    except (FileNotFoundError, RecordError):
        return {}


def finish_copy(
    paths: SweepPaths, alias: str, source: str, outcome: str, project_data: dict[str, Any]
) -> StorageStep | None:
    """The sweep's copy ``source`` on the cluster remote ``alias``, once the sweep ended so
    (``completed``/``failed``): archived as archive_on asks (once), then removed if every task
    completed (unless keep_remote_on_success, or the archive it needed is not confirmed). None:
    nothing to do."""
    remote = ((project_data.get("distributed") or {}).get("remotes") or {}).get(alias)
    if not remote:
        return StorageStep(alias, source, error="no longer a remote of the project config: its copy there is kept")
    archive = archive_wanted(remote, outcome)
    keep = hostmod.host_from_remote(alias, remote, project_data).keep_remote_on_success
    remove = outcome == "completed" and not keep
    if not (archive or remove):
        return None
    with Cluster.connected(paths, alias, remote) as cluster:
        step = on_login_node(
            cluster,
            remote,
            source,
            archive=archive,
            require_archived=archive,
            remove=remove,
            any_failed=outcome != "completed",
        )
        cluster.log(describe(step))
    return step


def check_collected(paths: SweepPaths, alias: str) -> None:
    """Refuse to clean up a sweep's copy on ``alias`` while tasks it ran there have not come back."""
    out = sorted(
        task.name
        for kind in BY_SCHEDULER.values()
        for (where, _), group in pending_elements(paths, kind.recorded(paths), kind.came_back).items()
        if where == alias
        for _, _, task in group
    )
    if out:
        raise SweepStateError(
            f"sweep {paths.sweep_id} has {len(out)} task(s) on {alias} that have not come back "
            f"({', '.join(out[:5])}): queued, running or not collected\n"
            f"  hint: hsm-snake complete {paths.sweep_id} --remote {alias} waits for them and collects them"
        )


def clean(paths: SweepPaths, alias: str, remote: dict[str, Any]) -> StorageStep:
    """Remove the sweep's copy on the Slurm remote ``alias`` (:func:`check_collected` first); refused
    (``error``) when the remote's archive_on asks for an archive that is not there."""
    source = recorded_copies(paths).get(alias, "")
    # An archive is asked for once the sweep has ended: a sweep not ended yet counts as failed.
    required = archive_wanted(remote, sweep_outcome(paths) or "failed")
    with Cluster.connected(paths, alias, remote) as cluster:
        step = on_login_node(
            cluster, remote, source, archive=False, require_archived=required, remove=True, any_failed=False
        )
        if step.error == "not archived":
            step.error = (
                f"refused: not archived to {step.target} (archive_on: {archive_settings(remote)[1]} asks for it; "
                f"hint: hsm-snake complete {paths.sweep_id} --remote {alias} archives an ended sweep, "
                "or set archive_on: never)"
            )
        cluster.log(describe(step))
    return step


def describe(step: StorageStep) -> str:
    """One line on what the login node did (the remote's source log, the run's notices)."""
    if step.error:
        return f"storage: {step.source}: {step.error}"
    if step.missing:
        return f"storage: {step.source} is gone already" + (f" (archived in {step.target})" if step.archived else "")
    done = (
        ([f"archived to {step.target} ({SENTINEL} written)"] if step.archived else [])
        + ([f"archived in {step.target} already ({SENTINEL} there)"] if step.archived_before else [])
        + ([f"removed {step.source}"] if step.removed else [])
    )
    return f"storage: {step.source}: " + ("; ".join(done) or "kept")
