"""Why tasks failed, grouped: ``hsm-snake errors`` and the error part of ``hsm-snake report``.

Failed and cancelled tasks are grouped by ``error_category`` (Python exceptions also by exception
type, missing modules by module), each group with its task ids, one example's stderr tail and a
concrete suggestion. Tasks whose state cannot be trusted (stale, unreadable) are listed apart.
Reads the sweep directory alone; never raises on a damaged file.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from hsm_snake.errors import ConfigError
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import write_yaml
from hsm_snake.monitor import scan
from hsm_snake.monitor.readers import compress_tasks, number, project_record, tail_lines
from hsm_snake.runner import conda, failures

_MODULE = re.compile(r"No module named '?([\w.]+)'?|cannot import name '?(\w+)'?")
_EXCEPTION_TYPE = re.compile(r"^([A-Za-z_][\w.]*)\s*(?::|$)")


@dataclass
class ErrorGroup:
    category: str
    subtype: str | None
    tasks: list[str]
    example: str
    summary: str | None
    stderr_tail: list[str]
    suggestion: str
    summaries: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.tasks)

    @property
    def label(self) -> str:
        return f"{self.category} ({self.subtype})" if self.subtype else self.category

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["count"] = self.count
        data["task_ids"] = compress_tasks(self.tasks)
        return data


@dataclass
class Questionable:
    """A task whose state cannot be trusted: stale (running, but no run) or unreadable."""

    task: str
    state: str
    note: str | None
    suggestion: str


@dataclass
class ErrorReport:
    sweep_id: str
    total: int
    groups: list[ErrorGroup]
    questionable: list[Questionable]
    failed: list[dict[str, Any]]
    pattern: str | None = None
    """The ``--pattern`` the failed tasks were filtered by, if any."""
    unfiltered: int = 0
    """Failed or cancelled tasks before the pattern filtered them."""

    @property
    def failed_count(self) -> int:
        return sum(g.count for g in self.groups)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sweep_id": self.sweep_id,
            "total": self.total,
            "failed": self.failed_count,
            **({"pattern": self.pattern, "failed_before_pattern": self.unfiltered} if self.pattern else {}),
            "groups": [g.as_dict() for g in self.groups],
            "questionable": [asdict(q) for q in self.questionable],
        }


def exception_type(summary: Any) -> str | None:
    """``"ValueError: lr must be > 0"`` → ``"ValueError"``."""
    if not isinstance(summary, str):
        return None
    match = _EXCEPTION_TYPE.match(summary.strip())
    return match.group(1) if match else None


def missing_module(summary: Any) -> str | None:
    """The module of ``"ModuleNotFoundError: No module named 'torch'"``."""
    if not isinstance(summary, str):
        return None
    match = _MODULE.search(summary)
    if not match:
        return None
    name = match.group(1) or match.group(2)
    return name.split(".")[0] if match.group(1) else name


def _subtype(category: str, summary: Any) -> str | None:
    if category == failures.PYTHON_EXCEPTION:
        return exception_type(summary) or "unknown exception"
    if category == failures.MISSING_MODULE:
        return missing_module(summary)
    return None


class _Advisor:
    """Concrete suggestions that name this sweep's settings (interpreter, walltime, memory)."""

    def __init__(self, paths: SweepPaths) -> None:
        self.sweep_id = paths.sweep_id
        record = project_record(paths)
        self.project = record.get("project") if isinstance(record.get("project"), dict) else {}
        self.runner = record.get("runner") if isinstance(record.get("runner"), dict) else {}

    def _setting(self, section: str, key: str) -> Any:
        value = self.project.get(section)
        return value.get(key) if isinstance(value, dict) else None

    def _current(self, section: str, key: str) -> str:
        value = self._setting(section, key)
        return f" (now {value})" if value not in (None, "") else ""

    def _retry(self, key: str, default: float) -> Any:
        return self._setting("retry", key) or default

    def python(self) -> str:
        command = self.runner.get("python_command")
        if isinstance(command, list) and command:
            return " ".join(str(part) for part in conda.readable([str(part) for part in command]))
        return "the interpreter paths.python_interpreter names"

    def workdir(self) -> str:
        if self.runner.get("run_in_task_dir"):
            return "each task's own folder (task.workdir: task)"
        return str(self.runner.get("workdir") or "the project root")

    def facts(
        self, category: str, subtype: str | None, example: str, backend: str | None, summary: Any
    ) -> dict[str, Any]:
        """What the advice templates name: this sweep's settings and the group's example task."""
        res = "slurm" if backend == "slurm" else "pbs" if backend == "pbs" else "local"
        stderr = f"tasks/{example}/stderr.log"
        output_arg = str(self.runner.get("output_dir_arg") or "")
        return {
            "sweep": self.sweep_id,
            "resume": f"then `hsm-snake complete {self.sweep_id} --only-category {category}`",
            "res": res,
            "mem_now": self._current(res, "mem"),
            "walltime_now": self._current(res, "walltime"),
            "mem_elsewhere": " (or local.mem)" if res != "local" else " (or slurm.mem on a cluster)",
            "mem_factor": self._retry("mem_factor", 2),
            "time_factor": self._retry("time_factor", 2),
            "module": subtype or "the missing module",
            "python": self.python(),
            "workdir": self.workdir(),
            "project_root": self.runner.get("workdir") or "",
            "stderr": stderr,
            "example": example,
            "summary": summary,
            "summary_or_stderr": summary or f"see {stderr}",
            "output_arg": output_arg,
            "output_key": output_arg.lstrip("+"),
        }

    def suggest(self, category: str, subtype: str | None, example: str, backend: str | None, summary: Any) -> str:
        facts = self.facts(category, subtype, example, backend, summary)
        for advice in ADVICE:
            if category in advice.categories and (match := advice.match(summary, facts)) is not None:
                return advice.text.format(**facts, **match)
        return UNCATEGORIZED.format(**facts)


