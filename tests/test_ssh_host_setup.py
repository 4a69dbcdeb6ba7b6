"""v1's per-host settings on the test bed's real sshd hosts: a remote's spec: (set-up script,
threads, walltime), what an upload leaves out, removing or keeping the host's copy, and GPU
boxes (gpus: all + spec.gpus) whose GPUs come from the host's nvidia-smi.

The test bed has no GPU: a fake ``nvidia-smi`` put on the host's PATH by the remote's own
pre_script stands in for the hardware (the probe and the tasks run after that set-up).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import read_status, remote_name

pytestmark = pytest.mark.testbed

APP = """
import json, os, sys, time
args = dict(a.partition("=")[::2] for a in sys.argv[1:])
results = os.environ["HSM_RESULTS_DIR"]
barrier = os.environ.get("BARRIER_DIR")
seen = {k: os.environ.get(k) for k in ("FROM_SPEC", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "HSM_GPU_DEVICES")}
if barrier and args.get("wait"):
    open(os.path.join(barrier, os.environ["HSM_TASK_ID"]), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir(barrier)) < int(args["wait"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    seen["together"] = len(os.listdir(barrier))
time.sleep(float(args.get("sleep", 0)))
with open(os.path.join(results, "seen.json"), "w") as f:
    json.dump(seen, f)
sys.exit(int(args.get("fail", 0)))
"""

FAKE_NVIDIA_SMI = """#!/bin/sh
# Stand-in for a 4-GPU box's nvidia-smi (-L and the --query-gpu form).
case "$1" in
  -L) for i in 0 1 2 3; do echo "GPU $i: Fake A100-SXM4-40GB (UUID: GPU-fake-$i)"; done ;;
  --query-gpu=*) for i in 0 1 2 3; do echo "$i, Fake A100-SXM4-40GB, $((i * 1000)), 40960, $((i * 10))"; done ;;
  *) exit 9 ;;
