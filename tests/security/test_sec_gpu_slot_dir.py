"""Another user of the machine cannot take over the GPU slot folder in /tmp."""

from __future__ import annotations

import os

import hostile_support
import pytest
from conftest import read_status

from hsm_snake.runner import gpu_slots

other_user, shared_tmp = hostile_support.other_user, hostile_support.shared_tmp


def slot_folder(tmp: os.PathLike) -> str:
    return os.path.join(tmp, f"hsm-gpu-slots-{os.getuid()}")


def our_slot_folder(tmp: os.PathLike, mode: int = 0o700) -> str:
    """The slot folder, made by this user with ``mode`` whatever the umask."""
    folder = slot_folder(tmp)
    os.mkdir(folder, 0o700)
    os.chmod(folder, mode)
    return folder


def test_a_slot_folder_another_user_made_first_is_refused(shared_tmp, other_user):
    folder = slot_folder(shared_tmp)
    other_user.run("mkdir", "-m", "777", folder)
    with pytest.raises(gpu_slots.UnsafeSlotDir, match=f"belongs to user id {other_user.uid}"):
        gpu_slots.try_acquire([0, 1], 1, 1)
    assert os.listdir(folder) == []


def test_a_private_slot_folder_of_another_user_is_refused_not_a_permission_error(shared_tmp, other_user):
    other_user.run("mkdir", "-m", "700", slot_folder(shared_tmp))
    with pytest.raises(gpu_slots.UnsafeSlotDir, match="not to you"):
        gpu_slots.acquire([0], 1, 1, wait_s=0)


def test_a_symlinked_slot_folder_is_never_followed(shared_tmp, other_user):
    target = shared_tmp / "theirs"
    other_user.run("mkdir", "-m", "777", str(target))
    other_user.run("ln", "-s", str(target), slot_folder(shared_tmp))
    with pytest.raises(gpu_slots.UnsafeSlotDir, match="cannot be used"):
        gpu_slots.try_acquire([0], 1, 1)
    assert os.listdir(target) == []


def test_a_slot_folder_others_may_write_is_refused(shared_tmp):
    our_slot_folder(shared_tmp, 0o777)
    with pytest.raises(gpu_slots.UnsafeSlotDir, match="may be written by other users"):
        gpu_slots.try_acquire([0], 1, 1)


def test_a_lock_file_another_user_planted_is_refused(shared_tmp, other_user):
    lock = os.path.join(our_slot_folder(shared_tmp), "gpu0.slot0.lock")
    open(lock, "w").close()
    os.chown(lock, other_user.uid, other_user.gid)
    with pytest.raises(gpu_slots.UnsafeSlotDir, match="slot lock"):
        gpu_slots.try_acquire([0], 1, 1)


def test_a_symlinked_lock_file_is_never_followed(shared_tmp, tmp_path):
    os.symlink(tmp_path / "elsewhere", os.path.join(our_slot_folder(shared_tmp), "gpu0.slot0.lock"))
    with pytest.raises(gpu_slots.UnsafeSlotDir):
        gpu_slots.try_acquire([0], 1, 1)
    assert not (tmp_path / "elsewhere").exists()


def test_a_task_fails_at_once_with_the_reason_when_the_folder_is_not_ours(project, shared_tmp, other_user):
    other_user.run("mkdir", "-m", "777", slot_folder(shared_tmp))
    project.write_project({"local": {"gpus": 1, "visible_gpus": [0, 1]}})
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", expect=1)
    status = read_status(project.sweep_dirs()[0] / "tasks" / "task_001")
    assert status["error_category"] == "launch_error"
    assert "belongs to user id" in status["error_summary"]
    assert project.runs() == []
