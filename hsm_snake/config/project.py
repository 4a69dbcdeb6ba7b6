"""Find, load and check the project config (``hsm.yaml``): how and where tasks run.

Also reads HPC Sweep Manager v1's files (``.hsm/config.yaml``, ``sweeps/hsm_config.yaml``,
``hsm_config.yaml``) unchanged: the schema marks each v1 key with its new home (``x-v1-use``),
a conversion (``x-convert``) or why it is ignored (``x-v1-ignored``), and :class:`_Normalizer`
applies those marks. What it did is listed in :attr:`ProjectConfig.notices`.
"""

from __future__ import annotations

import copy
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jsonschema import FormatChecker

from hsm_snake.config.overrides import SOURCE as SET_SOURCE
from hsm_snake.config.overrides import merge as merge_overrides
from hsm_snake.config.schema import (
    apply_defaults,
    describe_value,
    load_schema,
    resolve,
    validate,
)
from hsm_snake.config.yamlsource import key_path, line_of, load_yaml_file
from hsm_snake.errors import ConfigError
from hsm_snake.layout import names
from hsm_snake.runner import conda

CONFIG_NAMES = ("hsm.yaml", ".hsm/config.yaml", "sweeps/hsm_config.yaml", "hsm_config.yaml")
"""Where a project config is looked for, in this order, in a folder and then its parents."""

WALLTIME_HINT = 'write "HH:MM:SS" (e.g. "04:00:00"), "D-HH:MM:SS", minutes as a number (240), or "90m" / "2h"'
MEMORY_HINT = 'write "16G", "500M", "16GB", or megabytes as a number (16000)'

Parts = list[str | int]


@dataclass(frozen=True)
class ProjectConfig:
    """A checked project config with schema defaults applied and v1 keys under their new names."""

    source: Path | None
    root: Path
    data: dict[str, Any]
    notices: tuple[str, ...] = ()
    """Things worth telling the user that are not errors (v1 keys read differently or ignored)."""
    origins: dict[str, str] = field(default_factory=dict, compare=False)
    """Settings that are not where the file has them (dotted key → where they came from): a v1
    key read under its new name, v1's ``hpc:`` block, a v1 default."""
    v1_format: bool = False
    """The config is a v1 file (``sweeps/hsm_config.yaml``, ``.hsm/config.yaml``, ``hsm_config.yaml``):
    v1's defaults and conventions apply where the file says nothing."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """This run's ``--set`` settings (already in ``data``), recorded with the sweep."""
    machine_source: Path | None = None
    """The per-machine layer (``~/.hsm/config.yaml``) merged under the project file, if any."""
    machine_keys: frozenset[str] = frozenset()
    """Dotted keys whose value came from the machine layer."""

    def section(self, name: str) -> dict[str, Any]:
        """A top-level section (``local``, ``slurm``, ...), empty when absent."""
        return dict(self.data.get(name) or {})

    def python_command(self) -> list[str]:
        """The argv prefix that runs a Python script in the project's environment."""
        paths = self.section("paths")
        if paths.get("conda_env"):
            root = _expand(paths["conda_root"]) if paths.get("conda_root") else None
            return [*conda.run_prefix(paths["conda_env"], root), "python"]
        interpreter = paths.get("python_interpreter")
        if not interpreter:
            return [sys.executable]
        # A bare command such as "python3" is looked up on PATH; anything with a slash is a path.
        if "/" not in _expand(interpreter):
            return [interpreter]
        return [str(self._under_root(interpreter))]

    @property
    def is_v1(self) -> bool:
        """Read from one of v1's files (``.hsm/config.yaml``, ``sweeps/hsm_config.yaml``, ``hsm_config.yaml``)."""
        return self.source is not None and _is_v1_file(self.source)

    @property
    def train_script(self) -> Path | None:
        script = self.section("paths").get("train_script")
        return self._under_root(script) if script else None

    @property
    def output_dir(self) -> Path:
        """Where sweep directories are made: ``local.sweeps_root`` if set, else ``paths.output_dir``."""
        return self.sweeps_root or self._under_root(self.section("paths").get("output_dir") or "sweeps/outputs")

    @property
    def sweeps_root(self) -> Path | None:
        """v1's ``local.sweeps_root``: sweeps live there, each linked from ``sweeps/outputs/<id>``."""
        root = self.section("local").get("sweeps_root")
        return self._under_root(root) if root else None

    @property
    def sweeps_listing_dir(self) -> Path:
        """Where this project's sweeps are found: with a sweeps_root (which every project of the
        machine shares) the project's own links, else the output dir."""
        return self.sweep_links_dir if self.sweeps_root else self.output_dir

    @property
    def sweep_links_dir(self) -> Path:
        """Where a sweep under ``sweeps_root`` gets its link (v1's project-local discovery folder)."""
        return self.root / "sweeps" / "outputs"

    def _under_root(self, path: str) -> Path:
        return Path(os.path.normpath(self.root / _expand(path)))


