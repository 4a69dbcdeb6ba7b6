"""The SSH pool backend (executor hsm-ssh) against the test bed's real sshd hosts.

The hosts hsmtb-h1/hsmtb-h2 live in network namespaces of this machine (same file system, own
addresses); the executor still treats them as foreign: everything goes over ssh + rsync into
each host's project_dir. ssh reads the test bed's config through HSM_SSH_CONFIG (ssh -F).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from background import held_tasks_started, start_held_run, wait_for
from conftest import ARGV_APP, COMPLETED_TASK_FILES, QUOTING_HOSTILE, read_status, remote_name, task_files
from procs import live_processes

pytestmark = pytest.mark.testbed

START_SH = Path(__file__).parent / "testbed" / "start.sh"

HOSTILE = [*QUOTING_HOSTILE, "$(id)", "-x", "--flag=1"]


@pytest.fixture
def ssh_project(project, tb, monkeypatch, tmp_path):
    tb.need("hsmtb-h1")
    tb.need("hsmtb-h2")
    monkeypatch.setenv("HSM_SSH_CONFIG", tb.facts["ssh"]["config"])
    hosts = tb.facts["ssh"]["hosts"]

    def configure(aliases=("hsmtb-h1", "hsmtb-h2"), slots=2, remote=None, **extra):
        remotes = {}
        for alias in aliases:
            base = (hosts.get(alias) or hosts["hsmtb-lo"])["project_dir"]
            remotes[alias] = {
                "project_dir": f"{base}/{remote_name(tmp_path)}",
                "max_parallel_jobs": slots,
                "python_path": "python3",
                **(remote or {}),
            }
        config = {
            # The remote script finds the run log through the task's environment (ssh passes none).
            "task": {"env": {"RUN_LOG": str(project.run_log)}},
            "distributed": {"remotes": remotes},
        }
        for key, value in extra.items():
            config.setdefault(key, {}).update(value)
        project.write_project(config)

    project.configure_ssh = configure
    configure()
    return project


def ssh_log(sweep_dir) -> str:
    return (sweep_dir / "logs" / "sources" / "ssh.log").read_text()


def test_six_tasks_over_two_hosts_with_the_local_layout(ssh_project):
    project = ssh_project
    project.write_sweep({"grid": {"x": list(range(6)), "sleep": [1]}})
    started = time.monotonic()
    result = project.cli("run", "sweep.yaml", "--profile", "ssh")
    took = time.monotonic() - started
    assert "6 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    statuses = {f"task_{i:03d}": read_status(sweep_dir / "tasks" / f"task_{i:03d}") for i in range(1, 7)}
    assert {s["backend"] for s in statuses.values()} == {"ssh"}
    assert {s["status"] for s in statuses.values()} == {"completed"}
    assert {s["job_id"] for s in statuses.values()} == {"hsmtb-h1", "hsmtb-h2"}
    assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 7)}
    for name in statuses:
        assert task_files(sweep_dir / "tasks" / name) == COMPLETED_TASK_FILES
        assert (sweep_dir / "tasks" / name / "results" / "argv.json").exists()
    log = ssh_log(sweep_dir)
    assert "host hsmtb-h1: ok" in log and "host hsmtb-h2: ok" in log
    for name, status in statuses.items():
        assert f"{name}\t{status['job_id']}\tcompleted" in log
    # 2 hosts x 2 slots, 1 s tasks: never more than 2 at once on a host.
    assert took < 60, took


def test_hostile_values_arrive_byte_exact_on_the_remote(ssh_project):
    project = ssh_project
    (project.root / "app.py").write_text(ARGV_APP)
    project.configure_ssh(aliases=("hsmtb-h1",), paths={"train_script": "app.py"})
    project.write_sweep({"grid": {f"v{i}": [value] for i, value in enumerate(HOSTILE)}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh")
    assert "1 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    seen = json.loads((sweep_dir / "tasks" / "task_001" / "results" / "seen.json").read_text(encoding="utf-8"))
    assert seen == [f"v{i}={value}" for i, value in enumerate(HOSTILE)]
    assert read_status(sweep_dir / "tasks" / "task_001")["job_id"] == "hsmtb-h1"


def test_a_wrong_host_key_is_refused_with_a_clear_message(ssh_project, tb):
    tb.need("badkey")
    project = ssh_project
    project.configure_ssh(aliases=("hsmtb-badkey",))
    project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh", expect=None)
    assert result.exit_code != 0, result.output
    (sweep_dir,) = project.sweep_dirs()
    log = ssh_log(sweep_dir)
    assert "host hsmtb-badkey: UNUSABLE" in log and "host key verification failed" in log, log
    assert project.runs() == []


def test_an_unreachable_host_gets_no_tasks(ssh_project, tb):
    tb.need("badkey")
    project = ssh_project
    project.configure_ssh(aliases=("hsmtb-h1", "hsmtb-badkey"))
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh")
    assert "3 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    assert {read_status(sweep_dir / "tasks" / f"task_00{i}")["job_id"] for i in (1, 2, 3)} == {"hsmtb-h1"}
    assert "host hsmtb-badkey: UNUSABLE" in ssh_log(sweep_dir)


def test_ctrl_c_kills_the_remote_tasks_and_records_cancelled(ssh_project, background):
    project = ssh_project
    project.configure_ssh(aliases=("hsmtb-h1",))
    proc, sweep_dir = start_held_run(project, background, "--profile", "ssh")
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, out
    for task in ("task_001", "task_002"):
        status = read_status(sweep_dir / "tasks" / task)
        assert status["status"] == "cancelled", status
    # No remote runner or script survives (the hosts share this machine's process table).
    time.sleep(0.5)
    leftovers = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, str(sweep_dir.name))]
    assert leftovers == [], leftovers


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return text in cmd and "hsm_snake.runner" in cmd.split("\0") and state != "Z"


def _master_pid(tb, control_dir: str, alias: str) -> int:
    done = tb.run(
        "ssh", "-F", tb.facts["ssh"]["config"], "-o", f"ControlPath={control_dir}/%C", "-O", "check", alias, check=False
    )
    text = done.stdout + done.stderr
    assert "pid=" in text, text
    return int(text.split("pid=")[1].split(")")[0])


def _kill_groups_of(text: str) -> None:
    """Kill what runs under a host's project dir (the 'dead' host's processes; same process table)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit() and pid != str(os.getpid()):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
            except OSError:
                continue
            argv = cmd.split("\0")
            # The runner itself (python -m hsm_snake.runner DIR), not the local ssh client whose
            # remote command line names it too (its group is the engine's).
            if text in cmd and "hsm_snake.runner" in argv and os.path.basename(argv[0]) != "ssh":
                try:
                    os.killpg(os.getpgid(int(pid)), signal.SIGKILL)
                except OSError:
                    pass


