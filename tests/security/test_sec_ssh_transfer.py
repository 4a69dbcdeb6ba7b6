"""What travels to and from SSH hosts (the test bed's real sshd hosts): secrets stay home,
a host cannot plant links that lead out of a task folder."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import remote_name

from hsm_snake.executors.ssh import transfer
from hsm_snake.executors.ssh.hosts import Host, Ssh

pytestmark = pytest.mark.testbed

RECORD = {
    "source": "/home/me/secret-project/hsm.yaml",
    "project": {
        "task": {"env": {"API_TOKEN": "s3cr3t"}},
        "mlflow": {"tracking_uri": "https://user:pa55@mlflow.example"},
        "distributed": {"remotes": {"other": {"host": "other.example", "ssh_key": "~/.ssh/other_key"}}},
        "slurm": {"account": "grant-123"},
    },
    "runner": {
        "python_command": ["python3"],
        "train_script": "/p/train.py",
        "workdir": "/p",
        "env": {"API_TOKEN": "s3cr3t"},
        "mlflow": {"tracking_uri": "https://user:pa55@mlflow.example"},
    },
    "retry": {"retries": 1},
    "resources": {"slurm": {"slurm_account": "grant-123"}},
    "sweep_resources": {},
}


@pytest.fixture
def bed_host(tb, monkeypatch, tmp_path):
    tb.need("hsmtb-h1")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    base = tb.facts["ssh"]["hosts"]["hsmtb-h1"]["project_dir"]
    host = Host(alias="hsmtb-h1", host="hsmtb-h1", python=["python3"], project_dir=f"{base}/{remote_name(tmp_path)}")
    with tempfile.TemporaryDirectory(prefix="hsm-ssh-") as control:  # short: a socket path has 108 bytes
        ssh = Ssh(Path(control))
        yield ssh, host
        ssh.close(host)


def test_a_host_gets_only_the_runner_settings_in_a_file_only_the_user_can_read(bed_host, tmp_path):
    ssh, host = bed_host
    transfer.push_setup(ssh, host, RECORD, "s", tmp_path)
    # The test bed's hosts share this machine's file system: the file the host got is right here.
    shipped = transfer.remote_sweep_dir(host, "s") + "/project_config.yaml"
    assert stat.S_IMODE(os.stat(shipped).st_mode) == 0o600
    text = Path(shipped).read_text()
    record = yaml.safe_load(text)
    assert set(record) == {"runner", "retry"}
    assert record["runner"]["env"] == {"API_TOKEN": "s3cr3t"}  # the task needs it there
    assert "other.example" not in text and "grant-123" not in text and "secret-project" not in text


def test_the_rsync_pull_drops_links_that_lead_out_of_the_task_folder(bed_host, tmp_path):
    ssh, host = bed_host
    remote = tmp_path / "remote-task"
    (remote / "results").mkdir(parents=True)
    (remote / "results" / "metrics.json").write_text("{}")
    os.symlink("/etc/passwd", remote / "results" / "absolute")
    os.symlink("../../../outside", remote / "results" / "climbing")
    os.symlink("metrics.json", remote / "results" / "inside")
    local = tmp_path / "local-task"
    local.mkdir()
    transfer.pull_task(ssh, host, local, str(remote))
    assert (local / "results" / "metrics.json").read_text() == "{}"
    assert not os.path.lexists(local / "results" / "absolute")
    assert not os.path.lexists(local / "results" / "climbing")
    assert os.readlink(local / "results" / "inside") == "metrics.json"


def test_recording_a_host_key_leaves_no_master_connection_behind(bed_host, monkeypatch):
    """accept_host_key's ControlMaster=no must come before the options' ControlMaster=auto: ssh
    keeps the first value, and a master started there would outlive the call (ControlPersist)."""
    from hsm_snake.executors.ssh import remotes

    _, host = bed_host
    private = Path(tempfile.mkdtemp(prefix="hsk", dir="/tmp"))  # short: a socket path has 108 bytes
    monkeypatch.setattr(tempfile, "tempdir", str(private))  # where the call makes its control folder
    try:
        remotes.accept_host_key(host)
        time.sleep(0.5)
    finally:
        monkeypatch.undo()
        shutil.rmtree(private, ignore_errors=True)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert str(private).encode() not in cmdline, cmdline
