"""Fixtures of the hostile cases: another real user of this machine, and a /tmp-like folder."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

INTRUDER = "hsm-intruder"


@dataclass(frozen=True)
class OtherUser:
    name: str
    uid: int
    gid: int

    def run(self, *command: str) -> None:
        """``command`` run as this user (a real process of another uid, not a chown)."""
        subprocess.run(["runuser", "-u", self.name, "--", *command], check=True, timeout=30)


@pytest.fixture(scope="session")
def other_user() -> OtherUser:
    """A second, unprivileged user of this machine (made with useradd when the tests run as root)."""
    try:
        entry = pwd.getpwnam(INTRUDER)
    except KeyError:
        if os.geteuid() != 0 or shutil.which("useradd") is None:
            pytest.skip("needs root (useradd) to make a second user")
        made = subprocess.run(["useradd", "--system", "--no-create-home", INTRUDER], capture_output=True, text=True)
        if made.returncode not in (0, 9):  # 9: made meanwhile by a parallel test session
            pytest.skip(f"useradd failed: {made.stderr.strip()}")
        entry = pwd.getpwnam(INTRUDER)
    if shutil.which("runuser") is None:
        pytest.skip("needs runuser to act as the second user")
    return OtherUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


@pytest.fixture
def shared_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like /tmp (world-writable, sticky) that this test alone uses, as TMPDIR."""
    tmp_path_factory.getbasetemp()  # pytest's own temporary folders stay where they are
    folder = Path(tempfile.mkdtemp(prefix="hsm-sec-tmp-", dir="/tmp"))
    folder.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.delenv("HSM_GPU_SLOT_DIR", raising=False)
    monkeypatch.delenv("HSM_GPU_DEVICES", raising=False)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