def restart_sshd(tb) -> None:
    """Bring back the sshd a test stopped (start.sh is idempotent). Its exit status is not checked:
    other parts (a Slurm busy with other tests' jobs) may fail its smoke checks; the ssh check after
    it is what counts here."""
    tb.run("bash", str(START_SH), timeout=180, check=False)


def test_a_host_lost_mid_run_is_retried_on_the_other_host(ssh_project, tb, background, tmp_path):
    project = ssh_project
    project.configure_ssh(slots=1)
    text = (project.root / "hsm.yaml").read_text()
    (project.root / "hsm.yaml").write_text(text + "retries: 1\n")
    project.write_sweep({"grid": {"hold": [1], "x": [1, 2, 3, 4]}})
    h2 = tb.facts["ssh"]["hosts"]["hsmtb-h2"]
    proc = background("run", "sweep.yaml", "--profile", "ssh")
    wait_for(held_tasks_started(project, 2), timeout=60, what="a task on each host")
    (sweep_dir,) = project.sweep_dirs()
    log = ssh_log(sweep_dir)
    control_dir = log.split("ssh control dir ")[1].split(",")[0].split()[0]
    lost_task = next(line.split("\t")[1] for line in log.splitlines() if line.endswith("\thsmtb-h2\tstart"))
    sshd_pid = int((Path(h2["sshd_log"]).parent / "sshd.pid").read_text().strip())
    try:
        # h2 "dies": its sshd stops taking connections, our connection to it drops, its processes go.
        os.kill(sshd_pid, signal.SIGTERM)
        os.kill(_master_pid(tb, control_dir, "hsmtb-h2"), signal.SIGKILL)
        _kill_groups_of(f"{h2['project_dir']}/{remote_name(tmp_path)}/")
        wait_for(
            lambda: f"{lost_task}\thsmtb-h2\thost_lost" in ssh_log(sweep_dir),
            timeout=60,
            what="the lost task to be reported",
        )
        project.release()
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out
        assert "4 completed" in out, out
        assert project.completions() == {f"task_{i:03d}": 1 for i in range(1, 5)}
        status = read_status(sweep_dir / "tasks" / lost_task)
        assert status["job_id"] == "hsmtb-h1" and status["attempt"] == 2, status
        log = ssh_log(sweep_dir)
        assert "host hsmtb-h2: LOST" in log
        assert "host hsmtb-h2: UNUSABLE" in log  # the retry round's health check
        starts_after_loss = log.split("host hsmtb-h2: LOST")[1]
        assert "\thsmtb-h2\tstart" not in starts_after_loss
    finally:
        restart_sshd(tb)
        assert tb.ssh("hsmtb-h2", "true").returncode == 0


