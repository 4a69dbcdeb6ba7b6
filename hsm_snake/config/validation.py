"""`hsm-snake validate` and `show`: check a sweep and its project beyond the schema, and explain them.

Errors are what loading raises (ConfigError). Warnings are things that load but will not run as
the user expects: a training script or interpreter that does not exist, GPU requests the machine
cannot give, a huge expansion, a value the chosen argument style cannot pass.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from hsm_snake.config.project import ProjectConfig, find_project_config, load_project
from hsm_snake.config.sweep_file import SweepSpec, load_sweep
from hsm_snake.engine import backends
from hsm_snake.errors import ConfigError
from hsm_snake.runner import gpu_slots
from hsm_snake.runner.render import render_override
from hsm_snake.sweep.expand import count, expand

HUGE_SWEEP = 10_000


@dataclass(frozen=True)
class Finding:
    """A warning: where (file, key), what, and how to fix it."""

    file: str | None
    key: str
    message: str
    hint: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}{f':{self.line}' if self.line else ''}: " if self.file else ""
        return f"{where}{self.key}: {self.message}\n  hint: {self.hint}"


@dataclass
class Validation:
    spec: SweepSpec | None = None
    project: ProjectConfig | None = None
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    task_count: int = 0

    def exit_code(self, strict: bool) -> int:
        if self.errors:
            return 2
        return 1 if strict and self.warnings else 0


def validate(sweep_file: Path | None, project_file: Path | None, cwd: Path) -> Validation:
    result = Validation()
    if project_file is None:
        start = sweep_file.resolve().parent if sweep_file else cwd
        project_file = find_project_config(start)
    try:
        result.project = load_project(project_file, cwd=cwd)
    except ConfigError as exc:
        result.errors.append(exc)
    if sweep_file is not None:
        try:
            result.spec = load_sweep(sweep_file)
        except ConfigError as exc:
            result.errors.append(exc)
    if result.project is not None:
        result.warnings += project_warnings(result.project, result.spec)
    if result.spec is not None:
        result.task_count = count(result.spec)
        result.warnings += sweep_warnings(result.spec, result.project, result.task_count)
        if result.project is not None:
            result.warnings += hydra_key_warnings(result.spec, result.project)
    result.warnings = [with_line(finding) for finding in result.warnings]
    return result


def with_line(finding: Finding) -> Finding:
    """The finding with the line of its key in its file: the key itself, or (a swept parameter)
    the entry under grid:/paired: that names it."""
    if not finding.file:
        return finding
    try:
        lines = _line_map(finding.file)
    except ConfigError:
        return finding
    line = lines.get(finding.key) or next(
        (number for path, number in lines.items() if path.endswith(f".{finding.key}")), None
    )
    return replace(finding, line=line)


@functools.lru_cache(maxsize=8)
def _line_map(file: str) -> dict[str, int]:
    from hsm_snake.config.yamlsource import load_yaml_file

    return load_yaml_file(Path(file)).lines


def hydra_key_warnings(spec: SweepSpec, project: ProjectConfig) -> list[Finding]:
    """Swept keys that Hydra would refuse: not in the primary config's tree, not a config group,
    and not marked new with ``+``. Only when ``paths.config_dir`` points at the Hydra configs."""
    config_dir = project.section("paths").get("config_dir")
    if not config_dir or project.section("task").get("arg_style", "hydra") != "hydra":
        return []
    root = project.root / config_dir
    primary = next((root / name for name in ("config.yaml", "config.yml") if (root / name).is_file()), None)
    if primary is None:
        return []
    try:
        tree = yaml.safe_load(primary.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return []
    keys = list(spec.grid) + [key for group in spec.paired for key in group.params]
    found = []
    for key in keys:
        plain = key.lstrip("+~")
        if plain != key or _in_tree(tree, plain.split(".")) or (root / plain.split(".")[0]).is_dir():
            continue
        found.append(
            Finding(
                str(spec.source) if spec.source else None,
                key,
                f"is not in the Hydra config tree of {primary}; Hydra will refuse `{key}=...`",
                f"add {key} to {primary.name}, or sweep `+{key}` to add a new key",
            )
        )
    return found


def _in_tree(tree: Any, parts: list[str]) -> bool:
    for part in parts:
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def project_warnings(project: ProjectConfig, spec: SweepSpec | None) -> list[Finding]:
    file = str(project.source) if project.source else None
    found = []
    script = (spec.script if spec else None) or project.section("paths").get("train_script")
    if not script:
        found.append(
            Finding(
                file,
                "paths.train_script",
                "no training script is set",
                "set paths.train_script in hsm.yaml (or script: in the sweep file)",
            )
        )
    elif not (project.root / script).is_file():
        found.append(
            Finding(
                file,
                "paths.train_script",
                f"{project.root / script} does not exist",
                f"paths are relative to the project root {project.root}",
            )
        )
    interpreter = project.python_command()[0]
    if not _runnable(interpreter):
        key = "paths.conda_env" if project.section("paths").get("conda_env") else "paths.python_interpreter"
        found.append(
            Finding(
                file,
                key,
                f"{interpreter!r} is not an executable on this machine",
                "give the full path of the Python that has your training dependencies",
            )
        )
    local = backends.merged_section(project.data, spec.resources if spec else {}, "local")
    visible = local.get("visible_gpus")
    if local.get("gpus") and visible is not None and local["gpus"] > len(visible):
        found.append(
            Finding(
                file,
                "local.gpus",
                f"each task asks for {local['gpus']} GPUs but local.visible_gpus lists {len(visible)}",
                "lower local.gpus or list more device ids in local.visible_gpus",
            )
        )
    elif local.get("gpus") and visible is None and not gpu_slots.detect_devices():
        found.append(
            Finding(
                file,
                "local.gpus",
                f"each task asks for {local['gpus']} GPU(s) but nvidia-smi -L "
                "finds none and local.visible_gpus is not set: local tasks get no device assignment",
                "list the device ids in local.visible_gpus (or set local.gpus: 0)",
            )
        )
    return found


def sweep_warnings(spec: SweepSpec, project: ProjectConfig | None, task_count: int) -> list[Finding]:
    file = str(spec.source) if spec.source else None
    found = []
    if task_count > HUGE_SWEEP:
        found.append(
            Finding(
                file,
                "grid",
                f"the sweep expands to {task_count:,} tasks",
                "every grid list multiplies the count; use paired: for values that go together",
            )
        )
    style = project.section("task").get("arg_style", "hydra") if project else "hydra"
    seen: set[str] = set()
    for params in expand(spec) if task_count <= HUGE_SWEEP else []:
        for key, value in params.items():
            try:
                render_override(key, value, style)
            except ValueError as exc:
                if key not in seen:
                    seen.add(key)
                    found.append(
                        Finding(
                            file,
                            key,
                            f"value {value!r} cannot be passed {style}-style: {exc}",
                            "change the value, or set task.arg_style in hsm.yaml",
                        )
                    )
    return found


def _runnable(command: str) -> bool:
    if os.sep in command:
        return os.path.isfile(command) and os.access(command, os.X_OK)
    return shutil.which(command) is not None


def paired_tables(spec: SweepSpec) -> list[tuple[str, list[str], list[list[Any]]]]:
    """For `show`: each paired group as (name, columns, rows) — how its lists zip."""
    tables = []
    for group in spec.paired:
        columns = list(group.params)
        rows = [list(row) for row in zip(*group.params.values(), strict=True)]
        tables.append((group.name, columns, rows))
    return tables


def _moved_from(origins: dict[str, str], key: str) -> str | None:
    """Where a setting, or the section it is part of, was read from when the file has it elsewhere."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        if (found := origins.get(".".join(parts[:end]))) is not None:
            return found
    return None


def config_sources(project: ProjectConfig) -> list[tuple[str, Any, str]]:
    """For `show`: every leaf setting as (dotted key, value, where it came from)."""
    from hsm_snake.config.yamlsource import load_yaml_file

    written: set[str] = set()
    if project.source is not None:
        written = set(load_yaml_file(project.source).lines)
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
            return
        if prefix in written:
            origin = project.source.name
        elif moved := _moved_from(project.origins, prefix):
            origin = moved if moved.startswith("v1 default") else f"{project.source.name}: {moved}"
        else:
            origin = "default"
        rows.append((prefix, value, origin))

    walk("", project.data)
    return rows
