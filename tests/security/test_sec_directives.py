"""Scheduler directives: options hsm-snake manages cannot sneak in glued to their value, and no
value from hsm.yaml or a sweep's resources becomes a line of a job script."""

from __future__ import annotations

import pytest

MANAGED = {
    "slurm_output_glued": ("slurm", "-o/tmp/x"),
    "slurm_error_glued": ("slurm", "-e/tmp/x"),
    "slurm_output_abbreviated": ("slurm", "--outp=/tmp/x"),
    "slurm_partition_glued": ("slurm", "-pgpu"),
    "pbs_output_glued": ("pbs", "-o/tmp/x"),
    "pbs_queue_glued": ("pbs", "-qworkq"),
    "pbs_walltime_glued": ("pbs", "-lwalltime=99:00:00"),
}


@pytest.mark.parametrize("case", MANAGED)
def test_a_managed_option_glued_to_its_value_is_refused(project, case):
    backend, directive = MANAGED[case]
    project.write_project({backend: {"extra_directives": [directive]}})
    project.write_sweep({"grid": {"x": [1]}})
    result = project.cli("run", "sweep.yaml", "--dry-run", expect=2)
    assert "sets itself" in result.output and f"{backend}.extra_directives" in result.output


SWEEP_RESOURCES = {
    "pbs_queue": {"pbs": {"queue": "workq\ntouch /tmp/owned"}},
    "pbs_account": {"pbs": {"account": "acct\ntouch /tmp/owned"}},
    "pbs_directive": {"pbs": {"extra_directives": ["-m abe\ntouch /tmp/owned"]}},
    "slurm_partition": {"slurm": {"partition": "debug\n#SBATCH --uid=0"}},
    "slurm_constraint": {"slurm": {"constraint": "a100\ntouch /tmp/owned"}},
}


@pytest.mark.parametrize("case", SWEEP_RESOURCES)
def test_a_line_break_in_a_sweeps_resources_never_reaches_a_job_script(project, case):
    project.write_sweep({"grid": {"x": [1]}, "resources": SWEEP_RESOURCES[case]})
    result = project.cli("run", "sweep.yaml", "--dry-run", expect=2)
    assert "line" in result.output or "queue/account name" in result.output
    assert "Traceback" not in result.output