@dataclass(frozen=True)
class Advice:
    """A suggestion for a group of failed tasks: the first whose categories hold the group's and whose
    ``when`` (a regular expression) is found in the group's error summary. ``when`` may name the
    output argument (``{output_arg}``, ``{output_key}`` without a leading +): a sweep without one
    skips it. Its named groups and the advisor's facts fill ``text``."""

    categories: tuple[str, ...]
    text: str
    when: str | None = None

    def match(self, summary: Any, facts: dict[str, Any]) -> dict[str, str] | None:
        """The named groups of ``when`` in ``summary`` ({} when there is no ``when``); None: no match."""
        if self.when is None:
            return {}
        if not isinstance(summary, str):
            return None
        named = re.findall(r"\{(\w+)\}", self.when)
        if not all(facts[name] for name in named):
            return None
        found = re.search(self.when.format(**{name: re.escape(facts[name]) for name in named}), summary, re.DOTALL)
        return found.groupdict() if found else None


# A script that refused the arguments hsm-snake passed (argparse or Hydra). A Hydra app prints the
# whole traceback of a refused override under HYDRA_FULL_ERROR=1 or a tracer (a debugger, coverage),
# which is then classified as a Python exception: the same advice as for its short message.
_REFUSED_ARGUMENTS = (failures.PYTHON_EXCEPTION, failures.NONZERO_EXIT)

