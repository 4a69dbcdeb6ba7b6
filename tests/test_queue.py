"""``hsm-snake queue``: parsing squeue/scontrol output safely, and the views against the test bed's Slurm."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from hsm_snake.executors.slurm import queue as q

ROW = "{id}\t{user}\t{state}\t{reason}\tgpu\t{tres}\tN/A\t{prio}\t{name}"


def row(id, user="al", state="PENDING", reason="(Priority)", tres="N/A", prio=100, name="job"):
    return ROW.format(id=id, user=user, state=state, reason=reason, tres=tres, prio=prio, name=name)


def test_squeue_rows_parse_with_any_job_name_and_bad_rows_are_counted():
    text = "\n".join(
        [
            row("11", name="a\tname with a tab"),
            row("12_3", tres="cpu=1,mem=4G,gres/gpu:h100=2", name="[bold red]x[/]"),
            row("13", tres="gres/gpu=1", prio="1.5e3"),
            "garbage without tabs",
            "12\tonly\tthree",
            "",
        ]
    )
    listing = q.parse_squeue(text)
    assert [j.job_id for j in listing.jobs] == ["11", "12_3", "13"] and listing.unparsed == 2
    assert listing.jobs[0].name == "a\tname with a tab"
    assert (listing.jobs[1].gpu_count, listing.jobs[1].gpu_type, listing.jobs[1].gpus) == (2, "h100", "2xh100")
    assert (listing.jobs[2].gpu_count, listing.jobs[2].gpu_type, listing.jobs[2].priority) == (1, None, 1500)


def test_gpu_depth_and_reservations():
    jobs = q.parse_squeue(
        "\n".join(
            [
                row("1", state="RUNNING", tres="gres/gpu:a100=4"),
                row("2", tres="gres/gpu:a100=1", user="bo"),
                row("3", tres="gres/gpu=2"),
                row("4", state="COMPLETING", tres="gres/gpu=1", user="bo"),
                row("5"),
            ]
        )
    ).jobs
    depth = q.gpu_depth(jobs)
    assert depth["a100"] == {"RUNNING": 4, "PENDING": 1} and depth[q.UNTYPED] == {"PENDING": 2, "COMPLETING": 1}
    assert q.gpu_depth(jobs, "bo") == {"a100": {"PENDING": 1}, q.UNTYPED: {"COMPLETING": 1}}
    text = (
        "ReservationName=maint StartTime=2026-12-24T08:00:00 EndTime=2026-12-24T18:00:00 Duration=10:00:00\n"
        "   Nodes=gpu[01-10] NodeCnt=10 CoreCnt=640 Features=(null)\n\n"
        "ReservationName=weird StartTime=x EndTime=y Duration=z Nodes= NodeCnt=?\n"
    )
    found = q.parse_reservations(text)
    assert [(r.name, r.node_count, r.nodes) for r in found] == [("maint", 10, "gpu[01-10]"), ("weird", 0, "")]
    assert q.parse_reservations("No reservations in the system\n") == []
    assert q.sweep_of("sweep_1-task_003", {"sweep_1"}) == "sweep_1" and q.sweep_of("other", {"sweep_1"}) == ""


def test_no_slurm_or_a_slurm_that_does_not_answer_is_said_in_bounded_time(project, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = project.cli("queue", "mine", expect=1).output
    assert "squeue is not on PATH" in out
    hanging = tmp_path / "squeue"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(hanging.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(q, "QUERY_TIMEOUT_S", 0.5)
    assert "did not answer within 0.5 s" in project.cli("queue", "gpus", expect=1).output


@pytest.mark.testbed
def test_the_views_on_the_real_slurm(project, tb, monkeypatch):
    tb.need("slurm")
    for key, value in tb.facts["env"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "250")
    (project.root / "sweeps" / "outputs" / "sweep_q" / "task_mapping.yaml").parent.mkdir(parents=True)
    (project.root / "sweeps" / "outputs" / "sweep_q" / "task_mapping.yaml").write_text("{}\n")
    ids = []
    try:
        for name in ("[bold red]evil[/] name", "sweep_q-task_001"):
            done = subprocess.run(
                ["sbatch", "--parsable", "--hold", "-J", name, "--wrap", "true"],
                capture_output=True,
                text=True,
                check=True,
                env=os.environ,
            )
            ids.append(done.stdout.strip().split(";")[0])
        out = project.cli("queue").output  # alone: queue mine
        assert "[bold red]evil[/] name" in out and "(JobHeldUser)" in out, out  # shown as text, not as markup
        line = next(line for line in out.splitlines() if ids[1] in line)
        assert "sweep_q" in line.split("sweep_q-task_001")[1], out  # the sweep column
        assert "no GPU jobs" in project.cli("queue", "gpus", "--mine").output
        assert "no pending GPU jobs" in project.cli("queue", "position").output
        assert f"job {ids[0]} is not among" in project.cli("queue", "position", ids[0], expect=1).output
        assert "no reservations" in project.cli("queue", "reservations").output
    finally:
        subprocess.run(["scancel", *ids], check=False)
