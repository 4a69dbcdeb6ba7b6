"""The sbatch pass-through that keeps a Slurm run's sbatch calls in scripts/job_scripts/.

End to end on the real cluster: tests/test_slurm.py (test_many_tasks_need_few_sbatch_calls).
Here the recorder's own contract, with a stand-in for sbatch that echoes what it got.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
import zlib

from hsm_snake.executors.slurm import sbatch_record
from hsm_snake.layout.paths import SweepPaths

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
    done = subprocess.run(
        ["sbatch", *args], input="#!/bin/sh\necho ünïcode\n", env=env, text=True, capture_output=True, check=False
    )
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
    done = subprocess.run(
        ["sbatch", "--bad"],
        env={**env, "ECHO_EXIT": "3"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
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
    done = subprocess.run(
        ["sbatch", "x"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=30
    )
    assert done.returncode == 0 and "args: [x]" in done.stdout


def test_refuses_a_broken_array_script_it_cannot_repair(tmp_path, monkeypatch):
    paths, env = install(tmp_path, monkeypatch)
    script = "#!/bin/sh\npython -m snakemake --target task_001\n--slurm-jobstep-array-execs\n'eyJ9'\n"
    done = subprocess.run(
        ["sbatch", "--array=1-100", "/dev/stdin"], input=script, env=env, text=True, capture_output=True, check=False
    )
    assert done.returncode == 1 and "refused" in done.stderr and "max_array_size" in done.stderr
    assert "args:" not in done.stdout  # the real sbatch never ran
    (record,) = (paths.root / "scripts" / "job_scripts").glob("sbatch-*.sh")
    assert "(exit 1)" in record.read_text()


# Stands in for the plain command of an array's first element (a Snakemake jobstep).
FAKE_JOBSTEP = """
import sys
print("plain:", " ".join(sys.argv[1:]))
"""


# An element's command as big as a real one (plugin 2.8, Snakemake 9.27: ~1 KB, 1.5 KB once
# zlib'd, hex'd, put in JSON and base64'd); the shell runs its echo, the rest is a comment.
ELEMENT_COMMAND = (
    "echo run task_{i:03d} # /usr/bin/python3.11 -m snakemake --snakefile '/home/u/proj/workflow/Snakefile' "
    "--target-jobs 'task:task=task_{i:03d}' --allowed-rules task --cores 2 --attempt 1 --force-use-threads "
    "--wait-for-files '/home/u/proj/sweeps/outputs/sweep_20261129_110703/.snakemake/tmp.1mzr32fx' --force "
    "--target-files-omit-workdir-adjustment --max-inventory-time 0 --retries 0 --nocolor --no-hooks --nolock "
    "--ignore-incomplete --rerun-triggers software-env mtime input --conda-frontend 'conda' --shared-fs-usage "
    "input-output software-deployment persistence source-cache storage-local-copies software-deployment-cache "
    "sources --config 'backend=slurm' --latency-wait 30 --scheduler 'hsm-fifo' --local-storage-prefix "
    "base64//LnNuYWtlbWFrZS9zdG9yYWdl --scheduler-solver-path '/usr/bin' --runtime-source-cache-path "
    "'/home/u/.cache/snakemake/snakemake/source-cache/snakemake-runtime-cache/tmp7ynhz3xx' --default-resources "
    "base64//dG1wZGlyPXN5c3RlbV90bXBkaXI= --executor slurm-jobstep --jobs 1 --mode 'remote'"
)


def plugin_array_script(jobstep, first: int, last: int) -> str:
    """The script snakemake-executor-plugin-slurm 2.8 feeds sbatch for --array=first-last."""
    commands = {
        str(i): zlib.compress(ELEMENT_COMMAND.format(i=i).encode(), 9).hex() for i in range(first + 1, last + 1)
    }
    payload = base64.b64encode(json.dumps(commands).encode()).decode()
    return "\n".join(
        [
            "#!/bin/sh",
            f"{sys.executable} {jobstep} --target task_{first:03d}",
            "--slurm-jobstep-array-execs",
            shlex.quote(payload),
        ]
    )


def test_the_plugins_broken_array_script_is_given_one_command_per_element(tmp_path):
    jobstep = tmp_path / "jobstep.py"
    jobstep.write_text(FAKE_JOBSTEP)
    script = plugin_array_script(jobstep, 11, 14).encode()
    # As the plugin wrote it, every element runs the first task (and then fails on the option line).
    ran = subprocess.run(
        ["sh", "-c", script.decode()],
        env={**os.environ, "SLURM_ARRAY_TASK_ID": "13"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.stdout.startswith("plain: --target task_011")
    repaired = sbatch_record.one_command_per_element(["--parsable", "--array=11-14", "/dev/stdin"], script)
    path = tmp_path / "element.sh"
    path.write_bytes(repaired)
    for index, expected in ((11, "plain: --target task_011"), (12, "run task_012"), (14, "run task_014")):
        ran = subprocess.run(
            ["sh", str(path)],
            env={**os.environ, "SLURM_ARRAY_TASK_ID": str(index)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert (ran.returncode, ran.stdout.strip()) == (0, expected), ran.stderr
    ran = subprocess.run(
        ["sh", str(path)], env={**os.environ, "SLURM_ARRAY_TASK_ID": "15"}, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 1 and "no task for array index 15" in ran.stderr


def test_a_thousand_element_array_script_stays_far_under_sbatchs_size_limit(tmp_path):
    script = plugin_array_script(tmp_path / "jobstep.py", 1, 1000).encode()
    repaired = sbatch_record.one_command_per_element(["--array=1-1000", "/dev/stdin"], script)
    # ~1 KB per element; sbatch's default max_script_size is 4 MB.
    assert repaired is not None and len(repaired) < 1500 * 1000, len(repaired)


def test_the_repaired_array_script_is_what_gets_submitted_and_kept(tmp_path, monkeypatch):
    paths, env = install(tmp_path, monkeypatch)
    script = plugin_array_script(tmp_path / "jobstep.py", 1, 3)
    done = subprocess.run(
        ["sbatch", "--array=1-3", "/dev/stdin"], input=script, env=env, text=True, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert 'case "$SLURM_ARRAY_TASK_ID" in' in done.stdout and "\n--slurm-jobstep-array-execs\n" not in done.stdout
    (record,) = (paths.root / "scripts" / "job_scripts").glob("sbatch-*.sh")
    assert "\n3) echo run task_003 # " in record.read_text()
