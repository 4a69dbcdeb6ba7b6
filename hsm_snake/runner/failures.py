"""Classify why a task failed, from its exit and the tail of its stderr.

Imported by the task runner on compute nodes: standard library only.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

from hsm_snake.runner import conda

# Categories, in the words status.yaml and `hsm-snake errors` use.
TIMEOUT = "timeout"
OUT_OF_MEMORY = "out_of_memory"
CUDA_OOM = "cuda_out_of_memory"
KILLED = "killed"
CANCELLED = "cancelled"
MISSING_MODULE = "missing_module"
MISSING_FILE = "missing_file"
SYNTAX_ERROR = "syntax_error"
PYTHON_EXCEPTION = "python_exception"
NONZERO_EXIT = "nonzero_exit"
LAUNCH_ERROR = "launch_error"
MISSING_ENVIRONMENT = "missing_environment"
# Recorded by the schedulers' verdicts (Slurm accounting, the SSH executor), not by the runner.
NODE_FAIL = "node_fail"
PREEMPTED = "preempted"
HOST_LOST = "host_lost"
UNKNOWN = "unknown"
"""A failed task whose status.yaml records no category."""

CATEGORIES = (
    OUT_OF_MEMORY,
    CUDA_OOM,
    TIMEOUT,
    MISSING_MODULE,
    MISSING_FILE,
    SYNTAX_ERROR,
    PYTHON_EXCEPTION,
    NONZERO_EXIT,
    LAUNCH_ERROR,
    MISSING_ENVIRONMENT,
    KILLED,
    NODE_FAIL,
    PREEMPTED,
    HOST_LOST,
    CANCELLED,
    UNKNOWN,
)
"""Every category a failed or cancelled task can have: what the user can fix first, then the
schedulers' verdicts (the order `hsm-snake errors` shows them in)."""


def recorded_category(status: dict | None, cancelled: bool) -> str:
    """The category of a failed (or ``cancelled``) task as its status.yaml records it; tasks are
    grouped (``errors``) and selected (``complete --only-category``) by it."""
    category = (status or {}).get("error_category")
    if isinstance(category, str) and category:
        return category
    return CANCELLED if cancelled else UNKNOWN


# Most specific first: a CUDA OOM is also a RuntimeError.
_STDERR_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (CUDA_OOM, re.compile(r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError: CUDA")),
    (OUT_OF_MEMORY, re.compile(r"^MemoryError\b|std::bad_alloc|Cannot allocate memory", re.MULTILINE)),
    (MISSING_MODULE, re.compile(r"^(ModuleNotFoundError|ImportError)\b", re.MULTILINE)),
    (MISSING_FILE, re.compile(r"^(FileNotFoundError|No such file or directory)\b", re.MULTILINE)),
    # The interpreter's own words when the script itself is missing: "python3: can't open file '/p/x.py': …"
    # (the path as Python's repr: in double quotes when it holds a single quote)
    (MISSING_FILE, re.compile(r"can't open file (?:'[^'\n]*'|\"[^\"\n]*\")")),
    (SYNTAX_ERROR, re.compile(r"^(SyntaxError|IndentationError|TabError)\b", re.MULTILINE)),
]
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b)(?::\s*(.*))?$")

_ARGPARSE_ERROR = re.compile(r"^\S+: error: (.+)$")
_HYDRA_ERROR_END = "HYDRA_FULL_ERROR=1"
# First lines of Hydra's override and composition errors (hydra-core 1.3).
_HYDRA_ERROR_START = re.compile(r"(Could not |Error merging|Error parsing|In '|Multiple values|Missing |Ambiguous )")

_USER_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


@dataclass(frozen=True)
class Failure:
    status: str  # "failed" or "cancelled"
    category: str
    summary: str


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def last_exception(stderr_tail: str) -> tuple[str, str] | None:
    """The (type, message) of the last Python exception line of a traceback, if any."""
    for line in reversed(stderr_tail.strip().splitlines()):
        match = _EXCEPTION_LINE.match(line.strip())
        if match:
            return match.group(1), (match.group(2) or "").strip()
    return None


def classify(returncode: int, *, timed_out: bool, timeout_s: float | None, stderr_tail: str) -> Failure:
    """Why a task that did not exit 0 failed. ``returncode`` < 0 means killed by a signal."""
    if timed_out:
        return Failure("failed", TIMEOUT, f"exceeded the walltime of {timeout_s:g} s and was stopped")
    if returncode < 0:
        sig = -returncode
        if sig in _USER_STOP_SIGNALS:
            return Failure("cancelled", CANCELLED, f"stopped by {signal_name(sig)}")
        if sig == signal.SIGKILL:
            return Failure("failed", KILLED, "killed by SIGKILL (the out-of-memory killer, a scheduler or kill -9)")
        return Failure("failed", KILLED, f"killed by {signal_name(sig)}")
    environment = re.search(rf"^{re.escape(conda.MISSING_MARK)}.*$", stderr_tail, re.MULTILINE)
    if environment:
        return Failure("failed", MISSING_ENVIRONMENT, _shorten(environment.group(0), 1000))
    exception = last_exception(stderr_tail)
    for category, pattern in _STDERR_PATTERNS:
        if match := pattern.search(stderr_tail):
            summary = ": ".join(filter(None, exception)) if exception else match.group(0)
            return Failure("failed", category, _shorten(summary))
    if exception:
        return Failure("failed", PYTHON_EXCEPTION, _shorten(": ".join(filter(None, exception))))
    refused = argument_error(stderr_tail)
    return Failure(
        "failed", NONZERO_EXIT, _shorten(f"exited with status {returncode}" + (f": {refused}" if refused else ""))
    )


def out_of_memory_kill(limit_mb: int | None) -> Failure:
    """A script the kernel's out-of-memory killer took at its job's memory limit (cgroup)."""
    limit = f" at the job's memory limit of {limit_mb} MB" if limit_mb else ""
    return Failure("failed", OUT_OF_MEMORY, f"killed by the out-of-memory killer{limit} (SIGKILL)")


def argument_error(stderr_tail: str) -> str | None:
    """The message of a script that refused its arguments: argparse's ``prog: error: …`` line, or
    the head of Hydra's error block (which ends with its HYDRA_FULL_ERROR advice)."""
    lines = stderr_tail.rstrip().splitlines()
    for line in reversed(lines):
        if match := _ARGPARSE_ERROR.match(line):
            return match.group(1)
    if lines and _HYDRA_ERROR_END in lines[-1]:
        block = lines[:-1]
        while block and not block[-1].strip():
            block.pop()
        starts = [i for i, line in enumerate(block) if _HYDRA_ERROR_START.match(line)]
        start = starts[-1] if starts else max(0, len(block) - 3)
        return " ".join(line.strip() for line in block[start : start + 3]) or None
    return None


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
