"""What a name may look like where it enters: from a config, a command line, or a file read back.

Names become file names inside the sweep (aliases, task names), arguments of ssh/rsync (hosts,
users) or of scheduler commands (job ids, queues). One rule each, used both by the config schema
(as JSON-schema formats) and wherever a name is read back from the sweep directory, which a
crashed, edited or hostile writer may have changed. Standard library only (runs on hosts).
"""

from __future__ import annotations

import re

from hsm_snake.errors import InvalidValueError

LOCAL_ALIAS = "local"


class BadName(InvalidValueError):
    """A name that cannot be used; ``hint`` says what it may look like."""

    def __init__(self, message: str, hint: str) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})")


_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Host names, IPv4/IPv6 addresses, ~/.ssh/config aliases and user@host; never an option ('-...').
_HOST = re.compile(r"[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]@-]*")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]*\$?")
# Queues, accounts, partitions, qos: one word (PBS queues may name a server: workq@pbs1).
_SCHEDULER_WORD = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@+:,=-]*")
TASK_NAME = re.compile(r"task_[0-9]+")
# Slurm 1838, 1838_4, 1838_[5-6], 1838+1; PBS 123.server, 123[].server, 123[4].server.
_JOB_ID = re.compile(r"[0-9][A-Za-z0-9_.\[\]+@:-]*")


def _check(value: object, pattern: re.Pattern[str], what: str, hint: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadName(f"{value!r} is not a usable {what}", hint)
    return value


def check_alias(value: object) -> str:
    """A remote's alias: it names ``logs/sources/<alias>.log`` and remote folders."""
    alias = _check(
        value, _ALIAS, "remote alias", "use letters, digits, '.', '_' and '-', starting with a letter or digit"
    )
    if alias == LOCAL_ALIAS:
        raise BadName(
            f"{LOCAL_ALIAS!r} is reserved for this machine's own slots",
            "set distributed.local_slots to run tasks here; give the remote another alias",
        )
    return alias


def check_host(value: object) -> str:
    return _check(
        value, _HOST, "host name", "a host name, an address or a ~/.ssh/config alias; it may not start with '-'"
    )


def check_user(value: object) -> str:
    return _check(value, _USER, "user name", "a login name of letters, digits, '.', '_', '-'; not starting with '-'")


def check_scheduler_word(value: object) -> str:
    """A queue, account, partition or qos: one word on one line, never an option."""
    return _check(
        value, _SCHEDULER_WORD, "queue/account name", "one word without spaces or line breaks, not starting with '-'"
    )


def check_one_line(value: object) -> str:
    """A scheduler directive written into a job script: a line break would start a shell line."""
    if not isinstance(value, str) or "\n" in value or "\r" in value or "\0" in value:
        raise BadName(f"{value!r} spans several lines", "write one option per list item, each on one line")
    return value


def check_task_name(value: object) -> str:
    return _check(value, TASK_NAME, "task name", "task names are task_ and digits, e.g. task_007")


def is_task_name(value: object) -> bool:
    return isinstance(value, str) and TASK_NAME.fullmatch(value) is not None


def is_job_id(value: object) -> bool:
    """A scheduler job id as Slurm/PBS print them; anything else (``--me``) never reaches scancel/qdel."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def check_env_name(value: object) -> str:
    """An environment variable's name: ``=`` would end the name, NUL the entry (exec refuses both)."""
    if not isinstance(value, str) or not value or "=" in value or "\0" in value:
        raise BadName(
            f"{value!r} cannot be an environment variable's name", "letters, digits and '_', e.g. OMP_NUM_THREADS"
        )
    return value


def check_argv_text(value: object) -> str:
    """Text that becomes an argument or environment value: exec cannot pass a NUL byte."""
    if isinstance(value, str) and "\0" in value:
        raise BadName(f"{value!r} holds a NUL byte", "no program can receive a NUL byte in an argument: remove it")
    return value if isinstance(value, str) else str(value)