def test_a_failing_remote_task_is_pulled_back_with_its_record(ssh_project):
    project = ssh_project
    project.configure_ssh(aliases=("hsmtb-h1",))
    project.write_sweep({"grid": {"fail": [0, 3]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh", expect=None)
    assert "1 completed" in result.output and "1 failed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    status = read_status(sweep_dir / "tasks" / "task_002")
    assert status["status"] == "failed" and status["exit_code"] == 3 and status["job_id"] == "hsmtb-h1"
    assert "about to fail" in (sweep_dir / "tasks" / "task_002" / "stderr.log").read_text()
    assert "task_002\thsmtb-h1\tfailed" in ssh_log(sweep_dir)


# Starts a helper process in its own process group, then sleeps: a walltime must stop both.
SLOW_WITH_HELPER = """
import os, subprocess, sys, time
args = dict(arg.partition("=")[::2] for arg in sys.argv[1:])
helper = subprocess.Popen(["sleep", "300"])
with open(os.environ["RUN_LOG"] + ".helpers", "a") as log:
    log.write(f"{helper.pid}\\n")
time.sleep(float(args["sleep"]))
helper.kill()
"""


def test_a_task_over_its_walltime_on_a_host_is_stopped_there_and_retried_with_more_time(ssh_project):
    project = ssh_project
    (project.root / "slow.py").write_text(SLOW_WITH_HELPER)
    project.configure_ssh(
        aliases=("hsmtb-h1",), paths={"train_script": "slow.py"}, distributed={"walltime": "00:00:02"}
    )
    (project.root / "hsm.yaml").write_text((project.root / "hsm.yaml").read_text() + "retries: 1\n")
    project.write_sweep({"grid": {"sleep": [3]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh")
    (sweep_dir,) = project.sweep_dirs()
    task = sweep_dir / "tasks" / "task_001"
    first = read_status(task / "attempts" / "1")
    assert first["error_category"] == "timeout" and first["host"], first
    assert "walltime of 2 s" in first["error_summary"], first
    final = read_status(task)
    assert final["status"] == "completed" and final["attempt"] == 2, (final, result.output)
    assert "retry 1" in (sweep_dir / "logs" / "sweep.log").read_text()
    helpers = [int(pid) for pid in Path(str(project.run_log) + ".helpers").read_text().split()]
    assert len(helpers) == 2
    live = {pid for pid, _ in live_processes()}
    assert not live & set(helpers), "the timed-out attempt's helper process outlived its walltime"


def test_local_slots_run_next_to_the_remotes(ssh_project):
    project = ssh_project
    project.configure_ssh(aliases=("hsmtb-h1",), slots=1)
    text = (project.root / "hsm.yaml").read_text()
    (project.root / "hsm.yaml").write_text(text.replace("distributed:\n", "distributed:\n  local_slots: 1\n", 1))
    project.write_sweep({"grid": {"x": [1, 2, 3, 4], "sleep": [0.5]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh")
    assert "4 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    where = {read_status(sweep_dir / "tasks" / f"task_00{i}")["job_id"] for i in range(1, 5)}
    assert where == {"hsmtb-h1", "local"}


GPU_APP = """
import json, os, sys, time
start = time.time()
time.sleep(1)
out = os.path.join(os.environ["HSM_RESULTS_DIR"], "gpus.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump({"devices": os.environ.get("HSM_GPU_DEVICES"), "start": start, "end": time.time()}, f)
"""


def test_gpu_slots_hand_each_task_distinct_devices_never_shared_at_once(ssh_project):
    project = ssh_project
    (project.root / "app.py").write_text(GPU_APP)
    # 4 fake devices, 2 per task: 2 tasks at once (max_parallel_jobs 0 = as the GPU slots allow).
    project.configure_ssh(
        aliases=("hsmtb-h1",),
        slots=0,
        paths={"train_script": "app.py"},
        remote={"gpus": 2, "visible_gpus": [0, 1, 2, 3]},
    )
    project.write_sweep({"grid": {"x": list(range(6))}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh")
    assert "6 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    seen = [
        json.loads((sweep_dir / "tasks" / f"task_{i:03d}" / "results" / "gpus.json").read_text()) for i in range(1, 7)
    ]
    for run in seen:
        devices = run["devices"].split(",")
        assert len(set(devices)) == 2 and set(devices) <= {"0", "1", "2", "3"}, run
    for i, one in enumerate(seen):
        for other in seen[i + 1 :]:
            if one["start"] < other["end"] and other["start"] < one["end"]:
                assert not set(one["devices"].split(",")) & set(other["devices"].split(",")), (one, other)
    assert "start gpus " in (sweep_dir / "logs" / "sources" / "hsmtb-h1.log").read_text()


def test_a_shared_fs_host_writes_straight_into_the_sweep(ssh_project, tb, tmp_path):
    tb.need("hsmtb-lo")
    project = ssh_project
    project.configure_ssh(aliases=("hsmtb-lo",), remote={"shared_fs": True})
    project.write_sweep({"grid": {"x": [1, 2, 3]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh")
    assert "3 completed" in result.output, result.output
    (sweep_dir,) = project.sweep_dirs()
    assert {read_status(sweep_dir / "tasks" / f"task_00{i}")["job_id"] for i in (1, 2, 3)} == {"hsmtb-lo"}
    # Nothing was pushed: the host's project_dir for this test was never created.
    assert not Path(f"{tb.facts['ssh']['hosts']['hsmtb-lo']['project_dir']}/{remote_name(tmp_path)}").exists()
    per_host = (sweep_dir / "logs" / "sources" / "hsmtb-lo.log").read_text()
    assert per_host.count("\tstart") == 3 and per_host.count("\tcompleted") == 3


def test_a_host_short_of_disk_space_gets_no_tasks(ssh_project):
    project = ssh_project
    project.configure_ssh(distributed={"min_free_gb": 1e9})
    project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("run", "sweep.yaml", "--profile", "ssh", expect=None)
    assert result.exit_code != 0, result.output
    (sweep_dir,) = project.sweep_dirs()
    log = ssh_log(sweep_dir)
    assert "host hsmtb-h1: UNUSABLE" in log and "GB free in" in log and "min_free_gb: 1e+09" in log, log
    assert project.runs() == []


def test_a_lost_host_rejoins_once_healthy_again(ssh_project, tb, background, tmp_path):
    project = ssh_project
    project.configure_ssh(slots=1, distributed={"health_interval": 1})
    project.write_sweep({"grid": {"hold": [1], "x": [1, 2, 3, 4]}})
    h2 = tb.facts["ssh"]["hosts"]["hsmtb-h2"]
    proc = background("run", "sweep.yaml", "--profile", "ssh")
    try:
        wait_for(held_tasks_started(project, 2), timeout=60, what="a task on each host")
        (sweep_dir,) = project.sweep_dirs()
        log = ssh_log(sweep_dir)
        control_dir = log.split("ssh control dir ")[1].split(",")[0].split()[0]
        sshd_pid = int((Path(h2["sshd_log"]).parent / "sshd.pid").read_text().strip())
        os.kill(sshd_pid, signal.SIGTERM)
        os.kill(_master_pid(tb, control_dir, "hsmtb-h2"), signal.SIGKILL)
        _kill_groups_of(f"{h2['project_dir']}/{remote_name(tmp_path)}/")
        # Lost by the task's dropped connection or found unhealthy by a periodic check, whichever is first.
        wait_for(
            lambda: any(f"host hsmtb-h2: {word}" in ssh_log(sweep_dir) for word in ("LOST", "UNHEALTHY")),
            timeout=60,
            what="h2 to be lost",
        )
        restart_sshd(tb)
        wait_for(lambda: "host hsmtb-h2: BACK" in ssh_log(sweep_dir), timeout=60, what="h2 to rejoin")
        wait_for(
            lambda: "\thsmtb-h2\tstart" in ssh_log(sweep_dir).split("host hsmtb-h2: BACK")[1],
            timeout=60,
            what="a task to start on h2 again",
        )
        project.release()
        out, _ = proc.communicate(timeout=180)
        assert "3 completed" in out and "1 failed" in out, out  # the lost one (no retries here)
    finally:
        restart_sshd(tb)
        assert tb.ssh("hsmtb-h2", "true").returncode == 0


def _in_mount_namespace_of(pid: int, script: str) -> None:
    import subprocess

    subprocess.run(["nsenter", "-t", str(pid), "-m", "--", "sh", "-c", script], check=True, capture_output=True)


def test_a_shared_fs_host_that_sees_the_sweep_elsewhere_runs_it_through_path_map(ssh_project, tb, tmp_path):
    """hsmtb-h1 (its own mount namespace) sees the project only under a second path: bound there,
    and hidden under a tmpfs at the local path."""
    project = ssh_project
    sshd_pid = int((Path(tb.facts["ssh"]["hosts"]["hsmtb-h1"]["sshd_log"]).parent / "sshd.pid").read_text().strip())
    mapped = Path(f"{tmp_path}-mapped")
    mapped.mkdir()
    _in_mount_namespace_of(sshd_pid, f"mount --bind {tmp_path} {mapped} && mount -t tmpfs hsm-hide {tmp_path}")
    try:
        project.configure_ssh(
            aliases=("hsmtb-h1",),
            remote={"shared_fs": True, "path_map": {str(tmp_path): str(mapped)}},
            task={"env": {"RUN_LOG": f"{mapped}/runs.log"}},
        )
        project.write_sweep({"grid": {"x": [1, 2, 3]}})
        result = project.cli("run", "sweep.yaml", "--profile", "ssh")
        assert "3 completed" in result.output, result.output
    finally:
        _in_mount_namespace_of(sshd_pid, f"umount {tmp_path} && umount {mapped}")
    (sweep_dir,) = project.sweep_dirs()
    assert project.completions() == {f"task_00{i}": 1 for i in (1, 2, 3)}
    for i in (1, 2, 3):
        task_dir = sweep_dir / "tasks" / f"task_00{i}"
        status = read_status(task_dir)
        assert status["host_alias"] == "hsmtb-h1" and status["status"] == "completed"
        # The script and the task folder as the host sees them.
        assert status["command"][1] == f"{mapped}/echo.py", status["command"]
        assert task_files(task_dir) == COMPLETED_TASK_FILES
    assert not Path(f"{tb.facts['ssh']['hosts']['hsmtb-h1']['project_dir']}/{remote_name(tmp_path)}").exists()


def test_status_shows_tasks_per_host_alias_while_they_run_and_after(ssh_project, background):
    project = ssh_project
    project.configure_ssh(aliases=("hsmtb-h1",))
    proc, sweep_dir = start_held_run(project, background, "--profile", "ssh")
    running = json.loads(project.cli("status", "--json").output)
    assert running["counts"] == {"running": 2}, running
    assert running["progress"]["running_hosts"] == {"hsmtb-h1": 2}
    assert {t["host_alias"] for t in running["tasks"]} == {"hsmtb-h1"}
    assert "running on hsmtb-h1" in project.cli("status", "--tasks").output
    project.release()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "2 completed" in out, out
    done = json.loads(project.cli("status", "--json").output)
    assert done["counts"] == {"completed": 2} and done["progress"]["by_host"] == {"hsmtb-h1": {"completed": 2}}
    assert "per host: hsmtb-h1: 2 completed" in project.cli("status", "--all-status").output
    assert list((sweep_dir / ".hsm" / "remote").iterdir()) == []
