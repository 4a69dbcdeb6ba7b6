"""The shell set-up of a backend section or an SSH remote (``modules``, ``pre_script``), as the
runner runs it before the task's script."""

from __future__ import annotations

from typing import Any


def setup_script(section: dict[str, Any]) -> str | None:
    """The shell set-up a task runs before its script on a backend: modules, then pre_script."""
    lines = []
    if section.get("modules"):
        lines.append("module load " + " ".join(section["modules"]))
    if section.get("pre_script"):
        lines.append(section["pre_script"])
    return "\n".join(lines) or None
