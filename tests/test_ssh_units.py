"""hsm-ssh pieces that need no host: the pool from project_config.yaml, the host's copy of the
record, the ssh options and the remote command line."""

from __future__ import annotations

import shlex
from pathlib import Path

import hsm_snake
from hsm_snake.ssh import hosts, transfer

RECORD = {
    "project": {"distributed": {"local_slots": 2, "remotes": {
        "gpu": {"host": "gpu.example.org", "port": 2200, "user": "al", "ssh_key": "/k/id", "project_dir": "/srv/p",
                "python_path": "/opt/py/bin/python", "max_parallel_jobs": 3},
        "plain": {},
        "off": {"enabled": False},
    }}},
    "runner": {"workdir": "/home/me/proj", "train_script": "/home/me/proj/src/train.py",
               "python_command": ["/home/me/venv/bin/python"], "env": {}},
}


def test_pool_from_the_recorded_project_config():
    pool = {h.alias: h for h in hosts.pool_from_record(RECORD, ["/usr/bin/python3"])}
    assert set(pool) == {"gpu", "plain", "local"}
    gpu = pool["gpu"]
    assert (gpu.host, gpu.port, gpu.user, gpu.slots, gpu.python) == ("gpu.example.org", 2200, "al", 3,
                                                                     ["/opt/py/bin/python"])
    assert pool["plain"].host == "plain" and pool["plain"].python == ["python3"] and pool["plain"].slots == 1
    assert pool["local"].slots == 2 and pool["local"].is_local


def test_ssh_options_verify_host_keys_and_share_connections(monkeypatch, tmp_path):
    monkeypatch.setenv("HSM_SSH_CONFIG", "/cfg/ssh config")
    gpu = hosts.pool_from_record(RECORD, [])[0]
    cmd = hosts.Ssh(tmp_path).command(gpu, "true")
    text = " ".join(cmd)
    assert cmd[:3] == ["ssh", "-F", "/cfg/ssh config"]
    assert "BatchMode=yes" in text and "StrictHostKeyChecking=yes" in text and "StrictHostKeyChecking=no" not in text
    assert f"ControlPath={tmp_path}/%C" in text and "ControlMaster=auto" in text
    assert cmd[-2:] == ["gpu.example.org", "true"] and "-p" in cmd and "-l" in cmd


def test_the_host_copy_maps_runner_paths_only():
    gpu = hosts.pool_from_record(RECORD, [])[0]
    mapped = transfer.host_record(RECORD, gpu)
    assert mapped["runner"]["workdir"] == "/srv/p"
    assert mapped["runner"]["train_script"] == "/srv/p/src/train.py"
    assert mapped["runner"]["python_command"] == ["/opt/py/bin/python"]
    assert RECORD["runner"]["workdir"] == "/home/me/proj"  # the local record is untouched


def test_the_remote_command_names_only_our_paths():
    gpu = hosts.pool_from_record(RECORD, [])[0]
    gpu.project_dir = "/srv/my project"
    command = transfer.runner_command(gpu, "/srv/my project/sweeps/outputs/s1/tasks/task_001", "gpu")
    words = shlex.split(command)
    assert words[:3] == ["cd", "/srv/my project", "&&"]
    assert "setsid" in words and "HSM_BACKEND=ssh" in words[-1] and "HSM_JOB_ID=gpu" in words[-1]


def test_the_runner_modules_are_the_runner_and_its_imports():
    names = transfer.runner_modules(Path(hsm_snake.__file__).parent)
    assert {"runner.py", "paths.py", "records.py", "__init__.py"} <= set(names)
    assert "cli.py" not in names and "engine.py" not in names