esac
"""


@pytest.fixture
def host_project(project, tb, monkeypatch, tmp_path):
    tb.need("hsmtb-h1")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    (project.root / "app.py").write_text(APP)
    project.remote_dir = Path(f"{tb.facts['ssh']['hosts']['hsmtb-h1']['project_dir']}/{remote_name(tmp_path)}")

    def configure(remote: dict, distributed: dict | None = None, env: dict | None = None) -> None:
        config = {
            "paths": {"python_interpreter": sys.executable, "train_script": "app.py"},
            "task": {"arg_style": "raw", "output_dir_arg": None, "env": env or {}},
            "distributed": {
                "remotes": {
                    "hsmtb-h1": {
                        "project_dir": str(project.remote_dir),
                        "python_path": "/usr/bin/python3",
                        "max_parallel_jobs": 2,
                        **remote,
                    }
                },
                **(distributed or {}),
            },
        }
        (project.root / "hsm.yaml").write_text(yaml.safe_dump(config))

    project.configure = configure
    return project


def seen(sweep_dir: Path, task: str) -> dict:
    return json.loads((sweep_dir / "tasks" / task / "results" / "seen.json").read_text())


def test_a_remote_spec_sets_up_its_tasks_threads_and_time_limit(host_project):
    project = host_project
    project.configure(
        {"spec": {"pre_script": ["export FROM_SPEC='set up there'"], "cpus_per_task": 3, "walltime": "4s"}}
    )
    project.write_sweep({"grid": {"sleep": [0, 30]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh", expect=None)
    (sweep_dir,) = project.sweep_dirs()
    quick = seen(sweep_dir, "task_001")
    assert quick["FROM_SPEC"] == "set up there" and quick["OMP_NUM_THREADS"] == "3", (quick, result.output)
    slow = read_status(sweep_dir / "tasks" / "task_002")
    assert slow["status"] == "failed" and slow["error_category"] == "timeout", slow
    assert read_status(sweep_dir / "tasks" / "task_001")["status"] == "completed"


def test_uploads_leave_out_defaults_excludes_and_what_git_ignores(host_project):
    project = host_project
    root = project.root
    files = {
        "keep.txt": "code",
        "src/model.py": "code",
        ".env": "API_KEY=secret",
        "secrets/id_rsa": "key",
        "notes.local": "ignored by pattern",
        "checkpoint.pt": "weights",
        "last.ckpt": "weights",
        ".venv/bin/python": "venv",
        "wandb/run-1/files": "logs",
        "data/raw/big.bin": "data",
        "data/small.csv": "data",
        "weird [name]*.txt": "kept",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / ".gitignore").write_text(".env\nsecrets/\n*.local\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    project.configure({"keep_remote_on_success": True}, distributed={"rsync_excludes": ["data/raw/"]})
    project.write_sweep({"grid": {"x": [1]}})
    assert "1 completed" in project.cli("run", "sweep.yaml", "--profile", "ssh").output
    there = project.remote_dir
    arrived = {name for name in files if (there / name).exists()}
    assert arrived == {"keep.txt", "src/model.py", "data/small.csv", "weird [name]*.txt"}, arrived
    assert (there / "app.py").exists() and (there / ".gitignore").exists()


def test_the_hosts_copy_of_the_sweep_goes_after_success_and_stays_after_a_failure(host_project):
    project = host_project
    project.configure({})
    project.write_sweep({"grid": {"x": [1, 2]}})
    assert "2 completed" in project.cli("run", "sweep.yaml", "--profile", "ssh").output
    (first,) = project.sweep_dirs()
    assert not (project.remote_dir / "sweeps" / "outputs" / first.name).exists()
    assert (
        f"removed {project.remote_dir}/sweeps/outputs/{first.name}"
        in (first / "logs" / "sources" / "ssh.log").read_text()
    )
    project.write_sweep({"grid": {"fail": [0, 3]}}, name="failing.yaml")
    project.cli("run", "failing.yaml", "--profile", "ssh", expect=None)
    second = next(p for p in project.sweep_dirs() if p != first)
    assert (project.remote_dir / "sweeps" / "outputs" / second.name / "tasks" / "task_002").is_dir()


def test_keep_remote_on_success_keeps_the_copy(host_project):
    project = host_project
    project.configure({"keep_remote_on_success": True})
    project.write_sweep({"grid": {"x": [1]}})
    assert "1 completed" in project.cli("run", "sweep.yaml", "--profile", "ssh").output
    (sweep_dir,) = project.sweep_dirs()
    assert (project.remote_dir / "sweeps" / "outputs" / sweep_dir.name / "tasks" / "task_001").is_dir()


@pytest.fixture
def fake_gpus(tmp_path) -> Path:
    folder = tmp_path / "fake-gpu-bin"
    folder.mkdir()
    (folder / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (folder / "nvidia-smi").chmod(0o755)
    return folder


def test_gpus_all_with_one_per_task_runs_four_tasks_at_once_on_four_gpus(host_project, fake_gpus, tmp_path):
    project = host_project
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # v1's GPU-box remote: every GPU of the host, one per task, four tasks at a time.
    project.configure(
        {
            "gpus": "all",
            "max_parallel_jobs": 4,
            "spec": {"gpus": 1, "pre_script": f"export PATH={fake_gpus}:$PATH"},
        },
        env={"BARRIER_DIR": str(barrier)},
    )
    project.write_sweep({"grid": {"wait": [4], "x": [1, 2, 3, 4]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh")
    assert "4 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    runs = [seen(sweep_dir, f"task_{i:03d}") for i in range(1, 5)]
    assert [run["together"] for run in runs] == [4, 4, 4, 4], runs
    assert sorted(run["CUDA_VISIBLE_DEVICES"] for run in runs) == ["0", "1", "2", "3"], runs
    log = (sweep_dir / "logs" / "sources" / "ssh.log").read_text()
    assert "GPUs 0,1,2,3" in log, log


def test_gpus_per_task_on_a_host_without_nvidia_smi_is_unusable_with_the_reason(host_project):
    project = host_project
    project.configure({"gpus": 1})
    project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh", expect=None)
    assert result.exit_code != 0
    (sweep_dir,) = project.sweep_dirs()
    log = (sweep_dir / "logs" / "sources" / "ssh.log").read_text()
    assert "nvidia-smi lists no GPU there" in log and "visible_gpus" in log, log


def test_remote_gpus_shows_each_hosts_gpus_memory_and_use(host_project, fake_gpus, monkeypatch):
    project = host_project
    monkeypatch.setenv("COLUMNS", "200")
    project.configure({"pre_script": f"export PATH={fake_gpus}:$PATH"})
    output = project.cli("remote", "gpus").output
    lines = [line for line in output.splitlines() if "Fake A100" in line]
    assert len(lines) == 4, output
    assert "0.0 / 40.0 GB" in lines[0] and "0%" in lines[0] and "free" in lines[0]
    assert "2.9 / 40.0 GB" in lines[3] and "30%" in lines[3] and "busy" in lines[3]


def test_remote_gpus_of_one_host_and_through_hsm(host_project, fake_gpus, monkeypatch):
    from click.testing import CliRunner

    from hsm_snake.cli.v1 import hsm

    project = host_project
    monkeypatch.setenv("COLUMNS", "200")
    project.configure({"pre_script": f"export PATH={fake_gpus}:$PATH"})
    assert project.cli("remote", "gpus", "--", "hsmtb-h1").output.count("Fake A100") == 4
    through_v1 = CliRunner().invoke(hsm, ["remote", "gpus", "hsmtb-h1"])
    assert through_v1.output.count("Fake A100") == 4, through_v1.output
