"""GPU device slots on the local backend, with a fake device list (no GPU needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from background import kill_9_once
from conftest import read_status

from hsm_snake.runner import gpu_slots
from hsm_snake.runner.task import assign_gpus

# Records CUDA_VISIBLE_DEVICES with a start line and an end line; hold=1 waits for <log>.release.
GPU_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    args = dict(arg.partition("=")[::2] for arg in sys.argv[1:])
    log = Path(os.environ["GPU_LOG"])
    def record(event):
        with open(log, "a") as out:
            out.write(json.dumps({"task": os.environ["HSM_SWEEP_ID"] + "/" + os.environ["HSM_TASK_ID"], "event": event, "time": time.time(),
                                  "devices": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\\n")
    record("start")
    time.sleep(float(args.get("sleep") or 0))
    while args.get("hold") == "1" and not Path(str(log) + ".release").exists():
        time.sleep(0.05)
    record("end")
    """
)


@pytest.fixture
def gpu_project(project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (project.root / "gpu.py").write_text(GPU_SCRIPT)
    project.write_project(
        {
            "paths": {"train_script": "gpu.py"},
            "local": {"max_parallel": 8, "gpus": 1, "visible_gpus": [0, 1, 2], "tasks_per_gpu": 2},
        }
    )
    monkeypatch.setenv("GPU_LOG", str(tmp_path / "gpu.log"))
    monkeypatch.setenv("HSM_GPU_SLOT_DIR", str(tmp_path / "slots"))
    monkeypatch.delenv("HSM_GPU_DEVICES", raising=False)
    return project


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def assert_within_slots(records: list[dict], per_device: int, at_once: int) -> None:
    """Replay the start/end lines: never more than ``per_device`` tasks on a device, ``at_once`` in all."""
    running: dict[str, str] = {}
    for record in sorted(records, key=lambda r: (r["time"], r["event"] == "start")):
        if record["event"] == "end":
            running.pop(record["task"], None)
            continue
        running[record["task"]] = record["devices"]
        assert len(running) <= at_once, running
        for device in {"0", "1", "2"}:
            assert sum(device in devices.split(",") for devices in running.values()) <= per_device, running


def test_tasks_share_a_device_at_most_tasks_per_gpu_and_six_run_at_once(gpu_project, tmp_path):
    sweep = gpu_project.write_sweep({"grid": {"sleep": [0.6], "x": list(range(12))}})
    gpu_project.cli("run", str(sweep))
    records = events(tmp_path / "gpu.log")
    assert len([r for r in records if r["event"] == "end"]) == 12
    assert {r["devices"] for r in records} <= {"0", "1", "2"}
    assert_within_slots(records, per_device=2, at_once=6)
    (sweep_dir,) = gpu_project.sweep_dirs()
    status = read_status(sweep_dir / "tasks" / "task_001")
    assert status["cuda_visible_devices"] in {"0", "1", "2"}


def test_slots_come_back_after_sigkill_and_complete_runs_the_rest(gpu_project, background, tmp_path):
    log = tmp_path / "gpu.log"
    sweep = gpu_project.write_sweep({"grid": {"hold": [1], "x": list(range(8))}})
    proc = background("run", str(sweep))
    sweep_dir = kill_9_once(gpu_project, proc, lambda: len(events(log)) >= 6, "six held tasks to start")
    first_run = events(log)
    assert len(first_run) == 6 and all(r["event"] == "start" for r in first_run)
    assert_within_slots(first_run, per_device=2, at_once=6)

    # The kernel dropped the killed runners' locks: all six slots are free at once.
    held = [gpu_slots.try_acquire([0, 1, 2], 2, 1) for _ in range(6)]
    assert all(held) and sorted(h.devices[0] for h in held) == [0, 0, 1, 1, 2, 2]
    for slots in held:
        slots.release()

    Path(str(log) + ".release").touch()
    result = gpu_project.cli("complete", sweep_dir.name)
    assert "8 completed" in result.output
    assert_within_slots(events(log)[6:], per_device=2, at_once=6)


@pytest.mark.parametrize("asked_in", ["hsm.yaml local.gpus", "sweep.yaml resources.gpus"])
def test_a_task_asking_for_two_gpus_gets_two_distinct_devices(gpu_project, tmp_path, asked_in):
    in_sweep = asked_in.startswith("sweep")
    gpu_project.write_project(
        {
            "paths": {"train_script": "gpu.py"},
            "local": {"max_parallel": 4, "gpus": 1 if in_sweep else 2, "visible_gpus": [0, 1, 2]},
        }
    )
    resources = {"resources": {"gpus": 2}} if in_sweep else {}
    sweep = gpu_project.write_sweep({"grid": {"sleep": [0.3], "x": list(range(3))}, **resources})
    gpu_project.cli("run", str(sweep))
    records = events(tmp_path / "gpu.log")
    assert len(records) == 6
    for record in records:
        devices = record["devices"].split(",")
        assert len(devices) == 2 and len(set(devices)) == 2 and set(devices) <= {"0", "1", "2"}
    assert_within_slots(records, per_device=1, at_once=1)


def test_a_task_asking_for_no_gpu_sees_none(gpu_project, tmp_path):
    gpu_project.write_project({"paths": {"train_script": "gpu.py"}, "local": {"gpus": 0, "visible_gpus": [0, 1]}})
    sweep = gpu_project.write_sweep({"grid": {"x": [1]}})
    gpu_project.cli("run", str(sweep))
    assert {r["devices"] for r in events(tmp_path / "gpu.log")} == {""}


def test_least_loaded_devices_first_and_distinct(tmp_path, monkeypatch):
    monkeypatch.setenv("HSM_GPU_SLOT_DIR", str(tmp_path))
    first = gpu_slots.try_acquire([0, 1, 2], 2, 1)
    assert first.devices == [0]
    second = gpu_slots.try_acquire([0, 1, 2], 2, 2)
    assert second.devices == [1, 2]
    # Device 0 has one free slot, 1 and 2 one each: a two-GPU task still gets two distinct devices.
    third = gpu_slots.try_acquire([0, 1, 2], 2, 2)
    assert third.devices == [0, 1]
    assert gpu_slots.try_acquire([0, 1, 2], 2, 2) is None
    for held in (first, second, third):
        held.release()
    assert gpu_slots.try_acquire([0, 1, 2], 2, 3).devices == [0, 1, 2]


def test_kill_9_of_a_holder_frees_its_slot(tmp_path, monkeypatch):
    monkeypatch.setenv("HSM_GPU_SLOT_DIR", str(tmp_path))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hsm_snake.runner import gpu_slots; import time; h = gpu_slots.acquire([0], 1, 1); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert gpu_slots.try_acquire([0], 1, 1) is None
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert gpu_slots.try_acquire([0], 1, 1).devices == [0]


def test_too_many_gpus_per_task_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HSM_GPU_SLOT_DIR", str(tmp_path))
    with pytest.raises(gpu_slots.NoFreeSlots, match="asks for 3 GPU"):
        gpu_slots.acquire([0, 1], 1, 3)


def test_devices_assigned_by_an_executor_are_used_as_they_are(monkeypatch):
    settings = {"gpus": {"per_task": 1, "visible": [0, 1], "tasks_per_gpu": 1}}
    monkeypatch.setenv("HSM_GPU_DEVICES", "3,5")
    assert assign_gpus(settings, "ssh") == ("3,5", None)
    monkeypatch.delenv("HSM_GPU_DEVICES")
    assert assign_gpus(settings, "slurm") == (None, None)
    assert assign_gpus({"gpus": {"per_task": 0, "visible": [0], "tasks_per_gpu": 1}}, "local") == ("", None)
    assert assign_gpus({"gpus": {"per_task": 1, "visible": [], "tasks_per_gpu": 1}}, "local") == (None, None)


def test_nvidia_smi_list_is_parsed():
    text = "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2)\n"
    assert gpu_slots.parse_device_list(text) == [0, 1]
    assert gpu_slots.parse_device_list("No devices were found") == []


def test_two_sweeps_at_once_share_the_machines_slots(gpu_project, background, tmp_path):
    gpu_project.write_project(
        {"paths": {"train_script": "gpu.py"}, "local": {"max_parallel": 2, "gpus": 1, "visible_gpus": [0]}}
    )
    first = gpu_project.write_sweep({"grid": {"sleep": [0.4], "x": [1, 2]}}, "a.yaml")
    second = gpu_project.write_sweep({"grid": {"sleep": [0.4], "y": [1, 2]}}, "b.yaml")
    runs = [background("run", str(first)), background("run", str(second))]
    for proc in runs:
        assert proc.wait(timeout=300) == 0, proc.stdout.read()
    records = events(tmp_path / "gpu.log")
    assert len(records) == 8 and {r["devices"] for r in records} == {"0"}
    assert_within_slots(records, per_device=1, at_once=1)
