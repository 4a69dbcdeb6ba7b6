"""The keys a user's app takes, for the sweep.yaml ``hsm-snake init`` writes.

A Hydra app is asked itself: ``--cfg job`` prints its composed config (file configs and
ConfigStore structured configs alike) and ``--help`` with ``hydra.help.template`` set to
``$APP_CONFIG_GROUPS`` lists its config groups; neither runs the app's task function nor writes
anything. An argparse script's options and defaults are read from its source (appscan.py).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hsm_snake.config import appscan

ASK_TIMEOUT_S = 60


@dataclass
class AppKeys:
    """Swept-key candidates of an app, each with the app's default value."""

    found_by: str
    """How they were found, for the comment in sweep.yaml."""
    groups: dict[str, list[str]] = field(default_factory=dict)
    """Hydra config group -> its options."""
    values: dict[str, Any] = field(default_factory=dict)
    """Dotted key -> default value (leaves of the config, or argparse options)."""
    types: dict[str, str] = field(default_factory=dict)
    """argparse's ``type=`` of an option (int, float, str, …) where it names one."""
    flags: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    problem: str | None = None
    """Why the keys could not be read (the app failed to start, …)."""


def app_keys(python: list[str], script: Path, kind: str | None, cwd: Path) -> AppKeys:
    """What ``script`` (of ``kind``, see appscan) takes, read with ``python`` in ``cwd``."""
    if kind == appscan.HYDRA:
        return _hydra_keys(python, script, cwd)
    if kind == appscan.ARGPARSE:
        options = appscan.argparse_options(script)
        return AppKeys(
            found_by=f"the add_argument calls of {script.name}",
            values={o.key: o.default for o in options},
            types={o.key: o.type_name for o in options if o.type_name},
            flags=[o.key for o in options if o.flag],
            required=[o.key for o in options if o.required],
        )
    return AppKeys(found_by=f"{script.name} (neither Hydra nor argparse: its keys are unknown)")


def _hydra_keys(python: list[str], script: Path, cwd: Path) -> AppKeys:
    shown = f"{script.name} --cfg job"
    keys = AppKeys(found_by=f"the app's composed config (`{shown}`)")
    config, problem = _ask(python, script, cwd, ["--cfg", "job"])
    if problem is not None:
        keys.problem = f"`{shown}` failed: {problem}"
        return keys
    try:
        tree = yaml.safe_load(config) or {}
    except yaml.YAMLError as error:
        keys.problem = f"`{shown}` printed no YAML: {error}"
        return keys
    groups, _ = _ask(python, script, cwd, ["--help", "hydra.help.template=$APP_CONFIG_GROUPS"])
    for line in groups.splitlines():
        name, sep, options = line.partition(": ")
        if sep and name and " " not in name:
            keys.groups[name] = [option.strip() for option in options.split(",") if option.strip()]
    group_roots = {name.replace("/", ".") for name in keys.groups}
    for key, value in _leaves(tree):
        # A group's own keys change with the option chosen: the group is swept, not them.
        if not any(key == root or key.startswith(root + ".") for root in group_roots):
            keys.values[key] = value
    return keys


def run_app(
    argv: list[str], *, cwd: Path, timeout_s: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess | str:
    """The user's app run with ``argv``, no input, its output captured as text: what it did, or
    why it could not run (not found, not done within ``timeout_s``)."""
    try:
        return subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)


def _ask(python: list[str], script: Path, cwd: Path, args: list[str]) -> tuple[str, str | None]:
    """Run the app with ``args``: (its stdout, None) or ("", why it failed)."""
    done = run_app([*python, str(script), *args], cwd=cwd, timeout_s=ASK_TIMEOUT_S)
    if isinstance(done, str):
        return "", done
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()][-1:]
        return "", last[0] if last else f"exit status {done.returncode}"
    return done.stdout, None


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, dict) and tree:
        return [pair for key, value in tree.items() for pair in _leaves(value, f"{prefix}{key}.")]
    return [(prefix[:-1], tree)] if prefix else []
