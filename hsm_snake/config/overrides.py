"""Per-run settings from the command line: ``--set KEY=VALUE`` (``KEY`` a dotted hsm.yaml key).

They are what v1 took as ``--walltime``, ``--gpus``, ``--resources``, ``--group`` … on the
command line. A value is read as YAML (``[0, 1]`` is a list, ``4`` a number, ``02:00:00`` stays
text); the keys and values are checked against the project schema on their own, so a typo is
named as the ``--set`` item it came from, and then laid over the project file. The sweep records
them next to the file's settings (project_config.yaml ``overrides``), so ``complete`` keeps them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

import yaml

from hsm_snake.config.schema import validate
from hsm_snake.errors import ConfigError

SOURCE = "--set"


def _value(text: str) -> Any:
    # "02:00:00" is sexagesimal 7200 to YAML 1.1 and "1e3" a string; a walltime or memory stays the user's text.
    if text.count(":") >= 1 and not text.lstrip().startswith(("[", "{")):
        return text
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


_KEY = re.compile(r'(?:"[^"]+"|[^".=]+)(?:\.(?:"[^"]+"|[^".=]+))*')
_PART = re.compile(r'"([^"]+)"|([^".=]+)')


def _split_item(item: str) -> tuple[list[str], str] | None:
    """``KEY=VALUE`` → (key parts, value text); a part in double quotes may hold dots (a host alias)."""
    key = _KEY.match(item)
    if not key or item[key.end() : key.end() + 1] != "=":
        return None
    parts = [quoted or plain.strip() for quoted, plain in _PART.findall(key.group())]
    return (parts, item[key.end() + 1 :]) if all(parts) else None


def parse(items: Iterable[str]) -> dict[str, Any]:
    """``["slurm.walltime=02:00:00", "local.visible_gpus=[0,1]"]`` → a nested mapping (later items win)."""
    result: dict[str, Any] = {}
    for item in items:
        split = _split_item(item)
        if split is None:
            raise ConfigError(
                f"{item!r} is not KEY=VALUE",
                key=SOURCE,
                hint="a dotted hsm.yaml key and its value, e.g. --set slurm.walltime=02:00:00 "
                '--set local.max_parallel=4 (quote a part with dots: distributed.remotes."gpu1.lab".gpus=1)',
            )
        parts, text = split
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = _value(text)
    if result:
        validate(result, "project", file=SOURCE)
    return result


def merge(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with ``overrides`` laid over it, mapping by mapping (lists and values replace)."""
    merged = copy.deepcopy(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def flatten(overrides: dict[str, Any], prefix: str = "") -> list[str]:
    """The ``KEY=VALUE`` items of a nested mapping (for messages and the sweep log)."""
    items = []
    for key, value in overrides.items():
        key = f'"{key}"' if "." in key else key
        if isinstance(value, dict) and value:
            items += flatten(value, f"{prefix}{key}.")
        else:
            items.append(
                f"{prefix}{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
            )
    return items
