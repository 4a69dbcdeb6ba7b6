"""Experiment tracker hand-off: the variables and overrides a task gets, and its run URL captured."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import read_status

from hsm_snake.trackers import find_run_url

TRACKER_VARIABLES = (
    "WANDB_RUN_GROUP",
    "WANDB_NAME",
    "WANDB_DIR",
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_TRACKING_URI",
    "HSM_RUN_NAME",
)

# Saves its argv and tracker variables; prints a run URL the way W&B does (coloured, on stderr).
TRACKED_SCRIPT = textwrap.dedent(
    f"""
    import json, os, sys
    from pathlib import Path
    names = {TRACKER_VARIABLES!r}
    seen = {{"argv": sys.argv[1:], "env": {{n: os.environ[n] for n in names if n in os.environ}},
             "wandb_dir_exists": Path(os.environ.get("WANDB_DIR", "/nonexistent")).is_dir()}}
    Path(os.environ["HSM_TASK_DIR"], "seen.json").write_text(json.dumps(seen))
    print("wandb: \\U0001F680 View run \\x1b[33mlr-1\\x1b[0m at: \\x1b[34m\\x1b[4mhttps://wandb.ai/team/proj/runs/"
          + os.environ["HSM_TASK_ID"] + "\\x1b[0m", file=sys.stderr)
    """
)


@pytest.fixture
def tracked(project, monkeypatch):
    (project.root / "tracked.py").write_text(TRACKED_SCRIPT)
    for name in TRACKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def run(config: dict) -> tuple[str, list[dict]]:
        project.write_project({"paths": {"train_script": "tracked.py"}, **config})
        sweep = project.write_sweep({"grid": {"lr": [1, 2]}})
        project.cli("run", str(sweep))
        sweep_dir = project.sweep_dirs()[-1]
        seen = [json.loads((sweep_dir / "tasks" / t / "seen.json").read_text()) for t in ("task_001", "task_002")]
        return sweep_dir, seen

    return run


def test_wandb_and_mlflow_variables_reach_the_script_as_documented(tracked):
    sweep_dir, seen = tracked(
        {
            "wandb": {"project": "proj", "entity": "team"},
            "mlflow": {"tracking_uri": "http://127.0.0.1:5000"},
        }
    )
    sweep_id = sweep_dir.name
    task_dir = (sweep_dir / "tasks" / "task_002").resolve()
    assert seen[1]["env"] == {
        "WANDB_RUN_GROUP": sweep_id,
        "WANDB_NAME": f"{sweep_id}/task_002",
        "WANDB_DIR": str(task_dir / "wandb"),
        "WANDB_PROJECT": "proj",
        "WANDB_ENTITY": "team",
        "MLFLOW_EXPERIMENT_NAME": sweep_id,
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "HSM_RUN_NAME": f"{sweep_id}/task_002",
    }
    assert seen[1]["wandb_dir_exists"]
    assert seen[1]["argv"] == ["lr=2", f"wandb.group={sweep_id}"]


def test_the_run_url_is_captured_into_status_and_the_report(tracked, project):
    sweep_dir, _ = tracked({"wandb": {"project": "proj"}})
    url = "https://wandb.ai/team/proj/runs/task_001"
    assert read_status(sweep_dir / "tasks" / "task_001")["tracker_url"] == url
    project.cli("report", sweep_dir.name)
    html = (sweep_dir / "reports" / "completion_report.html").read_text()
    assert f'<a href="{url}">{url}</a>' in html
    listing = json.loads(project.cli("status", sweep_dir.name, "--json").output)
    assert listing["tasks"][0]["tracker_url"] == url


def test_no_tracker_section_no_tracker_variables(tracked):
    sweep_dir, seen = tracked({})
    assert seen[0]["env"] == {"HSM_RUN_NAME": f"{sweep_dir.name}/task_001"}
    assert seen[0]["argv"] == ["lr=1"]


def test_group_override_off_and_task_env_wins_over_tracker_variables(tracked):
    sweep_dir, seen = tracked(
        {
            "wandb": {"group_override": False},
            "mlflow": {"experiment_name": "mnist"},
            "task": {"env": {"WANDB_NAME": "mine"}},
        }
    )
    assert seen[0]["argv"] == ["lr=1"]
    assert seen[0]["env"]["WANDB_NAME"] == "mine"
    assert seen[0]["env"]["WANDB_RUN_GROUP"] == sweep_dir.name
    assert seen[0]["env"]["MLFLOW_EXPERIMENT_NAME"] == "mnist"
    assert "WANDB_PROJECT" not in seen[0]["env"]


def test_run_urls_of_wandb_and_mlflow_output_are_found():
    assert find_run_url("wandb: View run at https://wandb.ai/a/b/runs/x\n") == "https://wandb.ai/a/b/runs/x"
    mlflow = "🏃 View run lr-0.1 at: http://127.0.0.1:5000/#/experiments/1/runs/abc\n"
    assert find_run_url("", mlflow) == "http://127.0.0.1:5000/#/experiments/1/runs/abc"
    assert find_run_url("no tracker here\n") is None
