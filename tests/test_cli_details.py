"""Small things users meet at the command line: selections that select nothing, dry-run listings,
table widths, labels and the v1 details (issues #19 and #21, "Smaller")."""

from __future__ import annotations

import json

from conftest import FAILING_SCRIPT

# -- complete --only-category / --no-retry-failed -------------------------------------------------


def _failed_sweep(project) -> None:
    """A real run of 5 tasks: 2 python_exception, 2 nonzero_exit, 1 completed."""
    (project.root / "fail.py").write_text(FAILING_SCRIPT)
    project.write_project({"paths": {"train_script": "fail.py"}})
    project.write_sweep({"grid": {"mode": ["exception", "exit", "ok"], "lr": [0.1, 0.2]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "cats", "--max-tasks", "5", expect=1)


def test_only_category_typo_is_refused_with_the_categories_present(project):
    _failed_sweep(project)
    result = project.cli("complete", "cats", "--only-category", "nonzero_exti", expect=2)
    assert "'nonzero_exti' is not an error category" in result.output
    assert "did you mean 'nonzero_exit'?" in result.output
    assert "python_exception (2)" in result.output and "nonzero_exit (2)" in result.output
    # A known category that no task has, and an empty name, are refused too; nothing ran.
    result = project.cli("complete", "cats", "--only-category", "timeout", expect=2)
    assert "no failed task of sweep cats has error category 'timeout'" in result.output
    assert "categories of its failed tasks" in result.output
    project.cli("complete", "cats", "--only-category", "", "--dry-run", expect=2)
    statuses = json.loads(project.cli("status", "cats", "--json").output)["tasks"]
    assert all(t["attempt"] in (1, None) for t in statuses)
    # The dry run of a real category says what it would run.
    out = project.cli("complete", "cats", "--only-category", "nonzero_exit", "--dry-run").output
    assert "5 of 6 task(s) not completed; 2 would run (the failed ones of category nonzero_exit)" in out


def test_no_retry_failed_dry_run_counts_the_failed_tasks_as_not_completed(project):
    _failed_sweep(project)
    out = project.cli("complete", "cats", "--no-retry-failed", "--dry-run").output
    assert "5 of 6 task(s) not completed; 1 would run (--no-retry-failed leaves out 4 failed)" in out
    assert "task_006" in out and "task_001" not in out


# -- run --dry-run of many tasks ------------------------------------------------------------------


def test_dry_run_of_many_tasks_shows_the_first_rows_and_the_counts(project):
    project.write_sweep({"grid": {"a": list(range(50)), "b": list(range(100))}})
    out = project.cli("run", "sweep.yaml", "--dry-run").output
    assert "5000 task(s) would run" in out
    assert "task_020" in out and "task_021" not in out
    assert "the first 20 of 5000 task(s) shown (5000 pending); --all lists every one" in out
    every = project.cli("run", "sweep.yaml", "--dry-run", "--all").output
    assert "task_5000" in every and "shown" not in every
    assert len(json.loads(project.cli("run", "sweep.yaml", "--dry-run", "--json").output)) == 5000
