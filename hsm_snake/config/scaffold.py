"""`hsm-snake init`: look at a project and write a commented hsm.yaml and sweep.yaml for it."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from hsm_snake.errors import HsmError
from hsm_snake.layout.records import write_text_atomic
from hsm_snake.runner.gpu_slots import detect_devices

TEMPLATES = ("grid", "paired", "slurm-gpu", "ssh")
SCRIPT_CANDIDATES = ("train.py", "main.py", "run.py", "scripts/train.py", "src/train.py")
HYDRA_DIRS = ("configs", "config", "conf")


@dataclass(frozen=True)
class Findings:
    script: str
    script_found: bool
    python: str
    conda_env: str | None
    config_dir: str | None
    has_sbatch: bool
    has_qsub: bool
    gpus: list[int]


def inspect(root: Path) -> Findings:
    """What a config needs to know about the project in ``root`` (and the machine)."""
    script = next((c for c in SCRIPT_CANDIDATES if (root / c).is_file()), None)
    config_dir = next((d for d in HYDRA_DIRS if (root / d).is_dir() and any((root / d).glob("*.yaml"))), None)
    conda_env = os.environ.get("CONDA_DEFAULT_ENV")
    return Findings(
        script=script or "train.py",
        script_found=script is not None,
        python=sys.executable,
        conda_env=conda_env if conda_env and conda_env != "base" else None,
        config_dir=config_dir,
        has_sbatch=shutil.which("sbatch") is not None,
        has_qsub=shutil.which("qsub") is not None,
        gpus=detect_devices(),
    )


def init_project(root: Path, template: str, force: bool) -> list[Path]:
    """Write hsm.yaml and sweep.yaml into ``root``; refuse to overwrite unless ``force``."""
    targets = [root / "hsm.yaml", root / "sweep.yaml"]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise HsmError(
            f"{', '.join(str(p) for p in existing)} already exist(s).\n"
            "  hint: pass --force to overwrite, or edit the file(s)"
        )
    found = inspect(root)
    env = Environment(
        loader=PackageLoader("hsm_snake.config", "templates"), undefined=StrictUndefined, keep_trailing_newline=True
    )
    values = {
        **found.__dict__,
        "name": root.resolve().name,
        "when": date.today().isoformat(),
        "template": template,
        # A Hydra app takes key=value overrides and has an output dir of its own to point at.
        "arg_style": "hydra" if found.config_dir else "argparse",
        "output_dir_arg": "+output.dir" if found.config_dir else "output.dir",
        "cpus": os.cpu_count() or 1,
    }
    for target in targets:
        write_text_atomic(target, env.get_template(f"{target.name}.j2").render(**values))
    return targets
