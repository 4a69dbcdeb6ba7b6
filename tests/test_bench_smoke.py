"""The benchmark script runs end to end at small sizes and prints every section's table.

Timings are never asserted: the bench is for reading, not for failing CI on a busy machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run_bench.py"
SECTION_TITLES = ("planning:", "status:", "monitor:", "local:")


def test_quick_bench_prints_a_table_per_section(tmp_path):
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(figures)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for title in SECTION_TITLES:
        start = next((i for i, line in enumerate(lines) if line.startswith(title)), None)
        assert start is not None, f"no {title} table in:\n{result.stdout}"
        assert lines[start + 1].startswith("┏"), f"{title} is not followed by a table:\n{result.stdout}"
    sections = json.loads(figures.read_text())["sections"]
    assert set(sections) == {"planning", "status", "monitor", "local"}
    assert all(section["rows"] for section in sections.values())


def test_the_ssh_section_skips_with_a_reason_without_the_test_bed(tmp_path):
    env = {**os.environ, "HSM_TESTBED_DIR": str(tmp_path / "no-testbed")}
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "ssh"], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ssh: skipped: no running test bed" in result.stdout and "tests/testbed/start.sh" in result.stdout


@pytest.mark.slow
def test_quick_scale_section_prints_rows_and_growth(tmp_path):
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "scale", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scale growth" in result.stdout, result.stdout
    scale = json.loads(figures.read_text())["sections"]["scale"]
    assert {row["n"] for row in scale["rows"]} == {20, 60}
    assert all("rss_exponent" in item for item in scale["growth"])


def test_the_cluster_benches_counting_pass_through_logs_each_call_and_runs_the_real_command(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))
    from calls import Call, counting_path, logged_calls

    log = tmp_path / "calls.log"
    assert logged_calls(log) == []
    env = {**os.environ, "PATH": counting_path(tmp_path / "bin", log, ("echo",))}
    env.pop("SLURM_JOB_ID", None)
    ran = subprocess.run(["echo", "a b", "x\ny\tz"], env=env, capture_output=True, text=True, check=True)
    assert ran.stdout == "a b x\ny\tz\n"
    subprocess.run(["echo", "-n"], env={**env, "SLURM_JOB_ID": "7"}, check=True)
    assert logged_calls(log) == [Call("echo", False, "a b x y z"), Call("echo", True, "-n")]
