"""Read a YAML config file together with the line of every key, reporting mistakes as ConfigError.

Numbers follow YAML 1.2 (as HPC Sweep Manager v1 did from 2026 on): ``1e-3`` is a float rather
than a string, ``010`` is ten rather than octal eight, and an unquoted ``12:00:00`` stays text
rather than becoming the base-60 integer 43200. Dates stay text too, so every value can be
written as JSON. Everything else (``yes``/``no`` booleans, ``~`` null) is PyYAML's safe schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hsm_snake.errors import ConfigError

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader (libyaml when available) with YAML 1.2 numbers and no timestamps."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag not in (_INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
# Ints before floats: a resolver list is tried in order and "10" matches both patterns.
ConfigLoader.add_implicit_resolver(_INT_TAG, re.compile(r"^[-+]?[0-9]+(?:_[0-9]+)*$"), list("-+0123456789"))
ConfigLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:[0-9]+(?:_[0-9]+)*\.[0-9_]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9]+(?:_[0-9]+)*[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
# The safe int constructor reads a leading 0 as octal and ':' as base 60; YAML 1.2 has neither.
ConfigLoader.add_constructor(_INT_TAG, lambda loader, node: int(loader.construct_scalar(node).replace("_", "")))


@dataclass(frozen=True)
class YamlDocument:
    """A parsed file: its data and the 1-based line of every key (see :func:`key_path`)."""

    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    path: Path | None = None


def key_path(parts: Iterable[Any]) -> str:
    """``("paired", 0, "size", "model.depth")`` → ``"paired[0].size.model.depth"``."""
    text = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def line_of(lines: dict[str, int] | None, parts: Iterable[Any]) -> int | None:
    """The line of the key at ``parts``, or of its nearest ancestor that has one."""
    if not lines:
        return None
    parts = list(parts)
    while parts:
        line = lines.get(key_path(parts))
        if line is not None:
            return line
        parts.pop()
    return None


def load_yaml_file(path: Path, *, missing_hint: str | None = None) -> YamlDocument:
    """Read and parse ``path``. Every problem, a missing file included, is a ConfigError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", file=path, hint=missing_hint) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a YAML file", file=path, hint=missing_hint) from None
    except OSError as error:
        raise ConfigError(f"cannot be read: {error.strerror}", file=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})",
            file=path,
            line=line,
            hint="save the file as UTF-8 (most editors offer it under 'encoding')",
        ) from None
    return parse_yaml_text(text, path)


def parse_yaml_text(text: str, path: Path | None = None) -> YamlDocument:
    """Parse one YAML document, rejecting duplicate keys (PyYAML would keep the last silently)."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        if node is not None:
            _check_size(node, path, {}, set())
            _index_node(loader, node, [], lines, path, set())
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, text, path) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"is not valid YAML: {error}", file=path) from None
    finally:
        loader.dispose()
    return YamlDocument(data, lines, path)


# Values a file may hold once every alias is expanded. Aliases share one node when parsed, but
# validation and sweep expansion walk the expanded tree: a 1 KB file of anchors nested in anchors
# ("billion laughs") expands to 10^9 values. A 10,000-task list of 20 values is 200,000.
MAX_EXPANDED_NODES = 1_000_000


def _check_size(node: yaml.Node, path: Path | None, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """The number of values under ``node`` with aliases expanded (each shared node counted once
    per use, computed once); ConfigError at the first node past MAX_EXPANDED_NODES."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if id(node) in open_nodes:
        raise ConfigError(
            "an alias refers to a node that contains it (a recursive structure)",
            file=path,
            line=node.start_mark.line + 1,
            hint="YAML anchors may only be reused outside their own definition",
        )
    size = 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        open_nodes.add(id(node))
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
        for child in children:
            size += _check_size(child, path, sizes, open_nodes)
            if size > MAX_EXPANDED_NODES:
                raise ConfigError(
                    f"expands to more than {MAX_EXPANDED_NODES:,} values through its aliases",
                    file=path,
                    line=node.start_mark.line + 1,
                    hint="anchors reused inside anchors multiply: write the values out, or use fewer levels",
                )
        open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


def _index_node(
    loader: ConfigLoader,
    node: yaml.Node,
    parts: list[Any],
    lines: dict[str, int],
    path: Path | None,
    indexed: set[int],
) -> None:
    # Keys under an alias are indexed where the anchor is (their own paths fall back to the
    # alias's line, see line_of): indexing every use again costs as much as the expansion.
    if id(node) in indexed:
        return
    indexed.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            # The constructed key (True for an unquoted `on:`), so paths match the loaded data.
            is_scalar = isinstance(key_node, yaml.ScalarNode)
            key = loader.construct_object(key_node) if is_scalar else f"<key on line {line}>"
            child = [*parts, key]
            identity = (key_node.tag, str(key_node.value))
            if identity in seen:
                raise ConfigError(
                    f"duplicate key '{key_node.value}': first defined on line {seen[identity]}, again on line {line}",
                    file=path,
                    key=key_path(child),
                    line=line,
                    hint="YAML keeps only one of them: delete or rename one of the two",
                )
            seen[identity] = line
            lines.setdefault(key_path(child), line)
            _index_node(loader, value_node, child, lines, path, indexed)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = [*parts, index]
            lines.setdefault(key_path(child), item.start_mark.line + 1)
            _index_node(loader, item, child, lines, path, indexed)


def _syntax_error(error: yaml.MarkedYAMLError, text: str, path: Path | None) -> ConfigError:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark else None
    problem = error.problem or "is not valid YAML"
    if error.context:
        problem = f"{problem} ({error.context})"
    if isinstance(error, yaml.constructor.ConstructorError):
        hint = (
            "a key must be plain text, not a list or mapping"
            if "unhashable" in problem
            else "config files hold plain values: remove the '!tag' or quote the value"
        )
        return ConfigError(problem, file=path, line=line, hint=hint)
    source_lines = text.splitlines()
    marked_lines = {m.line for m in (error.problem_mark, error.context_mark) if m is not None}
    if any(n < len(source_lines) and "\t" in _indentation(source_lines[n]) for n in marked_lines):
        hint = "YAML forbids tabs for indentation; use spaces"
    elif "flow" in problem:
        hint = "close every '[' with ']' and every '{' with '}', and separate items with ', '"
    elif "single document" in problem:
        hint = "a config file holds one YAML document: remove the extra '---' line"
    else:
        hint = "check the indentation and that every ':' after a key is followed by a space"
    return ConfigError(f"YAML syntax error: {problem}", file=path, line=line, hint=hint)


def _indentation(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]
