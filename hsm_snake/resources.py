"""Where the packaged workflow, schemas and profiles live.

A wheel carries them under ``hsm_snake/_data/`` (hatch force-include of the top-level folders);
an editable install or a checkout uses the repository's own ``workflow/`` and ``profiles/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    packaged = _PACKAGE_DIR / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / name


def workflow_dir() -> Path:
    return _data_dir("workflow")


def schema_dir() -> Path:
    return workflow_dir() / "schemas"


def profiles_dir() -> Path:
    return _data_dir("profiles")
