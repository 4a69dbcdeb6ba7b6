"""MaxSubmitJobs: parsing sacctmgr's answers and capping a run's submissions (pure logic).

On the real cluster: tests/test_slurm.py::test_a_sweep_stays_within_the_submit_limit_of_its_qos.
"""

from __future__ import annotations

from hsm_snake.executors.slurm.limits import SubmitRoom, capped_submission_args, parse_assoc, parse_qos, profile_jobs


def test_association_limits_by_account_and_default_qos():
    text = "proj_a|500|normal\nproj_b|200|\nproj_c||long\n"
    assert parse_assoc(text, None) == (200, "normal")
    assert parse_assoc(text, "proj_a") == (500, "normal")
    assert parse_assoc(text, "proj_c") == (None, "long")
    assert parse_assoc("root||\n", None) == (None, None)


def test_qos_limit():
    assert parse_qos("3\n") == 3
    assert parse_qos("\n") is None
    assert parse_qos("") is None


def test_room_left_is_the_limit_minus_what_is_queued_and_never_zero():
    assert SubmitRoom(limit=100, queued=30, source="x").free == 70
    assert SubmitRoom(limit=100, queued=130, source="x").free == 1


def test_caps_only_when_the_profile_would_submit_more_than_the_room():
    room = SubmitRoom(limit=300, queued=0, source="x")
    assert capped_submission_args(None, 1000, None) == []
    assert capped_submission_args(room, 200, None) == []
    assert capped_submission_args(room, 1000, None) == ["--jobs", "300", "--hsm-slurm-array-limit", "300"]
    assert capped_submission_args(room, 1000, 100) == ["--jobs", "300"]
    assert capped_submission_args(room, None, 1000) == ["--jobs", "300", "--hsm-slurm-array-limit", "300"]
    full = SubmitRoom(limit=300, queued=299, source="x")
    assert capped_submission_args(full, 1000, None) == ["--jobs", "1", "--hsm-slurm-array-jobs", ""]


def test_profile_jobs_is_read_from_the_packaged_slurm_profile():
    from hsm_snake.engine.command import resolve_profile

    assert profile_jobs(resolve_profile("slurm")) == 10000
    assert profile_jobs(resolve_profile("local")) is None


def test_jobs_handed_over_per_round_stay_under_max_array_size():
    from hsm_snake.executors.slurm.limits import jobs_per_round_args

    assert jobs_per_round_args(1000) == ["--max-jobs-per-timespan", "1000/1s"]
    assert jobs_per_round_args(None) == []  # Snakemake's default (100/1s) when Slurm cannot tell


def test_numbers_of_the_cluster_config():
    from hsm_snake.executors.slurm.limits import config_number, max_array_index

    config = "MaxArraySize            = 1001\nMaxJobCount             = 10000\nMinJobAge               = 300 sec\n"
    assert config_number(config, "MaxJobCount") == 10000
    assert config_number(config, "MinJobAge") == 300
    assert config_number(config, "MaxStepCount") is None
    assert max_array_index(config) == 1000
    assert max_array_index("") is None  # Slurm could not tell: Snakemake's default rate stays


def test_limits_are_read_from_the_real_slurm(tb, monkeypatch):
    from hsm_snake.executors.slurm.limits import cluster_config, job_count_room, jobs_held, max_array_index

    tb.need("slurm")
    for key, value in tb.facts["env"].items():
        monkeypatch.setenv(key, value)
    config = cluster_config()
    # tests/testbed/start.sh writes MaxArraySize=1001 and keeps Slurm's default MaxJobCount.
    assert max_array_index(config) == 1000
    room = job_count_room(config, jobs_held())
    assert room is not None and room.limit == 10000
    assert 0 <= room.queued < room.limit
    assert job_count_room(config, None) is None  # squeue could not tell: no cap


def test_max_array_size_above_1000_goes_as_far_as_the_cluster_takes():
    from hsm_snake.executors.slurm.limits import array_limit

    big = "MaxArraySize            = 10001\nSchedulerParameters     = bf_interval=1,max_script_size=20000000\n"
    assert array_limit({"max_array_size": 4000}, big) == (4000, None)
    limit, why = array_limit({"max_array_size": 20000}, big)
    assert limit == 10000 and "MaxArraySize 10001" in why
    # sbatch's script size limit bounds the array script hsm-slurm writes (~35 bytes a task; 4 MB
    # by default: 65,536 tasks).
    assert array_limit({"max_array_size": 4000}, "MaxArraySize = 10001\n") == (4000, None)
    small = "MaxArraySize = 10001\nSchedulerParameters = max_script_size=100000\n"
    limit, why = array_limit({"max_array_size": 4000}, small)
    assert limit == 1562 and "100000 bytes" in why
    assert array_limit({"max_array_size": 4000}, "")[0] == 1000  # Slurm could not tell: the safe size
    assert array_limit({"max_array_size": 200}, big) == (200, None)
    assert array_limit({}, big) == (500, None)


def test_a_large_max_array_size_is_capped_by_the_real_slurms_max_array_size(tb, monkeypatch):
    from hsm_snake.engine.command import resolve_profile
    from hsm_snake.executors.slurm.limits import submission_caps

    tb.need("slurm")
    for key, value in tb.facts["env"].items():
        monkeypatch.setenv(key, value)
    args, why = submission_caps(resolve_profile("slurm"), {"max_array_size": 5000})
    assert args[args.index("--hsm-slurm-array-limit") + 1] == "1000", args  # test bed: MaxArraySize=1001
    assert "MaxArraySize 1001" in why


def test_the_same_queries_run_through_any_runner_of_argv_lists():
    """The remote Slurm's limits (over ssh) are read by the local parsers: only the runner differs."""
    from hsm_snake.executors.remote_cluster.pool import UNBOUNDED_SLOTS, cluster_slots
    from hsm_snake.executors.slurm.limits import tightest_room

    answers = {
        (
            "sacctmgr",
            "-nP",
            "show",
            "assoc",
            "where",
            "user=ana",
            "format=Account,MaxSubmit,DefaultQOS",
        ): "lab|10|gpu\n",
        ("sacctmgr", "-nP", "show", "qos", "gpu", "format=MaxSubmitPU"): "4\n",
        ("squeue", "-h", "-r", "-u", "ana", "-o", "%i"): "1_1\n1_2\n2\n",
        ("squeue", "-h", "-r", "-u", "ana", "-q", "gpu", "-o", "%i"): "1_1\n",
        ("squeue", "-h", "-r", "-t", "all", "-o", "%i"): "1_1\n1_2\n2\n3\n",
    }
    asked = []

    def query(argv: list[str]) -> str | None:
        asked.append(argv)
        return answers.get(tuple(argv))

    room = tightest_room({}, "MaxJobCount = 100\n", "ana", query)
    assert (room.limit, room.queued, room.free) == (4, 1, 3) and "QOS gpu" in room.source
    assert all(isinstance(argv, list) for argv in asked)
    assert tightest_room({}, "", "ana", lambda argv: None) is None  # nothing answered: no bound
    assert cluster_slots(room, 0) == 3 and cluster_slots(room, 2) == 2
    assert cluster_slots(None, 0) == UNBOUNDED_SLOTS and cluster_slots(None, 7) == 7