def find_project_config(start: Path) -> Path | None:
    """The first project config in ``start`` or its parents (see :data:`CONFIG_NAMES`)."""
    start = Path(start).absolute()
    home = _home()
    for folder in (start, *start.parents):
        for name in CONFIG_NAMES:
            # ~/.hsm/config.yaml is v1's machine-wide file, not a project's.
            if name == ".hsm/config.yaml" and folder == home:
                continue
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def machine_config_path() -> Path | None:
    """v1's per-machine layer, ``~/.hsm/config.yaml`` (None when there is no home folder)."""
    home = _home()
    return home / ".hsm" / "config.yaml" if home else None


def load_project(path: Path | None, cwd: Path, overrides: dict[str, Any] | None = None) -> ProjectConfig:
    """Load ``path``, or the config found from ``cwd`` upwards, or the defaults rooted at ``cwd``;
    with the per-machine layer ``~/.hsm/config.yaml`` merged under it (see :func:`merge_machine_layer`)
    and ``overrides`` (checked ``--set`` settings, see overrides.py) laid over the file's."""
    cwd = Path(cwd).absolute()
    overrides = dict(overrides or {})
    if path is None:
        path = find_project_config(cwd)
    else:
        # As given: a shell has expanded the command line already, and a path found or recorded
        # (a project folder named 'run$1') must not be read as holding variables.
        path = Path(path)
        path = path if path.is_absolute() else cwd / path
    machine_path, machine, notices = load_machine_layer(exclude=path)
    root = cwd
    origins: dict[str, str] = {}
    v1_format = False
    if path is None:
        reader = _Normalizer(Path(SET_SOURCE), {}, lenient=False)
        data = reader.read(overrides)
        reader.check_pool_selection(data)
    else:
        data, reader = _read_config(
            path,
            missing_hint=f"give an existing file, or leave the option out to use the "
            f"first of {', '.join(CONFIG_NAMES)} in {cwd} or a parent folder",
            overrides=overrides,
        )
        notices += reader.notices
        origins = {dest: key_path(source) for dest, source in reader.origins.items()} | reader.v1_defaults
        v1_format = reader.lenient
    data, machine_keys = merge_machine_layer(machine, data, path, machine_path, notices)
    data = _with_defaults(data)
    if path is not None:
        project_dir = _project_dir(path)
        project_root = data.get("project", {}).get("root")
        root = Path(os.path.normpath(project_dir / _expand(project_root))) if project_root else project_dir
    return ProjectConfig(
        source=path,
        root=root,
        data=data,
        notices=tuple(notices),
        origins=origins,
        v1_format=v1_format,
        overrides=overrides,
        machine_source=machine_path if machine else None,
        machine_keys=frozenset(machine_keys),
    )


MACHINE_KEYS = {"local": None, "paths": ("conda_root",)}
"""What the machine layer may set (v1 reads only ``local:`` there; ``paths.conda_root`` is a
machine fact too): a section whole (None), or some keys of it."""


def merge_machine_layer(
    machine: dict[str, Any], project: dict[str, Any], source: Path | None, machine_path: Path | None, notices: list[str]
) -> tuple[dict[str, Any], set[str]]:
    """The project data with the machine layer under it, key by key (the project file wins on
    every key it sets, as in v1), and the dotted keys the machine layer supplied."""
    merged = copy.deepcopy(project)
    supplied: set[str] = set()
    for section, values in machine.items():
        target = merged.setdefault(section, {})
        for key, value in values.items():
            if key not in target:
                target[key] = copy.deepcopy(value)
                supplied.add(f"{section}.{key}")
    local, paths = merged.get("local") or {}, merged.get("paths") or {}
    if local.get("sweeps_root") and paths.get("output_dir"):
        if "local.sweeps_root" not in supplied:
            raise ConfigError(
                "local.sweeps_root and paths.output_dir both say where sweeps go",
                file=source,
                key="local.sweeps_root",
                hint="keep one: sweeps_root (v1: sweeps there, linked from sweeps/outputs/) or output_dir",
            )
        local.pop("sweeps_root")
        supplied.discard("local.sweeps_root")
        notices.append(f"{machine_path}: 'local.sweeps_root' is not used: {source} sets paths.output_dir, which wins")
    return merged, supplied


