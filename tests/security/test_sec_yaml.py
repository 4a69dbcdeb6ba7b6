"""Hostile YAML: alias bombs and recursive aliases fail fast with a located error."""

from __future__ import annotations

import pytest


def anchors(levels: int, width: int = 9, indent: str = "  ") -> str:
    """A 'billion laughs' block: each anchor is a list of ``width`` uses of the one before."""
    lines = [f"{indent}a0: &a0 [" + ", ".join(f'"v{i}"' for i in range(width)) + "]"]
    lines += [f"{indent}a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def mapping_anchors(levels: int) -> str:
    lines = ["  m0: &m0 {k0: 1, k1: 2, k2: 3, k3: 4, k4: 5, k5: 6, k6: 7, k7: 8, k8: 9}"]
    for i in range(1, levels + 1):
        lines.append(f"  m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(9)) + "}")
    return "\n".join(lines) + "\n"


BOMBS = {
    "sweep_lists_7_levels": ("sweep.yaml", "grid:\n" + anchors(7), 8),
    "sweep_lists_9_levels": ("sweep.yaml", "grid:\n" + anchors(9), 8),
    "sweep_mappings_8_levels": ("sweep.yaml", "grid:\n" + mapping_anchors(8), 7),
    "project_env_8_levels": ("hsm.yaml", "paths: {train_script: echo.py}\nx-anchors:\n" + anchors(8), 9),
}


@pytest.mark.parametrize("name", BOMBS)
def test_an_alias_bomb_is_refused_at_its_line_before_it_is_expanded(project, name):
    file, text, line = BOMBS[name]
    assert len(text) < 1100  # about 1 KB
    if file != "sweep.yaml":
        project.write_sweep({"grid": {"x": [1]}})
    (project.root / file).write_text(text)
    result = project.cli("validate", "sweep.yaml", expect=2)
    assert f"{file}:{line}: expands to more than" in result.output
    assert "Traceback" not in result.output


def test_a_recursive_alias_is_refused_at_its_line(project):
    (project.root / "sweep.yaml").write_text("grid:\n  x: &loop\n    - 1\n    - *loop\n")
    result = project.cli("validate", "sweep.yaml", expect=2)
    assert "sweep.yaml:2" in result.output and "recursive" in result.output


def test_aliases_within_the_budget_keep_working_with_their_lines(project):
    (project.root / "sweep.yaml").write_text("grid:\n  x: &base [1, 2]\n  y: *base\n  z: [oops, oops]\n")
    result = project.cli("validate", "sweep.yaml", expect=2)
    assert "sweep.yaml:4" in result.output and "twice" in result.output
