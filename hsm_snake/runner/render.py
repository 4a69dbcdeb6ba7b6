"""Render a task's parameters as argv elements for the user's training script.

Runs on compute nodes inside the task runner, so it imports only the standard library.

Styles:

``hydra`` (default)
    One ``key=value`` element per parameter in Hydra's override grammar (hydra-core
    1.3), written so that the value the app reads back from its config is exactly the
    original (same type, same content). ``+`` is never added: the user's config
    defines the keys.
``argparse``
    ``--key value`` (two elements); ``--key=value`` (one element) when the value
    starts with ``-``; a dict gives ``--key`` and its JSON text. Lists follow
    ``lists``: ``nargs`` gives ``--key`` then one element per item (``nargs='+'``
    or ``'*'``), ``append`` repeats the option per item, ``--key a --key b``
    (``action="append"``); list items render as scalar values do (booleans as
    ``true``/``false``). Booleans follow ``bools``: ``flag`` passes ``true`` as a
    bare ``--key`` and leaves ``false`` out (``action="store_true"``), ``value``
    passes ``--key true``/``--key false``.
``raw``
    The predecessor's naive contract: ``key=str(value)``, unquoted.
"""

from __future__ import annotations

import functools
import json
import re
import shlex

from hsm_snake.errors import InvalidValueError
from hsm_snake.runner import conda

STYLES = ("hydra", "argparse", "raw")
BOOL_STYLES = ("flag", "value")
LIST_STYLES = ("nargs", "append")

# --- Hydra: keys --------------------------------------------------------------------

_KEY_SPECIAL = r"[A-Za-z_$][A-Za-z0-9_$-]*"
_PATH_PART = rf"(?:{_KEY_SPECIAL}|0|[1-9](?:_?[0-9])*)"
_PACKAGE = rf"(?:{_KEY_SPECIAL}|{_PATH_PART}(?:\.{_PATH_PART})+)"
_GROUP = r"[A-Za-z_][A-Za-z0-9_-]*(?:/[A-Za-z_][A-Za-z0-9_-]*)+"
# The key side of Hydra's override grammar: `model.lr`, `db@pkg`, `hydra/launcher`,
# optionally prefixed by `+`/`++` so callers can add keys their config lacks.
_HYDRA_KEY = re.compile(rf"\+{{0,2}}(?:{_PACKAGE}|{_GROUP})(?:@{_PACKAGE})?")

# --- Hydra: values ------------------------------------------------------------------

# Strings made only of these characters are lexed by Hydra as ID/INT/FLOAT/BOOL/NULL
# tokens plus the harmless unquoted characters `/ - + . @ %`, and concatenated back
# verbatim. Hydra also accepts `$ * ? | \ :` and spaces unquoted, but those read as
# interpolations, escapes, globs or shell syntax to a human, so they get quoted.
_BARE_CHARS = re.compile(r"[A-Za-z0-9_./+@%-]+")
# A string that is exactly one INT/FLOAT/BOOL/NULL token would come back as a number,
# bool or None (same rules as Hydra's lexer, case-insensitive keywords).
_INT_U = r"(?:0|[1-9](?:_?[0-9])*)"
_POINT = rf"(?:{_INT_U}\.|{_INT_U}?\.[0-9](?:_?[0-9])*)"
_NOT_A_STRING = re.compile(
    rf"[+-]?(?:{_INT_U}|{_POINT}|(?:{_INT_U}|{_POINT})[eE][+-]?[0-9](?:_?[0-9])*|inf|nan)"
    r"|true|false|null",
    re.IGNORECASE,
)
# Characters Hydra un-escapes with a backslash inside an unquoted dict key (Hydra's
# ESC token); dict keys cannot be quoted.
_KEY_ESCAPED = "\\()[]{}:=, \t"
_KEY_PLAIN = re.compile(r"[A-Za-z0-9_/+.$%*@?|-]")
# A run of backslashes followed by a quote, or ending the string: Hydra reads 2k+1
# backslashes before a quote as k backslashes and a quote, and 2k before the
# closing quote as k backslashes. Other backslashes are kept as they are.
_BACKSLASHES_BEFORE_QUOTE = re.compile(r"(\\*)('|\Z)")
# OmegaConf resolves `${...}` even in quoted strings; `\${` is its escape for a
# literal `${`, and backslashes already before it must then be doubled.
_BACKSLASHES_BEFORE_INTERPOLATION = re.compile(r"(\\*)\$\{")
# OmegaConf stores this string as "missing mandatory value"; it has no escape.
_OMEGACONF_MISSING = "???"


def render_overrides(
    params: dict[str, object], style: str = "hydra", bools: str = "flag", lists: str = "nargs"
) -> list[str]:
    """Return the argv elements passing ``params`` (dotted key -> value) in ``style``."""
    _check_style(style)
    argv: list[str] = []
    for key, value in params.items():
        argv.extend(render_override(key, value, style, bools, lists))
    return argv


def render_override(
    key: str, value: object, style: str = "hydra", bools: str = "flag", lists: str = "nargs"
) -> list[str]:
    """Return the argv elements passing one ``key``/``value`` pair in ``style`` (``bools`` and
    ``lists``: argparse only)."""
    _check_style(style)
    _check_key(key, style)
    _check_value(key, value)
    if style == "hydra":
        return [f"{key}={_hydra_value(key, value)}"]
    if style == "argparse":
        if isinstance(value, bool) and bools == "flag":
            return [f"--{key}"] if value else []
        return _argparse(key, value, lists)
    return [f"{key}={value}"]


