"""Ask qstat about many PBS jobs in one call, whatever PBS it is.

Four output formats are understood, and :func:`parse_any` tells them apart by their first
characters, whichever command produced them:

- PBS Pro / OpenPBS ``qstat -x -f -F json IDS``: ``{"Jobs": {"123.server": {...}}}``, finished
  jobs (state F) with ``Exit_status`` when the server keeps job history;
- Torque ``qstat -x -f IDS``: ``<Data><Job><Job_Id>…`` XML, finished jobs (state C) with
  ``exit_status``;
- ``qstat -f IDS`` text (Torque, PBS Pro and Slurm's torque wrappers): ``Job Id: 123`` blocks of
  ``key = value`` lines, long values continued on tab-indented lines;
- the plain ``qstat IDS`` table (``Job id  Name  User  Time Use  S  Queue``).

:class:`Qstat` picks the richest command this qstat accepts on its first call (an option it
does not know gives a usage message and exit status 2) and then sticks to it: one call per
poll cycle for all jobs. Ids qstat does not know are left out of its answer (exit status 153,
PBSE_UNKJOBID, or 35 on PBS Pro for a finished job without ``-x``): the caller sees them as
missing. Every call is bounded by a timeout: a cluster whose server does not answer must
never hang a run. No Snakemake imports: ``hsm-snake cancel`` uses this module too.
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hsm_snake.errors import InvalidValueError
from hsm_snake.executors.common import run_bounded

QSTAT_TIMEOUT_S = 60

# Job states. PBS Pro: F finished, X finished subjob, B array begun, M moved. Torque: C
# completed. Both: Q queued, H held, W waiting, T transit, S/U suspended, R running, E exiting.
FINISHED_STATES = frozenset("CFX")
RUNNING_STATES = frozenset("RE")

# Exit status of qstat when (some of) the ids are unknown: PBSE_UNKJOBID (15001 % 256) and
# PBS Pro's "job has finished, use -x" (PBSE_HISTJOBID).
UNKNOWN_JOB_EXITS = frozenset({153, 35})

# The commands, richest first. ``-x`` is "include finished jobs" on PBS Pro and "XML" on
# Torque (where it goes with -f): either way the answer carries the exit status. Whatever a
# command prints is parsed by its look (parse_any), not by the command's name.
FORMATS: dict[str, list[str]] = {
    "pro-json": ["-x", "-f", "-F", "json"],
    "history": ["-x", "-f"],
    "full": ["-f"],
    "table": [],
}


@dataclass
class JobInfo:
    """What one qstat answer says about one job (None: not reported by this format)."""

    job_id: str
    state: str
    exit_status: int | None = None
    name: str | None = None
    used_walltime_s: int | None = None
    walltime_limit_s: int | None = None
    comment: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass
class QstatAnswer:
    """Jobs qstat reported, or ``ok=False`` when qstat itself failed (nothing is known)."""

    jobs: dict[str, JobInfo]
    ok: bool
    command: list[str] = field(default_factory=list)
    error: str = ""

    def get(self, job_id: str) -> JobInfo | None:
        return lookup(self.jobs, job_id)


def short_id(job_id: str) -> str:
    """``1234.server.example.org`` → ``1234`` (tables truncate ids, servers add suffixes)."""
    return job_id.split(".", 1)[0].rstrip("*")


def lookup(jobs: dict[str, JobInfo], job_id: str) -> JobInfo | None:
    """The entry of a job id as qsub printed it, matched in full or by its sequence number."""
    found = jobs.get(job_id)
    if found is not None:
        return found
    wanted = short_id(job_id)
    for key, info in jobs.items():
        if short_id(key) == wanted:
            return info
    return None


def walltime_seconds(value: Any) -> int | None:
    """``HH:MM:SS`` / ``MM:SS`` / seconds (PBS Pro may print a bare number) → seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    parts = text.split(":")
    if not 2 <= len(parts) <= 3 or not all(re.fullmatch(r"\d+", p) for p in parts):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _job_from_attributes(job_id: str, attrs: dict[str, Any]) -> JobInfo:
    """A JobInfo from flat attributes (``resources_used.walltime`` style keys)."""
    lowered = {key.lower(): value for key, value in attrs.items()}
    return JobInfo(
        job_id=job_id,
        state=str(lowered.get("job_state", "?")).strip()[:1].upper() or "?",
        # PBS Pro writes Exit_status, Torque exit_status.
        exit_status=_int_or_none(lowered.get("exit_status")),
        name=lowered.get("job_name"),
        used_walltime_s=walltime_seconds(lowered.get("resources_used.walltime")),
        walltime_limit_s=walltime_seconds(lowered.get("resource_list.walltime")),
        comment=lowered.get("comment"),
        attributes=attrs,
    )


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --- PBS Pro JSON ------------------------------------------------------------------------
def parse_pro_json(text: str) -> dict[str, JobInfo]:
    """``qstat -f -F json`` (PBS Pro ≥ 18, OpenPBS)."""
    try:
        # strict=False: some PBS versions put raw control characters (tabs, newlines of
        # Variable_List values) inside JSON strings.
        data = json.loads(text, strict=False)
    except ValueError:
        return _parse_broken_json(text)
    jobs = data.get("Jobs") or {} if isinstance(data, dict) else {}
    return {
        job_id: _job_from_attributes(job_id, _flatten(attrs))
        for job_id, attrs in jobs.items()
        if isinstance(attrs, dict)
    }


