"""`hsm-snake init`: look at a project and write a commented hsm.yaml and sweep.yaml for it.

It finds the entry point (a script calling ``hydra.main``, building an argparse parser, or with an
``if __name__ == "__main__"`` block), asks a Hydra app for its composed config and config groups
or reads an argparse script's options, and writes a sweep over those keys. In a v1 project (a
``sweeps/hsm_config.yaml``, ``.hsm/config.yaml`` or ``hsm_config.yaml``) the v1 config stays the
project config: only sweep.yaml is written.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from hsm_snake.config import appscan
from hsm_snake.config.appkeys import AppKeys, app_keys
from hsm_snake.config.project import ProjectConfig, find_project_config, load_machine_layer, load_project
from hsm_snake.config.schema import flow_yaml
from hsm_snake.errors import HsmError
from hsm_snake.layout.records import write_text_atomic
from hsm_snake.runner.gpu_slots import detect_devices

TEMPLATES = ("grid", "paired", "slurm-gpu", "ssh")
SCRIPT_FOLDERS = (".", "scripts", "src")
CONVENTIONAL_NAMES = ("train", "main", "run")
# Entry points by how surely they take parameters: a Hydra app, an argparse script, a __main__ block.
_KIND_RANK = {appscan.HYDRA: 0, appscan.ARGPARSE: 1, None: 2}
# Keys a grid sweeps first when the app has them, and how values are spread around the default.
_AROUND = {"lr": "decades", "learning_rate": "decades", "seed": "next"}


class SeveralScripts(HsmError):
    """More than one script could be the entry point; ``candidates`` lists them (relative paths)."""

    def __init__(self, candidates: list[str]) -> None:
        self.candidates = candidates
        super().__init__(
            f"several scripts could be the one to sweep: {', '.join(candidates)}\n"
            f"  hint: name it: hsm-snake init --script {candidates[0]}"
        )


@dataclass
class InitResult:
    written: list[Path]
    notes: list[str] = field(default_factory=list)


def entry_points(root: Path) -> list[tuple[str, appscan.ScriptInfo]]:
    """Scripts in the project root, scripts/ and src/ that are meant to be run, surest first."""
    found = []
    for folder in SCRIPT_FOLDERS:
        for path in sorted((root / folder).glob("*.py")):
            if path.name.startswith(("test_", "conftest", "setup", "__")):
                continue
            info = appscan.read_script(path)
            if info is not None and info.entry_point:
                found.append((path.relative_to(root).as_posix(), info))
    return sorted(found, key=lambda item: _KIND_RANK[item[1].kind])


def choose_script(root: Path) -> str | None:
    """The one entry point of the project, None when there is none; SeveralScripts when unclear."""
    found = entry_points(root)
    if not found:
        return None
    surest = [name for name, info in found if info.kind == found[0][1].kind]
    if len(surest) == 1:
        return surest[0]
    conventional = [name for name in surest if Path(name).stem in CONVENTIONAL_NAMES]
    if len(conventional) == 1:
        return conventional[0]
    raise SeveralScripts(surest)


def v1_project(root: Path) -> ProjectConfig | None:
    """The v1 config of the project in ``root``, if it has one (and no hsm.yaml)."""
    path = find_project_config(root)
    if path is None or path.name == "hsm.yaml":
        return None
    project = load_project(path, cwd=root)
    return project if project.is_v1 and project.root == root.absolute() else None


def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("hsm_snake.config", "templates"), undefined=StrictUndefined, keep_trailing_newline=True
    )


def init_machine(target: Path, sweeps_root: str | None, conda_root: str | None, force: bool) -> Path:
    """Write the per-machine layer (``~/.hsm/config.yaml``): this machine's GPUs, where its
    sweeps go, where conda lives. Refuse to overwrite unless ``force``; a given sweeps_root
    must exist (as at run time)."""
    if target.exists() and not force:
        raise HsmError(f"{target} already exists.\n  hint: pass --force to overwrite it, or edit it")
    if sweeps_root and not Path(os.path.expandvars(os.path.expanduser(sweeps_root))).is_dir():
        raise HsmError(
            f"sweeps root {sweeps_root} does not exist on this machine.\n  hint: mount or create it first (mkdir -p)"
        )
    if conda_root is None and os.environ.get("CONDA_EXE"):
        conda_root = str(Path(os.environ["CONDA_EXE"]).resolve().parent.parent)
    text = (
        _templates()
        .get_template("machine.yaml.j2")
        .render(when=date.today().isoformat(), sweeps_root=sweeps_root, conda_root=conda_root, gpus=detect_devices())
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, text)
    return target


def init_project(root: Path, template: str, force: bool, script: str | None = None) -> InitResult:
    """Write hsm.yaml (unless a v1 config is there) and sweep.yaml into ``root`` for ``script``
    (default: the entry point found); refuse to overwrite unless ``force``."""
    root = root.absolute()
    v1 = v1_project(root)
    targets = [root / "sweep.yaml"] if v1 else [root / "hsm.yaml", root / "sweep.yaml"]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise HsmError(
            f"{', '.join(str(p) for p in existing)} already exist(s).\n"
            "  hint: pass --force to overwrite, or edit the file(s)"
        )
    if script is not None and not (root / script).is_file():
        raise HsmError(f"--script {script}: {root / script} does not exist")
    result = InitResult(written=[])
    if v1 is not None:
        result.notes.append(
            f"{v1.source} is this project's config (v1): kept, not copied into an hsm.yaml; tasks get v1's "
            "key=value arguments and output.dir=<task folder>"
        )
        script = script or v1.section("paths").get("train_script")
    script = script or choose_script(root)
    info = appscan.read_script(root / script) if script and (root / script).is_file() else None
    python = v1.python_command() if v1 else [sys.executable]
    keys = app_keys(python, info.path, info.kind, root) if info else AppKeys(found_by="no script found")
    if info is None:
        result.notes.append("no script found: set paths.train_script in hsm.yaml, or rerun with --script NAME")
    else:
        result.notes.append(f"script: {script} ({info.evidence}); sweep keys from {keys.found_by}")
    if keys.problem:
        result.notes.append(f"{keys.problem}; sweep.yaml has an example grid instead")
    values = _template_values(root, template, script, info, keys)
    env = _templates()
    for target in targets:
        write_text_atomic(target, env.get_template(f"{target.name}.j2").render(**values))
        result.written.append(target)
    return result


def _template_values(
    root: Path, template: str, script: str | None, info: appscan.ScriptInfo | None, keys: AppKeys
) -> dict[str, Any]:
    conda_env = os.environ.get("CONDA_DEFAULT_ENV")
    config_path = appscan.hydra_config_path(info.path) if info and info.kind == appscan.HYDRA else None
    config_dir = (info.path.parent / config_path).resolve() if config_path else None
    kind = info.kind if info else None
    return {
        "name": root.name,
        "when": date.today().isoformat(),
        "template": template,
        "script": script or "train.py",
        "script_found": info is not None,
        "python": sys.executable,
        "conda_env": conda_env if conda_env and conda_env != "base" else None,
        "config_dir": config_dir.relative_to(root).as_posix()
        if config_dir and config_dir.is_dir() and config_dir.is_relative_to(root)
        else None,
        "arg_style": {appscan.HYDRA: "hydra", appscan.ARGPARSE: "argparse"}.get(kind, "raw"),
        "why": info.evidence if info else "no script found",
        "has_sbatch": shutil.which("sbatch") is not None,
        "has_qsub": shutil.which("qsub") is not None,
        "gpus": detect_devices(),
        "cpus": os.cpu_count() or 1,
        # What this machine's ~/.hsm/config.yaml sets is left to it (a project value would win over it).
        "machine_local": load_machine_layer()[1].get("local", {}),
        "found_by": keys.found_by,
        "grid_lines": _grid_lines(keys),
        "other_lines": _other_lines(keys),
        "paired_lines": _paired_lines(keys) if template == "paired" else [],
    }


def _swept(keys: AppKeys) -> list[str]:
    """The keys the written grid sweeps: a config group, lr/seed-like keys (else the first number),
    a flag, and every required option; else the first key with a default."""
    numbers = [k for k in keys.values if _around(k, keys.values[k], keys.types.get(k))]
    favoured = [k for k in numbers if _leaf(k) in _AROUND]
    chosen = list(keys.groups)[:1] + (favoured or numbers[:1]) + keys.flags[:1]
    chosen += [k for k in keys.required if k not in chosen]
    return chosen or [k for k, v in keys.values.items() if v is not None][:1]


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _grid_lines(keys: AppKeys) -> list[str]:
    if not keys.groups and not keys.values:
        return ["lr: [0.001, 0.01, 0.1]      # an example: use your script's own parameter names", "seed: [1, 2]"]
    lines = []
    for key in _swept(keys):
        if key in keys.groups:
            lines.append(f"{key}: {flow_yaml(keys.groups[key])}      # config group: its options")
        elif key in keys.flags:
            lines.append(f"{key}: [false, true]      # a flag: true passes --{key}, false leaves it out")
        elif key in keys.required and keys.values.get(key) is None:
            lines.append(f"{key}: [CHANGE_ME]      # required by the script: give its values")
        else:
            value = keys.values[key]
            values = _around(key, value, keys.types.get(key)) or [value]
            lines.append(f"{key}: {flow_yaml(values)}      # the app's default: {flow_yaml(value)}")
    return lines


def _other_lines(keys: AppKeys) -> list[str]:
    swept = set(_swept(keys))
    lines = [f"{key}: {flow_yaml(options)}" for key, options in keys.groups.items() if key not in swept]
    for key, value in keys.values.items():
        if key not in swept:
            lines.append(f"{key}: [{flow_yaml(value)}]" if value is not None else f"{key}: []")
    return lines


def _paired_lines(keys: AppKeys) -> list[str]:
    swept = _swept(keys)
    free = [k for k, v in keys.values.items() if k not in swept and _around(k, v, keys.types.get(k))][:2]
    if len(free) < 2:
        return []
    return [f"{key}: {flow_yaml(_around(key, keys.values[key], keys.types.get(key)))}" for key in free]


def _around(key: str, value: Any, type_name: str | None = None) -> list[Any]:
    """Values to try for a number: around a learning rate, the next seeds, else the default
    alone; [] when there is no number to start from."""
    spread = _AROUND.get(_leaf(key))
    if value is None and spread and type_name in (None, "int", "float"):
        return [0.001, 0.01, 0.1] if spread == "decades" else [1, 2]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return []
    if spread == "decades" and value:
        return [value / 10, value, value * 10]
    return [value, value + 1] if spread == "next" else [value]
