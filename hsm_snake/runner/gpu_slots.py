"""Device slots: which GPUs a task may use on this machine, held with kernel locks.

A machine with ``visible_gpus`` devices and ``tasks_per_gpu`` tasks per device has
``len(visible_gpus) * tasks_per_gpu`` device slots. A task asking for k GPUs holds one slot on each
of k distinct devices. A slot is a non-blocking ``flock`` on ``gpu<device>.slot<n>.lock`` in a
per-user, per-machine folder, so two sweeps on one workstation share the same slots. The kernel
drops a flock when the last fd of its open file closes, so a runner killed with SIGKILL frees its
slots; nothing has to be cleaned up. The fds are close-on-exec (Python's default), so the user's
script does not inherit them: a slot lives exactly as long as the runner that holds it.

Standard library only (runs on compute nodes and remote hosts).
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hsm_snake.errors import HsmError

# How long a runner waits for free slots (held by another sweep) before the task fails.
DEFAULT_WAIT_S = 600.0
POLL_S = 0.5


class NoFreeSlots(HsmError):
    """Not enough devices had a free slot within the waiting time."""


class UnsafeSlotDir(HsmError):
    """The slot folder is not this user's own private folder (another user made it first?)."""


@dataclass
class HeldSlots:
    """Slots on distinct devices, held until :meth:`release` (or the process dies)."""

    devices: list[int]
    fds: list[int] = field(default_factory=list)

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def slot_dir() -> Path:
    """The folder of the lock files: ``$HSM_GPU_SLOT_DIR``, else ``/tmp/hsm-gpu-slots-<uid>``.

    Not ``$XDG_RUNTIME_DIR``: it is unset under cron, nohup and plain ssh commands, and every
    runner of the machine's user must find the same folder.
    """
    configured = os.environ.get("HSM_GPU_SLOT_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"hsm-gpu-slots-{os.getuid()}"


_HOW_TO_FIX = "remove it, or set HSM_GPU_SLOT_DIR to a folder of your own"


def open_slot_dir(folder: Path) -> int:
    """A descriptor of ``folder``, made if missing, once it is known to be private.

    /tmp is everyone's: the folder is used only if it is a real folder (O_NOFOLLOW: not a
    symlink) of this user that nobody else may write. Another user who made it first could
    otherwise hold every slot or, with a symlink, have lock files made in a folder of their
    choice. Lock files are then opened relative to this descriptor.
    """
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise UnsafeSlotDir(f"the GPU slot folder {folder} cannot be used: {error.strerror} ({_HOW_TO_FIX})") from None
    try:
        _check_private(fd, f"the GPU slot folder {folder}")
    except UnsafeSlotDir:
        os.close(fd)
        raise
    return fd


def _check_private(fd: int, what: str) -> None:
    info = os.fstat(fd)
    if info.st_uid != os.getuid():
        raise UnsafeSlotDir(f"{what} belongs to user id {info.st_uid}, not to you ({_HOW_TO_FIX})")
    if info.st_mode & 0o022:
        raise UnsafeSlotDir(f"{what} may be written by other users (mode {info.st_mode & 0o777:o}; {_HOW_TO_FIX})")


def _try_lock(folder_fd: int, name: str) -> int | None:
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600, dir_fd=folder_fd)
    except OSError as error:
        raise UnsafeSlotDir(f"the GPU slot lock {name} cannot be opened: {error.strerror} ({_HOW_TO_FIX})") from None
    try:
        _check_private(fd, f"the GPU slot lock {name}")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except UnsafeSlotDir:
        os.close(fd)
        raise
    return fd


def try_acquire(devices: list[int], tasks_per_gpu: int, count: int) -> HeldSlots | None:
    """One free slot on each of ``count`` distinct devices, least loaded first; None if impossible."""
    folder_fd = open_slot_dir(slot_dir())
    free: dict[int, list[int]] = {device: [] for device in devices}
    try:
        for device in devices:
            for n in range(tasks_per_gpu):
                if (fd := _try_lock(folder_fd, f"gpu{device}.slot{n}.lock")) is not None:
                    free[device].append(fd)
        # Most free slots = least loaded; ties go to the lower device id (the order of visible_gpus).
        ranked = sorted((d for d in devices if free[d]), key=lambda d: -len(free[d]))
        chosen = sorted(ranked[:count], key=devices.index)
        held = HeldSlots(chosen, [free[d].pop(0) for d in chosen]) if len(chosen) == count else None
    finally:
        os.close(folder_fd)
        for fds in free.values():
            for fd in fds:
                os.close(fd)
    return held


def acquire(devices: list[int], tasks_per_gpu: int, count: int, wait_s: float = DEFAULT_WAIT_S) -> HeldSlots:
    """Wait (up to ``wait_s``) for slots on ``count`` distinct devices."""
    if count > len(devices):
        raise NoFreeSlots(f"the task asks for {count} GPU(s) but only {len(devices)} device(s) are visible")
    deadline = time.monotonic() + wait_s
    while True:
        held = try_acquire(devices, tasks_per_gpu, count)
        if held is not None:
            return held
        if time.monotonic() >= deadline:
            raise NoFreeSlots(
                f"no {count} of the GPUs {devices} had a free slot (of {tasks_per_gpu} per GPU) "
                f"for {wait_s:.0f} s; other sweeps of this user hold them (locks in {slot_dir()})"
            )
        time.sleep(POLL_S)


@functools.cache
def detect_devices() -> list[int]:
    """GPU indices ``nvidia-smi -L`` lists; none when it is absent or fails (asked once per process)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return parse_device_list(done.stdout)


def parse_device_list(text: str) -> list[int]:
    """``GPU 0: NVIDIA A100 (UUID: ...)`` lines -> [0, ...]."""
    devices = []
    for line in text.splitlines():
        head = line.split(":", 1)[0].strip()
        if head.startswith("GPU ") and head[4:].strip().isdigit():
            devices.append(int(head[4:]))
    return devices
