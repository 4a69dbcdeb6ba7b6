"""Expansion: order, counting, defaults, repeated entries, and the stable parameter hash."""

from __future__ import annotations

import pytest

from hsm_snake.config.sweep_file import PairedGroup, SweepSpec, parse_sweep
from hsm_snake.errors import ConfigError
from hsm_snake.sweep.expand import count, expand, param_hash


def spec_of(data: dict) -> SweepSpec:
    return parse_sweep(data)


def test_grid_crosses_in_file_order_with_the_last_key_fastest():
    spec = spec_of({"grid": {"lr": [0.1, 0.01], "model": {"depth": [2, 4]}, "seed": [1]}})
    assert expand(spec) == [
        {"lr": 0.1, "model.depth": 2, "seed": 1},
        {"lr": 0.1, "model.depth": 4, "seed": 1},
        {"lr": 0.01, "model.depth": 2, "seed": 1},
        {"lr": 0.01, "model.depth": 4, "seed": 1},
    ]


def test_paired_groups_zip_inside_and_cross_each_other_after_the_grid():
    spec = spec_of(
        {
            "grid": {"lr": [0.1, 0.01]},
            "paired": [
                {"size": {"model": {"depth": [2, 4]}, "model.width": [16, 64]}},
                {"data": {"name": ["mnist", "cifar"], "channels": [1, 3]}},
            ],
        }
    )
    assert [list(p.values()) for p in expand(spec)] == [
        [0.1, 2, 16, "mnist", 1],
        [0.1, 2, 16, "cifar", 3],
        [0.1, 4, 64, "mnist", 1],
        [0.1, 4, 64, "cifar", 3],
        [0.01, 2, 16, "mnist", 1],
        [0.01, 2, 16, "cifar", 3],
        [0.01, 4, 64, "mnist", 1],
        [0.01, 4, 64, "cifar", 3],
    ]
    # The group name is not part of the parameter names (as in v1).
    assert list(expand(spec)[0]) == ["lr", "model.depth", "model.width", "name", "channels"]


def test_a_value_that_is_a_list_is_one_value():
    spec = spec_of({"grid": {"layers": [[64, 128], [256]], "act": ["relu"]}})
    assert expand(spec) == [{"layers": [64, 128], "act": "relu"}, {"layers": [256], "act": "relu"}]


def test_paired_only_sweep():
    spec = spec_of({"paired": [{"g": {"a": [1, 2, 3], "b": ["x", "y", "z"]}}]})
    assert expand(spec) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "z"}]


def test_defaults_fill_in_under_swept_values_and_come_last():
    spec = spec_of({"grid": {"lr": [0.1, 0.2]}, "defaults": {"batch_size": 32, "lr": 0.5, "model": {"depth": 3}}})
    assert expand(spec) == [
        {"lr": 0.1, "batch_size": 32, "model.depth": 3},
        {"lr": 0.2, "batch_size": 32, "model.depth": 3},
    ]


def test_hydra_defaults_list_is_not_passed_like_in_v1():
    spec = spec_of({"defaults": ["override hydra/launcher: basic"], "grid": {"lr": [0.1]}})
    assert spec.defaults == {}
    assert expand(spec) == [{"lr": 0.1}]


@pytest.mark.parametrize(
    "data",
    [
        {"grid": {"a": [1, 2, 3]}},
        {"grid": {"a": [1, 2], "b": {"c": [1, 2, 3], "d": [[1], [2]]}}},
        {"paired": [{"g": {"x": [1, 2]}}, {"h": {"y": [1, 2, 3], "z": [4, 5, 6]}}]},
        {"grid": {"a": [1, 2]}, "paired": [{"g": {"x": [1, 2, 3, 4]}}], "defaults": {"k": 1}},
        {"defaults": {"only": "defaults"}},
    ],
)
def test_count_matches_expand(data):
    spec = spec_of(data)
    assert count(spec) == len(expand(spec))


def test_expansion_is_deterministic():
    data = {"grid": {"b": [3, 1, 2], "a": ["z", "y"]}, "paired": [{"g": {"x": [1, 2]}}]}
    assert expand(spec_of(data)) == expand(spec_of(data))


def test_param_hash_is_stable_and_ignores_key_order():
    assert param_hash({"lr": 0.01, "model.depth": 2}) == "ad998fd0a201e311"
    assert param_hash({"model.depth": 2, "lr": 0.01}) == "ad998fd0a201e311"
    assert param_hash({"name": "café", "layers": [64, 128]}) == "970ebad68c27300a"
    assert len(param_hash({})) == 16


def test_param_hash_tells_types_apart():
    hashes = {param_hash({"x": value}) for value in (1, 1.0, True, "1", [1], None)}
    assert len(hashes) == 6


def test_every_expanded_parameter_set_has_a_distinct_hash():
    spec = spec_of({"grid": {"a": [1, 2, 3], "b": [[1, 2], [2, 1]]}, "paired": [{"g": {"c": [0, 1]}}]})
    hashes = [param_hash(p) for p in expand(spec)]
    assert len(set(hashes)) == len(hashes) == 12


def test_repeated_grid_value_is_rejected_naming_the_key():
    spec = SweepSpec(grid={"lr": [0.1, 0.2, 0.1]})
    with pytest.raises(ConfigError) as caught:
        expand(spec)
    message = str(caught.value)
    assert "grid key 'lr'" in message and "positions 1 and 3" in message


def test_repeated_paired_row_is_rejected_naming_the_group():
    spec = SweepSpec(paired=[PairedGroup("size", {"w": [1, 2, 1], "h": [5, 6, 5]})])
    with pytest.raises(ConfigError, match="paired group 'size'"):
        expand(spec)


def test_a_key_swept_in_two_places_of_a_hand_made_spec_is_named():
    spec = SweepSpec(grid={"lr": [0.1, 0.2]}, paired=[PairedGroup("g", {"lr": [0.1, 0.2]})])
    with pytest.raises(ConfigError, match="lr are swept in more than one place"):
        expand(spec)