ADVICE = (
    Advice(
        (failures.OUT_OF_MEMORY,),
        "raise {res}.mem{mem_now} in hsm.yaml{mem_elsewhere}, or set retries: 1 so hsm-snake retries with "
        "retry.mem_factor × memory (retry.mem_factor is {mem_factor}); {resume}",
    ),
    Advice(
        (failures.CUDA_OOM,),
        "the GPU ran out of memory: lower the batch or model size of these tasks, or ask for a larger GPU "
        "(slurm.gpu_type / slurm.constraint); retrying on the same GPU would fail again; {resume}",
    ),
    Advice(
        (failures.TIMEOUT,),
        "raise {res}.walltime{walltime_now} in hsm.yaml, or set retries: 1 so hsm-snake retries with "
        "retry.time_factor × walltime (retry.time_factor is {time_factor}); {resume}",
    ),
    Advice(
        (failures.MISSING_MODULE,),
        "install {module} in the interpreter paths.python_interpreter points to ({python}), e.g. "
        "`{python} -m pip install {module}` (the package name may differ), or point "
        "paths.python_interpreter / paths.conda_env at an environment that has it; {resume}",
    ),
    Advice(
        (failures.MISSING_FILE,),
        "the script itself is missing ({summary}): point the sweep file's script: or paths.train_script at it "
        "(relative to the project root {project_root}); `hsm-snake validate SWEEP_FILE` checks it before a run; "
        "{resume}",
        when="can't open file",
    ),
    Advice(
        (failures.MISSING_FILE,),
        "a file the script opens does not exist ({summary_or_stderr}); relative paths are read from {workdir}: "
        "fix the path or use an absolute one; {resume}",
    ),
    Advice(
        (failures.SYNTAX_ERROR,),
        "fix the syntax error in the script (see {stderr}); every task fails the same way until then; {resume}",
    ),
    Advice(
        _REFUSED_ARGUMENTS,
        "the script has no --{output_arg} option, which hsm-snake passes the task folder as: set "
        "task.output_dir_arg: null in hsm.yaml (every task finds its folder in $HSM_TASK_DIR), "
        "or add --{output_arg} to the script's parser; {resume}",
        when=r"unrecognized arguments:.*?(?<=\s)--{output_arg}(?=\s|$)",
    ),
    Advice(
        _REFUSED_ARGUMENTS,
        "the script's argparse parser refuses arguments hsm-snake passed: a swept key must be an option "
        "of the script without its dashes (lr for --lr), and task.extra_args must be options it has; {resume}",
        when="unrecognized arguments:",
    ),
    Advice(
        _REFUSED_ARGUMENTS,
        "the app's Hydra config has no {output_key}: set task.output_dir_arg: null in hsm.yaml "
        "(a Hydra app gets hydra.run.dir=<task folder>, so its outputs already land in the task folder), "
        "or add {output_key} to the app's config; {resume}",
        when="Could not override '{output_key}'",
    ),
    Advice(
        _REFUSED_ARGUMENTS,
        "{key} is not a key of the app's Hydra config: fix the key in the sweep file, or sweep "
        "+{key} to add it; `hsm-snake validate --deep SWEEP_FILE` checks the first task's "
        "overrides with the app itself; {resume}",
        when="Could not override '(?P<key>[^']+)'",
    ),
    Advice(
        _REFUSED_ARGUMENTS,
        "the Hydra app refuses an override (a value of the wrong type, an unknown config group option): "
        "fix the value in the sweep file; `hsm-snake validate --deep SWEEP_FILE` checks it before a run; {resume}",
        when="Error merging override|Could not ",
    ),
    Advice((failures.PYTHON_EXCEPTION,), "fix the bug; retrying would fail again — see {stderr}"),
    Advice(
        (failures.NONZERO_EXIT,),
        "the script exited with a non-zero status and no Python traceback: read {stderr} and "
        "tasks/{example}/stdout.log (argument errors such as 'unrecognized arguments' show there); {resume}",
    ),
    Advice(
        (failures.LAUNCH_ERROR,),
        "the task could not be started: check that paths.python_interpreter ({python}) and "
        "paths.train_script exist and are executable; {resume}",
    ),
    Advice(
        (failures.MISSING_ENVIRONMENT,),
        "no conda, mamba or micromamba was found where the task ran (the summary lists where it looked): "
        "set paths.conda_root (a remote: its conda_root) to the installation folder; {resume}",
    ),
    Advice(
        (failures.KILLED,),
        "killed by a signal, often the kernel's out-of-memory killer or kill -9: check `dmesg` or the "
        "scheduler's log; if it was memory, raise {res}.mem{mem_now}; {resume}",
    ),
    Advice(
        (failures.NODE_FAIL,),
        "the node failed, not your code: {resume} (set retries: 1 to rerun such tasks automatically)",
    ),
    Advice(
        (failures.PREEMPTED,),
        "preempted by a higher-priority job: set retries: 1, or use a qos that is not preemptible "
        "(slurm.qos); {resume}",
    ),
    Advice(
        (failures.HOST_LOST,),
        "the host running them went away: {resume} (set retries: 1 to rerun such tasks automatically)",
    ),
    Advice((failures.CANCELLED,), "stopped on request (Ctrl-C, hsm-snake cancel, scancel): {resume}"),
)
"""The suggestions, in the order they are tried."""

UNCATEGORIZED = "status.yaml records no error category: read {stderr}; `hsm-snake complete {sweep}` reruns them"


def error_pattern(text: str) -> re.Pattern[str]:
    """``errors --pattern``: a regular expression, matched ignoring case (v1 matched a plain word
    such as ImportError ignoring case, and a plain word is a regular expression too)."""
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as error:
        raise ConfigError(
            f"{text!r} is not a regular expression: {error}",
            key="--pattern",
            hint=r"escape special characters with a backslash (e.g. 'out of memory \(CUDA\)'), or give a plain word",
        ) from None


