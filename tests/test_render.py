"""hsm_snake.runner.render against the real parsers: a Hydra app, argparse, plain sys.argv."""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
import textwrap

import pytest

from hsm_snake.runner.render import display_command, render_override, render_overrides

# fmt: off
HOSTILE_STRINGS = [
    "resnet", "adam_w", "a-b", "path/to/x", "v1.2", "-x", "user@host",
    "two words", " padded ", "it's", 'say "hi"', "$HOME", "${HOME}", "a\\${HOME}",
    "`id`", "x;y", "a|b", "a && b", "a=b", "a,b", "a:b", "*.txt", "[1,2]", "{a:1}",
    "line\nbreak", "tab\there", "é", "中文", "🚀", "", "true", "False", "null",
    "1", "1.5", "nan", "inf", "1_000", "1e-05", "trailing\\", "\\", "\\'", "\\n",
    "quote'\\", "x\\'y",
]
HOSTILE_VALUES = [
    *HOSTILE_STRINGS,
    1e-05, 0.1, 1.0, -3.0, 1e20, float("inf"), float("-inf"), float("nan"),
    0, -7, 10**18, True, False, None,
    [64, 128], ["a b", "it's", "${HOME}", "", "null", "[1]"], [[1, [2.5]], []],
    {"a": 1, "b": "x y", "c": [None, True], "d": {"e": "${x}"}},
    {"a b": 1, "k:v": 2, "x\\": 3, 7: "seven"}, {}, [],
]
# fmt: on

HYDRA_APP = """
    import hydra
    from omegaconf import OmegaConf

    @hydra.main(version_base=None, config_path=None)
    def main(cfg):
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        # repr keeps the exact type: 1 vs 1.0 vs True vs '1', nan, key types.
        print({key: repr(value) for key, value in values.items()})

    main()
"""


