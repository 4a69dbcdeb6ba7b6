"""The JSON Schemas of the config files: loading, validation with readable errors, defaults.

The schemas in ``workflow/schemas/`` are the single source of config keys. A validation error is
turned into one ConfigError that names the key path and its line and says how to fix it, so no
jsonschema traceback reaches a user.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterable
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from hsm_snake.config.yamlsource import key_path, line_of
from hsm_snake.errors import ConfigError
from hsm_snake.package_data import schema_dir

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing (null)",
}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The schema ``<name>.schema.json`` of the packaged workflow."""
    return json.loads((schema_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``{"$ref": "#/$defs/name"}`` (the only kind these schemas use)."""
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def did_you_mean(word: Any, options: Iterable[str]) -> str | None:
    """The option closest to ``word``, if one is close enough to be a likely typo.

    Swapped letters are the commonest slip and difflib scores them like any two edits
    ('npcus' is as close to 'ngpus' as to 'ncpus'), so an option with exactly the same
    letters wins first.
    """
    options = list(options)
    same_letters = [option for option in options if sorted(option) == sorted(str(word))]
    if same_letters:
        return same_letters[0]
    matches = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def describe_value(value: Any) -> str:
    """How a value reads in an error message: ``the text 'four'``, ``a list``, ``3.5``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def flow_yaml(value: Any) -> str:
    """A value in YAML flow style, as a user would type it after ``key:``."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000)
    return text.strip().removesuffix("...").strip()


def validate(
    data: Any,
    schema_name: str,
    *,
    file: Any = None,
    lines: dict[str, int] | None = None,
    format_checker: FormatChecker | None = None,
) -> None:
    """Raise a ConfigError for the first (in file order) violation of the schema, if any."""
    root = load_schema(schema_name)
    validator = Draft202012Validator(root, format_checker=format_checker)
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    first = min(errors, key=lambda e: (line_of(lines, _error_parts(e)) or 0, -len(e.absolute_path)))
    raise _to_config_error(first, root, file, lines)


def apply_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """A copy of ``instance`` with every missing key that has a schema ``default`` filled in.

    A section is only created where the section itself has a default, so ``wandb:`` stays absent
    unless the user wrote it while ``task:`` always exists.
    """
    schema = resolve(schema, root)
    if not isinstance(instance, dict):
        return instance
    result = dict(instance)
    properties = schema.get("properties", {})
    for name, sub in properties.items():
        sub = resolve(sub, root)
        if name not in result and "default" in sub:
            result[name] = copy.deepcopy(sub["default"])
        if name in result:
            result[name] = apply_defaults(result[name], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name in result:
            if name not in properties:
                result[name] = apply_defaults(result[name], extra, root)
    return result


def _error_parts(error: ValidationError) -> list[str | int]:
    """The key path of an error; for an unknown key, the path of that key."""
    parts = list(error.absolute_path)
    if "propertyNames" in error.relative_schema_path:  # the path of the mapping; add the bad name
        parts.append(error.instance)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        parts += [key for key in error.instance if key not in known][:1]
    return parts


def _known_keys(schema: dict[str, Any], root: dict[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    return [name for name, sub in properties.items() if not resolve(sub, root).get("deprecated")]


def _to_config_error(
    error: ValidationError, root: dict[str, Any], file: Any, lines: dict[str, int] | None
) -> ConfigError:
    parts = _error_parts(error)
    key = key_path(parts) or None
    line = line_of(lines, parts)
    schema = error.schema if isinstance(error.schema, dict) else {}
    example = _example_hint(parts, schema, root) or schema.get("description")
    kind, expected, instance = error.validator, error.validator_value, error.instance

    if kind == "additionalProperties":
        unknown = parts[-1]
        known = _known_keys(schema, root)
        guess = did_you_mean(unknown, known)
        hint = f"did you mean '{guess}'? " if guess else ""
        if len(parts) > 1 and unknown in root.get("properties", {}):
            hint += f"'{unknown}' belongs at the top level of the file. "
        hint += "Keys allowed here: " + ", ".join(known)
        return ConfigError(f"unknown key '{unknown}'", file=file, key=key, line=line, hint=hint)
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        if "string" in types and isinstance(instance, (int, float, bool)) and "examples" not in schema:
            example = f"quote it to make it text: {_as_entry(parts, json.dumps(flow_yaml(instance)))}"
        return ConfigError(
            f"expected {wanted}, got {describe_value(instance)}", file=file, key=key, line=line, hint=example
        )
    if kind == "enum":
        choices = ", ".join(str(choice) for choice in expected)
        guess = did_you_mean(instance, [str(c) for c in expected]) if isinstance(instance, str) else None
        hint = f"did you mean '{guess}'?" if guess else example
        return ConfigError(
            f"expected one of {choices}; got {describe_value(instance)}", file=file, key=key, line=line, hint=hint
        )
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = {
            "minimum": "at least",
            "exclusiveMinimum": "more than",
            "maximum": "at most",
            "exclusiveMaximum": "less than",
        }[kind]
        return ConfigError(f"must be {bound} {expected}, got {instance}", file=file, key=key, line=line, hint=example)
    if kind in ("minItems", "minLength", "minProperties"):
        return ConfigError("must not be empty", file=file, key=key, line=line, hint=example)
    if kind == "format" and isinstance(error.cause, ConfigError):
        return ConfigError(error.cause.message, file=file, key=key, line=line, hint=error.cause.hint)
    return ConfigError(error.message, file=file, key=key, line=line, hint=example)


def _example_hint(parts: list[str | int], schema: dict[str, Any], root: dict[str, Any]) -> str | None:
    example = _example_of(schema, root)
    return None if example is None else f"for example: {_as_entry(parts, flow_yaml(example))}"


def _example_of(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """The schema's first example, or for a section one made of its first key that has one."""
    if schema.get("examples"):
        return schema["examples"][0]
    for name, sub in schema.get("properties", {}).items():
        sub = resolve(sub, root)
        if sub.get("examples") and not sub.get("deprecated"):
            return {name: sub["examples"][0]}
    return None


def _as_entry(parts: list[str | int], shown: str) -> str:
    """``shown`` as it is written at the end of ``parts``: after ``key:`` or as a list item."""
    if parts and isinstance(parts[-1], str):
        return f"{parts[-1]}: {shown}"
    return f"- {shown}" if parts else shown
