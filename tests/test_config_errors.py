"""Bad configs: each mistake is one ConfigError naming the file, key path and line, with a fix."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from hsm_snake.config.project import load_project
from hsm_snake.config.sweep_file import load_sweep, parse_sweep
from hsm_snake.errors import ConfigError


@dataclass(frozen=True)
class Bad:
    """A config file that must fail to load: the key, line and text its error must show."""

    id: str
    text: str | bytes
    key: str | None
    line: int | None
    says: tuple[str, ...]
    file: str = "sweep.yaml"


SWEEP_CASES = [
    Bad("empty file", "# only a comment\n", None, None, ("the file is empty", "grid: {lr:")),
    Bad("a list, not a mapping", "- lr\n- wd\n", None, 1, ("must be a mapping", "got a list", "start from: grid:")),
    Bad("unknown top-level key", "gird:\n  lr: [1, 2]\n", "gird", 1, ("unknown key 'gird'", "did you mean 'grid'?")),
    Bad(
        "scalar grid value",
        "grid:\n  lr: 0.01\n",
        "grid.lr",
        2,
        ("expected a list of values, got 0.01", "wrap it in a list: lr: [0.01]"),
    ),
    Bad(
        "text grid value",
        "grid:\n  act: relu\n",
        "grid.act",
        2,
        ("got the text 'relu'", "wrap it in a list: act: [relu]"),
    ),
    Bad("empty list", "grid:\n  lr: []\n  wd: [0]\n", "grid.lr", 2, ("empty list", "give at least one value")),
    Bad("grid is a list", "grid: [1, 2]\n", "grid", 1, ("expected a mapping, got a list", "for example: grid:")),
    Bad(
        "paired is a mapping",
        "paired:\n  size:\n    w: [1, 2]\n",
        "paired",
        1,
        ("expected a list, got a mapping", "for example: paired: [{model_size:"),
    ),
    Bad(
        "paired group is not a mapping",
        "grid: {lr: [1]}\npaired:\n  - 3\n",
        "paired[0]",
        3,
        ("expected a mapping, got 3", "for example: - {model_size: {"),
    ),
    Bad(
        "paired group without a name",
        "paired:\n  - lr: [1, 2]\n    wd: [3, 4]\n",
        "paired[0]",
        2,
        ("must be named", "- my_group: {lr:"),
    ),
    Bad(
        "unequal lengths in a group",
        "paired:\n  - size:\n      width: [8, 16]\n      heads: [1, 2, 4]\n",
        "paired[0].size",
        2,
        ("paired group 'size'", "width has 2", "heads has 3", "as many values"),
    ),
    Bad(
        "a parameter twice in a paired group, dotted and nested",
        "paired:\n  - g:\n      model.width: [1, 2]\n      model:\n        width: [3, 4]\n",
        "paired[0].g.model.width",
        3,
        ("parameter 'model.width' appears twice in this paired group", "keep one"),
    ),
    Bad(
        "a default twice, dotted and nested",
        "defaults:\n  model.width: 1\n  model:\n    width: 2\ngrid: {lr: [1]}\n",
        "defaults.model.width",
        2,
        ("default 'model.width' is defined twice", "nested keys and dotted keys name the same parameter"),
    ),
    Bad(
        "a number as a key inside a value",
        "grid:\n  opt: [{name: adam}, {1: sgd}]\n",
        "grid.opt[1]",
        2,
        ("mapping key 1 inside a value must be text", "quote it: '1'"),
    ),
    Bad(
        "a key in grid and paired",
        "grid:\n  lr: [1, 2]\npaired:\n  - g:\n      lr: [3, 4]\n      wd: [0, 1]\n",
        "paired[0]",
        4,
        ("'lr' is in the grid (line 2) and in paired group 'g'", "one place only"),
    ),
    Bad(
        "a key in two paired groups",
        "paired:\n  - a: {x: [1, 2]}\n  - b: {x: [3, 4]}\n",
        "paired[1]",
        3,
        ("in paired group 'a' and in 'b'",),
    ),
    Bad(
        "duplicate key",
        "grid:\n  lr: [1, 2]\n  wd: [0]\n  lr: [3]\n",
        "grid.lr",
        4,
        ("duplicate key 'lr'", "first defined on line 2, again on line 4", "delete or rename one"),
    ),
    Bad(
        "tab indentation",
        "grid:\n\tlr: [1, 2]\n",
        None,
        2,
        ("YAML syntax error", "YAML forbids tabs for indentation; use spaces"),
    ),
    Bad(
        "unclosed bracket",
        "grid:\n  lr: [1, 2\n  wd: [0]\n",
        None,
        3,
        ("YAML syntax error", "did not find expected", "close every '['"),
    ),
    Bad("missing space after colon", "grid:\n  lr:[1]\n  wd: [0]\n", None, 3, ("YAML syntax error", "indentation")),
    Bad("not UTF-8", b"grid:\n  name: [caf\xe9]\n", None, 2, ("is not UTF-8", "save the file as UTF-8")),
    Bad(
        "no parameters at all", "metadata: {description: nothing to sweep}\n", None, 1, ("no parameters", "add a grid:")
    ),
    Bad(
        "repeated value",
        "grid:\n  lr: [0.1, 0.2, 0.1]\n",
        "grid.lr[2]",
        2,
        ("grid key 'lr' has the same entry 0.1 twice (positions 1 and 3)", "remove the repeated entry"),
    ),
    Bad(
        "repeated paired row",
        "paired:\n  - g:\n      a: [1, 1]\n      b: [2, 2]\n",
        "paired[0]",
        2,
        ("paired group 'g' has the same entry", "twice"),
    ),
    Bad(
        "nested and dotted name collide",
        "grid:\n  model:\n    lr: [1]\n  model.lr: [2]\n",
        "grid.model.lr",
        3,
        ("parameter 'model.lr' is defined twice, as nested keys and as a dotted key", "keep one"),
    ),
    Bad(
        "misplaced key in the sweep wrapper",
        "sweep:\n  grid: {lr: [1]}\n  metadata: {a: 1}\n",
        "sweep.metadata",
        3,
        ("unknown key 'metadata'", "belongs at the top level", "Keys allowed here: grid, paired"),
    ),
    Bad(
        "grid both wrapped and at the top",
        "grid: {a: [1]}\nsweep:\n  grid: {b: [1]}\n",
        "grid",
        1,
        ("both at the top level and inside 'sweep:'", "keep one"),
    ),
    Bad(
        "name read as a boolean",
        "grid:\n  on: [1, 2]\n",
        "grid.True",
        2,
        ("a parameter name was read as true, not as text", "quote the name in the file, e.g. 'on': [...]"),
    ),
    Bad(
        "script is not text",
        "script: [train.py]\ngrid: {lr: [1]}\n",
        "script",
        1,
        ("expected text, got a list", "for example: script: train.py"),
    ),
    Bad(
        "unknown backend in resources",
        "grid: {lr: [1]}\nresources:\n  slrum: {mem: 8G}\n",
        "resources.slrum",
        3,
        ("unknown key 'slrum'", "did you mean 'slurm'?"),
    ),
    Bad(
        "negative retries",
        "grid: {lr: [1]}\nresources:\n  retries: -1\n",
        "resources.retries",
        3,
        ("must be at least 0, got -1", "for example: retries: 2"),
    ),
    Bad(
        "GPUs per task in words",
        "grid: {lr: [1]}\nresources:\n  gpus: two\n",
        "resources.gpus",
        3,
        ("expected a whole number, got the text 'two'", "for example: gpus: 1"),
    ),
    Bad(
        "negative local GPUs per task",
        "grid: {lr: [1]}\nresources:\n  local:\n    gpus: -1\n",
        "resources.local.gpus",
        4,
        ("must be at least 0, got -1", "for example: gpus: 1"),
    ),
    Bad(
        "GPUs per task twice",
        "grid: {lr: [1]}\nresources:\n  gpus: 1\n  local: {gpus: 2}\n",
        "resources.gpus",
        3,
        ("resources.gpus (1) and resources.local.gpus (2) are both set", "keep one"),
    ),
    Bad("empty nested mapping", "grid:\n  model: {}\n", "grid.model", 2, ("'model' is an empty mapping",)),
    Bad(
        "two documents",
        "grid: {lr: [1]}\n---\ngrid: {lr: [2]}\n",
        None,
        2,
        ("YAML syntax error", "remove the extra '---'"),
    ),
    Bad("python tag", "grid:\n  lr: !!python/name:os.system [1]\n", None, 2, ("constructor", "remove the '!tag'")),
]

PROJECT_CASES = [
    Bad(
        "unknown section",
        "locale:\n  max_parallel: 2\n",
        "locale",
        1,
        ("unknown key 'locale'", "did you mean 'local'?"),
    ),
    Bad(
        "unknown key in a section",
        "local:\n  max_paralel: 4\n",
        "local.max_paralel",
        2,
        ("unknown key 'max_paralel'", "did you mean 'max_parallel'?"),
    ),
    Bad(
        "wrong type",
        "local:\n  max_parallel: four\n",
        "local.max_parallel",
        2,
        ("expected a whole number, got the text 'four'", "for example: max_parallel: 4"),
    ),
    Bad("zero parallel tasks", "local:\n  max_parallel: 0\n", "local.max_parallel", 2, ("must be at least 1, got 0",)),
    Bad(
        "conda_env and python_interpreter",
        "paths:\n  python_interpreter: /usr/bin/python3\n  conda_env: ml\n",
        "paths.conda_env",
        3,
        ("'python_interpreter' and 'conda_env' are both set", "keep one"),
    ),
    Bad(
        "bad walltime",
        "slurm:\n  walltime: 4 hours\n",
        "slurm.walltime",
        2,
        ("the text '4 hours' is not a walltime", '"HH:MM:SS"', '"2h"'),
    ),
    Bad(
        "two-part walltime",
        "local:\n  walltime: '23:00'\n",
        "local.walltime",
        2,
        ("'23:00' is ambiguous", 'write "HH:MM:SS": "00:23:00" or "23:00:00"'),
    ),
    Bad("bad memory", "pbs:\n  mem: 16 gigs\n", "pbs.mem", 2, ("is not an amount of memory", '"16G"')),
    Bad(
        "bad regex",
        "task:\n  metrics_regex:\n    loss: 'loss=([0-9.]+'\n",
        "task.metrics_regex.loss",
        3,
        ("is not a valid regular expression", "missing )"),
    ),
    Bad(
        "regex without a group",
        "task:\n  metrics_regex:\n    loss: 'loss=[0-9.]+'\n",
        "task.metrics_regex.loss",
        3,
        ("needs exactly one group", "(?:...)"),
    ),
    Bad(
        "enum typo",
        "task:\n  arg_style: hidra\n",
        "task.arg_style",
        2,
        ("expected one of hydra, argparse, raw; got the text 'hidra'", "did you mean 'hydra'?"),
    ),
    Bad(
        "list style typo",
        "task:\n  arg_style: argparse\n  list_style: apend\n",
        "task.list_style",
        3,
        ("expected one of nargs, append; got the text 'apend'", "did you mean 'append'?"),
    ),
    Bad("project config is a list", "- local\n", None, 1, ("must be a mapping", "got a list")),
    Bad(
        "v1 and new name both set",
        "local:\n  max_parallel: 2\n  max_parallel_jobs: 4\n",
        "local.max_parallel_jobs",
        3,
        (
            "both 'local.max_parallel_jobs' (a v1 name) and 'local.max_parallel' are set",
            "keep only 'local.max_parallel'",
        ),
    ),
    Bad(
        "two v1 names for one key",
        "local:\n  timeout: 60\ncompute:\n  default_timeout: 120\n",
        "compute.default_timeout",
        4,
        (
            "'compute.default_timeout' and 'local.timeout' are both read as 'local.walltime'",
            "keep only 'local.walltime'",
        ),
    ),
    Bad(
        "v1 slurm-over-ssh remote with a bad walltime in its spec",
        "distributed:\n  remotes:\n    uzh:\n      backend: slurm\n      spec:\n        walltime: 4 hours\n",
        "distributed.remotes.uzh.spec.walltime",
        6,
        ("not a walltime", "HH:MM:SS"),
    ),
    Bad(
        "several GPU types",
        "slurm:\n  gpus: 1\n  gpu_type: [A100, H100]\n",
        "slurm.gpu_type",
        3,
        ("several GPU types", "pick one gpu_type"),
    ),
    Bad(
        "v1 resource string with an unknown chunk",
        "hpc:\n  system: pbs\n  default_resources: select=1:host=n1\n",
        "hpc.default_resources",
        3,
        ("'host=n1'", "extra_directives"),
    ),
    Bad(
        "v1 PBS resource string with a count in words",
        "hpc:\n  system: pbs\n  default_resources: select=one:ncpus=4\n",
        "hpc.default_resources",
        3,
        ("'select=one' needs a whole number", "e.g. select=1:ncpus=4:mem=16gb"),
    ),
    Bad(
        "v1 Slurm resource string with a count in words",
        "hpc:\n  default_resources: --cpus-per-task=four\n",
        "hpc.default_resources",
        2,
        ("'--cpus-per-task=four' needs a whole number", "e.g. --cpus-per-task=4 --mem=16G"),
    ),
    Bad(
        "v1 Slurm resource string with a bad time",
        "hpc:\n  default_resources: --time=forever --mem=4G\n",
        "hpc.default_resources",
        2,
        ("not a walltime", "HH:MM:SS"),
    ),
    Bad(
        "v1 resource string with bad memory",
        "hpc:\n  default_resources: --mem=lots\n",
        "hpc.default_resources",
        2,
        ("the text 'lots' is not an amount of memory", '"16G"'),
    ),
    Bad(
        "empty interpreter",
        'paths:\n  python_interpreter: ""\n',
        "paths.python_interpreter",
        2,
        ("must not be empty", "for example: python_interpreter: /opt/venv/bin/python"),
    ),
    Bad(
        "a QOS listed twice",
        "slurm:\n  qos_whitelist: [normal, normal]\n",
        "slurm.qos_whitelist",
        2,
        ("['normal', 'normal'] has non-unique elements", "for example: qos_whitelist: [normal, medium, long]"),
    ),
    Bad("negative retries", "retries: -2\n", "retries", 1, ("must be at least 0, got -2", "for example: retries: 2")),
    Bad(
        "remote gpus in words",
        "distributed:\n  remotes:\n    box:\n      gpus: lots\n",
        "distributed.remotes.box.gpus",
        4,
        ("not a number of GPUs", "visible_gpus: [0, 1]"),
    ),
    Bad(
        "remote python_path and conda_env",
        "distributed:\n  remotes:\n    box:\n      python_path: /p\n      conda_env: e\n",
        "distributed.remotes.box.conda_env",
        5,
        ("'python_path' and 'conda_env' are both set",),
    ),
    Bad(
        "visible_gpus not a list",
        "local:\n  visible_gpus: 1,2\n",
        "local.visible_gpus",
        2,
        ("expected a list, got the text '1,2'", "for example: visible_gpus: [1, 2, 3]"),
    ),
    Bad(
        "env value not text",
        "task:\n  env:\n    THREADS: 4\n",
        "task.env.THREADS",
        3,
        ("expected text, got 4", 'quote it to make it text: THREADS: "4"'),
    ),
    Bad(
        "duplicate section",
        "local: {max_parallel: 2}\nlocal: {max_parallel: 3}\n",
        "local",
        2,
        ("duplicate key 'local'", "first defined on line 1"),
    ),
]
PROJECT_CASES = [replace(case, file="hsm.yaml") for case in PROJECT_CASES]


def load(path: Path):
    if path.name == "hsm.yaml":
        return load_project(path, cwd=path.parent)
    return load_sweep(path)


@pytest.mark.parametrize("case", SWEEP_CASES + PROJECT_CASES, ids=lambda case: f"{case.file}: {case.id}")
def test_bad_config_names_key_line_and_fix(tmp_path, case):
    path = tmp_path / case.file
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    error = caught.value
    text = str(error)
    assert error.file == str(path)
    assert error.key == case.key, text
    assert error.line == case.line, text
    if case.line:
        assert f"{path}:{case.line}: " in text
    if case.key:
        assert f"{case.key}: " in text
    for fragment in case.says:
        assert fragment in text, text
    assert error.hint, text


def test_there_are_plenty_of_bad_configs():
    assert len(SWEEP_CASES) + len(PROJECT_CASES) >= 25


def test_missing_sweep_file_says_where_it_looked(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_sweep(tmp_path / "nope.yaml")
    assert "file not found" in str(caught.value) and str(tmp_path / "nope.yaml") in caught.value.hint


def test_missing_project_file_names_the_searched_places(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_project(Path("missing.yaml"), cwd=tmp_path)
    error = caught.value
    assert error.file == str(tmp_path / "missing.yaml")
    for place in ("hsm.yaml", ".hsm/config.yaml", "sweeps/hsm_config.yaml", "hsm_config.yaml", str(tmp_path)):
        assert place in error.hint


def test_a_folder_is_not_a_sweep_file(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_sweep(tmp_path)


def test_errors_never_leak_other_exceptions(tmp_path):
    """Odd but parseable inputs still end as ConfigError, never KeyError/TypeError."""
    odd = [
        "grid:\n  lr: [!!binary aGVsbG8=]\n",
        "grid:\n  ? [a, b]\n  : [1]\n",
        "grid:\n  lr: [{1: a}]\n",
        "grid:\n  '': [1]\n",
        "grid:\n  'a b': [1]\n",
        "paired: [{}]\n",
        "paired:\n  - g: {}\n",
        "sweep: null\n",
        "defaults: 3\ngrid: {a: [1]}\n",
        "grid: {a: [1]}\nresources: {slurm: 3}\n",
        "grid:\n  a: &x [*x]\n",
    ]
    for number, text in enumerate(odd):
        path = tmp_path / f"odd{number}.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError):
            load_sweep(path)


def test_the_first_mistake_in_the_file_is_reported(tmp_path):
    path = tmp_path / "hsm.yaml"
    path.write_text("task:\n  arg_style: hidra\nlocal:\n  max_parallel: four\nslurm: {mem: lots}\n")
    with pytest.raises(ConfigError) as caught:
        load_project(path, cwd=tmp_path)
    assert (caught.value.key, caught.value.line) == ("task.arg_style", 2)


def test_parsed_data_without_lines_still_names_the_key():
    with pytest.raises(ConfigError) as caught:
        parse_sweep({"grid": {"model": {"lr": 0.1}}})
    error = caught.value
    assert (error.key, error.line, error.file) == ("grid.model.lr", None, None)
    assert "wrap it in a list: lr: [0.1]" in str(error)
