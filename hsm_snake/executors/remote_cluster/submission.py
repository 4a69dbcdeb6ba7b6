"""A submission (sbatch, qsub) over ssh whose answer outlives the connection that asked for it.

A login node that drops the connection, or an sbatch slower than the ssh call's timeout (a busy
slurmctld), leaves the array submitted or not with nobody told which. Taking it for "not
submitted" and sending the tasks again may run them twice; taking it for "submitted" may lose
them. So the submission runs detached on the login node (``setsid``) and writes its answer next
to the job script (``<answer>.out``, ``.err``, then ``.rc`` by rename); the ssh call waits for the
``.rc`` and prints it. When the call fails, a later call reads the files instead. Who runs first
is settled by ``mkdir <answer>.claim``: the submission claims before it starts, a question that
claims first makes sure it never will (so "never ran" is certain, not a guess) and says so in
``<answer>.never``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass

_EXIT = "hsm-submission-exit"
NEVER = "hsm-submission-never"
PENDING = "hsm-submission-pending"
_EXIT_LINE = re.compile(rf"^{_EXIT} (\d+)$")


@dataclass(frozen=True)
class Answer:
    """What the submission command printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str


def _print_answer(answer_var: str) -> str:
    return f'cat "${answer_var}.out"; echo; echo "{_EXIT} $(cat "${answer_var}.rc")"; cat "${answer_var}.err" >&2'


def detached(command: str, answer: str, wait_s: float) -> str:
    """The remote shell text that runs ``command`` detached from the session, its answer kept
    under ``answer`` (an absolute path prefix there), and prints it once written (waiting at most
    ``wait_s``: the session's shell must not outlive a client that gave up)."""
    claimed = (
        'mkdir "$1.claim" 2>/dev/null || exit 0\n'
        f'( {command}\n) >"$1.out" 2>"$1.err"\n'
        'echo $? >"$1.rc.tmp" && mv "$1.rc.tmp" "$1.rc"\n'
    )
    return (
        f"A={shlex.quote(answer)}; "
        f'(setsid sh -c {shlex.quote(claimed)} sh "$A" </dev/null >/dev/null 2>&1 &); '
        f"i={int(wait_s * 5)}; "
        'while [ ! -e "$A.rc" ] && [ ! -e "$A.never" ] && [ $i -gt 0 ]; do sleep 0.2; i=$((i-1)); done; '
        f'if [ -e "$A.rc" ]; then {_print_answer("A")}; elif [ -e "$A.never" ]; then echo {NEVER}; fi'
    )


def question(answer: str) -> str:
    """The remote shell text that asks what became of the submission kept under ``answer``:
    prints NEVER (and makes sure it never runs), PENDING, or its answer."""
    return (
        f"A={shlex.quote(answer)}; "
        f'if mkdir "$A.claim" 2>/dev/null; then : >"$A.never"; echo {NEVER}; '
        f'elif [ -e "$A.never" ]; then echo {NEVER}; '
        f'elif [ -e "$A.rc" ]; then {_print_answer("A")}; '
        f"else echo {PENDING}; fi"
    )


def read(done: subprocess.CompletedProcess | None) -> Answer | str | None:
    """The submission's Answer, NEVER, PENDING from an ssh call of ``detached`` or ``question``;
    None when the call failed (no answer, ssh's 255, a shell that printed none of these)."""
    if done is None or done.returncode != 0:
        return None
    lines = done.stdout.rstrip("\n").split("\n")
    last = lines[-1].strip()
    if last in (NEVER, PENDING):
        return last
    match = _EXIT_LINE.match(last)
    if match is None:
        return None
    printed = "\n".join(lines[:-1])
    # detached/question add a newline after the command's output, which may have ended in its own.
    return Answer(int(match.group(1)), printed[:-1] if printed.endswith("\n") else printed, done.stderr)
