"""The sweep's disk fills up mid-sweep (a small tmpfs mounted by the test): the error is reported,
no completed task turns failed, and `complete` finishes once there is room again."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import read_status

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root: the disk-full test must run there")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk) -> None:
    with open(disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def test_disk_full_is_reported_and_completed_tasks_stay_completed(project, small_disk):
    project.write_project({"paths": {"output_dir": str(small_disk)}})
    sweep = project.write_sweep({"grid": {"x": [1, 2, 3, 4]}})
    project.cli("run", str(sweep), "--sweep-id", "full", "--max-tasks", "2")
    sweep_dir = small_disk / "full"
    _fill(small_disk)

    result = project.cli("complete", "full", expect=None)
    assert result.exit_code != 0, result.output
    # (catch_exceptions=False: an exception of hsm-snake's own would have failed the test already;
    # the output may quote Snakemake's engine log, tracebacks included.)
    assert "No space left on device" in result.output, result.output
    assert f"({sweep_dir}: " in result.output, "names neither the file nor the full file system"
    assert "completed tasks were kept: 2 of 4 completed" in result.output, result.output
    assert "resume with: hsm-snake complete full" in result.output, result.output
    for task in ("task_001", "task_002"):
        assert read_status(sweep_dir / "tasks" / task)["status"] == "completed"
        assert (sweep_dir / "tasks" / task / ".completed").exists()
    state = json.loads(project.cli("status", "full", "--json").output)
    states = {t["task"]: t["state"] for t in state["tasks"]}
    assert states["task_001"] == states["task_002"] == "completed", states

    (small_disk / "filler").unlink()
    project.cli("complete", "full")
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 5)}
