"""validate/show: warnings for what loads but will not run as meant."""

from __future__ import annotations

import sys

from hsm_snake.config.validation import HUGE_SWEEP, validate


def test_clean_project_has_no_findings(project):
    sweep = project.write_sweep({"grid": {"x": [1, 2]}})
    result = validate(sweep, None, project.root)
    assert not result.errors and not result.warnings and result.task_count == 2
    assert result.exit_code(strict=True) == 0


def test_gpus_beyond_the_visible_ones_and_huge_sweeps_are_warned(project):
    project.write_project({"local": {"gpus": 2, "visible_gpus": [0]}})
    sweep = project.write_sweep({"grid": {"a": list(range(200)), "b": list(range(60))}})
    result = validate(sweep, None, project.root)
    keys = {w.key: str(w) for w in result.warnings}
    assert "local.visible_gpus lists 1" in keys["local.gpus"]
    assert "hsm.yaml:" in keys["local.gpus"]  # file:line of the key
    assert f"{200 * 60:,} tasks" in keys["grid"] and HUGE_SWEEP < 200 * 60
    assert result.exit_code(strict=False) == 0 and result.exit_code(strict=True) == 1


def test_a_missing_script_or_interpreter_is_an_error_naming_its_key(project):
    project.write_project({"paths": {"python_interpreter": "/nonexistent/python", "train_script": "ecoh.py"}})
    sweep = project.write_sweep({"grid": {"x": [1]}})
    result = validate(sweep, None, project.root)
    errors = {e.key: e for e in result.errors}
    assert "ecoh.py does not exist" in str(errors["paths.train_script"])
    assert errors["paths.train_script"].file == str(project.root / "hsm.yaml") and errors["paths.train_script"].line
    assert "did you mean 'echo.py'" in str(errors["paths.train_script"])
    assert "not an executable" in str(errors["paths.python_interpreter"])
    assert result.exit_code(strict=False) == 2


def test_a_bare_interpreter_name_is_left_to_a_backends_module_load(project):
    project.write_project({"paths": {"python_interpreter": "python3.99"}})
    sweep = project.write_sweep({"grid": {"x": [1]}})
    (error,) = validate(sweep, None, project.root).errors
    assert error.key == "paths.python_interpreter" and "'python3.99' is not an executable on this machine" in str(error)
    # A module load or pre_script of a backend may put it on PATH where the tasks run.
    project.write_project({"paths": {"python_interpreter": "python3.99"}, "slurm": {"modules": ["python/3.99"]}})
    assert validate(sweep, None, project.root).errors == []


def test_errors_and_unpassable_values(project):
    project.write_project({"paths": {"python_interpreter": sys.executable}, "task": {"arg_style": "hydra"}})
    sweep = project.write_sweep({"grid": {"name": ["???"]}})
    result = validate(sweep, None, project.root)
    assert [w.key for w in result.warnings] == ["name"]
    (project.root / "bad.yaml").write_text("grdi: {x: [1]}\n")
    bad = validate(project.root / "bad.yaml", None, project.root)
    assert bad.exit_code(strict=False) == 2 and "did you mean 'grid'" in str(bad.errors[0])


def test_validate_and_show_commands(project):
    sweep = project.write_sweep({"grid": {"x": [1, 2]}, "paired": [{"pair": {"a": [1, 2], "b": ["u", "v"]}}]})
    ok = project.cli("validate", str(sweep))
    assert "ok: 4 task(s)" in ok.output
    # --deep asks a Hydra app to compose its config; a script of another style is not started at all.
    deep = project.cli("validate", str(sweep), "--deep").output
    assert "ok: 4 task(s)" in deep and "--deep: nothing more to check" in deep and project.runs() == []
    project.write_project({"local": {"gpus": 2, "visible_gpus": [0]}})
    strict = project.cli("validate", str(sweep), "--strict", expect=1)
    assert "warning:" in strict.output
    project.write_project({"paths": {"train_script": "missing.py"}})
    assert "missing.py does not exist" in project.cli("validate", str(sweep), expect=2).output
    (project.root / "bad.yaml").write_text("grid: {x: 1}\n")
    bad = project.cli("validate", "bad.yaml", expect=2)
    assert "error:" in bad.output and "Traceback" not in bad.output
    project.write_project({})
    shown = project.cli("show", str(sweep), "--first", "1").output
    assert "paired group" in shown and "'pair'" in shown and "task_001" in shown and "echo.py" in shown
    assert "hsm.yaml" in shown and "default" in shown
    # show prints what validate warns about, and stops at what validate refuses.
    project.write_project({"local": {"gpus": 2, "visible_gpus": [0]}})
    warned = project.cli("show", str(sweep))
    assert "warning: " in warned.output and "local.visible_gpus lists 1" in warned.output
    project.write_project({"paths": {"train_script": "missing.py"}})
    refused = project.cli("show", str(sweep), expect=2).output
    assert "missing.py does not exist" in refused and "Traceback" not in refused


