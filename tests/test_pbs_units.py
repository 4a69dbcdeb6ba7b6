"""The PBS backend without a cluster: qstat parsers against recorded outputs, the verdict on a
finished job, job script rendering, hsm.yaml pbs: → resources, the runner's backend detection.

Fixtures in tests/fixtures/pbs/: PBS Pro ``qstat -f -F json`` and ``qstat -x -f -F json`` (and the
unescaped JSON of older PBS Pro), PBS Pro ``qstat -x -f`` text and ``qstat -x`` table, Torque
``qstat -f`` text, ``qstat -x -f`` XML and table, job arrays with their subjobs (``*_array*``: PBS
Pro ``qstat -x -f -F json -t``, Torque ``qstat -x -t`` XML, ``qstat -f -t`` text and ``qstat -t``
table), and real outputs
of the test bed's Slurm torque wrappers (``wrapper_*``).
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from hsm_snake.engine import backends
from hsm_snake.errors import ConfigError
from hsm_snake.executors.pbs import accounting, qstat, script
from hsm_snake.executors.pbs.qstat import JobInfo
from hsm_snake.layout.paths import TaskPaths
from hsm_snake.layout.records import read_record, write_record
from hsm_snake.runner import task as runner

FIXTURES = Path(__file__).parent / "fixtures" / "pbs"

PRO_LIVE = {"1001.pbs-head": "Q", "1002.pbs-head": "R", "1003.pbs-head": "H", "1004.pbs-head": "E"}
PRO_HISTORY = {**PRO_LIVE, "1005.pbs-head": "F", "1006.pbs-head": "F", "1007.pbs-head": "F", "1008.pbs-head": "F"}
PRO_EXITS = {"1005.pbs-head": 0, "1006.pbs-head": 271, "1007.pbs-head": 1, "1008.pbs-head": 271}
TORQUE_HOST = "torque-head.example.org"
TORQUE = {f"{n}.{TORQUE_HOST}": state for n, state in zip(range(2001, 2009), "QRHECCCC", strict=True)}
TORQUE_EXITS = {"2005": 0, "2006": -11, "2007": 271, "2008": 1}


def parsed(name: str) -> dict[str, JobInfo]:
    return qstat.parse_any((FIXTURES / name).read_text())


@pytest.mark.parametrize(
    "name,kind",
    [
        ("pro_qstat_f_json.json", "pro-json"),
        ("pro_qstat_x_f_json.json", "pro-json"),
        ("pro_qstat_x_f_json_unescaped.json", "pro-json"),
        ("pro_qstat_x_f.txt", "full"),
        ("pro_qstat_x_table.txt", "table"),
        ("torque_qstat_f.txt", "full"),
        ("torque_qstat_x.xml", "torque-xml"),
        ("torque_qstat_table.txt", "table"),
        ("wrapper_qstat_f.txt", "full"),
        ("wrapper_qstat_table.txt", "table"),
        ("pro_qstat_x_f_json_t_array.json", "pro-json"),
        ("torque_qstat_x_t_array.xml", "torque-xml"),
        ("torque_qstat_t_array_table.txt", "table"),
        ("torque_qstat_f_t_array.txt", "full"),
    ],
)
def test_formats_are_told_apart_by_their_look(name, kind):
    assert qstat.sniff((FIXTURES / name).read_text()) == kind
    assert qstat.sniff("") == "empty" and qstat.parse_any("   \n") == {}


def test_pro_json_live_jobs_queued_running_held_exiting():
    jobs = parsed("pro_qstat_f_json.json")
    assert {k: j.state for k, j in jobs.items()} == PRO_LIVE
    running = jobs["1002.pbs-head"]
    assert running.running and not running.finished and running.exit_status is None
    assert running.used_walltime_s == 5 and running.walltime_limit_s == 300
    assert running.name == "sweep_20261129_043230-task_002"
    assert jobs["1004.pbs-head"].running  # E: exiting, still the scheduler's
    assert not jobs["1003.pbs-head"].running and not jobs["1003.pbs-head"].finished


@pytest.mark.parametrize("name", ["pro_qstat_x_f_json.json", "pro_qstat_x_f_json_unescaped.json", "pro_qstat_x_f.txt"])
def test_pro_history_finished_jobs_carry_exit_status(name):
    jobs = parsed(name)
    assert {k: j.state for k, j in jobs.items()} == PRO_HISTORY
    assert {k: jobs[k].exit_status for k in PRO_EXITS} == PRO_EXITS
    assert all(jobs[k].finished for k in PRO_EXITS)
    walltime_kill = jobs["1006.pbs-head"]
    assert walltime_kill.used_walltime_s == 63 and walltime_kill.walltime_limit_s == 60
    assert jobs["1008.pbs-head"].used_walltime_s == 21


@pytest.mark.parametrize("name", ["torque_qstat_f.txt", "torque_qstat_x.xml"])
def test_torque_full_and_xml(name):
    jobs = parsed(name)
    assert {k: j.state for k, j in jobs.items()} == TORQUE
    assert {k.split(".")[0]: j.exit_status for k, j in jobs.items() if j.finished} == TORQUE_EXITS
    assert jobs["2006.torque-head.example.org"].used_walltime_s == 63
    # Values Torque wraps onto tab-indented lines are joined again.
    assert "PBS_O_SERVER=torque-head.example.org" in jobs["2001.torque-head.example.org"].attributes["Variable_List"]


def test_tables_give_states_and_match_ids_qsub_printed():
    torque = parsed("torque_qstat_table.txt")
    assert [j.state for j in torque.values()] == ["Q", "R", "H", "E", "C"]
    # Tables cut ids: qsub printed 2002.torque-head.example.org, the table says 2002.torque-head.
    assert qstat.lookup(torque, "2002.torque-head.example.org").state == "R"
    pro = parsed("pro_qstat_x_table.txt")
    assert qstat.lookup(pro, "1005.pbs-head").finished and qstat.lookup(pro, "1009.pbs-head") is None


def test_recorded_wrapper_outputs():
    """Real `qstat` / `qstat -f` of the test bed's torque wrappers (Slurm underneath): bare ids,
    every finished job C, no exit_status, garbage walltimes of pending jobs."""
    table, full = parsed("wrapper_qstat_table.txt"), parsed("wrapper_qstat_f.txt")
    expected = {"227": "R", "228": "Q", "229": "C"}
    assert {k: j.state for k, j in table.items()} == expected
    assert {k: j.state for k, j in full.items()} == expected
    assert all(j.exit_status is None for j in full.values())
    assert full["227"].walltime_limit_s == 120 and full["227"].name == "fx_running"


@pytest.mark.parametrize(
    "text,seconds",
    [("00:01:00", 60), ("1:02:03", 3723), ("05:30", 330), ("90", 90), (75, 75), ("n/a", None), (None, None)],
)
def test_walltime_seconds(text, seconds):
    assert qstat.walltime_seconds(text) == seconds


# --- one qstat call per poll, in the richest format qstat accepts ------------------------------
FAKE_QSTAT = """#!/bin/bash
echo "$*" >> {calls}
{body}
"""


def fake_qstat(tmp_path: Path, body: str) -> tuple[str, Path]:
    calls = tmp_path / "calls"
    path = tmp_path / "qstat"
    path.write_text(FAKE_QSTAT.format(calls=calls, body=textwrap.dedent(body)))
    path.chmod(0o755)
    return str(path), calls


def test_torque_qstat_is_asked_for_xml_once_it_refused_json(tmp_path):
    xml = FIXTURES / "torque_qstat_x.xml"
    exe, calls = fake_qstat(
        tmp_path,
        f"""
        case "$*" in
          *-F*) echo "qstat: invalid option -- 'F'" >&2; echo "usage: qstat [-f] [-x] ..." >&2; exit 2;;
          "-x -f "*) cat {xml}; exit 0;;
        esac
        exit 1
    """,
    )
    query = qstat.Qstat(qstat=exe)
    ids = ["2005.torque-head.example.org", "2006.torque-head.example.org"]
    first = query.query(ids)
    assert first.ok and query.format == "history"
    assert first.get(ids[1]).exit_status == -11
    second = query.query(ids)
    assert second.ok and second.get(ids[0]).exit_status == 0
    lines = calls.read_text().splitlines()
    assert lines == [f"-x -f -F json {' '.join(ids)}", f"-x -f {' '.join(ids)}", f"-x -f {' '.join(ids)}"]


def test_wrapper_qstat_falls_back_to_full_text_and_unknown_ids_are_missing(tmp_path):
    full = FIXTURES / "wrapper_qstat_f.txt"
    exe, calls = fake_qstat(
        tmp_path,
        f"""
        case "$1" in
          -x) echo "Unknown option: x" >&2; echo "Usage:" >&2; exit 2;;
          -f) shift; for id in "$@"; do [ "$id" = 999 ] || found=1; done
              [ -n "$found" ] && {{ cat {full}; exit 0; }}; exit 153;;
        esac
        exit 1
    """,
    )
    query = qstat.Qstat(qstat=exe)
    answer = query.query(["227", "229", "999"])
    assert answer.ok and query.format == "full"
    assert answer.get("229").finished and answer.get("999") is None
    # Only unknown ids: exit 153 with nothing printed is an answer ("all gone"), not a failure.
    gone = query.query(["999"])
    assert gone.ok and gone.jobs == {}
    assert len(calls.read_text().splitlines()) == 4  # -x -f -F json, -x -f, -f, then -f only


def test_a_qstat_that_cannot_reach_its_server_is_a_failed_poll(tmp_path):
    exe, _ = fake_qstat(
        tmp_path,
        """
        echo "Connection refused" >&2; echo "qstat: cannot connect to server pbs-head (errno=111)" >&2
        exit 1
    """,
    )
    answer = qstat.Qstat(fmt="full", qstat=exe).query(["1"])
    assert not answer.ok and "cannot connect" in answer.error
    assert not qstat.Qstat(qstat=str(tmp_path / "no-such-qstat")).query(["1"]).ok
    with pytest.raises(ValueError):
        qstat.Qstat(fmt="yaml")


# --- the verdict on a finished job -----------------------------------------------------------
def finished(state="C", exit_status=None, used=None, limit=None, comment=None) -> JobInfo:
    return JobInfo("42", state, exit_status=exit_status, used_walltime_s=used, walltime_limit_s=limit, comment=comment)


def verdict(info, *, marker=False, record=None, walltime=60, elapsed=None, **kwargs):
    return accounting.decide(
        "42", info, marker_exists=marker, record=record, walltime_s=walltime, elapsed_s=elapsed, slack_s=10, **kwargs
    )


def test_wrapper_finished_job_succeeds_by_its_marker():
    assert verdict(finished(), marker=True).success
    # Marker not visible yet, but the runner's record of this very job says completed.
    assert verdict(finished(), record={"status": "completed", "job_id": "42"}).success
    # PBS Pro / Torque exit_status 0.
    assert verdict(finished("F", 0)).success


def test_failed_task_keeps_the_runners_cause():
    record = {"status": "failed", "job_id": "42", "error_category": "python_exception", "error_summary": "boom"}
    result = verdict(finished(), record=record, elapsed=5)
    assert not result.success and result.category is None and "boom" in result.summary
    assert verdict(finished("F", 1, used=4), record=record).category is None
    # A nonzero exit_status wins over a marker (Snakemake in the job failed after the task).
    assert not verdict(finished("F", 1, used=4), marker=True).success


def test_walltime_kills_are_timeout():
    sigterm = {"status": "cancelled", "job_id": "42", "error_category": "cancelled"}
    # Wrapper: no exit status; hsm-pbs saw it run for its walltime.
    wrapper = verdict(finished(), record=sigterm, elapsed=62)
    assert wrapper.category == "timeout" and "walltime 00:01:00 exceeded" in wrapper.summary
    assert verdict(finished(), record=sigterm, elapsed=52).category == "timeout"  # within the poll slack
    assert verdict(finished("C", -11, used=63)).category == "timeout"  # Torque
    assert verdict(finished("F", -29, used=61)).category == "timeout"  # newer PBS Pro
    assert verdict(finished("F", 271, used=63, limit=60), walltime=None).category == "timeout"  # PBS Pro
    assert verdict(finished("F", 265, used=70)).category == "timeout"
    assert verdict(finished("F", 271)).category == "timeout"  # time used unknown: the walltime
    assert (
        verdict(finished("F", 271, used=5, comment="job killed: walltime 65 exceeded limit 60")).category == "timeout"
    )


def test_qdel_is_cancelled_and_other_kills_are_killed():
    qdel = verdict(finished("F", 271, used=21))
    assert (qdel.status, qdel.category) == ("cancelled", "cancelled")
    assert verdict(finished(), elapsed=5, cancelled_by_us=True).category == "cancelled"
    assert verdict(finished("F", 265, used=20)).category == "killed"
    running = {"status": "running", "job_id": "42"}
    assert verdict(finished(), record=running, elapsed=5).category == "killed"


def test_a_job_that_ended_before_its_task_started_is_undecided_at_first():
    result = verdict(None, elapsed=None)
    assert not result.success and result.undecided


# --- recording into status.yaml ---------------------------------------------------------------
def write_status(tmp_path: Path, **fields) -> TaskPaths:
    task = TaskPaths(tmp_path / "tasks" / "task_001")
    task.dir.mkdir(parents=True, exist_ok=True)
    record = {
        "status": "running",
        "task_id": "task_001",
        "attempt": 1,
        "finished": None,
        "backend": "pbs",
        "job_id": "42",
        "error_category": None,
        "error_summary": None,
    }
    record.update(fields)
    write_record(task.status, record, "test")
    return task


def test_verdict_is_recorded_where_the_runner_could_not(tmp_path):
    timeout = accounting.Verdict(False, "failed", "timeout", "PBS job 42 ended: walltime 00:01:00 exceeded")
    task = write_status(tmp_path, status="cancelled", error_category="cancelled")
    assert accounting.record_verdict(task, "42", timeout, scheduler_state="C")
    record = read_record(task.status)
    assert (record["status"], record["error_category"], record["scheduler_state"]) == ("failed", "timeout", "C")
    assert record["finished"] and "walltime" in record["error_summary"]
    # A killed runner (still says running) gets a final status too.
    task = write_status(tmp_path)
    assert accounting.record_verdict(task, "42.pbs-head", accounting.Verdict(False, "failed", None, "ended"))
    assert read_record(task.status)["error_category"] == "killed"


def test_verdict_never_overwrites_a_specific_cause_or_another_jobs_record(tmp_path):
    timeout = accounting.Verdict(False, "failed", "timeout", "x")
    task = write_status(tmp_path, status="failed", error_category="python_exception")
    assert not accounting.record_verdict(task, "42", timeout)
    task = write_status(tmp_path, job_id="41")
    assert not accounting.record_verdict(task, "42", timeout)
    task = write_status(tmp_path, status="completed")
    assert not accounting.record_verdict(task, "42", timeout)
    assert read_record(task.status)["status"] == "completed"


# --- job scripts -------------------------------------------------------------------------------
def test_torque_directives_are_the_default():
    resources = backends.pbs_resources({"walltime": "01:30:00", "mem": "4G", "queue": "batch", "account": "proj"})
    assert resources["pbs_flavor"] == "torque"
    assert script.directives(resources, "s-task_001") == [
        "-N s-task_001",
        "-l walltime=01:30:00",
        "-l nodes=1:ppn=1",
        "-l mem=4096mb",
        "-q batch",
        "-A proj",
    ]


def test_pro_directives_select_ncpus_mem_ngpus():
    resources = backends.pbs_resources(
        {
            "select": 1,
            "ncpus": 8,
            "ngpus": 2,
            "mem": "16G",
            "walltime": 90,
            "extra_directives": ["-m abe", "-l place=scatter"],
        }
    )
    assert resources["pbs_flavor"] == "pro"
    assert script.directives(resources, "n") == [
        "-N n",
        "-l walltime=01:30:00",
        "-l select=1:ncpus=8:mem=16384mb:ngpus=2",
        "-m abe",
        "-l place=scatter",
    ]
    torque = backends.pbs_resources({"flavor": "torque", "nodes": 1, "ppn": 4, "ngpus": 1})
    assert "-l nodes=1:ppn=4:gpus=1" in script.directives(torque, "n")
    # No memory floor: without pbs.mem the job asks for none (the queue's default).
    assert backends.pbs_resources({})["runtime"] == 60 and "mem_mb" not in backends.pbs_resources({})
    assert not any("mem" in line for line in script.directives(backends.pbs_resources({}), "n"))


@pytest.mark.parametrize(
    "directive,hint",
    [
        ("-N other", "sets it"),
        ("-l walltime=2:00:00", "walltime"),
        ("-q long", "queue"),
        ("-l select=2:ncpus=4", "select"),
        ("-l nodes=2:ppn=4", "nodes"),
        ("-J 1-10", "arrays"),
    ],
)
def test_extra_directives_that_fight_the_executor_are_refused(directive, hint):
    with pytest.raises(ConfigError) as error:
        backends.pbs_resources({"extra_directives": [directive]})
    assert "pbs.extra_directives" in str(error.value.key) and hint in str(error.value.hint)


def test_job_script_runs_setup_then_the_job_in_the_sweep_directory():
    text = script.render(
        name="sw-task_001",
        options=["-N sw-task_001", "-l walltime=00:01:00"],
        workdir="/data/my sweeps/sw",
        exec_job="python -m snakemake --target-jobs x",
        setup="module load cuda/12.1\nsource ~/venv/bin/activate",
    )
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1:3] == ["#PBS -N sw-task_001", "#PBS -l walltime=00:01:00"]
    order = [
        lines.index(x)
        for x in (
            "export HSM_BACKEND=pbs",
            "module load cuda/12.1",
            "export HSM_SETUP_DONE=pbs",
            "cd '/data/my sweeps/sw' || exit 1",
            "python -m snakemake --target-jobs x",
        )
    ]
    assert order == sorted(order)
    assert 'export HSM_JOB_ID="${PBS_JOBID:-}"' in lines


def test_job_names_and_qsub():
    assert script.job_name("sweep_20261129_043230", "task_001") == "sweep_20261129_043230-task_001"
    assert script.job_name("2026 run", "task_001") == "hsm_2026_run-task_001"
    assert len(script.job_name("s" * 400, "task_001")) <= script.MAX_NAME
    assert script.qsub_command("j.pbs", "o", "e") == ["qsub", "-V", "-o", "o", "-e", "e", "j.pbs"]
    assert script.qsub_command("j.pbs", "o", "e", export_env=False)[1] == "-o"
    assert script.format_walltime(1) == "00:01:00" and script.format_walltime(1500) == "25:00:00"


@pytest.mark.parametrize(
    "out,job_id",
    [
        ("496\n", "496"),
        ("1234.pbs-head\n", "1234.pbs-head"),
        ("1234.torque-head.example.org\n", "1234.torque-head.example.org"),
        ("Welcome to the cluster\n77.server\n", "77.server"),
        ("12[].pbs-head\n", "12[].pbs-head"),
        ("qsub: error\n", None),
    ],
)
def test_qsub_output(out, job_id):
    assert script.parse_qsub_output(out) == job_id


# --- job arrays --------------------------------------------------------------------------------
PRO_ARRAY = {
    "3001[].pbs-head": "B",
    "3001[1].pbs-head": "X",
    "3001[2].pbs-head": "X",
    "3001[3].pbs-head": "R",
    "3001[4].pbs-head": "Q",
    "3002[].pbs-head": "F",
}


def test_pro_array_parent_and_subjobs():
    jobs = parsed("pro_qstat_x_f_json_t_array.json")
    assert {k: j.state for k, j in jobs.items()} == PRO_ARRAY
    # The parent is begun (B) while elements run: neither running nor finished; F once all are.
    parent = qstat.lookup(jobs, "3001[].pbs-head")
    assert not parent.running and not parent.finished and qstat.lookup(jobs, "3002[].pbs-head").finished
    # An element is found by the id its job script wrote (PBS_JOBID), never mixed up with the parent.
    assert qstat.lookup(jobs, "3001[2].pbs-head").exit_status == 7
    assert qstat.lookup(jobs, "3001[1].pbs-head").finished and qstat.lookup(jobs, "3001[3].pbs-head").running
    assert qstat.lookup(jobs, "3001[5].pbs-head") is None


@pytest.mark.parametrize(
    "name", ["torque_qstat_x_t_array.xml", "torque_qstat_f_t_array.txt", "torque_qstat_t_array_table.txt"]
)
def test_torque_array_elements(name):
    jobs = parsed(name)
    states = {i: qstat.lookup(jobs, f"4001[{i}].torque-head.example.org").state for i in range(1, 5)}
    assert states == {1: "C", 2: "C", 3: "R", 4: "Q"}
    assert qstat.lookup(jobs, "4001[].torque-head.example.org") is None
    if "table" not in name:
        killed = qstat.lookup(jobs, "4001[2].torque-head.example.org")
        assert killed.exit_status == -11 and killed.used_walltime_s == 61


def test_array_job_script_runs_the_task_of_its_index_with_its_logs(tmp_path):
    """The script really runs under bash, as a PBS Pro, Torque and wrapper element would."""
    elements = [
        script.Element(1, str(tmp_path / "sw-task_001.a1"), "echo one; echo err-one >&2"),
        script.Element(2, str(tmp_path / "logs dir" / "sw-task_002.a3"), "pwd; exit 7"),
    ]
    (tmp_path / "logs dir").mkdir()
    workdir = tmp_path / "the sweep"
    workdir.mkdir()
    text = script.render_array(
        name="sw-task_001+1",
        options=["-N sw-task_001+1", "-l walltime=00:01:00"],
        workdir=str(workdir),
        elements=elements,
        setup="echo set-up",
    )
    assert text.splitlines()[1:3] == ["#PBS -N sw-task_001+1", "#PBS -l walltime=00:01:00"]
    job_script = tmp_path / "array.pbs"
    job_script.write_text(text)

    def run(**env):
        return subprocess.run(
            ["bash", str(job_script)],
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert run(PBS_JOBID="12[1].pbs-head", PBS_ARRAY_INDEX="1").returncode == 0
    assert Path(f"{elements[0].log_base}.out").read_text() == "set-up\none\n"
    assert Path(f"{elements[0].log_base}.err").read_text() == "err-one\n"
    assert Path(script.id_file(elements[0].log_base)).read_text() == "12[1].pbs-head\n"
    assert run(PBS_JOBID="13[2].torque-head", PBS_ARRAYID="2").returncode == 7  # Torque's variable
    assert Path(f"{elements[1].log_base}.out").read_text() == f"set-up\n{workdir}\n"
    assert Path(script.id_file(elements[1].log_base)).read_text() == "13[2].torque-head\n"
    # Slurm's torque wrappers: the element's own Slurm job id is its PBS_JOBID.
    assert run(PBS_JOBID="846", SLURM_ARRAY_TASK_ID="1").returncode == 0
    assert Path(script.id_file(elements[0].log_base)).read_text() == "846\n"
    unknown = run(PBS_JOBID="12[3].pbs-head", PBS_ARRAY_INDEX="3")
    assert unknown.returncode == script.UNKNOWN_INDEX_EXIT
    assert "no task for array index '3' (elements 1-2)" in unknown.stderr
    assert "no task for array index ''" in run().stderr


def test_array_qsub_options_by_flavor():
    assert script.array_option("pro", 20) == ["-J", "1-20"]
    assert script.array_option("torque", 3) == ["-t", "1-3"]
    command = script.qsub_command("a.pbs", "o", "e", array=script.array_option("pro", 2))
    assert command == ["qsub", "-V", "-J", "1-2", "-o", "o", "-e", "e", "a.pbs"]


def test_ready_jobs_with_the_same_request_share_arrays_of_at_most_the_limit():
    from hsm_snake.executors.pbs.executor import Prepared, array_batches

    def prepared(what: str, mem_mb: int = 500) -> Prepared:
        name = f"sw-{what}"
        options = script.directives({"runtime": 5, "mem_mb": mem_mb}, name)
        return Prepared(
            job=None, task=None, what=what, name=name, log_base=name, options=options, flavor="torque", walltime_s=300
        )

    jobs = [prepared(f"task_{i:03d}") for i in (1000, 3, 1, 2, 999)] + [prepared("task_004", mem_mb=1000)]
    batches = [[job.what for job in batch] for batch in array_batches(jobs, 3)]
    # task_004's memory was escalated: its request differs, it goes alone.
    assert batches == [["task_001", "task_002", "task_003"], ["task_999", "task_1000"], ["task_004"]]
    assert [len(b) for b in array_batches(jobs, 1)] == [1] * 6
    assert jobs[0].shared_options == ("-l walltime=00:05:00", "-l nodes=1:ppn=1", "-l mem=500mb")


def element_tracking(tmp_path: Path, array_id: str = "3001[].pbs-head", index: int = 2):
    from hsm_snake.executors.pbs.watch import ArrayElement

    element = ArrayElement(array_id, index, tmp_path / f"sw-task_00{index}.a1.jobid")
    return tracking(tmp_path, job_id=None, element=element)


def test_an_element_waits_on_its_array_until_it_tells_its_own_id(tmp_path):
    watch, _ = watcher()
    track = element_tracking(tmp_path)
    assert track.learn_job_id() is None and track.qstat_id() == "3001[].pbs-head"
    assert track.label == "3001[2].pbs-head" and element_tracking(tmp_path, array_id="845").label == "845[2]"
    assert watch.settle(track, answer(JobInfo("3001[].pbs-head", "Q")), 0) is None
    assert watch.settle(track, answer(), 5) is None  # the array missing once: a slow server
    track.element.id_file.write_text("3001[2].pbs-head\n")
    assert track.learn_job_id() == "3001[2].pbs-head" and track.qstat_id() == "3001[2].pbs-head"
    assert watch.settle(track, answer(JobInfo("3001[2].pbs-head", "R")), 10) is None
    # From now on the element's own entry decides: exit status 7 from PBS Pro's history.
    jobs = parsed("pro_qstat_x_f_json_t_array.json")
    write_status(tmp_path, job_id="3001[2].pbs-head", status="failed", error_category="script_error")
    verdict = watch.settle(track, qstat.QstatAnswer(jobs, ok=True), 20)
    assert not verdict.success and "exit_status 7" in verdict.summary and verdict.category is None


def test_an_element_that_never_started_fails_after_the_latency_wait(tmp_path):
    watch, _ = watcher(latency_wait=30)
    finished = element_tracking(tmp_path / "a", array_id="3002[].pbs-head")
    assert watch.settle(finished, answer(JobInfo("3002[].pbs-head", "F")), 0) is None
    assert watch.settle(finished, answer(JobInfo("3002[].pbs-head", "F")), 20) is None
    verdict = watch.settle(finished, answer(JobInfo("3002[].pbs-head", "F")), 31)
    assert not verdict.success and "never started" in verdict.summary and "3002[].pbs-head" in verdict.summary
    gone = element_tracking(tmp_path / "b", array_id="845")
    assert watch.settle(gone, answer(), 0) is None
    assert watch.settle(gone, answer(), 5) is None  # gone twice: the latency wait starts
    gone.element.id_file.write_text("851\n")  # the element had started after all
    gone.learn_job_id()
    gone.task.marker.touch()
    assert watch.settle(gone, answer(JobInfo("851", "C")), 10).success


def test_an_element_past_its_walltime_is_qdeled_by_its_own_id(tmp_path):
    watch, qdels = watcher(walltime_grace=100)
    track = element_tracking(tmp_path, array_id="845")
    track.element.id_file.write_text("846\n")
    track.learn_job_id()
    watch.settle(track, answer(JobInfo("846", "R")), 0)
    result = watch.settle(track, answer(JobInfo("846", "R")), 170)
    assert qdels == [["846"]] and result.category == "timeout"


def test_while_qstat_fails_an_unstarted_element_is_given_up_in_time(tmp_path):
    watch, _ = watcher(qstat_failure_timeout=100)
    track = element_tracking(tmp_path)
    failing = answer(ok=False)
    watch.note(failing, 0)
    assert watch.settle(track, failing, 50) is None
    gave_up = watch.settle(track, failing, 101)
    assert not gave_up.success and "3001[2].pbs-head: qstat failed for 101 s" in gave_up.summary


# --- runner, layout, plugin --------------------------------------------------------------------
def test_runner_records_pbs_inside_a_wrapper_job(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "188")
    monkeypatch.setenv("PBS_JOBID", "188")
    monkeypatch.setenv("HSM_BACKEND", "pbs")
    monkeypatch.setenv("HSM_JOB_ID", "188")
    assert runner.detect_backend() == ("pbs", "188")
    monkeypatch.delenv("HSM_JOB_ID")
    monkeypatch.delenv("HSM_BACKEND")
    assert runner.detect_backend() == ("slurm", "188")


def test_runner_skips_a_setup_the_job_script_ran(tmp_path, monkeypatch):
    from hsm_snake.layout.paths import SweepPaths

    sweep = SweepPaths(tmp_path / "s")
    task = sweep.task("task_001")
    settings = {"python_command": ["python"], "train_script": "t.py", "pre_scripts": {"pbs": "module load x"}}
    monkeypatch.setenv("HSM_SETUP_DONE", "pbs")
    launch = runner.build_launch(settings, {}, task, sweep, "pbs")
    assert launch.argv[:2] == ["python", "t.py"] and "HSM_SETUP_DONE" not in launch.env
    monkeypatch.delenv("HSM_SETUP_DONE")
    assert runner.build_launch(settings, {}, task, sweep, "pbs").argv[0] == "bash"


def test_sweep_records_pbs_resources(project):
    from hsm_snake.config.project import load_project
    from hsm_snake.config.sweep_file import load_sweep
    from hsm_snake.sweep.create import resources_by_backend

    project.write_project({"pbs": {"walltime": "00:10:00", "select": 1, "ncpus": 2, "mem": "2G"}})
    spec = load_sweep(project.write_sweep({"grid": {"x": [1]}, "resources": {"pbs": {"mem": "3G"}}}))
    pbs = resources_by_backend(load_project(None, cwd=project.root), spec)["pbs"]
    assert (pbs["runtime"], pbs["mem_mb"], pbs["pbs_ncpus"], pbs["pbs_flavor"]) == (10, 3072, 2, "pro")


def test_snakemake_finds_the_executor_plugin():
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    plugin = ExecutorPluginRegistry().get_plugin("hsm-pbs")
    assert plugin.common_settings.non_local_exec
    names = {f.name for f in __import__("dataclasses").fields(plugin.settings_cls)}
    assert {"qstat_format", "walltime_grace", "qstat_failure_timeout", "no_export_env", "array_limit"} <= names


def test_cancel_qdels_running_pbs_tasks_and_records_them(project, tmp_path, monkeypatch):
    from hsm_snake import sweeps
    from hsm_snake.config.project import load_project
    from hsm_snake.config.sweep_file import load_sweep
    from hsm_snake.engine.cancel import cancel

    index = sweeps.create(
        load_sweep(project.write_sweep({"grid": {"x": [1, 2]}})),
        load_project(None, cwd=project.root),
        ["test"],
        "pbscancel",
    )
    task = index.paths.task("task_001")
    write_record(
        task.status,
        {
            "status": "running",
            "task_id": "task_001",
            "attempt": 1,
            "finished": None,
            "backend": "pbs",
            "job_id": "77.pbs-head",
            "error_category": None,
        },
        "test",
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "qdel").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/qdel.calls\n')
    (bin_dir / "qdel").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    outcome = cancel(index.paths, grace_s=1)
    assert outcome.cancelled_jobs == ["77.pbs-head"]
    assert (tmp_path / "qdel.calls").read_text().split() == ["77.pbs-head"]
    record = read_record(task.status)
    assert (record["status"], record["error_category"]) == ("cancelled", "cancelled")


# --- when a job leaves the wait (watch.py) ----------------------------------------------------
def watcher(**kwargs):
    from hsm_snake.executors.pbs.watch import Watcher

    qdels: list[list[str]] = []
    options = {
        "walltime_grace": 300,
        "qstat_failure_timeout": 900,
        "latency_wait": 30,
        "slack_s": 10,
        "qdel": qdels.append,
        **kwargs,
    }
    return Watcher(**options), qdels


def tracking(tmp_path: Path, walltime_s=60, job_id: str | None = "42", element=None):
    from hsm_snake.executors.pbs.watch import Tracking

    task = TaskPaths(tmp_path / "tasks" / "task_001")
    task.dir.mkdir(parents=True, exist_ok=True)
    return Tracking(
        task=task, script="s.pbs", stdout="o", stderr="e", walltime_s=walltime_s, job_id=job_id, element=element
    )


def answer(*jobs: JobInfo, ok: bool = True):
    return qstat.QstatAnswer({j.job_id: j for j in jobs}, ok=ok, error="" if ok else "exit 1: no server")


def test_a_finished_wrapper_job_with_its_marker_succeeds(tmp_path):
    watch, _ = watcher()
    track = tracking(tmp_path)
    assert watch.settle(track, answer(JobInfo("42", "Q")), 0) is None
    assert watch.settle(track, answer(JobInfo("42", "R")), 5) is None
    track.task.marker.touch()
    assert watch.settle(track, answer(JobInfo("42", "C")), 10).success


def test_a_job_gone_from_qstat_twice_is_decided_by_its_marker(tmp_path):
    watch, _ = watcher()
    track = tracking(tmp_path)
    watch.settle(track, answer(JobInfo("42", "R")), 0)
    assert watch.settle(track, answer(), 5) is None  # once could be a slow server
    write_status(tmp_path, status="failed", error_category="python_exception", error_summary="boom")
    result = watch.settle(track, answer(), 10)
    assert not result.success and "gone from qstat" in result.summary and result.category is None


def test_a_job_killed_at_its_walltime_is_timeout(tmp_path):
    watch, _ = watcher()
    track = tracking(tmp_path)
    write_status(tmp_path)  # the runner started in job 42, then SIGKILL: still says running
    watch.settle(track, answer(JobInfo("42", "R")), 0)
    result = watch.settle(track, answer(JobInfo("42", "C")), 65)
    assert (result.status, result.category) == ("failed", "timeout")


def test_a_job_running_far_past_its_walltime_is_qdeled(tmp_path):
    watch, qdels = watcher(walltime_grace=100)
    track = tracking(tmp_path)
    watch.settle(track, answer(JobInfo("42", "R")), 0)
    assert watch.settle(track, answer(JobInfo("42", "R")), 150) is None
    result = watch.settle(track, answer(JobInfo("42", "R")), 170)
    assert qdels == [["42"]] and result.category == "timeout" and "past its walltime" in result.summary


def test_a_job_that_left_no_trace_gets_the_latency_wait(tmp_path):
    watch, _ = watcher(latency_wait=30)
    track = tracking(tmp_path)
    assert watch.settle(track, answer(JobInfo("42", "C")), 0) is None
    assert watch.settle(track, answer(), 20) is None
    track.task.marker.touch()  # the marker showed up late on the network file system
    assert watch.settle(track, answer(), 25).success
    track = tracking(tmp_path / "other", job_id="43")
    watch.settle(track, answer(JobInfo("43", "C")), 0)
    assert not watch.settle(track, answer(), 31).success


def test_while_qstat_fails_the_tasks_record_ends_the_wait_and_then_time_does(tmp_path):
    watch, _ = watcher(qstat_failure_timeout=100)
    track = tracking(tmp_path)
    failing = answer(ok=False)
    assert watch.note(failing, 0) and not watch.note(failing, 5)
    assert watch.settle(track, failing, 5) is None
    write_status(tmp_path, status="completed")
    track.task.marker.touch()
    assert watch.settle(track, failing, 10).success
    other = tracking(tmp_path / "other", job_id="43")
    assert watch.settle(other, failing, 50) is None
    gave_up = watch.settle(other, failing, 101)
    assert not gave_up.success and "qstat failed for 101 s" in gave_up.summary
    assert not watch.note(answer(), 102) and watch.failing_since is None
