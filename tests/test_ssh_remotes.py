"""``hsm-snake remote ...``: hsm.yaml edits (CliRunner) and host checks against the test bed's sshd."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hsm_snake.cli.main import cli

COMMENTED = """\
# my project: keep this comment
paths:
  train_script: train.py   # the script
distributed:
  strategy: least_loaded   # spread by load
"""


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("print(1)\n")
    return tmp_path


def remote(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, ["remote", *args])
    assert result.exit_code == expect, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_add_keeps_comments_and_remove_takes_it_out(here):
    (here / "hsm.yaml").write_text(COMMENTED)
    remote(
        "add",
        "gpu1",
        "--host",
        "gpu1.lab",
        "--port",
        "2200",
        "--user",
        "al",
        "--python",
        "/opt/py/bin/python",
        "--max-jobs",
        "4",
        "--project-dir",
        "~/code/p",
    )
    text = (here / "hsm.yaml").read_text()
    assert text.startswith(COMMENTED), text
    assert yaml.safe_load(text)["distributed"]["remotes"]["gpu1"] == {
        "host": "gpu1.lab",
        "port": 2200,
        "user": "al",
        "project_dir": "~/code/p",
        "python_path": "/opt/py/bin/python",
        "max_parallel_jobs": 4,
    }
    listed = remote("list").output
    assert "gpu1" in listed and "/opt/py/bin/python" in listed
    remote("remove", "gpu1")
    text = (here / "hsm.yaml").read_text()
    assert "# my project: keep this comment" in text and "# spread by load" in text and "gpu1" not in text


def test_add_creates_hsm_yaml_when_there_is_none(here):
    remote("add", "box", "--host", "box.example.org", "--conda-env", "ml")
    assert yaml.safe_load((here / "hsm.yaml").read_text()) == {
        "distributed": {"remotes": {"box": {"host": "box.example.org", "conda_env": "ml"}}}
    }


def test_mistakes_get_a_message_not_a_traceback(here):
    (here / "hsm.yaml").write_text(COMMENTED)
    remote("add", "box", "--host", "h")
    assert "exists already" in remote("add", "box", "--host", "h", expect=2).output
    out = remote("remove", "nope", expect=2).output
    assert "no remote 'nope'" in out and "known: box" in out
    assert "not both" in remote("add", "x", "--host", "h", "--python", "p", "--conda-env", "e", expect=2).output
    bare = remote("test", "nope.invalid", expect=1).output  # not registered: tried as a bare ssh alias
    assert "not in hsm.yaml" in bare and "FAIL connect" in bare, bare
    assert (here / "hsm.yaml").read_text().count("box") == 1


def test_list_and_health_without_remotes_say_how_to_add_one(here):
    assert "hsm-snake remote add" in remote("list").output
    assert "hsm-snake remote add" in remote("health").output


# -- against the test bed's sshd ------------------------------------------------------------------


@pytest.fixture
def bed_project(here, tb, monkeypatch):
    tb.need("hsmtb-h1")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    return here


def _project_dir(tb, alias: str, here: Path) -> str:
    return f"{tb.facts['ssh']['hosts'][alias]['project_dir']}/{here.name}"


@pytest.mark.testbed
def test_test_and_health_check_a_real_host(bed_project, tb):
    remote("add", "hsmtb-h1", "--host", "hsmtb-h1", "--project-dir", _project_dir(tb, "hsmtb-h1", bed_project))
    out = remote("test", "hsmtb-h1").output
    for name in ("connect", "python", "pyyaml", "rsync", "project_dir", "disk"):
        assert f"ok   {name}" in out, out
    assert "hsmtb-h1 is ready" in out
    table = remote("health").output
    assert "hsmtb-h1" in table and "healthy" in table


@pytest.mark.testbed
def test_a_wrong_host_key_is_refused_and_a_missing_python_is_explained(bed_project, tb):
    tb.need("badkey")
    remote("add", "bad", "--host", "hsmtb-badkey")
    remote("add", "nopy", "--host", "hsmtb-h1", "--python", "/nonexistent/python3")
    out = remote("test", "bad", expect=1).output
    assert "FAIL connect" in out and "host key verification failed" in out, out
    out = remote("test", "nopy", expect=1).output
    assert "ok   connect" in out and "FAIL python" in out and "/nonexistent/python3" in out and "python_path" in out
    table = remote("health", expect=1).output
    assert table.count("UNHEALTHY") == 2, table


@pytest.mark.testbed
def test_accept_new_hostkey_records_an_unknown_key_only_when_asked(here, tb, monkeypatch, tmp_path_factory):
    tb.need("hsmtb-lo")
    lo = tb.facts["ssh"]["hosts"]["hsmtb-lo"]
    private = tmp_path_factory.mktemp("ssh")
    known = private / "known_hosts"
    config = private / "config"
    key = Path(tb.facts["ssh"]["config"]).parent / "id_ed25519"
    config.write_text(
        f"Host fresh\n  HostName 127.0.0.1\n  Port 2222\n  User root\n  IdentityFile {key}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n"
    )
    monkeypatch.setenv("HSM_SSH_CONFIG", str(config))
    remote("add", "fresh", "--host", "fresh", "--project-dir", f"{lo['project_dir']}/{here.name}")
    assert "host key verification failed" in remote("test", "fresh", expect=1).output
    assert not known.exists() or known.read_text() == ""
    remote("remove", "fresh")
    remote(
        "add", "fresh", "--host", "fresh", "--project-dir", f"{lo['project_dir']}/{here.name}", "--accept-new-hostkey"
    )
    assert "[127.0.0.1]:2222" in known.read_text()
    assert "fresh is ready" in remote("test", "fresh").output


def test_a_damaged_distributed_section_is_reported_not_a_traceback(here):
    (here / "hsm.yaml").write_text("distributed: 3\n")
    assert "distributed.remotes" in remote("add", "box", "--host", "h", expect=2).output
    assert (here / "hsm.yaml").read_text() == "distributed: 3\n"
