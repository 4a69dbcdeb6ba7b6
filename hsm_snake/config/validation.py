"""`hsm-snake validate` and `show`: check a sweep and its project beyond the schema, and explain them.

Errors are what loading raises (ConfigError) and what would fail every task before its script
starts: no script, a script or interpreter that does not exist. Warnings are things that load but
will not run as the user expects: GPU requests the machine cannot give, a huge expansion, a value
the chosen argument style cannot pass, a key missing from a Hydra config tree.
"""

from __future__ import annotations

import difflib
import functools
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from hsm_snake.config import appscan
from hsm_snake.config.conventions import Conventions, script_setting, task_conventions
from hsm_snake.config.overrides import SOURCE as SET_SOURCE
from hsm_snake.config.project import ProjectConfig, find_project_config, load_project
from hsm_snake.config.sweep_file import SweepSpec, load_sweep
from hsm_snake.config.yamlsource import key_path
from hsm_snake.engine import backends
from hsm_snake.errors import ConfigError
from hsm_snake.layout import names
from hsm_snake.runner import conda, gpu_slots
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
        result.errors += launch_errors(result.project, result.spec)
        result.warnings += project_warnings(result.project, result.spec)
    if result.spec is not None:
        result.task_count = count(result.spec)
        result.warnings += sweep_warnings(result.spec, result.project, result.task_count)
        if result.project is not None:
            result.warnings += hydra_key_warnings(result.spec, result.project)
            result.warnings += relative_output_warnings(result.spec, result.project)
    result.warnings = [with_line(finding) for finding in result.warnings]
    return result


def conventions_of(project: ProjectConfig, spec: SweepSpec | None) -> Conventions:
    """How ``spec``'s script is called in ``project`` (see conventions.py)."""
    script, _ = script_setting(project, spec.script if spec else None)
    return task_conventions(project, project.root / script if script else None)


def launch_errors(project: ProjectConfig, spec: SweepSpec | None) -> list[ConfigError]:
    """What would make every task fail before the script starts: no script, a script that does not
    exist (named by the key and file it came from), an interpreter that is not there, a QOS outside
    the whitelist."""
    errors = []
    script, key = script_setting(project, spec.script if spec else None)
    file = spec.source if key == "script" and spec is not None else project.source
    if not script:
        if spec is not None:
            errors.append(
                ConfigError(
                    "no script to run: neither the sweep file's script: nor paths.train_script is set",
                    file=project.source or spec.source,
                    key="paths.train_script",
                    hint="set paths.train_script in hsm.yaml (`hsm-snake init` finds it), or script: in the sweep file",
                )
            )
    elif not (project.root / script).is_file():
        path = project.root / script
        errors.append(
            ConfigError(
                f"the script {path} does not exist",
                file=file,
                key=key,
                line=_line_of_key(file, key),
                hint=_did_you_mean(path) or f"paths are relative to the project root {project.root}",
            )
        )
    interpreter = project.python_command()[0]
    if not _runnable(interpreter) and ("/" in interpreter or not _setup_scripts(project)):
        key = "paths.conda_env" if project.section("paths").get("conda_env") else "paths.python_interpreter"
        errors.append(
            ConfigError(
                f"{interpreter!r} is not an executable on this machine",
                file=project.source,
                key=key,
                line=_line_of_key(project.source, key),
                hint="give the full path of the Python that has your training dependencies",
            )
        )
    return errors + qos_errors(project, spec) + resource_errors(project, spec)


def qos_errors(project: ProjectConfig, spec: SweepSpec | None) -> list[ConfigError]:
    """v1's ``qos_whitelist`` guard: the QOS a run asks for (hsm.yaml, ``--set`` or the sweep file's
    ``resources.slurm``) must be one of the list's. The top-level list covers the slurm: section;
    a Slurm remote is checked against its own list only, as in v1."""
    sweep_slurm = (spec.resources.get("slurm") if spec else None) or {}
    sections: list[tuple[list[str], dict[str, Any], Any]] = [
        (["slurm"], {**project.section("slurm"), **sweep_slurm}, project.section("slurm").get("qos_whitelist"))
    ]
    for alias, remote in backends.cluster_remotes(project.data, "slurm").items():
        merged = backends.remote_cluster_section(project.data, spec.resources if spec else {}, alias)
        own = (remote.get("slurm") or {}).get("qos_whitelist")
        sections.append((["distributed", "remotes", alias, "slurm"], merged, own))
    errors = []
    for block, section, allowed in sections:
        qos = section.get("qos")
        if not allowed or qos is None or qos in allowed:
            continue
        file, key = _qos_origin(project, spec, block, sweep_slurm)
        close = difflib.get_close_matches(str(qos), [str(name) for name in allowed], n=1)
        listed = ", ".join(str(name) for name in allowed)
        errors.append(
            ConfigError(
                f"QOS {qos!r} is not in {key_path([*block, 'qos_whitelist'])} ({listed})",
                file=file,
                key=key,
                line=_line_of_key(file, key) if file != SET_SOURCE else None,
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"ask for one of {listed}, or add it to the whitelist",
            )
        )
    return errors