_JSON_JOB_START = re.compile(r'^\s*"([^"\s]+)"\s*:\s*\{\s*$', re.MULTILINE)


def _parse_broken_json(text: str) -> dict[str, JobInfo]:
    """Salvage the fields we need from JSON some PBS versions print unescaped (backslashes or
    quotes in environment values): one job block per ``"ID":{`` line."""
    starts = [
        m
        for m in _JSON_JOB_START.finditer(text)
        if m.group(1) not in ("Jobs", "resources_used", "Resource_List", "Variable_List")
    ]
    jobs: dict[str, JobInfo] = {}
    for number, match in enumerate(starts):
        end = starts[number + 1].start() if number + 1 < len(starts) else len(text)
        block = text[match.end() : end]

        def field_value(name: str, block: str = block) -> str | None:
            found = re.search(rf'"{name}"\s*:\s*"?([^",\n}}]*)"?', block, re.IGNORECASE)
            return found.group(1).strip() if found else None

        used = re.search(r'"resources_used"\s*:\s*\{[^}]*?"walltime"\s*:\s*"([^"]*)"', block)
        limit = re.search(r'"Resource_List"\s*:\s*\{[^}]*?"walltime"\s*:\s*"([^"]*)"', block)
        attrs = {
            "job_state": field_value("job_state") or "?",
            "Exit_status": field_value("Exit_status"),
            "Job_Name": field_value("Job_Name"),
            "comment": field_value("comment"),
            "resources_used.walltime": used.group(1) if used else None,
            "Resource_List.walltime": limit.group(1) if limit else None,
        }
        jobs[match.group(1)] = _job_from_attributes(match.group(1), attrs)
    return jobs


# --- Torque XML ----------------------------------------------------------------------------
def parse_torque_xml(text: str) -> dict[str, JobInfo]:
    """Torque ``qstat -x``: ``<Data><Job><Job_Id>…</Job_Id>…</Job></Data>``."""
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError:
        # Several documents glued together, or a stray byte: parse job by job.
        jobs: dict[str, JobInfo] = {}
        for chunk in re.findall(r"<Job>.*?</Job>", text, re.DOTALL):
            try:
                jobs.update(_xml_jobs(ET.fromstring(f"<Data>{chunk}</Data>")))
            except ET.ParseError:
                continue
        return jobs
    return _xml_jobs(root)


def _xml_jobs(root: ET.Element) -> dict[str, JobInfo]:
    jobs: dict[str, JobInfo] = {}
    for element in root.iter("Job"):
        attrs: dict[str, Any] = {}
        for child in element:
            if len(child):
                for grandchild in child:
                    attrs[f"{child.tag}.{grandchild.tag}"] = (grandchild.text or "").strip()
            else:
                attrs[child.tag] = (child.text or "").strip()
        job_id = attrs.get("Job_Id")
        if job_id:
            jobs[job_id] = _job_from_attributes(job_id, attrs)
    return jobs


# --- qstat -f text ---------------------------------------------------------------------------
_FULL_JOB = re.compile(r"^Job Id:\s*(\S+)")
_FULL_ATTR = re.compile(r"^\s+([A-Za-z_][\w.]*) = ?(.*)$")