def display_command(argv: list[str]) -> str:
    """Return ``argv`` as a shell-quoted line, for display only (never executed); a conda_env's
    finder (see :mod:`hsm_snake.runner.conda`) shows as ``conda run -n ENV``."""
    return shlex.join(conda.readable(argv))


# --- validation ---------------------------------------------------------------------


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise InvalidValueError(f"unknown parameter style {style!r}: expected one of {', '.join(STYLES)}")


def _check_list_style(lists: str) -> None:
    if lists not in LIST_STYLES:
        raise InvalidValueError(f"unknown list style {lists!r}: expected one of {', '.join(LIST_STYLES)}")


@functools.lru_cache(maxsize=4096)
def _check_key(key: object, style: str) -> None:
    # Cached: a sweep has a handful of keys and checks them once per task.
    if not isinstance(key, str) or not key:
        raise InvalidValueError(f"parameter key must be a non-empty string, got {key!r}")
    if style == "hydra":
        if not _HYDRA_KEY.fullmatch(key):
            raise InvalidValueError(
                f"parameter key {key!r} is not a valid Hydra override key (expected a dotted path such as 'model.lr')"
            )
    elif "=" in key or key.startswith("-") or any(c.isspace() for c in key):
        raise InvalidValueError(f"parameter key {key!r} must not contain '=' or whitespace nor start with '-'")


def _check_value(key: str, value: object) -> None:
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(key, item)
        return
    if isinstance(value, dict):
        for item in value.values():
            _check_value(key, item)
        return
    raise InvalidValueError(
        f"parameter {key!r}: cannot render a value of type {type(value).__name__} "
        f"({value!r}); use str, int, float, bool, None, list or dict"
    )


def _scalar_text(value: object) -> str:
    """Text of a number or bool, shared by the hydra and argparse styles."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        # repr round-trips exactly and gives `inf`, `-inf`, `nan` for the specials.
        return float.__repr__(value)
    raise InvalidValueError(f"not a number or bool: {value!r}")


# --- hydra --------------------------------------------------------------------------


def _hydra_value(key: str, value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _hydra_string(key, value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(key, item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{_hydra_dict_key(key, k)}:{_hydra_value(key, v)}" for k, v in value.items())
        return "{" + ",".join(pairs) + "}"
    return _scalar_text(value)


def _hydra_string(key: str, text: str) -> str:
    text = str.__str__(text)
    if text == _OMEGACONF_MISSING:
        raise InvalidValueError(
            f"parameter {key!r}: the string '???' cannot be passed through Hydra, "
            "OmegaConf reads it as a missing mandatory value"
        )
    if _BARE_CHARS.fullmatch(text) and not _NOT_A_STRING.fullmatch(text):
        return text
    text = _BACKSLASHES_BEFORE_INTERPOLATION.sub(lambda m: "\\" * (2 * len(m[1]) + 1) + "${", text)
    quoted = _BACKSLASHES_BEFORE_QUOTE.sub(lambda m: "\\" * (2 * len(m[1]) + (1 if m[2] else 0)) + m[2], text)
    return f"'{quoted}'"


def _hydra_dict_key(key: str, name: object) -> str:
    if isinstance(name, int) and not isinstance(name, bool):
        return int.__repr__(name)
    if (
        isinstance(name, str)
        and name
        and not _NOT_A_STRING.fullmatch(name)
        and all(_KEY_PLAIN.fullmatch(c) or c in _KEY_ESCAPED for c in name)
    ):
        return "".join("\\" + c if c in _KEY_ESCAPED else c for c in name)
    raise InvalidValueError(
        f"parameter {key!r}: dict key {name!r} cannot be written in a Hydra override "
        "(Hydra dict keys are unquoted: use letters, digits and _-./+@%$*?| "
        "and not a number, true/false or null)"
    )


# --- argparse -----------------------------------------------------------------------

# Items argparse accepts after an option although they start with '-' (its
# `_negative_number_matcher`); anything else starting with '-' is taken for an option.
_ARGPARSE_NEGATIVE_NUMBER = re.compile(r"-\d+|-\d*\.\d+")


def _argparse(key: str, value: object, lists: str) -> list[str]:
    option = f"--{key}"
    if not isinstance(value, (list, tuple)):
        return _argparse_option(option, _argparse_text(key, value))
    _check_list_style(lists)
    items = [_argparse_text(key, item) for item in value]
    if lists == "append":
        return [element for item in items for element in _argparse_option(option, item)]
    for item in items:
        if item.startswith("-") and not _ARGPARSE_NEGATIVE_NUMBER.fullmatch(item):
            raise InvalidValueError(
                f"parameter {key!r}: list item {item!r} starts with '-', so argparse would read "
                "it as an option; use task.list_style: append (--key=item per item) or the hydra style"
            )
    return [option, *items]


def _argparse_option(option: str, text: str) -> list[str]:
    if text.startswith("-"):
        # `--key -x` makes argparse see two options; `--key=-x` is unambiguous.
        return [f"{option}={text}"]
    return [option, text]


def _argparse_text(key: str, value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (list, tuple, dict)):
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise InvalidValueError(f"parameter {key!r}: cannot write {value!r} as JSON: {error}") from None
    return _scalar_text(value)