def run(tmp_path, script: str, argv: list[str]) -> str:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(script))
    done = subprocess.run(
        [sys.executable, str(path), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_hydra_app_reads_back_every_value_exactly(tmp_path):
    params = {f"p{i}": value for i, value in enumerate(HOSTILE_VALUES)}
    params["model.opt.lr"] = 0.001
    # The app has no config, so keys must be added with `+`; render_overrides itself
    # never adds it because the user's config declares the keys.
    argv = ["+" + arg for arg in render_overrides(params)]
    argv += render_overrides(
        {
            "hydra.run.dir": str(tmp_path / "run"),
            "hydra.output_subdir": None,
            "hydra/job_logging": "disabled",
            "hydra/hydra_logging": "disabled",
        }
    )
    seen = ast.literal_eval(run(tmp_path, HYDRA_APP, argv).strip().splitlines()[-1])
    assert seen.keys() == {*(f"p{i}" for i in range(len(HOSTILE_VALUES))), "model"}
    for i, value in enumerate(HOSTILE_VALUES):
        assert seen[f"p{i}"] == repr(value), (value, render_override(f"p{i}", value))
    assert seen["model"] == repr({"opt": {"lr": 0.001}})


def test_hydra_parser_agrees_on_every_ascii_character():
    """Each printable character alone and inside a word goes through Hydra's own
    override parser and OmegaConf, the way Hydra's config loader applies them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parser = OverridesParser.create()
    chars = [chr(c) for c in range(32, 127)] + ["\n", "\t", "é"]
    for text in [s for c in chars for s in (c, f"a{c}b", f"{c}a", f"a{c}", c * 2)]:
        if text == "???":
            continue
        override = parser.parse_overrides(render_override("p", text))[0]
        cfg = OmegaConf.create({})
        OmegaConf.update(cfg, "p", override.value(), merge=True)
        assert cfg.p == text, render_override("p", text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("resnet", "k=resnet"),
        ("path/to/x", "k=path/to/x"),
        ("true", "k='true'"),
        ("1.5", "k='1.5'"),
        ("it's", "k='it\\'s'"),
        ("${HOME}", "k='\\${HOME}'"),
        ("a\\", "k='a\\\\'"),
        ("a\\b", "k='a\\b'"),
        ("", "k=''"),
        ("x;y", "k='x;y'"),
        (None, "k=null"),
        (True, "k=true"),
        (1e-05, "k=1e-05"),
        (float("nan"), "k=nan"),
        (10**18, "k=1000000000000000000"),
        ([64, 128], "k=[64,128]"),
        (["a b", [1]], "k=['a b',[1]]"),
        ({"a": 1, "b": "x"}, "k={a:1,b:x}"),
        ({"a b": "c:d"}, "k={a\\ b:'c:d'}"),
    ],
)
def test_hydra_renderings(value, expected):
    assert render_override("k", value) == [expected]


def test_argparse_and_raw_argv_arrive_unchanged(tmp_path):
    argv = render_overrides({"name": "it's $HOME", "n": 3, "flag": True, "off": False}, "argparse")
    argv += render_overrides({"flag": True, "off": False}, "argparse", bools="value")
    argv += render_overrides({"a": [64, 128], "b": True, "c": None, "d": "x y"}, "raw")
    assert argv == [
        "--name", "it's $HOME", "--n", "3", "--flag",
        "--flag", "true", "--off", "false",
        "a=[64, 128]", "b=True", "c=None", "d=x y",
    ]  # fmt: skip
    script = "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"
    assert json.loads(run(tmp_path, script, argv)) == argv


ARGPARSE_APP = """
    import argparse, json

    parser = argparse.ArgumentParser()
    parser.add_argument("--model.lr", type=float)
    parser.add_argument("--layers", type=int, nargs="+")
    parser.add_argument("--tags", nargs="+")
    parser.add_argument("--empty", nargs="*")
    parser.add_argument("--opt", type=json.loads)
    for name in ("name", "dash", "neg", "tiny", "none", "flag"):
        parser.add_argument("--" + name)
    print(repr(vars(parser.parse_args())))
"""


def test_argparse_script_parses_rendered_options(tmp_path):
    params = {
        "model.lr": 1e-05,
        "layers": [64, -128],
        "tags": ["a b", "", "${HOME}", 1.5, None, True, [1, 2]],
        "empty": [],
        "opt": {"a": [1, "é"], "b": None},
        "name": 'it\'s "x"\n',
        "dash": "-x",
        "neg": -7,
        "tiny": -1e-05,
        "none": None,
        "flag": False,
    }
    argv = render_overrides(params, "argparse", bools="value")
    assert argv[argv.index("--tags") :][:8] == [
        "--tags", "a b", "", "${HOME}", "1.5", "null", "true", "[1,2]",
    ]  # fmt: skip
    assert "--dash=-x" in argv and "--tiny=-1e-05" in argv
    seen = ast.literal_eval(run(tmp_path, ARGPARSE_APP, argv).strip())
    assert seen == {
        "model.lr": 1e-05,
        "layers": [64, -128],
        "tags": ["a b", "", "${HOME}", "1.5", "null", "true", "[1,2]"],
        "empty": [],
        "opt": {"a": [1, "é"], "b": None},
        "name": 'it\'s "x"\n',
        "dash": "-x",
        "neg": "-7",
        "tiny": "-1e-05",
        "none": "null",
        "flag": "false",
    }


ARGPARSE_APPEND_APP = """
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, action="append")
    parser.add_argument("--tags", action="append")
    parser.add_argument("--empty", action="append")
    print(repr(vars(parser.parse_args())))
"""


def test_argparse_append_repeats_the_option_per_item(tmp_path):
    tags = ["a b", "-x", "", "it's $HOME", "`id`", "é 🚀", 1.5, None, True, False, [1, 2]]
    params = {"layers": [64, -128], "tags": tags, "empty": []}
    argv = render_overrides(params, "argparse", lists="append")
    assert argv == [
        "--layers", "64", "--layers=-128",
        "--tags", "a b", "--tags=-x", "--tags", "", "--tags", "it's $HOME", "--tags", "`id`",
        "--tags", "é 🚀", "--tags", "1.5", "--tags", "null", "--tags", "true", "--tags", "false",
        "--tags", "[1,2]",
    ]  # fmt: skip
    seen = ast.literal_eval(run(tmp_path, ARGPARSE_APPEND_APP, argv).strip())
    assert seen == {
        "layers": [64, -128],
        "tags": ["a b", "-x", "", "it's $HOME", "`id`", "é 🚀", "1.5", "null", "true", "false", "[1,2]"],
        "empty": None,
    }


def test_nargs_is_the_default_list_style_and_bool_items_are_values():
    value = [True, False, 3]
    assert render_override("k", value, "argparse") == ["--k", "true", "false", "3"]
    assert render_override("k", value, "argparse", lists="nargs") == ["--k", "true", "false", "3"]
    assert render_override("k", [], "argparse") == ["--k"]
    # Scalars and other styles ignore the list style.
    assert render_override("k", "-x", "argparse", lists="append") == ["--k=-x"]
    assert render_override("k", [1, 2], "hydra", lists="append") == ["k=[1,2]"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: render_overrides({"a": 1}, "shell"), "unknown parameter style"),
        (
            lambda: render_override("a", object()),
            "cannot render a value of type object",
        ),
        (lambda: render_override("a", [1, {2}]), "type set"),
        (lambda: render_override("a", "???"), "missing mandatory"),
        (lambda: render_override("a", {"1": 2}), "dict key '1'"),
        (lambda: render_override("a", {"it's": 2}), "dict key"),
        (lambda: render_override("a b", 1), "not a valid Hydra override key"),
        (lambda: render_override("a=b", 1, "raw"), "must not contain '='"),
        (lambda: render_override("a", ["-x"], "argparse"), "starts with '-'.*list_style: append"),
        (lambda: render_override("a", [1], "argparse", lists="repeat"), "unknown list style 'repeat'"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_display_command_quotes_for_the_shell():
    argv = ["python", "train.py", *render_overrides({"name": "it's", "lr": 0.1})]
    line = display_command(argv)
    assert line.endswith(" lr=0.1")
    assert shlex.split(line) == argv