def parse_full(text: str) -> dict[str, JobInfo]:
    """``qstat -f`` text of Torque, PBS Pro or the Slurm torque wrappers."""
    jobs: dict[str, JobInfo] = {}
    job_id: str | None = None
    attrs: dict[str, Any] = {}
    last: str | None = None

    def close() -> None:
        if job_id is not None:
            jobs[job_id] = _job_from_attributes(job_id, attrs)

    for line in text.splitlines():
        start = _FULL_JOB.match(line)
        if start:
            close()
            job_id, attrs, last = start.group(1), {}, None
            continue
        if job_id is None or not line.strip():
            continue
        attr = _FULL_ATTR.match(line)
        if attr:
            last = attr.group(1)
            attrs[last] = attr.group(2).strip()
        elif last is not None:
            # A long value continued on the next line (PBS wraps at ~80 columns).
            attrs[last] += line.strip()
    close()
    return jobs


# --- plain table -----------------------------------------------------------------------------
def parse_table(text: str) -> dict[str, JobInfo]:
    """``qstat`` table: rows after the ``----`` rule; S is the second-to-last column."""
    jobs: dict[str, JobInfo] = {}
    in_rows = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if set(stripped) <= set("- "):
            in_rows = True
            continue
        if not in_rows:
            continue
        fields = stripped.split()
        if len(fields) < 3 or len(fields[-2]) != 1:
            continue
        jobs[fields[0]] = JobInfo(job_id=fields[0], state=fields[-2].upper(), name=fields[1])
    return jobs


def sniff(text: str) -> str:
    """Which format a qstat output is in (``empty`` when it holds no job)."""
    head = text.lstrip()
    if not head:
        return "empty"
    if head.startswith("{"):
        return "pro-json"
    if head.startswith("<"):
        return "torque-xml"
    if re.search(r"^Job Id:", text, re.MULTILINE):
        return "full"
    return "table"


PARSERS = {
    "pro-json": parse_pro_json,
    "torque-xml": parse_torque_xml,
    "full": parse_full,
    "table": parse_table,
}


def parse_any(text: str) -> dict[str, JobInfo]:
    kind = sniff(text)
    return {} if kind == "empty" else PARSERS[kind](text)


def _unsupported(done: subprocess.CompletedProcess) -> bool:
    """qstat refused the options (not the ids): a usage message, exit status 2."""
    if done.returncode == 0 or done.returncode in UNKNOWN_JOB_EXITS:
        return False
    message = (done.stderr + done.stdout).lower()
    return done.returncode == 2 or "usage" in message or "invalid option" in message or "unknown option" in message


class Qstat:
    """One qstat call per poll for all jobs, in the richest format this qstat speaks.

    ``run`` runs a qstat argv (None: it could not run or answer in time); default: here, bounded
    by ``timeout_s``. The remote PBS executor passes one that runs it on a login node over ssh.
    """

    def __init__(
        self,
        fmt: str = "auto",
        qstat: str = "qstat",
        timeout_s: float = QSTAT_TIMEOUT_S,
        run: Callable[[list[str]], subprocess.CompletedProcess | None] | None = None,
    ) -> None:
        if fmt != "auto" and fmt not in FORMATS:
            raise InvalidValueError(f"unknown qstat format {fmt!r}: auto, {', '.join(FORMATS)}")
        self.qstat = qstat
        self.timeout_s = timeout_s
        self.run = run or (lambda argv: run_bounded(argv, timeout_s))
        self.format: str | None = None if fmt == "auto" else fmt
        self.calls = 0

    def candidates(self) -> list[str]:
        return [self.format] if self.format else list(FORMATS)

    def query(self, job_ids: list[str]) -> QstatAnswer:
        if not job_ids:
            return QstatAnswer({}, ok=True)
        answer = QstatAnswer({}, ok=False, error="no qstat format was accepted")
        for fmt in self.candidates():
            command = [self.qstat, *FORMATS[fmt], *job_ids]
            self.calls += 1
            done = self.run(command)
            if done is None:
                return QstatAnswer(
                    {}, ok=False, command=command, error=f"could not run or no answer within {self.timeout_s:g} s"
                )
            if self.format is None and _unsupported(done):
                continue
            jobs = parse_any(done.stdout)
            # Exit 0, or "unknown job" for some ids, is an answer (even an empty one); any other
            # failure with nothing parsed means qstat could not ask the server.
            if done.returncode != 0 and done.returncode not in UNKNOWN_JOB_EXITS and not jobs:
                return QstatAnswer(
                    {},
                    ok=False,
                    command=command,
                    error=f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[:500]}",
                )
            if self.format is None:
                self.format = fmt
            return QstatAnswer(jobs, ok=True, command=command)
        return answer