def load_machine_layer(exclude: Path | None = None) -> tuple[Path | None, dict[str, Any], list[str]]:
    """(its path, what it sets, notices) of ``~/.hsm/config.yaml``; nothing when it is absent or
    is ``exclude`` (loaded as the project file itself)."""
    path = machine_config_path()
    if path is None or not path.is_file() or path == exclude:
        return path, {}, []
    return path, *_read_machine_layer(path)


def _read_machine_layer(path: Path) -> tuple[dict[str, Any], list[str]]:
    data, reader = _read_config(path, missing_hint="", lenient=True)
    notices = reader.notices
    kept: dict[str, Any] = {}
    for section, values in data.items():
        allowed = MACHINE_KEYS.get(section, ())
        for key, value in (values or {}).items() if isinstance(values, dict) else [(None, values)]:
            if key is not None and (allowed is None or key in allowed):
                kept.setdefault(section, {})[key] = value
            else:
                notices.append(
                    f"{path}: '{section if key is None else f'{section}.{key}'}' is ignored: the machine file "
                    "sets only local: and paths.conda_root (as in v1); put project settings in the project's hsm.yaml"
                )
    return kept, notices


def _read_config(
    path: Path, missing_hint: str, lenient: bool | None = None, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], _Normalizer]:
    """A config file checked against the schema (with ``overrides`` laid over it), v1 keys under
    their new names."""
    document = load_yaml_file(path, missing_hint=missing_hint)
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        raise ConfigError(
            f"a project config must be a mapping of sections such as paths: and local:, got {describe_value(data)}",
            file=path,
            line=1,
            hint="start from: paths: {train_script: train.py}",
        )
    validate(data, "project", file=path, lines=document.lines, format_checker=_FORMATS)
    if overrides:
        validate(overrides, "project", file=SET_SOURCE, format_checker=_FORMATS)
        data = merge_overrides(data, overrides)
        validate(data, "project", file=f"{path} with {SET_SOURCE}", format_checker=_FORMATS)
    reader = _Normalizer(path, document.lines, lenient=_is_v1_file(path) if lenient is None else lenient)
    data = reader.read(data)
    reader.check_interpreters(data)
    reader.check_path_maps(data)
    reader.check_pool_selection(data)
    reader.check_storage_tiers(data)
    return data, reader


def parse_walltime_seconds(value: Any, key: str) -> int:
    """Seconds of a walltime: ``"HH:MM:SS"``, ``"D-HH:MM:SS"``, minutes as an int, ``"90m"``, ``"2h"``."""
    if isinstance(value, str) and re.fullmatch(r"\d+:\d+", value.strip()):
        text = value.strip()
        raise ConfigError(
            f"'{text}' is ambiguous: Slurm reads it as minutes:seconds, YAML 1.1 as hours:minutes",
            key=key,
            hint=f'write "HH:MM:SS": "00:{text}" or "{text}:00"',
        )
    seconds = _walltime_seconds(value)
    if seconds is None:
        raise ConfigError(f"{describe_value(value)} is not a walltime", key=key, hint=WALLTIME_HINT)
    if seconds <= 0:
        raise ConfigError(
            "a walltime must be longer than zero", key=key, hint=f"leave the key out for no limit, or {WALLTIME_HINT}"
        )
    return seconds


def parse_mem_mb(value: Any, key: str) -> int:
    """Megabytes of a memory amount: ``"16G"``, ``"500M"``, ``"16GB"``, or megabytes as an int."""
    megabytes = _memory_mb(value)
    if megabytes is None:
        raise ConfigError(f"{describe_value(value)} is not an amount of memory", key=key, hint=MEMORY_HINT)
    if megabytes <= 0:
        raise ConfigError("memory must be more than zero", key=key, hint=MEMORY_HINT)
    return megabytes


def _walltime_seconds(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * 60
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return int(text) * 60
    if match := re.fullmatch(r"(\d+)-(\d+)(?::(\d+)(?::(\d+))?)?", text):
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        if minutes >= 60 or seconds >= 60:
            return None
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if match := re.fullmatch(r"(\d+):(\d+):(\d+)", text):
        hours, minutes, seconds = (int(g) for g in match.groups())
        if minutes >= 60 or seconds >= 60:
            return None
        return (hours * 60 + minutes) * 60 + seconds
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text, re.IGNORECASE):
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2).lower()]
        return math.ceil(float(match.group(1)) * unit)
    return None


