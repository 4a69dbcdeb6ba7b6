"""The sbatch pass-through that keeps a Slurm run's sbatch calls in scripts/job_scripts/.

End to end on the real cluster: tests/test_slurm.py (test_many_tasks_need_few_sbatch_calls).
Here the recorder's own contract, with a stand-in for sbatch that echoes what it got.
"""

from __future__ import annotations

import os
import subprocess
import sys

from hsm_snake import sbatch_record
from hsm_snake.paths import SweepPaths

ECHO_SBATCH = """#!/bin/sh
printf 'args:'; for a in "$@"; do printf ' [%s]' "$a"; done; echo
printf 'stdin:'; cat; echo
exit "${ECHO_EXIT:-0}"
"""


def install(tmp_path, monkeypatch):
    bin_dir = tmp_path / "realbin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(ECHO_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    paths = SweepPaths(tmp_path / "sweep")
    paths.root.mkdir()
    env = {**os.environ, **sbatch_record.recording_env(paths)}
    return paths, env


def test_passes_arguments_input_answer_and_exit_status_through_and_keeps_the_call(tmp_path, monkeypatch):
    paths, env = install(tmp_path, monkeypatch)
    args = ["--parsable", "--job-name", "a b", "--wrap=python -c 'print(\"$HOME\")'"]
    done = subprocess.run(["sbatch", *args], input="#!/bin/sh\necho ünïcode\n", env=env, text=True,
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("args: [--parsable] [--job-name] [a b] [--wrap=python -c 'print(\"$HOME\")']")
    assert "echo ünïcode" in done.stdout
    (record,) = (paths.root / "scripts" / "job_scripts").glob("sbatch-*.sh")
    text = record.read_text()
    assert "# sbatch answered (exit 0): args:" in text
    # The kept call submits the same job again when run by sh.
    replay = subprocess.run(["sh", str(record)], env=env, text=True, capture_output=True, check=False)
    assert replay.stdout == done.stdout


def test_a_failed_submission_keeps_its_exit_status(tmp_path, monkeypatch):
    paths, env = install(tmp_path, monkeypatch)
    done = subprocess.run(["sbatch", "--bad"], env={**env, "ECHO_EXIT": "3"}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 3
    (record,) = (paths.root / "scripts" / "job_scripts").glob("sbatch-*.sh")
    assert "(exit 3)" in record.read_text()


def test_no_sbatch_on_path_installs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    paths = SweepPaths(tmp_path / "sweep")
    assert sbatch_record.recording_env(paths) == {}
    assert not (paths.root / ".hsm" / "bin").exists()


def test_the_shim_never_finds_itself_as_the_real_sbatch(tmp_path, monkeypatch):
    paths, env = install(tmp_path, monkeypatch)
    # A second run starts with the first run's shim first on PATH.
    monkeypatch.setenv("PATH", env["PATH"])
    env = {**os.environ, **sbatch_record.recording_env(paths)}
    shim = (paths.root / ".hsm" / "bin" / "sbatch").read_text()
    assert str(tmp_path / "realbin" / "sbatch") in shim and sys.executable in shim
    done = subprocess.run(["sbatch", "x"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          check=False, timeout=30)
    assert done.returncode == 0 and "args: [x]" in done.stdout


def test_refuses_the_plugins_broken_array_script(tmp_path, monkeypatch):
    paths, env = install(tmp_path, monkeypatch)
    script = "#!/bin/sh\npython -m snakemake --target task_001\n--slurm-jobstep-array-execs\n'eyJ9'\n"
    done = subprocess.run(["sbatch", "--array=1-100", "/dev/stdin"], input=script, env=env, text=True,
                          capture_output=True, check=False)
    assert done.returncode == 1 and "refused" in done.stderr and "max_array_size" in done.stderr
    assert "args:" not in done.stdout  # the real sbatch never ran
    (record,) = (paths.root / "scripts" / "job_scripts").glob("sbatch-*.sh")
    assert "(exit 1)" in record.read_text()
