"""hsm-ssh pieces that need no host: the pool from project_config.yaml, the host's copy of the
record, the ssh options and the remote command line."""

from __future__ import annotations

import shlex

from hsm_snake.executors.ssh import hosts, transfer

RECORD = {
    "project": {
        "distributed": {
            "local_slots": 2,
            "remotes": {
                "gpu": {
                    "host": "gpu.example.org",
                    "port": 2200,
                    "user": "al",
                    "ssh_key": "/k/id",
                    "project_dir": "/srv/p",
                    "python_path": "/opt/py/bin/python",
                    "max_parallel_jobs": 3,
                },
                "plain": {},
                "off": {"enabled": False},
            },
        }
    },
    "runner": {
        "workdir": "/home/me/proj",
        "train_script": "/home/me/proj/src/train.py",
        "python_command": ["/home/me/venv/bin/python"],
        "env": {},
    },
}


def test_pool_from_the_recorded_project_config():
    pool = {h.alias: h for h in hosts.pool_from_record(RECORD, ["/usr/bin/python3"])}
    assert set(pool) == {"gpu", "plain", "local"}
    gpu = pool["gpu"]
    assert (gpu.host, gpu.port, gpu.user, gpu.slots, gpu.python) == (
        "gpu.example.org",
        2200,
        "al",
        3,
        ["/opt/py/bin/python"],
    )
    assert pool["plain"].host == "plain" and pool["plain"].python == ["python3"] and pool["plain"].slots == 1
    assert pool["local"].slots == 2 and pool["local"].is_local


def test_the_ssh_pool_takes_slurm_and_pbs_remotes_cleanup_and_leftovers_do_not():
    remotes = RECORD["project"]["distributed"]["remotes"]
    record = {
        **RECORD,
        "project": {
            "distributed": {
                **RECORD["project"]["distributed"],
                "remotes": {
                    **remotes,
                    "hpc": {"backend": "slurm", "host": "login1"},
                    "torque": {"backend": "pbs", "host": "login2"},
                    "old": {"backend": "pbs", "enabled": False},
                },
            }
        },
    }
    pool = {h.alias: h.backend for h in hosts.pool_from_record(record, [], clusters=True)}
    assert pool == {"gpu": "ssh", "plain": "ssh", "hpc": "slurm", "torque": "pbs", "local": "ssh"}
    assert {h.alias for h in hosts.pool_from_record(record, [])} == {"gpu", "plain", "local"}


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
    task = "/srv/my project/sweeps/outputs/s1/tasks/task_001"
    words = shlex.split(transfer.runner_command(gpu, task, "gpu"))
    # The task folder arrives on stdin before the runner and leaves on stdout after it.
    assert words[:10] == ["mkdir", "-p", task, "&&", "tar", "-x", "-f", "-", "-C", task]
    assert words[11:14] == ["cd", "/srv/my project", "&&"]
    assert words[-10:-4] == ["tar", "-c", "-f", "-", "-C", task]
    runner = shlex.split(_session_script(words))
    assert "HSM_BACKEND=ssh" in runner and "HSM_JOB_ID=gpu" in runner and "HSM_HOST_ALIAS=gpu" in runner


def _session_script(words: list[str]) -> str:
    """The script the remote command runs in its own session (``setsid -w sh -c SCRIPT``)."""
    return words[words.index("setsid") + 4]


def test_gpu_slots_give_distinct_devices_and_bound_the_slots():
    host = hosts.host_from_remote("g", {"gpus": 2, "visible_gpus": [0, 1, 2, 3], "tasks_per_gpu": 1})
    assert host.slots == 2 and host.gpus_per_task == 2
    first, second = host.take_gpus(), host.take_gpus()
    assert len(set(first)) == 2 and len(set(second)) == 2 and not set(first) & set(second)
    assert not host.has_room()  # every device taken
    host.give_back_gpus(first)
    assert sorted(host.take_gpus()) == sorted(first)
    shared = hosts.host_from_remote("s", {"gpus": 1, "visible_gpus": [5], "tasks_per_gpu": 2})
    assert shared.slots == 2 and shared.take_gpus() == ["5"] and shared.take_gpus() == ["5"]
    assert hosts.host_from_remote("c", {"max_parallel_jobs": 3}).gpu_free == {}