def _memory_mb(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", value.strip(), re.IGNORECASE)
    if not match:
        return None
    factor = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[match.group(2).upper()]
    return math.ceil(float(match.group(1)) * factor)


_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("walltime", raises=ConfigError)
def _is_walltime(value: Any) -> bool:
    if value is not None and not isinstance(value, bool):
        parse_walltime_seconds(value, "walltime")
    return True


@_FORMATS.checks("memory", raises=ConfigError)
def _is_memory(value: Any) -> bool:
    if value is not None and not isinstance(value, bool):
        parse_mem_mb(value, "mem")
    return True


@_FORMATS.checks("absolute-path", raises=ConfigError)
def _is_absolute_path(value: Any) -> bool:
    if isinstance(value, str) and not value.startswith("/"):
        raise ConfigError(f"{value!r} is not an absolute path", hint='path_map: {"/local/prefix": "/its/prefix"}')
    return True


def _name_format(check):
    """A format whose rule is one of layout/names.py's (the same one names read back are held to)."""

    def checker(value: Any) -> bool:
        if isinstance(value, str):
            try:
                check(value)
            except names.BadName as bad:
                raise ConfigError(bad.message, hint=bad.hint) from None
        return True

    return checker


for _format, _check in (
    ("remote-alias", names.check_alias),
    ("ssh-host", names.check_host),
    ("ssh-user", names.check_user),
    ("scheduler-word", names.check_scheduler_word),
    ("one-line", names.check_one_line),
    ("env-name", names.check_env_name),
    ("argv-text", names.check_argv_text),
):
    _FORMATS.checks(_format, raises=ConfigError)(_name_format(_check))


@_FORMATS.checks("regex-one-group", raises=ConfigError)
def _is_regex_with_one_group(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    try:
        groups = re.compile(value).groups
    except re.error as error:
        raise ConfigError(
            f"is not a valid regular expression: {error}",
            hint=r"escape special characters with a backslash, e.g. loss=([0-9.]+)",
        ) from None
    if groups != 1:
        raise ConfigError(
            f"needs exactly one group (...) around the value, has {groups}",
            hint=r"e.g. val_loss=([0-9.eE+-]+); write (?:...) for a group that captures nothing",
        )
    return True


def _with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    schema = load_schema("project")
    return apply_defaults(data, schema, schema)


def _project_dir(config: Path) -> Path:
    """The folder a config belongs to: its own, or the parent of v1's ``.hsm/`` and ``sweeps/``."""
    if (config.parent.name, config.name) in ((".hsm", "config.yaml"), ("sweeps", "hsm_config.yaml")):
        return config.parent.parent
    return config.parent


def _is_v1_file(config: Path) -> bool:
    return config.name == "hsm_config.yaml" or (config.parent.name, config.name) == (".hsm", "config.yaml")


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


def _home() -> Path | None:
    try:
        return Path.home()
    except RuntimeError:
        return None


_DROP = object()


@dataclass
class _Move:
    """Put ``value`` at ``dest`` (``_DROP``: delete ``dest``); ``source`` is where it came from."""

    dest: Parts
    value: Any
    source: Parts
    only_if_unset: bool = False


class _Normalizer:
    """Applies the schema's marks: v1 keys move to their new names (``x-v1-use``), values are
    converted to one form (``x-convert``), ignored keys are dropped (``x-v1-ignored``); every
    v1 key it meets is noted."""

    def __init__(self, path: Path, lines: dict[str, int], lenient: bool) -> None:
        self.path = path
        self.lines = lines
        # v1 files keep v1 precedence where the new format is stricter (conda_env beats python_interpreter).
        self.lenient = lenient
        self.schema = load_schema("project")
        self.notices: list[str] = []
        self.origins: dict[str, Parts] = {}
        self.v1_defaults: dict[str, str] = {}
        self.original: dict[str, Any] = {}

    def error(self, message: str, parts: Parts, hint: str | None = None) -> ConfigError:
        source = self.origins.get(key_path(parts), parts)
        return ConfigError(message, file=self.path, key=key_path(parts), line=line_of(self.lines, source), hint=hint)

    def checked(self, parse: Callable[[Any, str], int], value: Any, where: Parts) -> None:
        """Run a walltime/memory parser, reporting its error at ``where``."""
        try:
            parse(value, key_path(where))
        except ConfigError as error:
            raise self.error(error.message, where, hint=error.hint) from None

    def note(self, parts: Parts, text: str) -> None:
        line = line_of(self.lines, parts)
        self.notices.append(f"{self.path}{f':{line}' if line else ''}: '{key_path(parts)}' {text}")

    def read(self, data: dict[str, Any]) -> dict[str, Any]:
        self.original = data
        result = copy.deepcopy(data)
        if self.lenient and "output_dir" in (result.get("paths") or {}):
            # v1 wrote paths.output_dir for the script's own outputs and never put sweeps there.
            result["paths"].pop("output_dir")
            self.note(
                ["paths", "output_dir"],
                "named the script's outputs in v1, not where sweeps go: ignored "
                "(sweeps go to sweeps/outputs, or to local.sweeps_root, as in v1)",
            )
        moves: list[_Move] = []
        self._walk(result, [], self.schema, moves)
        # Defaults (only_if_unset) after the keys set outright, removals last.
        for move in sorted(moves, key=lambda m: (m.value is _DROP, m.only_if_unset)):
            self._apply(result, move)
        if self.lenient:
            self._v1_defaults(result)
        return result

    def _v1_defaults(self, data: dict[str, Any]) -> None:
        """Where a v1 file says nothing, v1's defaults, not hsm-snake's: the pool of a v1
        ``distributed:`` section includes one task slot on this machine (v1's local_max_jobs: 1)."""
        distributed = data.get("distributed")
        if isinstance(distributed, dict) and "local_slots" not in distributed:
            distributed["local_slots"] = 1
            self.v1_defaults["distributed.local_slots"] = "v1 default (local_max_jobs: 1)"

    def _walk(self, node: Any, parts: Parts, schema: dict[str, Any], moves: list[_Move]) -> None:
        schema = resolve(schema, self.schema)
        if not isinstance(node, dict):
            return
        properties = schema.get("properties", {})
        for key in list(node):
            where = [*parts, key]
            if key not in properties:
                extra = schema.get("additionalProperties")
                if isinstance(extra, dict):
                    self._walk(node[key], where, extra, moves)
                continue
            sub = resolve(properties[key], self.schema)
            if "x-v1-ignored" in sub:
                node.pop(key)
                self.note(where, f"is a v1 key that hsm-snake ignores: {sub['x-v1-ignored']}")
            elif "x-v1-use" in sub and node[key] is None:
                node.pop(key)
            elif "x-v1-use" in sub or "x-convert" in sub:
                value = node.pop(key)
                use = sub.get("x-v1-use", key)
                dest = use.strip("/").split("/") if use.startswith("/") else [*parts, use]
                if "x-v1-use" in sub:
                    self.note(where, f"is a v1 key: read as '{key_path(dest)}'")
                convert = _CONVERTERS.get(sub.get("x-convert", ""), _keep)
                moves.extend(convert(self, value, where, dest))
            else:
                self._walk(node[key], where, sub, moves)
                if sub.get("deprecated") and node[key] == {}:
                    node.pop(key)

    def _apply(self, data: dict[str, Any], move: _Move) -> None:
        *parents, last = move.dest
        target = data
        for part in parents:
            target = target.setdefault(part, {})
        if move.value is _DROP:
            target.pop(last, None)
            return
        if last in target:
            if move.only_if_unset:
                return
            dest, existing = key_path(move.dest), self.origins.get(key_path(move.dest))
            message = (
                f"'{key_path(move.source)}' and '{key_path(existing)}' are both read as '{dest}'"
                if existing
                else f"both '{key_path(move.source)}' (a v1 name) and '{dest}' are set"
            )
            raise ConfigError(
                message,
                file=self.path,
                key=key_path(move.source),
                line=line_of(self.lines, move.source),
                hint=f"keep only '{dest}'",
            )
        target[last] = move.value
        self.origins[key_path(move.dest)] = move.source

    def check_path_maps(self, data: dict[str, Any]) -> None:
        """A path_map only means something on a shared_fs host (a push/pull host gets copies)."""
        for alias, remote in (data.get("distributed", {}).get("remotes") or {}).items():
            if (remote or {}).get("path_map") and not remote.get("shared_fs"):
                raise self.error(
                    "path_map needs shared_fs: true",
                    ["distributed", "remotes", alias, "path_map"],
                    hint="path_map says where a host that shares this machine's files sees them; "
                    "set shared_fs: true, or drop path_map (the host then gets copies)",
                )

    def check_pool_selection(self, data: dict[str, Any]) -> None:
        """distributed.use names remotes of this file (or local)."""
        distributed = data.get("distributed") or {}
        known = set(distributed.get("remotes") or {})
        for alias in distributed.get("use") or []:
            if alias != "local" and alias not in known:
                raise self.error(
                    f"'{alias}' is not one of the remotes (a disabled one is left out)",
                    ["distributed", "use"],
                    hint="known: " + (", ".join(sorted(known)) or "none") + "; add it with hsm-snake remote add",
                )

    def check_storage_tiers(self, data: dict[str, Any]) -> None:
        """archive_dir/archive_on belong to a cluster remote (its login node copies the sweep); an SSH
        host has no such step: an error, or in a v1 file (which accepted and ignored them) a notice."""
        remotes = (data.get("distributed") or {}).get("remotes") or {}
        for alias, remote in remotes.items():
            if not isinstance(remote, dict) or remote.get("backend", "ssh") != "ssh":
                continue
            for key in ("archive_dir", "archive_on"):
                if key not in remote:
                    continue
                parts = ["distributed", "remotes", alias, key]
                if self.lenient:
                    remote.pop(key)
                    self.note(parts, "is ignored: an SSH host has no archive step (it is for backend: slurm)")
                    continue
                raise self.error(
                    f"'{key}' is for a Slurm remote (backend: slurm): an SSH host has no archive step",
                    parts,
                    hint=f"remove it, or set backend: slurm on {alias} if it is a cluster's login node",
                )

    def check_interpreters(self, data: dict[str, Any]) -> None:
        """python_interpreter/conda_env (and a remote's python_path/conda_env) exclude each other."""
        places: list[tuple[Parts, str]] = [(["paths"], "python_interpreter")]
        remotes = data.get("distributed", {}).get("remotes") or {}
        places += [(["distributed", "remotes", alias], "python_path") for alias in remotes]
        for parts, python_key in places:
            section = data
            for part in parts:
                section = section.get(part) or {}
            if not (section.get(python_key) and section.get("conda_env")):
                continue
            if self.lenient:
                section.pop(python_key)
                self.note([*parts, python_key], "is ignored: conda_env is set too, and as in v1 conda_env wins")
                continue
            raise self.error(
                f"'{python_key}' and 'conda_env' are both set",
                [*parts, "conda_env"],
                hint=f"keep one: conda_env runs 'conda run -n <env> python', {python_key} names a Python to run",
            )


Converter = Callable[[_Normalizer, Any, Parts, Parts], list[_Move]]


def _keep(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    return [_Move(dest, value, where)]


def _seconds_to_walltime(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    if value is None:
        return []
    hours, rest = divmod(value, 3600)
    return [_Move(dest, f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}", where)]


def _join_lines(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    return [_Move(dest, "\n".join(value) if isinstance(value, list) else value, where)]


def _as_list(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    return [_Move(dest, [value] if isinstance(value, str) else value, where)]


def _directive_list(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    if isinstance(value, list):
        return [_Move(dest, value, where)]
    directives = []
    for name, setting in value.items():
        flag = "--" + str(name).lstrip("-")
        if setting is False:
            continue
        directives.append(flag if setting in (None, "", True) else f"{flag}={setting}")
    return [_Move(dest, directives, where)]


def _single_gpu_type(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    if isinstance(value, list):
        if len(value) > 1:
            raise reader.error(
                f"several GPU types {value} (v1's per-type planning) are not supported",
                where,
                hint="pick one gpu_type, or run one sweep per type with resources: {slurm: {gpu_type: ...}}",
            )
        value = value[0]
    return [_Move(dest, value, where)]


def _strategy(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    if value == "capability_based":
        reader.note(where, "capability_based is a v1 strategy: read as least_loaded")
        value = "least_loaded"
    return [_Move(dest, value, where)]


def _remote_gpus(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    remote = reader.original["distributed"]["remotes"][where[-2]]
    visible = [*where[:-1], "visible_gpus"]
    if isinstance(value, int):
        if isinstance(remote.get("spec"), dict) and "gpus" in remote["spec"]:
            reader.note(where, "is v1's count of GPUs to use next to spec.gpus: ignored (list them in visible_gpus)")
            return []
        return [_Move(dest, value, where)]
    if isinstance(value, list):
        reader.note(where, "is a v1 GPU allowlist: read as visible_gpus")
        return [_Move(visible, value, where)]
    text = value.strip().lower()
    if text == "all":
        reader.note(where, "'all' is v1's default: every GPU of the host is used")
        return []
    if text == "cpu":
        reader.note(where, "'cpu' is v1's CPU-only setting: read as gpus: 0")
        return [_Move(dest, 0, where)]
    if re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        reader.note(where, "is a v1 GPU allowlist: read as visible_gpus")
        return [_Move(visible, [int(i) for i in text.split(",")], where)]
    raise reader.error(
        f"{describe_value(value)} is not a number of GPUs",
        where,
        hint="GPUs per task as a number (gpus: 1); list allowed GPUs in visible_gpus: [0, 1]",
    )


def _remote_enabled(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    if value:
        return []
    reader.note(where[:-1], "has enabled: false (v1): left out of the pool")
    return [_Move(where[:-1], _DROP, where)]


# spec: keys of a v1 backend: slurm remote, and their place in its slurm: block (pbs: block of a
# backend: pbs remote, where the key is one of PBS's).
_SLURM_SPEC_KEYS = {
    "walltime": "walltime",
    "time": "walltime",
    "cpus_per_task": "cpus_per_task",
    "cpus": "cpus_per_task",
    "mem": "mem",
    "memory": "mem",
    "gpus": "gpus",
    "gpu_type": "gpu_type",
    "partition": "partition",
    "qos": "qos",
    "account": "account",
    "constraint": "constraint",
    "modules": "modules",
    "pre_script": "pre_script",
    "extra_directives": "extra_directives",
}


_PBS_SPEC_KEYS = {
    "walltime": "walltime",
    "time": "walltime",
    "mem": "mem",
    "memory": "mem",
    "queue": "queue",
    "account": "account",
    "modules": "modules",
    "pre_script": "pre_script",
    "extra_directives": "extra_directives",
}
_CLUSTER_SPEC_KEYS = {"slurm": _SLURM_SPEC_KEYS, "pbs": _PBS_SPEC_KEYS}

_SPEC_KEYS = ("pre_script", "modules", "walltime", "cpus_per_task", "mem", "gpus")


def _remote_spec(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    remote = where[:-1]
    scheduler = (reader.original.get("distributed", {}).get("remotes", {}).get(remote[-1]) or {}).get("backend")
    if scheduler in _CLUSTER_SPEC_KEYS:
        return _cluster_spec(reader, value, where, scheduler)
    ignored = sorted(str(key) for key in value if key not in _SPEC_KEYS)
    if ignored:
        reader.note(where, f"is v1's per-remote resources: {', '.join(ignored)} ignored (no scheduler on an SSH host)")
    moves = []
    for key in _SPEC_KEYS:
        if key not in value or value[key] is None:
            continue
        setting, at = value[key], [*where, key]
        if key == "pre_script":
            setting = "\n".join(setting) if isinstance(setting, list) else setting
        elif key == "modules":
            setting = [setting] if isinstance(setting, str) else setting
        elif key == "walltime":
            reader.checked(parse_walltime_seconds, setting, at)
        elif key == "mem":
            reader.checked(parse_mem_mb, setting, at)
        elif not isinstance(setting, int) or isinstance(setting, bool) or setting < 0:
            raise reader.error(f"{describe_value(setting)} is not a whole number", at, hint=f"e.g. {key}: 1")
        reader.note(at, f"is read as '{key_path([*remote, key])}' (unless the remote sets it)")
        moves.append(_Move([*remote, key], setting, at, only_if_unset=True))
    return moves


def _cluster_spec(reader: _Normalizer, value: dict[str, Any], where: Parts, scheduler: str) -> list[_Move]:
    """A cluster remote's v1 spec: goes into its slurm: (pbs:) block (where that does not set the key)."""
    block = [*where[:-1], scheduler]
    known = _CLUSTER_SPEC_KEYS[scheduler]
    ignored = sorted(key for key in value if key not in known)
    if ignored:
        reader.note(where, f"is v1's per-remote resources: {', '.join(ignored)} ignored")
    reader.note(where, f"is v1's per-remote resources: read into '{key_path(block)}'")
    moves = []
    for key, setting in value.items():
        name = known.get(key)
        if name is None or setting is None:
            continue
        if name == "walltime":
            reader.checked(parse_walltime_seconds, setting, [*where, key])
        elif name == "mem":
            reader.checked(parse_mem_mb, setting, [*where, key])
        elif name == "gpu_type":
            converted = _single_gpu_type(reader, setting, [*where, key], [*block, name])
            moves += [replace(move, only_if_unset=True) for move in converted]
            continue
        elif name == "modules":
            setting = [setting] if isinstance(setting, str) else setting
        elif name == "pre_script" and isinstance(setting, list):
            setting = "\n".join(setting)
        elif name == "extra_directives":
            moves += [
                replace(m, only_if_unset=True) for m in _directive_list(reader, setting, [*where, key], [*block, name])
            ]
            continue
        moves.append(_Move([*block, name], setting, [*where, key], only_if_unset=True))
    return moves


def _remote_qos_whitelist(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    """v1's per-remote ``qos_whitelist``: a Slurm remote's, read into its slurm: block."""
    remote = where[:-1]
    backend = (reader.original.get("distributed", {}).get("remotes", {}).get(remote[-1]) or {}).get("backend")
    if backend != "slurm":
        why = "a PBS cluster has no QOS" if backend == "pbs" else "an SSH host has no scheduler and no QOS"
        reader.note(where, f"is ignored: {why}")
        return []
    target = [*remote, "slurm", "qos_whitelist"]
    reader.note(where, f"is a v1 key: read as '{key_path(target)}'")
    return [_Move(target, value, where)]


def _env_for_remotes(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    remotes = reader.original["distributed"].get("remotes") or {}
    targets = [
        alias
        for alias, remote in remotes.items()
        if remote.get("enabled", True) and not (remote.get("conda_env") or remote.get("python_path"))
    ]
    reader.note(where, f"is v1's default for remotes: read as the {where[-1]} of {', '.join(targets) or 'no remote'}")
    return [_Move(["distributed", "remotes", alias, where[-1]], value, where, only_if_unset=True) for alias in targets]


def _hpc_block(reader: _Normalizer, value: Any, where: Parts, dest: Parts) -> list[_Move]:
    resources = (value.get("default_resources") or "").strip()
    system = str(value.get("system") or "").lower()
    if system == "slurm" or (system not in ("pbs", "torque", "pbspro") and resources.startswith("--")):
        targets = ["slurm"]
    elif system in ("pbs", "torque", "pbspro") or "select=" in resources:
        targets = ["pbs"]
    else:
        targets = ["slurm", "pbs"]
    # Each setting with the v1 key it came from (for `show`).
    common: dict[str, tuple[Any, str]] = {}
    if value.get("default_walltime") is not None:
        common["walltime"] = (value["default_walltime"], "default_walltime")
    if value.get("max_array_size") is not None:
        common["max_array_size"] = (value["max_array_size"], "max_array_size")
    if value.get("module_commands"):
        common["pre_script"] = ("\n".join(value["module_commands"]), "module_commands")
    per_target: dict[str, dict[str, tuple[Any, str]]] = {}
    for target in targets:
        fields = dict(common)
        if value.get("default_queue"):
            fields["partition" if target == "slurm" else "queue"] = (value["default_queue"], "default_queue")
        if resources:
            parse = _slurm_resources if target == "slurm" else _pbs_resources
            parsed = parse(reader, resources, [*where, "default_resources"])
            fields.update({name: (setting, "default_resources") for name, setting in parsed.items()})
        per_target[target] = fields
    reader.note(
        where,
        f"is v1's scheduler block: read into {' and '.join(f'{t}:' for t in targets)} "
        "where those do not set the key themselves",
    )
    return [
        _Move([target, name], setting, [*where, v1_key], only_if_unset=True)
        for target, fields in per_target.items()
        for name, (setting, v1_key) in fields.items()
    ]


def _pbs_resources(reader: _Normalizer, text: str, where: Parts) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for chunk in text.split(":"):
        name, _, setting = chunk.partition("=")
        name, setting = name.strip(), setting.strip()
        if name in ("select", "ncpus", "ngpus", "nodes", "ppn"):
            if not setting.isdigit():
                raise reader.error(f"'{chunk}' needs a whole number", where, hint="e.g. select=1:ncpus=4:mem=16gb")
            fields[name] = int(setting)
        elif name == "mem":
            reader.checked(parse_mem_mb, setting, where)
            fields["mem"] = setting
        else:
            raise reader.error(
                f"'{chunk}' of a PBS resource string has no place in pbs:",
                where,
                hint="write it as a qsub option under pbs: extra_directives",
            )
    return fields


def _slurm_resources(reader: _Normalizer, text: str, where: Parts) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    extra: list[str] = []
    named = {
        "cpus-per-task": "cpus_per_task",
        "ntasks": "cpus_per_task",
        "gpus": "gpus",
        "mem": "mem",
        "mem-per-cpu": "mem_per_cpu",
        "partition": "partition",
        "qos": "qos",
        "account": "account",
        "time": "walltime",
        "constraint": "constraint",
    }
    for token in text.split():
        name, _, setting = token.lstrip("-").partition("=")
        field = named.get(name)
        if field is None:
            extra.append(token)
        elif field in ("cpus_per_task", "gpus"):
            if not setting.isdigit():
                raise reader.error(f"'{token}' needs a whole number", where, hint="e.g. --cpus-per-task=4 --mem=16G")
            fields[field] = int(setting)
        else:
            if field in ("mem", "mem_per_cpu"):
                reader.checked(parse_mem_mb, setting, where)
            if field == "walltime":
                reader.checked(parse_walltime_seconds, setting, where)
            fields[field] = setting
    if extra:
        fields["extra_directives"] = extra
    return fields


_CONVERTERS: dict[str, Converter] = {
    "seconds_to_walltime": _seconds_to_walltime,
    "join_lines": _join_lines,
    "as_list": _as_list,
    "directive_list": _directive_list,
    "single_gpu_type": _single_gpu_type,
    "strategy": _strategy,
    "remote_gpus": _remote_gpus,
    "remote_enabled": _remote_enabled,
    "remote_spec": _remote_spec,
    "remote_qos_whitelist": _remote_qos_whitelist,
    "env_for_remotes": _env_for_remotes,
    "hpc_block": _hpc_block,
}
