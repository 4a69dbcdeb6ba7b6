"""hsm.yaml backend sections → Snakemake resources and executor options (pure mapping)."""

from __future__ import annotations

import pytest

from hsm_snake.engine.backends import merged_section, slurm_resources, snakemake_args
from hsm_snake.errors import ConfigError


def test_every_slurm_key_maps_to_a_plugin_resource():
    resources = slurm_resources(
        {
            "walltime": "01:30:00",
            "mem": "16G",
            "cpus_per_task": 4,
            "partition": "gpu",
            "account": "proj",
            "qos": "high",
            "constraint": "a100",
            "gpus": 2,
            "gpu_type": "A100",
            "extra_directives": ["--mail-type=FAIL", "--exclude=node[1-3]"],
        }
    )
    assert resources == {
        "runtime": 90,
        "mem_mb": 16384,
        "cpus_per_task": 4,
        "slurm_partition": "gpu",
        "slurm_account": "proj",
        "qos": "high",
        "constraint": "a100",
        "gpu": 2,
        "gpu_model": "A100",
        "slurm_extra": "--mail-type=FAIL '--exclude=node[1-3]'",
    }


def test_defaults_leave_room_for_snakemake_in_the_job():
    # No memory floor: without slurm.mem the job gets the cluster's default request.
    assert slurm_resources({}) == {"runtime": 60}
    assert "mem_mb" not in slurm_resources({"mem_per_cpu": "2G"})


@pytest.mark.parametrize(
    "directive, key",
    [("--time=10", "walltime"), ("-p debug", "partition"), ("--mem=4G", "mem"), ("--array=1-3", "array")],
)
def test_options_the_plugin_manages_are_refused_with_the_key_to_use(directive, key):
    with pytest.raises(ConfigError) as err:
        slurm_resources({"extra_directives": [directive]})
    assert "slurm.extra_directives" in str(err.value) and key in str(err.value)


def test_sweep_resources_win_and_executor_options():
    section = merged_section({"slurm": {"mem": "4G", "partition": "a"}}, {"slurm": {"mem": "8G"}}, "slurm")
    assert section == {"mem": "8G", "partition": "a"}
    assert snakemake_args("slurm", {"slurm": {"max_array_size": 50}}, {}) == [
        "--hsm-slurm-no-account",
        "--hsm-slurm-array-limit",
        "50",
    ]
    assert snakemake_args("slurm", {"slurm": {"account": "x"}}, {}) == [
        "--hsm-slurm-array-limit",
        "500",
    ]
    assert snakemake_args("slurm", {"slurm": {"account": "x", "max_array_size": 5000}}, {}) == [
        "--hsm-slurm-array-limit",
        "1000",
    ]
    assert snakemake_args("local", {}, {}) == []
    assert snakemake_args("pbs", {"pbs": {"max_array_size": 1}}, {}) == ["--hsm-pbs-array-limit", "1"]
    assert snakemake_args("pbs", {"pbs": {}}, {"pbs": {"max_array_size": 20}}) == ["--hsm-pbs-array-limit", "20"]
    assert snakemake_args("pbs", {"pbs": {"account": "x"}}, {}) == []


def test_local_snakemake_args_give_the_device_slots():
    gpus = {"per_task": 1, "visible": [0, 1, 2], "tasks_per_gpu": 2}
    assert snakemake_args("local", {}, {}, gpus) == ["--resources", "gpu=6"]
    assert snakemake_args("local", {}, {}, {**gpus, "per_task": 0}) == []
    assert snakemake_args("local", {}, {}, {**gpus, "visible": []}) == []
    assert snakemake_args("slurm", {"slurm": {"account": "x"}}, {}, gpus) == [
        "--hsm-slurm-array-limit",
        "500",
    ]
