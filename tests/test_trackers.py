"""Experiment tracker hand-off: the variables and overrides a task gets, and its run URL captured."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from conftest import read_status

from hsm_snake.runner.trackers import find_run_url, mlflow_run_url, wandb_app_url, wandb_run_url

TRACKER_VARIABLES = (
    "WANDB_RUN_GROUP",
    "WANDB_NAME",
    "WANDB_DIR",
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_RUN_CONTEXT",
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

# Prints no URL; leaves the files W&B and MLflow leave, laid out as their sources do:
# W&B (wandb_settings.py): <WANDB_DIR>/wandb/run-<YYYYMMDD_HHMMSS>-<run id>/, latest-run -> it,
# logs/debug.log with "finishing run <entity>/<project>/<run id>" (wandb_run.py, Run._finish)
# when the script finishes the run: task_001 does, task_002 does not.
# MLflow (file_store.py): <store>/<experiment id>/meta.yaml naming the experiment,
# <store>/<experiment id>/<run id>/tags/mlflow.runName, named from MLFLOW_RUN_CONTEXT's tags.
FILE_LEAVING_SCRIPT = textwrap.dedent(
    """
    import json, os, uuid
    from pathlib import Path
    task = os.environ["HSM_TASK_ID"]
    Path(os.environ["HSM_TASK_DIR"], "seen.json").write_text(json.dumps({"argv": [], "env": {}}))
    if "WANDB_DIR" in os.environ:
        run_id = "r" + task[-3:]
        runs = Path(os.environ["WANDB_DIR"], "wandb")
        run_dir = runs / f"run-20261129_055406-{run_id}"
        (run_dir / "logs").mkdir(parents=True)
        log = "2026-11-29 05:54:06,001 INFO    MainThread:4242 [wandb_init.py:init():1]  calling init triggers\\n"
        if task == "task_001":
            log += f"2026-11-29 05:54:09,001 INFO    MainThread:4242 [wandb_run.py:_finish():2397] finishing run server-team/proj/{run_id}\\n"
        (run_dir / "logs" / "debug.log").write_text(log)
        (runs / "latest-run").symlink_to(run_dir.name)
    if "MLFLOW_RUN_CONTEXT" in os.environ:
        experiment = Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("file:"), "7")
        experiment.mkdir(parents=True, exist_ok=True)
        (experiment / "meta.yaml").write_text(f"experiment_id: '7'\\nname: {os.environ['MLFLOW_EXPERIMENT_NAME']}\\n")
        run_dir = experiment / uuid.uuid4().hex
        (run_dir / "tags").mkdir(parents=True)
        (run_dir / "meta.yaml").write_text(f"experiment_id: '7'\\nrun_id: {run_dir.name}\\n")
        (run_dir / "tags" / "mlflow.runName").write_text(json.loads(os.environ["MLFLOW_RUN_CONTEXT"])["mlflow.runName"])
    """
)


@pytest.fixture
def tracked(project, monkeypatch):
    for name in TRACKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def run(config: dict, script: str = TRACKED_SCRIPT) -> tuple[str, list[dict]]:
        (project.root / "tracked.py").write_text(script)
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
        "MLFLOW_RUN_CONTEXT": json.dumps(
            {"mlflow.runName": f"{sweep_id}/task_002", "hsm.sweep_id": sweep_id, "hsm.task_id": "task_002"}
        ),
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


def test_without_a_printed_url_the_wandb_run_folder_gives_it(tracked):
    sweep_dir, _ = tracked({"wandb": {"project": "proj", "entity": "team"}}, FILE_LEAVING_SCRIPT)
    tasks = sweep_dir / "tasks"
    # debug.log's entity/project/run id (the server's) win over the configured ones.
    assert read_status(tasks / "task_001")["tracker_url"] == "https://wandb.ai/server-team/proj/runs/r001"
    assert read_status(tasks / "task_002")["tracker_url"] == "https://wandb.ai/team/proj/runs/r002"


def test_without_a_printed_url_the_mlflow_file_store_gives_the_run_folder(tracked, project):
    store = project.root / "mlruns"
    other_run = store / "7" / "0123abcd"
    (other_run / "tags").mkdir(parents=True)
    (other_run / "tags" / "mlflow.runName").write_text("someone-else")
    (store / "1").mkdir()
    (store / "1" / "meta.yaml").write_text("experiment_id: '1'\nname: other\n")
    sweep_dir, _ = tracked({"mlflow": {"tracking_uri": f"file:{store}"}}, FILE_LEAVING_SCRIPT)
    for task in ("task_001", "task_002"):
        url = read_status(sweep_dir / "tasks" / task)["tracker_url"]
        run_dir = Path(url.removeprefix("file://"))
        assert url.startswith(f"file://{store}/7/") and run_dir.parent == store / "7"
        assert (run_dir / "tags" / "mlflow.runName").read_text() == f"{sweep_dir.name}/{task}"


def test_no_url_from_files_that_do_not_name_a_page(tmp_path):
    runs = tmp_path / "wandb" / "wandb"
    (runs / "offline-run-20261129_055406-abc").mkdir(parents=True)
    env = {"WANDB_ENTITY": "team", "WANDB_PROJECT": "proj"}
    assert wandb_run_url(tmp_path / "wandb", env) is None
    (runs / "run-20261129_055406-abc").mkdir()
    assert wandb_run_url(tmp_path / "wandb", {"WANDB_PROJECT": "proj"}) is None
    assert wandb_run_url(tmp_path / "wandb", env) == "https://wandb.ai/team/proj/runs/abc"
    context = json.dumps({"mlflow.runName": "s/task_001"})
    http = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MLFLOW_RUN_CONTEXT": context}
    assert mlflow_run_url(http, str(tmp_path), 0.0) is None
    assert mlflow_run_url({"MLFLOW_RUN_CONTEXT": "not json"}, str(tmp_path), 0.0) is None


def test_wandb_web_address_follows_its_api_address():
    assert wandb_app_url({}) == "https://wandb.ai"
    assert wandb_app_url({"WANDB_BASE_URL": "https://api.wandb.ai"}) == "https://wandb.ai"
    assert wandb_app_url({"WANDB_BASE_URL": "https://api.acme.example/"}) == "https://app.acme.example"
    assert wandb_app_url({"WANDB_BASE_URL": "http://localhost:8080"}) == "http://localhost:8080"
    assert wandb_app_url({"WANDB_APP_URL": "https://wb.acme.example/"}) == "https://wb.acme.example"


def test_the_mlflow_file_store_lookup_by_experiment_and_store_forms(tmp_path):
    """MLflow's file store layout: <store>/<experiment id>/meta.yaml (name), <run id>/tags/mlflow.runName."""
    context = json.dumps({"mlflow.runName": "s/task_001"})

    def run_in(experiment: str, run_name: str) -> Path:
        run = tmp_path / "mlruns" / experiment / "run1"
        (run / "tags").mkdir(parents=True)
        (run / "tags" / "mlflow.runName").write_text(run_name)
        return run

    env = {"MLFLOW_RUN_CONTEXT": context}
    assert mlflow_run_url(env, str(tmp_path), 0.0) is None  # no store yet
    default = run_in("0", "s/task_001")
    assert mlflow_run_url(env, str(tmp_path), 0.0) == default.as_uri()  # unnamed: the default experiment
    # A relative tracking URI is a folder under the task's working directory.
    assert mlflow_run_url({**env, "MLFLOW_TRACKING_URI": "mlruns"}, str(tmp_path), 0.0) == default.as_uri()
    named = {**env, "MLFLOW_EXPERIMENT_NAME": "mnist"}
    assert mlflow_run_url(named, str(tmp_path), 0.0) is None  # no experiment of that name
    (tmp_path / "mlruns" / "7").mkdir()
    (tmp_path / "mlruns" / "7" / "meta.yaml").write_text("name: mnist\nexperiment_id: '7'\n")
    (tmp_path / "mlruns" / "8").mkdir()
    (tmp_path / "mlruns" / "8" / "meta.yaml").write_text("name: [not closed\n")  # a damaged one is skipped
    assert mlflow_run_url(named, str(tmp_path), 0.0) is None  # the experiment has no run of the task
    mnist = run_in("7", "s/task_001")
    assert mlflow_run_url(named, str(tmp_path), 0.0) == mnist.as_uri()
    assert mlflow_run_url(named, str(tmp_path), time.time() + 3600) is None  # only runs written since the task began