def _matches(pattern: re.Pattern[str], paths: SweepPaths, task: scan.TaskState, category: str) -> bool:
    """The pattern against what `errors` shows of a task: its category, error summary and the end
    of its stderr.log (read only when the first two do not match)."""
    summary = (task.status or {}).get("error_summary")
    if pattern.search(category) or (isinstance(summary, str) and pattern.search(summary)):
        return True
    return any(pattern.search(line) for line in tail_lines(paths.task(task.task.name).stderr, PATTERN_LINES))


PATTERN_LINES = 200
"""Lines of the end of stderr.log that ``--pattern`` searches."""


def triage(state: scan.SweepState, *, tail: int = 10, pattern: re.Pattern[str] | None = None) -> ErrorReport:
    """Group the failed/cancelled tasks of a scanned sweep (statuses of failed tasks are read by scan);
    with ``pattern``, only those whose category, summary or end of stderr match it."""
    paths = state.index.paths
    advisor = _Advisor(paths)
    buckets: dict[tuple[str, str | None], list[scan.TaskState]] = {}
    questionable: list[Questionable] = []
    failed_records: list[dict[str, Any]] = []
    unfiltered = 0
    for task in state.tasks:
        if task.state in (scan.STALE, scan.UNREADABLE):
            if pattern is not None and not pattern.search(f"{task.state} {task.note or ''}"):
                continue
            questionable.append(
                Questionable(
                    task.task.name,
                    task.state,
                    task.note,
                    f"its state cannot be trusted; `hsm-snake complete {paths.sweep_id}` reruns it",
                )
            )
            continue
        if task.state not in (scan.FAILED, scan.CANCELLED):
            continue
        category = failures.recorded_category(task.status, task.state == scan.CANCELLED)
        unfiltered += 1
        if pattern is not None and not _matches(pattern, paths, task, category):
            continue
        summary = (task.status or {}).get("error_summary")
        buckets.setdefault((category, _subtype(category, summary)), []).append(task)
        failed_records.append(_failed_record(paths, task, category))

    groups = []
    for (category, subtype), tasks in buckets.items():
        example = tasks[0]
        status = example.status or {}
        summaries: dict[str, int] = {}
        for task in tasks:
            text = (task.status or {}).get("error_summary")
            text = text if isinstance(text, str) else "(no summary)"
            summaries[text] = summaries.get(text, 0) + 1
        summary = status.get("error_summary") if isinstance(status.get("error_summary"), str) else None
        backend = status.get("backend") if isinstance(status.get("backend"), str) else None
        groups.append(
            ErrorGroup(
                category=category,
                subtype=subtype,
                tasks=[t.task.name for t in tasks],
                example=example.task.name,
                summary=summary,
                stderr_tail=tail_lines(paths.task(example.task.name).stderr, tail),
                suggestion=advisor.suggest(category, subtype, example.task.name, backend, summary),
                summaries=dict(sorted(summaries.items(), key=lambda kv: -kv[1])[:5]),
            )
        )
    order = {name: i for i, name in enumerate(failures.CATEGORIES)}
    groups.sort(key=lambda g: (order.get(g.category, len(order)), -g.count, g.subtype or ""))
    return ErrorReport(
        paths.sweep_id,
        len(state.tasks),
        groups,
        questionable,
        failed_records,
        pattern.pattern if pattern is not None else None,
        unfiltered,
    )


def _failed_record(paths: SweepPaths, task: scan.TaskState, category: str) -> dict[str, Any]:
    status = task.status or {}
    keep = ("attempt", "started", "finished", "exit_code", "signal", "host", "backend", "job_id")
    record: dict[str, Any] = {
        "task": task.task.name,
        "state": task.state,
        "error_category": category,
        "error_summary": status.get("error_summary"),
        "duration_s": number(status.get("duration_s")),
    }
    record.update({key: status.get(key) for key in keep})
    record["stderr"] = str(paths.task(task.task.name).stderr)
    record["params"] = task.task.params
    return record


def write_error_files(paths: SweepPaths, report: ErrorReport) -> list[str]:
    """``logs/errors/failed_tasks.yaml`` and ``logs/errors/error_patterns.yaml``, atomically."""
    failed_file = paths.errors_dir / "failed_tasks.yaml"
    patterns_file = paths.errors_dir / "error_patterns.yaml"
    write_yaml(
        failed_file,
        {
            "sweep_id": report.sweep_id,
            "failed": report.failed,
            "questionable": [asdict(q) for q in report.questionable],
        },
    )
    write_yaml(patterns_file, report.as_dict())
    return [str(failed_file), str(patterns_file)]
