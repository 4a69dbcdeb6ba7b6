"""Load and check a sweep file (``sweep.yaml``): what to sweep, in the v1-compatible format.

Accepted layouts (all of HPC Sweep Manager v1's):

- ``grid:`` and ``paired:`` at the top level, or inside a ``sweep:`` wrapper (then ``script``,
  ``metadata``, ``defaults`` stay at the top level, as v1 read them);
- ``paired:`` as a list of named groups ``- name: {param: [...], ...}``; one list item naming
  several groups zips them all together, as v1 did;
- ``defaults:`` as a mapping (every task gets it) or as the Hydra defaults *list* that v1's
  ``hsm setup init`` wrote (kept, and like v1 not passed to the script);
- ``resources: {gpus: N}``, v1's GPUs per task, read as ``resources: {local: {gpus: N}}``;
- v1's ``complete: <sweep id>``: the sweep this file continues (``run`` re-expands into it).
- v1's ``cost_param``, ``cost_map`` and ``resumable`` (accepted, ignored, noted).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsm_snake.config.schema import (
    describe_value,
    flow_yaml,
    load_schema,
    resolve,
    validate,
)
from hsm_snake.config.yamlsource import key_path, line_of, load_yaml_file
from hsm_snake.errors import ConfigError
from hsm_snake.sweep.expand import find_repeated_entry

STARTER = "grid: {lr: [0.001, 0.01]}"

Parts = list[str | int]


@dataclass(frozen=True)
class PairedGroup:
    """Parameters whose lists are zipped: the i-th values of all of them go to one task."""

    name: str
    params: dict[str, list[Any]]


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep. Parameter names are dotted (``model.lr``) and keep the file's order."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    paired: list[PairedGroup] = field(default_factory=list)
    script: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    continues: str | None = None
    """v1's ``complete: <sweep id>``: the existing sweep this file adds to (as ``run --sweep-id``)."""
    raw: dict[str, Any] = field(default_factory=dict)
    notices: tuple[str, ...] = ()
    """Things worth telling the user that are not errors (v1 keys that are ignored)."""
    lines: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    """The line of every key of the file (for errors found after parsing)."""


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file. Every mistake in it is a ConfigError naming key and line."""
    path = Path(path)
    document = load_yaml_file(path, missing_hint=f"give the path of a sweep YAML file (looked for {path.absolute()})")
    return parse_sweep(document.data, source=path, lines=document.lines)


def parse_sweep(data: Any, source: Path | None = None, lines: dict[str, int] | None = None) -> SweepSpec:
    """Check already-parsed sweep data; ``lines`` (key path → line) makes errors point at lines."""
    return _SweepParser(source, lines).parse(data)


class _SweepParser:
    def __init__(self, source: Path | None, lines: dict[str, int] | None) -> None:
        self.source = source
        self.lines = lines

    def error(self, message: str, parts: Parts, hint: str | None = None) -> ConfigError:
        return ConfigError(
            message, file=self.source, key=key_path(parts) or None, line=line_of(self.lines, parts), hint=hint
        )

    def parse(self, data: Any) -> SweepSpec:
        if data is None:
            raise ConfigError("the file is empty", file=self.source, hint=f"a sweep needs parameters, e.g. {STARTER}")
        if not isinstance(data, dict):
            raise ConfigError(
                f"a sweep file must be a mapping of keys such as grid: and paired:, got {describe_value(data)}",
                file=self.source,
                line=1,
                hint=f"start from: {STARTER}",
            )
        validate(data, "sweep", file=self.source, lines=self.lines)

        body, prefix = data, []
        if "sweep" in data:
            body, prefix = data["sweep"], ["sweep"]
            for name in ("grid", "paired"):
                if name in data and name in body:
                    raise self.error(
                        f"'{name}' is both at the top level and inside 'sweep:'",
                        [name],
                        hint="keep one of the two (v1 silently used the one inside sweep:)",
                    )
        grid = self.grid(body.get("grid") or {}, [*prefix, "grid"])
        paired = self.paired(body.get("paired") or [], [*prefix, "paired"])
        self.reject_overlap(grid, paired)
        defaults = self.defaults(data.get("defaults"))
        if not grid and not paired and not defaults:
            raise ConfigError(
                "the sweep has no parameters",
                file=self.source,
                line=1 if data else None,
                hint=f"add a grid: or a paired: section, e.g. {STARTER}",
            )
        spec = SweepSpec(
            grid={name: values for name, (values, _) in grid.items()},
            paired=[group for group, _ in paired],
            script=data.get("script"),
            metadata=dict(data.get("metadata") or {}),
            defaults=defaults,
            resources=self.resources(data.get("resources") or {}),
            source=self.source,
            continues=data.get("complete"),
            raw=data,
            notices=(*self.ignored_v1_keys(data, body, prefix), *self.continued(data)),
            lines=self.lines or {},
        )
        self.reject_repeats(spec, grid, paired)
        return spec

    def resources(self, resources: dict[str, Any]) -> dict[str, Any]:
        """The per-sweep resources, with v1's top-level ``gpus`` (GPUs per task) read as ``local.gpus``."""
        resources = dict(resources)
        if "gpus" not in resources:
            return resources
        gpus = resources.pop("gpus")
        local = dict(resources.get("local") or {})
        if local.get("gpus", gpus) != gpus:
            raise self.error(
                f"resources.gpus ({gpus}) and resources.local.gpus ({local['gpus']}) are both set, to different values",
                ["resources", "gpus"],
                hint="keep one: both are the GPUs per task on this machine",
            )
        resources["local"] = {**local, "gpus": gpus}
        return resources

    def grid(self, grid: dict[str, Any], parts: Parts) -> dict[str, tuple[list[Any], Parts]]:
        params: dict[str, tuple[list[Any], Parts]] = {}
        for name, values, where in self.flatten(grid, parts):
            self.check_values(values, where)
            if name in params:
                raise self.error(
                    f"parameter '{name}' is defined twice, as nested keys and as a dotted key",
                    where,
                    hint="nested keys and dotted keys name the same parameter: keep one",
                )
            params[name] = (values, where)
        return params

    def paired(self, groups: list[Any], parts: Parts) -> list[tuple[PairedGroup, Parts]]:
        parsed: list[tuple[PairedGroup, Parts]] = []
        owners: dict[str, str] = {}
        for index, item in enumerate(groups):
            where = [*parts, index]
            group = self.paired_group(item, where)
            for name in group.params:
                if name in owners:
                    raise self.error(
                        f"parameter '{name}' is in paired group '{owners[name]}' and in '{group.name}'",
                        where,
                        hint="a parameter can be in one paired group only",
                    )
                owners[name] = group.name
            parsed.append((group, where))
        return parsed

    def reject_overlap(self, grid: dict[str, tuple[list[Any], Parts]], paired: list[tuple[PairedGroup, Parts]]) -> None:
        for group, where in paired:
            for name in group.params:
                if name in grid:
                    raise self.error(
                        f"parameter '{name}' is in the grid (line {line_of(self.lines, grid[name][1])}) "
                        f"and in paired group '{group.name}'",
                        where,
                        hint="sweep a parameter in one place only: remove it from the grid or from the group",
                    )

    def paired_group(self, item: dict[str, Any], where: Parts) -> PairedGroup:
        example = "- my_group: {lr: [0.1, 0.01], wd: [0.0, 0.1]}"
        if not item:
            raise self.error("empty paired group", where, hint=f"write a named group, e.g. {example}")
        if any(not isinstance(value, dict) for value in item.values()):
            raise self.error(
                "a paired group must be named and map parameters to lists of values",
                where,
                hint=f"put the parameters under a group name, e.g. {example}",
            )
        params: dict[str, list[Any]] = {}
        for group_name, members in item.items():
            for name, values, at in self.flatten(members, [*where, group_name]):
                self.check_values(values, at)
                if name in params:
                    raise self.error(
                        f"parameter '{name}' appears twice in this paired group",
                        at,
                        hint="nested keys and dotted keys name the same parameter: keep one",
                    )
                params[name] = values
        name = "+".join(str(group_name) for group_name in item)
        if not params:
            raise self.error(f"paired group '{name}' has no parameters", where, hint=f"e.g. {example}")
        lengths = {param: len(values) for param, values in params.items()}
        if len(set(lengths.values())) > 1:
            listing = ", ".join(f"{param} has {length}" for param, length in lengths.items())
            raise self.error(
                f"paired group '{name}': every parameter needs the same number of values, but {listing}",
                [*where, next(iter(item))],
                hint="the i-th values of a group run together: give each parameter as many values as the others",
            )
        return PairedGroup(name, params)

    def defaults(self, defaults: Any) -> dict[str, Any]:
        if not isinstance(defaults, dict):
            return {}
        flat: dict[str, Any] = {}
        for name, value, where in self.flatten(defaults, ["defaults"]):
            self.check_value(value, where)
            if name in flat:
                raise self.error(
                    f"default '{name}' is defined twice",
                    where,
                    hint="nested keys and dotted keys name the same parameter: keep one",
                )
            flat[name] = value
        return flat

    def flatten(self, mapping: dict[Any, Any], parts: Parts, prefix: str = "") -> Iterator[tuple[str, Any, Parts]]:
        """(dotted name, value, key path) of every leaf; nested mappings extend the name."""
        for key, value in mapping.items():
            where = [*parts, key]
            if not isinstance(key, str):
                raise self.error(
                    f"a parameter name was read as {describe_value(key)}, not as text",
                    where,
                    hint="quote the name in the file, e.g. 'on': [...] (YAML reads unquoted "
                    "yes/no/on/off/true/false as booleans and digits as numbers)",
                )
            if not key or any(c.isspace() for c in key) or "=" in key:
                raise self.error(f"parameter name {key!r} may not be empty or contain spaces or '='", where)
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                if not value:
                    raise self.error(f"'{name}' is an empty mapping", where, hint="give its parameters, or remove it")
                yield from self.flatten(value, where, name)
            else:
                yield name, value, where

    def check_values(self, values: Any, where: Parts) -> None:
        leaf = next(p for p in reversed(where) if isinstance(p, str))
        if not isinstance(values, list):
            raise self.error(
                f"expected a list of values, got {describe_value(values)}",
                where,
                hint=f"wrap it in a list: {leaf}: [{flow_yaml(values)}]",
            )
        if not values:
            raise self.error(
                "empty list: this would give the sweep no tasks",
                where,
                hint="give at least one value, or remove the key",
            )
        for index, value in enumerate(values):
            self.check_value(value, [*where, index])

    def check_value(self, value: Any, where: Parts) -> None:
        if value is None or isinstance(value, (str, int, float, bool)):
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.check_value(item, [*where, index])
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise self.error(
                        f"mapping key {key!r} inside a value must be text", where, hint=f"quote it: '{key}'"
                    )
                self.check_value(item, [*where, key])
            return
        raise self.error(
            f"a value of type {type(value).__name__} cannot be passed to a script",
            where,
            hint="use text, numbers, true/false, null, lists or mappings",
        )

    def reject_repeats(
        self, spec: SweepSpec, grid: dict[str, tuple[list[Any], Parts]], paired: list[tuple[PairedGroup, Parts]]
    ) -> None:
        found = find_repeated_entry(spec)
        if not found:
            return
        name, repeat = found
        if name in grid:
            where = [*grid[name][1], repeat.second]
        else:
            where = next(parts for group, parts in paired if group.name == name)
        raise repeat.error(file=self.source, key=key_path(where), line=line_of(self.lines, where))

    def continued(self, data: dict[str, Any]) -> Iterator[str]:
        if data.get("complete"):
            line = line_of(self.lines, ["complete"])
            at = f"{self.source}:{line}: " if self.source and line else ""
            sweep = data["complete"]
            yield (
                f"{at}'complete' (v1): this file continues sweep {sweep}: run adds its new combinations to it "
                f"and keeps finished tasks (as hsm-snake run FILE --sweep-id {sweep})"
            )

    def ignored_v1_keys(self, data: dict[str, Any], body: dict[str, Any], prefix: Parts) -> Iterator[str]:
        root = load_schema("sweep")
        scopes = [(data, [], root)]
        if prefix:
            scopes.append((body, prefix, resolve(root["properties"]["sweep"], root)))
        for mapping, parts, schema in scopes:
            for name, sub in schema.get("properties", {}).items():
                why = resolve(sub, root).get("x-v1-ignored")
                if why and name in mapping:
                    where = [*parts, name]
                    line = line_of(self.lines, where)
                    at = f"{self.source}:{line}: " if self.source and line else ""
                    yield f"{at}'{key_path(where)}' is a v1 key that hsm-snake ignores: {why}"
