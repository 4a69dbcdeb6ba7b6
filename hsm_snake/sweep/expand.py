"""Expand a sweep into its parameter sets, in a fixed order, and give each a stable hash.

Order: the grid keys in file order, then each paired group in file order, crossed like
``itertools.product`` (the last one varies fastest), which is the order v1 used. The defaults
fill in every key no swept parameter sets, after the swept keys.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hsm_snake.errors import ConfigError

if TYPE_CHECKING:
    from hsm_snake.config.sweep_file import SweepSpec


def canonical_json(value: Any) -> str:
    """The one JSON text of a value: sorted keys, no spaces, non-ASCII kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def param_hash(params: dict[str, Any]) -> str:
    """The first 16 hex digits of the SHA-256 of the parameters' canonical JSON."""
    return hashlib.sha256(canonical_json(params).encode("utf-8")).hexdigest()[:16]


def count(spec: SweepSpec) -> int:
    """How many parameter sets :func:`expand` yields, without building them."""
    sizes = [len(values) for values in spec.grid.values()]
    sizes += [_group_size(group.params) for group in spec.paired]
    return math.prod(sizes)


def expand(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every parameter set of the sweep (dotted key → value), each one distinct."""
    axes = [[{name: value} for value in values] for name, values in spec.grid.items()]
    axes += [_group_rows(group.params) for group in spec.paired]
    expanded: list[dict[str, Any]] = []
    positions: dict[str, int] = {}
    for combination in itertools.product(*axes):
        params: dict[str, Any] = {}
        for part in combination:
            params.update(part)
        for name, value in spec.defaults.items():
            params.setdefault(name, value)
        text = canonical_json(params)
        if text in positions:
            raise _duplicate_error(spec, positions[text], len(expanded))
        positions[text] = len(expanded)
        expanded.append(params)
    return expanded


@dataclass(frozen=True)
class RepeatedEntry:
    """A grid key or paired group that lists the same value (row) twice: two identical tasks."""

    where: str
    first: int
    second: int
    entry: Any

    def error(self, *, file: Any = None, key: str | None = None, line: int | None = None) -> ConfigError:
        return ConfigError(
            f"{self.where} has the same entry {canonical_json(self.entry)} twice "
            f"(positions {self.first + 1} and {self.second + 1}), so two tasks would have identical parameters",
            file=file,
            key=key,
            line=line,
            hint="remove the repeated entry: every task of a sweep must differ",
        )


def find_repeated_entry(spec: SweepSpec) -> tuple[str, RepeatedEntry] | None:
    """The first grid key or paired group (by name) holding a repeated entry, if any."""
    for name, values in spec.grid.items():
        repeat = _first_repeat(values, f"grid key '{name}'")
        if repeat:
            return name, repeat
    for group in spec.paired:
        repeat = _first_repeat(_group_rows(group.params), f"paired group '{group.name}'")
        if repeat:
            return group.name, repeat
    return None


def _first_repeat(entries: list[Any], where: str) -> RepeatedEntry | None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        text = canonical_json(entry)
        if text in seen:
            return RepeatedEntry(where, seen[text], index, entry)
        seen[text] = index
    return None


def _group_rows(params: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(params)
    return [dict(zip(names, row, strict=True)) for row in zip(*params.values(), strict=True)]


def _group_size(params: dict[str, list[Any]]) -> int:
    return min((len(values) for values in params.values()), default=0)


def _duplicate_error(spec: SweepSpec, first: int, second: int) -> ConfigError:
    found = find_repeated_entry(spec)
    if found:
        return found[1].error()
    swept = [list(spec.grid)] + [list(group.params) for group in spec.paired]
    shared = sorted({name for names in swept for name in names if sum(name in other for other in swept) > 1})
    return ConfigError(
        f"parameter sets {first + 1} and {second + 1} are identical: "
        f"{', '.join(shared) or 'some keys'} are swept in more than one place",
        hint="sweep each parameter in one place only (the grid or one paired group)",
    )