def resource_errors(project: ProjectConfig, spec: SweepSpec | None) -> list[ConfigError]:
    """A cluster request that cannot go into a job script (a queue name with a line break, an
    sbatch/qsub option hsm-snake sets itself), located in the sweep file's ``resources:`` or the
    project file it came from."""
    sweep_resources = spec.resources if spec else {}
    try:
        backends.cluster_resources(project.data, sweep_resources)
    except ConfigError as exc:
        backend, _, name = (exc.key or "").partition(".")
        if spec is not None and name in ((sweep_resources or {}).get(backend) or {}):
            file, key = spec.source, f"resources.{exc.key}"
        else:
            file, key = project.source, project.origins.get(exc.key or "", exc.key or "")
        line = _line_of_key(file, key) if file != SET_SOURCE else None
        return [ConfigError(exc.message, file=file, key=key, line=line, hint=exc.hint)]
    return []


def _qos_origin(
    project: ProjectConfig, spec: SweepSpec | None, block: list[str], sweep_slurm: dict[str, Any]
) -> tuple[Path | str | None, str]:
    """Where the QOS a section asks for was set: the sweep file, ``--set``, or the project file
    (under a v1 name where it was read from one)."""
    if "qos" in sweep_slurm and spec is not None:
        return spec.source, "resources.slurm.qos"
    for parts in ([*block, "qos"], ["slurm", "qos"]):
        key = key_path(parts)
        if _has(project.overrides, parts):
            return SET_SOURCE, key
        if _has(project.data, parts):
            return project.source, project.origins.get(key, key)
    return project.source, "slurm.qos"


def _has(data: dict[str, Any], parts: list[str]) -> bool:
    node: Any = data
    for part in parts:
        if not isinstance(node, dict) or node.get(part) is None:
            return False
        node = node[part]
    return True


def check_launchable(project: ProjectConfig, spec: SweepSpec) -> None:
    """Raise the first of :func:`launch_errors` (before a run creates anything)."""
    errors = launch_errors(project, spec)
    if errors:
        raise errors[0]


def _line_of_key(file: Path | str | None, key: str) -> int | None:
    """The line of ``key`` in ``file``: the key itself, or (a swept parameter) the entry under
    grid:/paired: that names it."""
    if not file:
        return None
    try:
        lines = _line_map(str(file))
    except ConfigError:
        return None
    return lines.get(key) or next((n for path, n in lines.items() if path.endswith(f".{key}")), None)


def _did_you_mean(path: Path) -> str | None:
    try:
        names = [p.name for p in path.parent.iterdir() if p.suffix == ".py"]
    except OSError:
        return None
    close = difflib.get_close_matches(path.name, names, n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _setup_scripts(project: ProjectConfig) -> bool:
    """Whether a backend's set-up (modules, pre_script) could put a bare interpreter on PATH."""
    return any(
        project.section(backend).get(k) for backend in ("local", "slurm", "pbs") for k in ("modules", "pre_script")
    )


def with_line(finding: Finding) -> Finding:
    """The finding with the line of its key in its file."""
    return replace(finding, line=_line_of_key(finding.file, finding.key)) if finding.file else finding


@functools.lru_cache(maxsize=8)
def _line_map(file: str) -> dict[str, int]:
    from hsm_snake.config.yamlsource import load_yaml_file

    return load_yaml_file(Path(file)).lines


def hydra_key_warnings(spec: SweepSpec, project: ProjectConfig) -> list[Finding]:
    """Swept keys that Hydra would refuse: not in the primary config's tree, not a config group,
    and not marked new with ``+``. Only when ``paths.config_dir`` points at the Hydra configs."""
    config_dir = project.section("paths").get("config_dir")
    if not config_dir or conventions_of(project, spec).arg_style != "hydra":
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


def relative_output_warnings(spec: SweepSpec, project: ProjectConfig) -> list[Finding]:
    """Files the script writes relative to its working directory while every task shares one
    (task.workdir: project): parallel tasks overwrite each other's."""
    script, _ = script_setting(project, spec.script)
    if not script or conventions_of(project, spec).run_in_task_dir or not (project.root / script).is_file():
        return []
    names = appscan.relative_writes(project.root / script)
    if not names:
        return []
    return [
        Finding(
            str(project.source) if project.source else None,
            "task.workdir",
            f"{script} writes {', '.join(names)} relative to its working directory, which every task shares "
            f"(the project root): parallel tasks overwrite each other's",
            "set task.workdir: task (each task runs in its own folder), or write under $HSM_TASK_DIR",
        )
    ]


def _in_tree(tree: Any, parts: list[str]) -> bool:
    for part in parts:
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def project_warnings(project: ProjectConfig, spec: SweepSpec | None) -> list[Finding]:
    file = str(project.source) if project.source else None
    found = []
    python = project.python_command()
    missing = conda.missing_here(python) if conda.describe(python) else None
    if missing:
        found.append(
            Finding(
                file,
                "paths.conda_env",
                missing,
                "local tasks would fail (cluster nodes and SSH hosts look for their own)",
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
    calling = conventions_of(project, spec) if project else None
    style = calling.arg_style if calling else "hydra"
    lists = calling.list_style if calling else "nargs"
    seen: set[str] = set()
    for params in expand(spec) if task_count <= HUGE_SWEEP else []:
        for key, value in params.items():
            try:
                for argument in render_override(key, value, style, lists=lists):
                    names.check_argv_text(argument)
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
        elif prefix in project.machine_keys:
            origin = "~/.hsm/config.yaml"
        elif moved := _moved_from(project.origins, prefix):
            origin = moved if moved.startswith("v1 default") else f"{project.source.name}: {moved}"
        else:
            origin = "default"
        rows.append((prefix, value, origin))

    walk("", project.data)
    return rows
