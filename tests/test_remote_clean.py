"""``hsm-snake remote clean|test|add`` for v1's habits, against the test bed's sshd hosts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import remote_name

pytestmark = pytest.mark.testbed


@pytest.fixture
def two_hosts(project, tb, monkeypatch, tmp_path):
    # Not hsmtb-h2: test_ssh.py stops its sshd to play a lost host, maybe while this runs.
    tb.need("hsmtb-h1")
    tb.need("hsmtb-lo")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    dirs = {
        alias: Path(tb.facts["ssh"]["hosts"][alias]["project_dir"]) / remote_name(tmp_path)
        for alias in ("hsmtb-h1", "hsmtb-lo")
    }
    project.write_project(
        {
            "task": {"env": {"RUN_LOG": str(project.run_log)}},  # ssh passes no environment
            # Hosts keep a finished sweep's copy (by default a successful run removes it itself).
            "distributed": {
                "keep_remote_on_success": True,
                "remotes": {a: {"project_dir": str(d), "python_path": "python3"} for a, d in dirs.items()},
            },
        }
    )
    for stale in dirs.values():  # an earlier session's test of the same name
        shutil.rmtree(stale, ignore_errors=True)
    project.dirs = dirs
    return project


def test_clean_removes_a_finished_sweeps_folders_on_every_host_it_used(two_hosts):
    project = two_hosts
    project.write_sweep({"grid": {"x": [1, 2, 3, 4]}})
    project.cli("run", "sweep.yaml", "--profile", "ssh", "--sweep-id", "first")
    project.cli("run", "sweep.yaml", "--profile", "ssh", "--sweep-id", "second")
    for host_dir in project.dirs.values():
        assert (host_dir / "sweeps" / "outputs" / "first").is_dir() and (host_dir / ".hsm-runner").is_dir()
    out = project.cli("remote", "clean", "--sweep", "first", "-y").output
    assert out.count("removed") == 2, out
    for host_dir in project.dirs.values():
        assert not (host_dir / "sweeps" / "outputs" / "first").exists()
        assert (host_dir / "sweeps" / "outputs" / "second").is_dir()  # the other sweep stays
        assert (host_dir / ".hsm-runner").is_dir() and (host_dir / "echo.py").exists()
    again = project.cli("remote", "clean", "--sweep", "first", "-y").output
    assert again.count("nothing at") == 2, again
    # The local results are untouched.
    assert len(project.completions()) == 4
    # The sweep as the last name (remote clean ALIAS SWEEP), on one host, then on the others.
    out = project.cli("remote", "clean", "-y", "hsmtb-h1", "second").output
    assert out.strip() == f"hsmtb-h1: removed {project.dirs['hsmtb-h1']}/sweeps/outputs/second", out
    assert (project.dirs["hsmtb-lo"] / "sweeps" / "outputs" / "second").is_dir()
    out = project.cli("remote", "clean", "-y", "--", "second").output
    assert "hsmtb-lo: removed" in out and "hsmtb-h1: nothing at" in out, out
    assert not (project.dirs["hsmtb-lo"] / "sweeps" / "outputs" / "second").exists()
    # v1's meaning (the whole project copy on a host), on one host only.
    out = project.cli("remote", "clean", "--everything", "-y", "--", "hsmtb-h1").output
    assert "removed" in out and not project.dirs["hsmtb-h1"].exists() and project.dirs["hsmtb-lo"].exists()


def test_clean_refuses_a_sweep_with_tasks_on_hosts_not_collected(two_hosts):
    project = two_hosts
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--profile", "ssh", "--sweep-id", "s")
    (sweep_dir,) = project.sweep_dirs()
    record = sweep_dir / ".hsm" / "remote" / "task_001.yaml"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("alias: hsmtb-h1\n")
    out = project.cli("remote", "clean", "--sweep", "s", "-y", expect=2).output
    assert "never collected" in out and "hsm-snake complete s" in out, out
    assert any((d / "sweeps" / "outputs" / "s").is_dir() for d in project.dirs.values())


def test_clean_everything_refuses_a_folder_hsm_snake_did_not_make(two_hosts, tmp_path):
    project = two_hosts
    mine = project.dirs["hsmtb-h1"]
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("precious")
    out = project.cli("remote", "clean", "--everything", "-y", "hsmtb-h1", expect=1).output
    assert "did not make it" in out and (mine / "thesis.tex").read_text() == "precious"


def test_remote_test_of_a_bare_ssh_alias_and_add_name_host(project, tb, monkeypatch):
    tb.need("hsmtb-lo")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    out = project.cli("remote", "test", "hsmtb-lo").output  # registered nowhere: ~/.ssh/config alias
    assert "not in hsm.yaml" in out and "ok   connect" in out and "hsmtb-lo is ready" in out, out
    project.cli("remote", "add", "box", "hsmtb-lo", "--disabled")
    import yaml

    assert yaml.safe_load((project.root / "hsm.yaml").read_text())["distributed"]["remotes"]["box"] == {
        "host": "hsmtb-lo",
        "enabled": False,
    }
    project.cli("remote", "add", "lo", "hsmtb-lo")
    both = project.cli("remote", "test", "lo", "hsmtb-lo").output
    assert "lo is ready" in both and "hsmtb-lo is ready" in both, both
    assert "not in hsm.yaml" not in both.split("lo is ready")[0], both