def test_hydra_keys_missing_from_the_config_tree_are_warned(project):
    configs = project.root / "configs"
    (configs / "model").mkdir(parents=True)
    (configs / "config.yaml").write_text("optim:\n  lr: 0.1\nseed: 0\n")
    (configs / "model" / "resnet.yaml").write_text("depth: 18\n")
    project.write_project({"paths": {"config_dir": "configs"}, "task": {"arg_style": "hydra"}})
    sweep = project.write_sweep(
        {"grid": {"optim.lr": [0.1], "seed": [1], "model": ["resnet"], "optim.mom": [0.9], "+extra": [1]}}
    )
    result = validate(sweep, None, project.root)
    assert [w.key for w in result.warnings] == ["optim.mom"]
    assert result.warnings[0].line == 8 and "sweep.yaml:8: optim.mom" in str(result.warnings[0])
    assert "+optim.mom" in str(result.warnings[0])
    # A primary config that does not parse, or none at all: nothing to check the keys against, no warning.
    (configs / "config.yaml").write_text("optim: [unclosed\n")
    assert validate(sweep, None, project.root).warnings == []
    (configs / "config.yaml").unlink()
    assert validate(sweep, None, project.root).warnings == []


def test_gpus_per_task_without_any_device_is_warned(project, monkeypatch):
    from hsm_snake.runner import gpu_slots

    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi
    gpu_slots.detect_devices.cache_clear()
    project.write_project({"local": {"gpus": 1}})
    sweep = project.write_sweep({"grid": {"x": [1]}, "resources": {"local": {"gpus": 2, "visible_gpus": [0]}}})
    try:
        assert "local.visible_gpus lists 1" in str(validate(sweep, None, project.root).warnings)
        project.write_sweep({"grid": {"x": [1]}})
        warnings = {w.key: str(w) for w in validate(sweep, None, project.root).warnings}
    finally:
        gpu_slots.detect_devices.cache_clear()
    assert "nvidia-smi -L finds none" in warnings["local.gpus"]


def test_relative_outputs_of_a_shared_working_directory_are_warned(project):
    (project.root / "train.py").write_text(
        "import json, os, sys, torch\n"
        "torch.save({}, 'model.pt')\n"
        "with open('./logs/run.json', 'w') as f: json.dump({}, f)\n"
        "open('data.csv').read()\n"  # read: harmless
        "open(os.path.join(os.environ['HSM_TASK_DIR'], 'ok.txt'), 'w')\n"
    )
    project.write_project({"paths": {"train_script": "train.py"}})
    sweep = project.write_sweep({"grid": {"x": [1, 2]}})
    (warning,) = validate(sweep, None, project.root).warnings
    assert warning.key == "task.workdir" and "model.pt, ./logs/run.json" in warning.message
    assert "task.workdir: task" in warning.hint
    project.write_project({"paths": {"train_script": "train.py"}, "task": {"workdir": "task"}})
    assert not validate(sweep, None, project.root).warnings


def test_a_cluster_request_that_cannot_go_into_a_job_script_is_an_error_where_it_was_set(project):
    sweep = project.write_sweep({"grid": {"x": [1]}, "resources": {"slurm": {"partition": "debug\nrm -rf ~"}}})
    (error,) = validate(sweep, None, project.root).errors
    partition_line = next(n for n, text in enumerate(sweep.read_text().splitlines(), 1) if "partition:" in text)
    assert error.file == str(sweep) and error.key == "resources.slurm.partition" and error.line == partition_line
    assert "not a usable queue/account name" in str(error) and "line breaks" in error.hint
    project.write_project({"pbs": {"extra_directives": ["-o /tmp/elsewhere"]}})
    sweep = project.write_sweep({"grid": {"x": [1]}})
    (error,) = validate(sweep, None, project.root).errors
    assert error.file == str(project.root / "hsm.yaml") and error.key == "pbs.extra_directives" and error.line
    refused = project.cli("run", str(sweep), "--dry-run", expect=2).output
    assert "pbs.extra_directives" in refused and "Traceback" not in refused
    assert not (project.root / "sweeps").exists()
