"""Hostile names: hosts that are ssh options, aliases that are paths, directives that are shell
lines, task names and job ids tampered with in the sweep directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hsm_snake.engine.lock import SweepLock
from hsm_snake.executors.ssh import transfer
from hsm_snake.executors.ssh.hosts import Host, Ssh
from hsm_snake.layout.paths import SweepPaths

PWNED = "pwned-by-proxycommand"


def proxy_command(root: Path) -> str:
    """An ssh option as a host name: it would create ``root/PWNED`` (run in ``root``; rsync reads a
    name with a '/' before its ':' as a local path)."""
    assert Path.cwd() == root
    return f"-oProxyCommand=touch {PWNED}"


def write_hsm(project, extra: dict) -> None:
    project.write_project(extra)
    project.write_sweep({"grid": {"x": [1]}})


# -- refused in hsm.yaml, with the key and line ---------------------------------------------------
HOSTILE_PROJECT = {
    "host_is_an_ssh_option": ({"distributed": {"remotes": {"box": {"host": "-oProxyCommand=id"}}}}, "host name"),
    "user_is_an_ssh_option": (
        {"distributed": {"remotes": {"box": {"host": "box", "user": "-oProxyCommand=id"}}}},
        "user name",
    ),
    "remote_named_local": ({"distributed": {"remotes": {"local": {"host": "box"}}}}, "reserved for this machine"),
    "alias_is_a_path": ({"distributed": {"remotes": {"../../x": {"host": "box"}}}}, "remote alias"),
    "alias_with_a_slash": ({"distributed": {"remotes": {"a/b": {"host": "box"}}}}, "remote alias"),
    "pbs_queue_with_a_newline": ({"pbs": {"queue": "workq\ntouch /tmp/x"}}, "queue/account name"),
    "pbs_account_with_a_newline": ({"pbs": {"account": "acct\nrm -rf ~"}}, "queue/account name"),
    "pbs_queue_is_an_option": ({"pbs": {"queue": "-W depend=afterok:1"}}, "queue/account name"),
    "pbs_directive_with_a_newline": ({"pbs": {"extra_directives": ["-m abe\ntouch /tmp/x"]}}, "several lines"),
    "slurm_partition_with_a_newline": ({"slurm": {"partition": "gpu\n#SBATCH --uid=0"}}, "queue/account name"),
    "slurm_account_with_a_newline": ({"slurm": {"account": "a\nb"}}, "queue/account name"),
    "slurm_qos_with_a_newline": ({"slurm": {"qos": "normal\r\nx"}}, "queue/account name"),
    "slurm_constraint_with_a_newline": ({"slurm": {"constraint": "a100\ntouch x"}}, "several lines"),
    "slurm_directive_with_a_newline": ({"slurm": {"extra_directives": ["--mail-type=END\ntouch x"]}}, "several lines"),
    "slurm_directive_mapping_value_with_a_newline": (
        {"slurm": {"extra_directives": {"mail-type": "END\ntouch x"}}},
        "several lines",
    ),
}


@pytest.mark.parametrize("case", HOSTILE_PROJECT)
def test_a_hostile_name_in_hsm_yaml_is_refused_with_its_key_and_line(project, case):
    extra, says = HOSTILE_PROJECT[case]
    write_hsm(project, extra)
    result = project.cli("validate", "sweep.yaml", expect=2)
    assert says in result.output
    assert "hsm.yaml:" in result.output and "Traceback" not in result.output


def test_remote_add_refuses_a_host_that_is_an_ssh_option_and_leaves_hsm_yaml_as_it_was(project):
    before = (project.root / "hsm.yaml").read_text()
    result = project.cli("remote", "add", "box", f"--host={proxy_command(project.root)}", expect=2)
    assert "host name" in result.output
    assert (project.root / "hsm.yaml").read_text() == before
    assert not (project.root / PWNED).exists()


@pytest.mark.parametrize("alias", ["local", "../../x", "-x"])
def test_remote_add_refuses_reserved_and_path_like_aliases(project, alias):
    result = project.cli("remote", "add", "--host", "box", "--", alias, expect=2)
    assert "alias" in result.output or "reserved" in result.output


# -- '--' before the host: a host name never becomes an ssh option ----------------------------------
def unchecked_host(name: str) -> Host:
    """A Host made without the name checks, as if they had been bypassed."""
    return Host(alias="box", host=name)


def test_ssh_calls_put_the_host_after_double_dash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    host = unchecked_host(proxy_command(tmp_path))
    ssh = Ssh(tmp_path)
    command = ssh.command(host, "true")
    subprocess.run(command, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert command[command.index(host.host) - 1] == "--"
    assert not (tmp_path / PWNED).exists()


def test_rsync_puts_the_paths_after_double_dash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    host = unchecked_host(proxy_command(tmp_path))
    (tmp_path / "f").write_text("x")
    with pytest.raises(transfer.TransferError):
        transfer.rsync(Ssh(tmp_path), host, [str(tmp_path / "f")], "/tmp/dest")
    assert not (tmp_path / PWNED).exists()


def test_closing_the_master_connection_puts_the_host_after_double_dash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    host = unchecked_host(proxy_command(tmp_path))
    Ssh(tmp_path).close(host)
    assert not (tmp_path / PWNED).exists()


# -- names read back from the sweep directory ------------------------------------------------------
def make_sweep(project, sweep_id: str = "s", tasks: int = 2) -> Path:
    project.write_sweep({"grid": {"x": list(range(1, tasks + 1))}})
    project.cli("run", "sweep.yaml", "--sweep-id", sweep_id)
    return project.root / "sweeps" / "outputs" / sweep_id


def test_a_tampered_host_in_the_sweeps_copy_of_the_config_never_runs_a_command(project):
    sweep = make_sweep(project)
    config = sweep / "project_config.yaml"
    record = yaml.safe_load(config.read_text())
    record["project"]["distributed"] = {"remotes": {"box": {"host": proxy_command(project.root)}}}
    config.write_text(yaml.safe_dump(record))
    (sweep / ".hsm" / "remote").mkdir(parents=True, exist_ok=True)
    (sweep / ".hsm" / "remote" / "task_001.yaml").write_text(
        yaml.safe_dump({"host_alias": "box", "pgid": 4242, "remote_task": "/tmp/t", "attempt": 1})
    )
    for command in (("cancel", "s"), ("complete", "s")):
        result = project.cli(*command, expect=None)
        assert result.exit_code == 2, result.output
        assert "host name" in result.output
    assert not (project.root / PWNED).exists()


def test_a_task_name_with_dot_dots_in_task_mapping_never_becomes_a_path(project):
    sweep = make_sweep(project)
    mapping = sweep / "task_mapping.yaml"
    text = mapping.read_text()
    assert '"task_002"' in text
    mapping.write_text(text.replace('"task_002"', '"task_002/../../../escaped"'))
    for command in (("complete", "s"), ("status", "s"), ("missing", "s")):
        result = project.cli(*command, expect=None)
        assert result.exit_code == 2, result.output
        assert "is not a task name" in result.output
    assert not (project.root / "sweeps" / "escaped").exists() and not (sweep.parent / "escaped").exists()


def fake_scheduler(tmp_path: Path, monkeypatch, *names: str) -> Path:
    """Recording stand-ins for scancel/qdel/sacct: the test must see what would have been cancelled
    without cancelling anything of the test bed's (scancel --me cancels every job of the user)."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "scheduler-calls.log"
    for name in names:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> {log}\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.mark.parametrize("backend", ["slurm", "pbs"])
