"""runner/memory_limit.py on cgroup trees laid out as the kernel shows them (v1 as on the test
bed's Slurm nodes, v2); the real thing in a PBS job: tests/test_pbs.py
(test_without_a_memory_request_out_of_memory_grows_the_jobs_memory_limit)."""

from pathlib import Path

from hsm_snake.runner import failures
from hsm_snake.runner.memory_limit import own_memory_cgroup

V1_PROC = """9:name=systemd:/
4:memory:/slurm_vm/uid_0/job_7/step_batch/task_0
1:cpu:/
0::/
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v1_the_tightest_limit_on_the_way_up_and_the_oom_kills_below_the_root(tmp_path):
    write(tmp_path / "proc", V1_PROC)
    memory = tmp_path / "cg" / "memory"
    step = memory / "slurm_vm" / "uid_0" / "job_7" / "step_batch"
    write(step / "task_0" / "memory.limit_in_bytes", "9223372036854771712\n")  # no limit of its own
    write(step / "memory.limit_in_bytes", f"{500 << 20}\n")
    write(step.parent / "memory.limit_in_bytes", f"{800 << 20}\n")
    write(step / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    write(memory / "memory.oom_control", "oom_kill 40\n")  # the machine's: not this job's
    cgroup = own_memory_cgroup(str(tmp_path / "proc"), str(tmp_path / "cg"))
    assert cgroup is not None and not cgroup.v2
    assert cgroup.limit_mb() == 500
    assert cgroup.oom_kills() == 0
    write(step / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cgroup.oom_kills() == 1


def test_v2_memory_max_and_memory_events(tmp_path):
    write(tmp_path / "proc", "0::/system.slice/pbs_jobs.service/jobid/42.server\n")
    job = tmp_path / "cg" / "system.slice" / "pbs_jobs.service" / "jobid" / "42.server"
    write(tmp_path / "cg" / "cgroup.controllers", "cpu memory pids\n")
    write(job / "memory.max", "max\n")
    write(job.parent / "memory.max", "max\n")
    write(job / "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    cgroup = own_memory_cgroup(str(tmp_path / "proc"), str(tmp_path / "cg"))
    assert cgroup is not None and cgroup.v2
    assert cgroup.limit_mb() is None  # "max": no limit
    assert cgroup.oom_kills() == 1
    write(job / "memory.max", f"{2 << 30}\n")
    assert cgroup.limit_mb() == 2048


def test_nothing_to_read_is_no_cgroup_or_no_limit(tmp_path):
    assert own_memory_cgroup(str(tmp_path / "missing"), str(tmp_path)) is None
    write(tmp_path / "root-only", "4:memory:/\n")
    assert own_memory_cgroup(str(tmp_path / "root-only"), str(tmp_path)) is None
    write(tmp_path / "v2-unmounted", "0::/user.slice\n")  # no cgroup.controllers under the root
    assert own_memory_cgroup(str(tmp_path / "v2-unmounted"), str(tmp_path)) is None
    write(tmp_path / "proc-v1", V1_PROC)
    cgroup = own_memory_cgroup(str(tmp_path / "proc-v1"), str(tmp_path / "empty"))
    assert cgroup is not None and cgroup.limit_mb() is None and cgroup.oom_kills() == 0


def test_an_out_of_memory_kill_names_the_limit():
    failure = failures.out_of_memory_kill(500)
    assert (failure.status, failure.category) == ("failed", failures.OUT_OF_MEMORY)
    assert "500 MB" in failure.summary
    assert "limit" not in failures.out_of_memory_kill(None).summary
