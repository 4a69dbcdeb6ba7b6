"""Typed errors. Library code raises these; only the CLI prints them.

``str(error)`` is a complete message for a user: what is wrong, where, and how to fix it.
"""

from __future__ import annotations

from pathlib import Path


class HsmError(Exception):
    """Base class of every error that is the user's to fix (CLI exit status 2)."""

    exit_code = 2


class ConfigError(HsmError):
    """A mistake in sweep.yaml or hsm.yaml.

    ``file``/``line`` say where, ``key`` is the dotted key path, ``hint`` how to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        key: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.key = key
        self.line = line
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        key = f"{self.key}: " if self.key else ""
        text = f"{where}{key}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class SweepNotFoundError(HsmError):
    """A sweep id or path that names no sweep directory."""


class SweepStateError(HsmError):
    """The sweep directory is missing a file or holds one that cannot be read."""


class SweepLockedError(HsmError):
    """Another hsm-snake run holds the sweep."""


class RecordError(SweepStateError):
    """A state file of the sweep directory (status.yaml, a record) that cannot be parsed."""


class InvalidValueError(HsmError, ValueError):
    """A value that cannot be used where it was given (a parameter value, a task id, a format name)."""


class TaskFailedError(HsmError):
    """A task's script did not finish cleanly (exit status 1, as any failed command)."""

    exit_code = 1