@pytest.mark.parametrize("job_id", ["--me", "-u root", "1; rm -rf ~"])
def test_a_job_id_that_is_an_option_never_reaches_the_scheduler(project, tmp_path, monkeypatch, backend, job_id):
    sweep = make_sweep(project)
    status_file = sweep / "tasks" / "task_001" / "status.yaml"
    (sweep / "tasks" / "task_001" / ".completed").unlink()
    status = yaml.safe_load(status_file.read_text())
    status.update(status="running", backend=backend, job_id=job_id, finished=None)
    status_file.write_text(yaml.safe_dump(status))
    (sweep / ".hsm" / "pbs-jobs").write_text(f"{job_id}\n")
    log = fake_scheduler(tmp_path, monkeypatch, "scancel", "qdel", "sacct", "qstat", "squeue")
    result = project.cli("cancel", "s", expect=None)
    calls = log.read_text() if log.exists() else ""
    assert job_id not in calls, calls
    assert "skipped" in result.output


def test_cancel_never_signals_a_pid_the_lock_record_names_that_is_not_the_engine(project):
    sweep = make_sweep(project)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        with SweepLock(SweepPaths(sweep)) as lock:
            lock.acquire(["test"])
            # The record as a run whose engine died, its pid since given to an unrelated process.
            record = json.loads(os.pread(lock.fd, 65536, 0))
            record.update(snakemake_pid=bystander.pid, snakemake_started=1)
            os.ftruncate(lock.fd, 0)
            os.pwrite(lock.fd, json.dumps(record).encode(), 0)
            result = project.cli("cancel", "s", expect=None)
            time.sleep(0.2)
            assert bystander.poll() is None, "cancel signalled a process that is not the sweep's engine"
            assert "not signalled" in result.output
    finally:
        bystander.kill()
        bystander.wait()


# -- migrate never writes through a symlinked task folder ------------------------------------------
def v1_sweep(root: Path) -> Path:
    v1 = root / "sweeps" / "outputs" / "sweep_20240101_120000"
    (v1 / "tasks").mkdir(parents=True)
    (v1 / "sweep_config.yaml").write_text("sweep:\n  grid:\n    x: [1, 2]\n")
    return v1


@pytest.mark.parametrize("link_name", ["task_1", "task_001"])
def test_migrate_refuses_a_symlinked_task_folder(project, tmp_path, link_name):
    v1 = v1_sweep(project.root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "task_info.txt").write_text("Status: COMPLETED\n")
    (v1 / "tasks" / link_name).symlink_to(outside)
    result = project.cli("migrate", str(v1), expect=2)
    assert "symbolic link" in result.output
    assert sorted(p.name for p in outside.iterdir()) == ["task_info.txt"]


def test_migrate_refuses_a_symlinked_tasks_folder(project, tmp_path):
    v1 = v1_sweep(project.root)
    outside = tmp_path / "outside"
    (v1 / "tasks").rmdir()
    outside.mkdir()
    (v1 / "tasks").symlink_to(outside)
    result = project.cli("migrate", str(v1), expect=2)
    assert "symbolic link" in result.output
    assert list(outside.iterdir()) == []
