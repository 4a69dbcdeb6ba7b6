"""Real scripts that fail in known ways are recorded with the right category and cause."""

from __future__ import annotations

import json

import pytest
from conftest import FAILING_SCRIPT

from hsm_snake.runner.failures import classify


def test_real_failures_get_their_categories(project):
    (project.root / "fail.py").write_text(FAILING_SCRIPT)
    project.write_project({"paths": {"train_script": "fail.py"}, "local": {"walltime": "00:00:06", "max_parallel": 2}})
    modes = ["exception", "memory", "module", "sleep", "sigkill", "exit"]
    project.write_sweep({"grid": {"mode": modes}})
    project.cli("run", "sweep.yaml", expect=1)
    status = json.loads(project.cli("status", "--json").output)
    by_task = {t["task"]: t for t in status["tasks"]}
    got = {mode: by_task[f"task_{i:03d}"] for i, mode in enumerate(modes, start=1)}
    assert got["exception"]["error_category"] == "python_exception"
    assert got["exception"]["error_summary"] == "ValueError: learning rate must be positive"
    assert got["memory"]["error_category"] == "out_of_memory"
    assert got["module"]["error_category"] == "missing_module"
    assert "torch_that_is_not_installed" in got["module"]["error_summary"]
    assert got["sleep"]["error_category"] == "timeout"
    assert got["sigkill"]["error_category"] == "killed"
    assert got["exit"]["error_category"] == "nonzero_exit"
    assert all(t["state"] == "failed" for t in got.values())


@pytest.mark.parametrize(
    "returncode, stderr, category",
    [
        (
            1,
            "Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: CUDA out of memory. Tried",
            "cuda_out_of_memory",
        ),
        (1, 'Traceback:\n  File "x.py", line 1\n    def (\nSyntaxError: invalid syntax', "syntax_error"),
        (1, "FileNotFoundError: [Errno 2] No such file or directory: 'data.csv'", "missing_file"),
        (-15, "", "cancelled"),
        (-11, "", "killed"),
        (2, "usage: train.py [-h]\ntrain.py: error: unrecognized arguments", "nonzero_exit"),
    ],
)
def test_classify(returncode, stderr, category):
    assert classify(returncode, timed_out=False, timeout_s=None, stderr_tail=stderr).category == category


def test_complete_only_category_reruns_just_that_class(project):
    (project.root / "fail.py").write_text(FAILING_SCRIPT)
    project.write_project({"paths": {"train_script": "fail.py"}})
    project.write_sweep({"grid": {"mode": ["exception", "exit"]}})
    project.cli("run", "sweep.yaml", expect=1)
    project.cli("complete", "--only-category", "nonzero_exit", expect=1)
    status = {t["task"]: t for t in json.loads(project.cli("status", "--json").output)["tasks"]}
    assert status["task_001"]["attempt"] == 1 and status["task_001"]["error_category"] == "python_exception"
    assert status["task_002"]["attempt"] == 2 and status["task_002"]["error_category"] == "nonzero_exit"


# Hydra 1.3's own words (without HYDRA_FULL_ERROR) when it refuses an override.
HYDRA_REFUSED_KEY = """Could not override 'lr'.
To append to your config use +lr=0.1
Key 'lr' is not in struct
    full_key: lr
    object_type=dict

Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.
"""
HYDRA_BAD_GRAMMAR = """no viable alternative at input '['
See https://hydra.cc/docs/1.2/advanced/override_grammar/basic for details

Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.
"""


@pytest.mark.parametrize(
    "stderr, summary",
    [
        (
            HYDRA_REFUSED_KEY,
            "exited with status 1: Could not override 'lr'. To append to your config use +lr=0.1 Key 'lr' is not in struct",
        ),
        # No line Hydra starts its known errors with: the last three lines of the block.
        (
            HYDRA_BAD_GRAMMAR,
            "exited with status 1: no viable alternative at input '[' "
            "See https://hydra.cc/docs/1.2/advanced/override_grammar/basic for details",
        ),
    ],
)
def test_a_hydra_app_refusing_its_overrides_is_summarised_by_hydras_message(stderr, summary):
    failure = classify(1, timed_out=False, timeout_s=None, stderr_tail=stderr)
    assert (failure.category, failure.summary) == ("nonzero_exit", summary)


def test_a_signal_without_a_name_is_reported_by_number():
    failure = classify(-200, timed_out=False, timeout_s=None, stderr_tail="")
    assert (failure.status, failure.category, failure.summary) == ("failed", "killed", "killed by signal 200")


TRIAGE_SCRIPT = """
import argparse, sys
parser = argparse.ArgumentParser()
parser.add_argument("--mode")
args = parser.parse_args()
if args.mode == "data":
    open("data/train.csv")
if args.mode == "syntax":
    exec("def (")
"""


def _suggestions(project, sweep_id: str) -> dict[str, str]:
    data = json.loads(project.cli("errors", sweep_id, "--json").output)
    return {g["category"]: g["suggestion"] for g in data["groups"]}


def test_errors_suggests_the_fix_for_each_way_a_script_fails_to_start(project):
    (project.root / "train.py").write_text(TRIAGE_SCRIPT)
    task = {"arg_style": "argparse", "workdir": "task"}
    project.write_project({"paths": {"train_script": "train.py"}, "task": task})
    project.write_sweep({"grid": {"mode": ["data", "syntax"]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "files", expect=1)
    suggestion = _suggestions(project, "files")
    assert "a file the script opens does not exist (FileNotFoundError: [Errno 2]" in suggestion["missing_file"]
    assert "relative paths are read from each task's own folder (task.workdir: task)" in suggestion["missing_file"]
    assert suggestion["syntax_error"].startswith("fix the syntax error in the script (see tasks/task_002/stderr.log)")

    # The task folder passed as an option the parser does not have, then a swept key it does not have.
    project.write_project(
        {"paths": {"train_script": "train.py"}, "task": {"arg_style": "argparse", "output_dir_arg": "out"}}
    )
    project.write_sweep({"grid": {"mode": ["ok"]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "outdir", expect=1)
    assert "the script has no --out option" in _suggestions(project, "outdir")["nonzero_exit"]
    project.write_project({"paths": {"train_script": "train.py"}, "task": {"arg_style": "argparse"}})
    project.write_sweep({"grid": {"mode": ["ok"], "epochs": [3]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "key", expect=1)
    advice = _suggestions(project, "key")["nonzero_exit"]
    assert "argparse parser refuses arguments hsm-snake passed" in advice
    assert "hsm-snake complete key --only-category nonzero_exit" in advice
