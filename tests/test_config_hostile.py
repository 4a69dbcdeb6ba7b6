"""A schema-driven table of hostile project configs: every misspelt key gets "did you mean", every
wrong type names its key; all through the real CLI (exit 2, a message, never a traceback)."""

from __future__ import annotations

import json

import pytest
import yaml

from hsm_snake.package_data import schema_dir

SCHEMA = json.loads((schema_dir() / "project.schema.json").read_text())
SECTIONS = ("paths", "task", "local", "slurm", "pbs", "distributed", "wandb", "retry")


def _live(properties: dict) -> list[tuple[str, dict]]:
    """Current keys only: v1 keys that are renamed, ignored or refused are not suggested."""
    return [
        (name, spec)
        for name, spec in properties.items()
        if not spec.get("deprecated") and "$ref" not in spec and not any(k.startswith("x-v1") for k in spec)
    ]


def typo(name: str) -> str:
    """A plausible slip: two neighbouring letters swapped (or one doubled for short names)."""
    if len(name) < 4:
        return name + name[-1]
    middle = len(name) // 2
    return name[: middle - 1] + name[middle] + name[middle - 1] + name[middle + 1 :]


MISSPELT = [
    (f"{section}.{name}", {section: {typo(name): None}}, f"did you mean '{name}'")
    for section in SECTIONS
    for name, _ in _live(SCHEMA["properties"][section].get("properties", {}))
    if typo(name) != name
]
WRONG_TYPE = [
    (
        f"{section}.{name}",
        {section: {name: "lots" if spec.get("type") in ("integer", "number") else {"x": 1}}},
        f"{section}.{name}",
    )
    for section in SECTIONS
    for name, spec in _live(SCHEMA["properties"][section].get("properties", {}))
    if spec.get("type") in ("integer", "number", "string", "boolean")
]
A_LIST_FOR_A_SCALAR = [
    (f"{section}.{name}[list]", {section: {name: [1, 2]}}, f"{section}.{name}")
    for section in SECTIONS
    for name, spec in _live(SCHEMA["properties"][section].get("properties", {}))
    if spec.get("type") in ("integer", "number", "string", "boolean")
]
SECTION_NOT_A_MAPPING = [(section, {section: [1, 2]}, section) for section in SECTIONS]
TOP_LEVEL_MISSPELT = [
    (name, {typo(name): {}}, f"did you mean '{name}'")
    for name, _ in _live(SCHEMA["properties"])
    if typo(name) != name and name not in SECTIONS
]
CASES = MISSPELT + WRONG_TYPE + A_LIST_FOR_A_SCALAR + SECTION_NOT_A_MAPPING + TOP_LEVEL_MISSPELT


def test_the_table_is_large():
    assert len(CASES) >= 100, len(CASES)


@pytest.mark.parametrize("where, config, says", CASES, ids=[c[0] + "/" + str(i) for i, c in enumerate(CASES)])
def test_hostile_project_config_is_a_clear_error(project, where, config, says):
    (project.root / "hsm.yaml").write_text(yaml.safe_dump(config))
    sweep = project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("validate", str(sweep), expect=2)
    assert "Traceback" not in result.output
    assert says in result.output, result.output
    assert "hsm.yaml" in result.output and "hint:" in result.output
