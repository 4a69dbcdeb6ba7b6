"""Where the packaged workflow, profiles and JSON Schemas live.

A wheel carries them inside the package (hatch force-includes the top-level ``workflow/`` and
``profiles/`` as ``hsm_snake/_data/...``); an editable install or a checkout has them at the
repository root, because force-include is invisible to editable installs.
"""

from __future__ import annotations

from pathlib import Path

import hsm_snake

_PACKAGE_DIR = Path(hsm_snake.__file__).resolve().parent


def _packaged_or_checkout(relative: str) -> Path:
    packaged = _PACKAGE_DIR / "_data" / relative
    if packaged.exists():
        return packaged
    return _PACKAGE_DIR.parent / relative


def workflow_dir() -> Path:
    """The folder holding the packaged ``Snakefile``, ``rules/`` and ``schemas/``."""
    return _packaged_or_checkout("workflow")


def profiles_dir() -> Path:
    """The folder holding one Snakemake profile per backend (``local/``, ``slurm/``, ...)."""
    return _packaged_or_checkout("profiles")


def schema_dir() -> Path:
    """The folder holding ``sweep.schema.json`` and ``project.schema.json``."""
    return _packaged_or_checkout("workflow/schemas")
