"""hsm-slurm's job scripts and the record it keeps of every sbatch call (scripts/job_scripts/).

End to end on the real cluster: tests/test_slurm.py (test_many_tasks_need_few_sbatch_calls,
test_array_elements_and_single_jobs_run_the_task_runner_alone_after_the_set_up). Here the
scripts' and the record's own contracts, run by a real shell with a stand-in for sbatch and for
the runner's Python.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hsm_snake.engine.leftovers import slurm_job_ids
from hsm_snake.executors.slurm import sbatch_record
from hsm_snake.executors.slurm.executor import TaskJob, array_batches, render_array, render_single, with_log
from hsm_snake.layout.paths import SweepPaths, TaskPaths

ECHO_SBATCH = """#!/bin/sh
printf 'args:'; for a in "$@"; do printf ' [%s]' "$a"; done; echo
printf 'stdin:'; cat; echo
"""


def test_the_kept_call_submits_the_same_job_again_and_names_its_job_id(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(ECHO_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    paths = SweepPaths(tmp_path / "sweep")
    args = ["--parsable", "--job-name", "a b", "--comment", "it's $HOME", "--array=1-2"]
    script = "#!/bin/bash\necho ünïcode\n".encode()
    record = sbatch_record.keep(paths.job_scripts_dir, args, script, "1234\n", 0)
    assert record is not None and record.parent == paths.job_scripts_dir
    replay = subprocess.run(["sh", str(record)], capture_output=True, text=True, check=True)
    assert replay.stdout.startswith("args: [--parsable] [--job-name] [a b] [--comment] [it's $HOME] [--array=1-2]")
    assert "echo ünïcode" in replay.stdout
    # `complete` after a kill -9 finds the job by sbatch's answer.
    assert slurm_job_ids(paths) == {"1234"}


def test_a_failed_submission_is_kept_with_its_exit_status_and_names_no_job(tmp_path):
    paths = SweepPaths(tmp_path / "sweep")
    record = sbatch_record.keep(paths.job_scripts_dir, ["--bad"], b"", "sbatch: error: bad option", 1)
    assert "(exit 1): sbatch: error: bad option" in record.read_text()
    assert slurm_job_ids(paths) == set()


def run_script(tmp_path, text: str, index: str | None) -> subprocess.CompletedProcess:
    path = tmp_path / "job.sh"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "SLURM_ARRAY_TASK_ID"}
    if index is not None:
        env["SLURM_ARRAY_TASK_ID"] = index
    return subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, check=False)


# Stands in for the runner's Python: where it runs, what the set-up left, its argv.
FAKE_PYTHON = """#!/bin/sh
echo "$PWD|$SETUP_MARK|$HSM_SETUP_DONE"
echo "$@"
"""


def test_each_array_element_runs_its_own_task_after_the_set_up(tmp_path):
    workdir = tmp_path / "sweep dir 'q'"
    workdir.mkdir()
    python = tmp_path / "fake python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    setup = 'cd /\nexport SETUP_MARK="ran here"'
    script = render_array(["task_007", "task_009", "task_010"], str(python), str(workdir), setup, "s1")
    assert "snakemake" not in script.lower()
    for index, task in (("1", "task_007"), ("3", "task_010")):
        ran = run_script(tmp_path, script, index)
        assert ran.returncode == 0, ran.stderr
        where, command = ran.stdout.splitlines()
        assert where == f"{workdir}|ran here|slurm"
        assert command == f"-m hsm_snake.runner tasks/{task}"
    ran = run_script(tmp_path, script, "4")
    assert ran.returncode == 2 and "no task for array index '4' (elements 1-3)" in ran.stderr


def test_a_single_job_runs_its_task(tmp_path):
    script = render_single("task_002", "echo", str(tmp_path), None, "s1")
    ran = run_script(tmp_path, script, None)
    assert (ran.returncode, ran.stdout.strip()) == (0, "-m hsm_snake.runner tasks/task_002")
    assert "HSM_SETUP_DONE" not in script


def test_task_jobs_with_the_same_options_share_arrays_in_task_order():
    def job(n: int, mem: str = "100") -> TaskJob:
        return TaskJob(None, TaskPaths(Path(f"/s/tasks/task_{n}")), ("sbatch", "--mem", mem))

    jobs = [job(1000), job(3), job(999), job(5, mem="200"), job(7)]
    batches = array_batches(jobs, 2)
    assert [[each.task.name for each in batch] for batch in batches] == [
        ["task_3", "task_7"],
        ["task_999", "task_1000"],
        ["task_5"],
    ]
    assert [len(batch) for batch in array_batches(jobs, 1)] == [1] * 5


def test_a_single_job_gets_a_log_of_its_own_name():
    argv = ["sbatch", "--output", "/l/%A_%a.log", "--export=ALL"]
    assert with_log(argv, "/l/%j.log") == ["sbatch", "--output", "/l/%j.log", "--export=ALL"]