def test_strategy_defaults_to_round_robin_and_reads_capability_based_as_least_loaded():
    assert hosts.strategy_of({}) == "round_robin"
    assert hosts.strategy_of({"project": {"distributed": {"strategy": "capability_based"}}}) == "least_loaded"


def _picker(strategy, pool):
    from types import SimpleNamespace

    from hsm_snake.executors.ssh.executor import Executor

    state = SimpleNamespace(strategy=strategy, pool=pool, next_turn=0)
    return lambda free: Executor.pick(state, free)


def test_round_robin_takes_hosts_in_turn_and_least_loaded_the_emptiest():
    a, b = hosts.Host("a", "a", slots=4), hosts.Host("b", "b", slots=1)
    pick = _picker("round_robin", [a, b])
    assert [pick([a, b]).alias for _ in range(4)] == ["a", "b", "a", "b"]
    assert pick([a]).alias == "a"
    a.running = 1
    pick = _picker("least_loaded", [a, b])
    assert pick([a, b]).alias == "b"


def test_probe_problems_name_the_fix():
    probe = hosts.Probe(
        python="3.11.2", yaml=None, directory="/srv/p", free_bytes=int(0.5e9), writable=False, rsync=None
    )
    text = "; ".join(probe.problems(min_free_gb=1))
    assert "pip install pyyaml" in text and "not writable" in text and "rsync" in text and "0.50 GB free" in text
    assert "rsync" not in "; ".join(probe.problems(min_free_gb=0, copies_files=False))


def test_the_gpu_devices_travel_in_the_environment_of_the_remote_command():
    host = hosts.host_from_remote("g", {"project_dir": "/srv/p"})
    words = shlex.split(_session_script(shlex.split(transfer.runner_command(host, "/srv/p/t", "g", ["0", "3"]))))
    assert "HSM_GPU_DEVICES=0,3" in words
    shared = hosts.host_from_remote("s", {"shared_fs": True})
    command = transfer.runner_command(shared, "/data/sweep/tasks/task_001", "s", None, "/data/proj")
    assert shlex.split(command)[:2] == ["cd", "/data/proj"] and ".hsm-runner" not in command


def test_path_map_maps_the_longest_prefix_only():
    from hsm_snake.layout.paths import map_path

    path_map = {"/home/u": "/mnt/home/u", "/home/u/proj": "/data/proj"}
    assert map_path("/home/u/x", path_map) == "/mnt/home/u/x"
    assert map_path("/home/u/proj/train.py", path_map) == "/data/proj/train.py"
    assert map_path("/home/user2/x", path_map) == "/home/user2/x"
    assert map_path("/home/u", path_map) == "/mnt/home/u"


def _project_error(tmp_path, remote):
    import pytest
    import yaml

    from hsm_snake.config.project import load_project
    from hsm_snake.errors import ConfigError

    (tmp_path / "hsm.yaml").write_text(yaml.safe_dump({"distributed": {"remotes": {"nfs": remote}}}))
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path / "hsm.yaml", tmp_path)
    return caught.value


def test_path_map_needs_absolute_prefixes_and_a_shared_fs_host(tmp_path):
    relative = _project_error(tmp_path, {"shared_fs": True, "path_map": {"/home/u": "mnt/home/u"}})
    assert "'mnt/home/u' is not an absolute path" in str(relative) and "path_map" in str(relative)
    assert relative.line == 5
    copied = _project_error(tmp_path, {"path_map": {"/home/u": "/mnt/home/u"}})
    assert "path_map needs shared_fs: true" in str(copied) and "distributed.remotes.nfs.path_map" in str(copied)
