"""Read a user's Python script without running it: is it a Hydra app, an argparse script, an entry
point at all, and which options does its argparse parser declare.

Used by the argument conventions (what a task's argv looks like) and by ``hsm-snake init``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HYDRA = "hydra"
ARGPARSE = "argparse"

_HYDRA_MAIN = re.compile(r"\bhydra\.main\s*\(|^\s*from\s+hydra\s+import\s+[^\n]*\bmain\b", re.MULTILINE)
_ARGPARSE = re.compile(r"\bArgumentParser\s*\(")
_MAIN_GUARD = re.compile(r"^if\s+__name__\s*==\s*['\"]__main__['\"]\s*:", re.MULTILINE)
_CONFIG_STORE = re.compile(r"\bConfigStore\b")


@dataclass(frozen=True)
class ScriptInfo:
    """What a script's text says about how it takes arguments."""

    path: Path
    kind: str | None
    """``hydra``, ``argparse`` or None (neither: plain ``sys.argv``, key=value)."""
    entry_point: bool
    """It is meant to be run: hydra.main, an argparse parser or an ``if __name__ == "__main__"`` block."""
    structured_config: bool
    """A Hydra app that registers configs with ConfigStore (dataclasses, no config folder needed)."""

    @property
    def evidence(self) -> str:
        """Why it is of its kind, for messages."""
        if self.kind == HYDRA:
            return f"{self.path.name} calls hydra.main"
        if self.kind == ARGPARSE:
            return f"{self.path.name} builds an argparse.ArgumentParser"
        return f"{self.path.name} uses neither hydra.main nor argparse"


def read_script(path: Path) -> ScriptInfo | None:
    """What ``path`` is, or None when it cannot be read as text."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    kind = HYDRA if _HYDRA_MAIN.search(text) else ARGPARSE if _ARGPARSE.search(text) else None
    return ScriptInfo(
        path=path,
        kind=kind,
        entry_point=kind is not None or bool(_MAIN_GUARD.search(text)),
        structured_config=kind == HYDRA and bool(_CONFIG_STORE.search(text)),
    )


# Calls that save to the path they are given (torch/numpy/joblib save, matplotlib, pandas, HF).
_SAVERS = {"save", "savez", "savefig", "to_csv", "to_parquet", "to_json", "save_pretrained", "dump"}


def relative_writes(path: Path) -> list[str]:
    """File names a script writes relative to its working directory, where they are literal:
    ``open("model.pt", "w")``, ``torch.save(model, "model.pt")``, ``df.to_csv("out/x.csv")``."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        literals = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if name == "open" and literals:
            mode = (
                literals[1]
                if len(literals) > 1
                else _literal(next((k.value for k in node.keywords if k.arg == "mode"), None))
            )
            candidates = literals[:1] if isinstance(mode, str) and set(mode) & set("wax") else []
        elif name in _SAVERS:
            candidates = literals
        else:
            continue
        found += [text for text in candidates if _relative_file_name(text) and text not in found]
    return found


def _relative_file_name(text: str) -> bool:
    return bool(re.fullmatch(r"(\./)?\w[\w.-]*(/[\w.-]+)*\.\w+", text))


def hydra_config_path(path: Path) -> str | None:
    """The literal ``config_path=`` of a script's ``hydra.main`` call (relative to the script)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _names_hydra_main(node.func):
            for keyword in node.keywords:
                if keyword.arg == "config_path" and isinstance(_literal(keyword.value), str):
                    return _literal(keyword.value)
    return None


def _names_hydra_main(func: ast.AST) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "main" and isinstance(func.value, ast.Name) and func.value.id == "hydra"
    return isinstance(func, ast.Name) and func.id == "main"


@dataclass(frozen=True)
class Option:
    """One ``--option`` of an argparse parser, as the sweep file names it (without the dashes)."""

    key: str
    default: Any
    flag: bool
    """store_true / store_false: passed as a bare ``--key``."""
    type_name: str | None
    required: bool
    help: str | None


def argparse_options(path: Path) -> list[Option]:
    """The ``--options`` a script's ``add_argument`` calls declare, in order (literal defaults only;
    positional arguments and ``--help``-like actions are left out)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return []
    options = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "add_argument":
            continue
        names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        long_names = [name for name in names if name.startswith("--")]
        if not long_names:
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        action = _literal(keywords.get("action"))
        if action in ("help", "version", "count", "append_const", "store_const"):
            continue
        flag = action in ("store_true", "store_false")
        default = _literal(keywords.get("default"))
        if flag and "default" not in keywords:
            default = action == "store_false"
        type_node = keywords.get("type")
        options.append(
            Option(
                key=long_names[0][2:],
                default=default,
                flag=flag,
                type_name=type_node.id if isinstance(type_node, ast.Name) else None,
                required=_literal(keywords.get("required")) is True,
                help=_literal(keywords.get("help")) if isinstance(_literal(keywords.get("help")), str) else None,
            )
        )
    return options


def _literal(node: ast.AST | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
