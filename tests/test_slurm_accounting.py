"""Parsing sacct's answer (pure logic; the real cluster is exercised in test_slurm.py)."""

from hsm_snake.executors.slurm.accounting import SLURM_STATES, parse_sacct


def test_parse_sacct_keeps_first_word_of_state():
    text = "88_1|COMPLETED|0:0|None\n88_2|CANCELLED by 0|0:15|None\n89|OUT_OF_MEMORY|0:125|None\n\n"
    jobs = parse_sacct(text)
    assert jobs["88_2"] == ("CANCELLED", "0:15", "None")
    assert jobs["89"][0] == "OUT_OF_MEMORY"
    assert SLURM_STATES["OUT_OF_MEMORY"] == ("failed", "out_of_memory")
    assert "88_1" in jobs and "" not in jobs


def test_an_out_of_memory_step_wins_over_its_failed_job():
    text = "99_2|FAILED|1:0|None\n99_2.batch|FAILED|1:0|\n99_2.0|OUT_OF_MEMORY|0:125|\n"
    assert parse_sacct(text)["99_2"] == ("OUT_OF_MEMORY", "0:125", "")


def test_memory_requests_come_from_the_jobs_own_lines():
    from hsm_snake.executors.slurm.accounting import parse_requests

    text = "7|OUT_OF_MEMORY|0:125|None|500M\n7.batch|OUT_OF_MEMORY|0:125||\n8_1|FAILED|1:0|None|2G\n9|X|0:0||4000Mn\n"
    assert parse_requests(text) == {"7": 500, "8_1": 2048, "9": 4000}


def test_a_cluster_remotes_element_is_no_job_of_the_local_scheduler():
    """A task running on a cluster reached over SSH (its local record says so while it runs) is
    never asked about with the local sacct/qstat nor cancelled with the local scancel/qdel: its id
    is the other cluster's."""
    from hsm_snake.executors.common import of_local_scheduler

    for scheduler in ("slurm", "pbs"):
        assert of_local_scheduler({"backend": scheduler, "job_id": "88_1", "host_alias": None}, scheduler)
        assert not of_local_scheduler({"backend": scheduler, "job_id": "88_1", "host_alias": "tbc"}, scheduler)
        assert not of_local_scheduler({"backend": scheduler, "job_id": None}, scheduler)
    assert not of_local_scheduler({"backend": "pbs", "job_id": "88[1]"}, "slurm")
    assert not of_local_scheduler({"backend": "ssh", "job_id": "local"}, "slurm")
