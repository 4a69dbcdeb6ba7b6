"""Loading good configs: the examples, every v1 layout, finding hsm.yaml, paths, units, defaults."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hsm_snake.config.conventions import task_conventions
from hsm_snake.config.project import (
    find_project_config,
    load_project,
    parse_mem_mb,
    parse_walltime_seconds,
)
from hsm_snake.config.sweep_file import PairedGroup, load_sweep
from hsm_snake.config.yamlsource import parse_yaml_text
from hsm_snake.errors import ConfigError
from hsm_snake.package_data import profiles_dir, schema_dir, workflow_dir
from hsm_snake.runner import conda
from hsm_snake.sweep.expand import count

REPO = Path(__file__).resolve().parent.parent
V1 = Path(__file__).resolve().parent / "configs" / "v1"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- packaged files --------------------------------------------------------------------------


def test_resource_folders_are_found_in_the_checkout():
    assert (workflow_dir() / "Snakefile").is_file()
    assert (schema_dir() / "sweep.schema.json").is_file()
    assert (schema_dir() / "project.schema.json").is_file()
    assert (profiles_dir() / "local" / "config.yaml").is_file()


def test_example_configs_of_the_repository_load():
    spec = load_sweep(REPO / "config" / "sweep.yaml")
    assert spec.grid == {"lr": [0.001, 0.01, 0.1], "optimizer": ["sgd", "momentum"]}
    assert spec.paired == [PairedGroup("model_size", {"model.depth": [2, 4], "model.width": [16, 64]})]
    assert count(spec) == 12
    project = load_project(REPO / "config" / "hsm.yaml", cwd=REPO)
    assert project.root == REPO / "config"
    assert project.train_script == REPO / "config" / "train.py"
    assert project.output_dir == REPO / "sweeps" / "outputs"
    assert project.section("task")["output_dir_arg"] == "output.dir"
    assert task_conventions(project, project.train_script).arg_style == "argparse"  # read from train.py


# --- v1 sweep files --------------------------------------------------------------------------

V1_SWEEPS = {
    "sweep_init_template.yaml": dict(
        grid={"data.batch_size": [32, 64], "model.lr": [0.001, 0.01, 0.1], "seed": [1, 2, 3]},
        paired=[],
        defaults={},
        count=18,
    ),
    "sweep_getting_started.yaml": dict(
        grid={"seed": [1, 2, 3], "lr": [0.001, 0.01, 0.1]},
        paired=[PairedGroup("schedule_pair", {"optimizer": ["adam", "sgd"], "momentum": [0.9, 0.95]})],
        defaults={"batch_size": 32},
        count=18,
    ),
    "sweep_unwrapped.yaml": dict(
        grid={"model.hidden_size": [128, 256], "model.layers": [[64, 128], [256]], "optimizer.lr": [0.001, 0.01]},
        paired=[
            PairedGroup(
                "model_and_optimizer", {"model.type": ["cnn", "transformer"], "optimizer.type": ["adam", "sgd"]}
            ),
            PairedGroup("data_pair", {"data.name": ["mnist", "cifar"], "data.channels": [1, 3]}),
        ],
        defaults={},
        count=32,
    ),
    "sweep_multi_name_item.yaml": dict(
        grid={"seed": [1, 2]},
        paired=[PairedGroup("arch+width", {"model.depth": [2, 4, 8], "model.width": [16, 32, 64]})],
        defaults={},
        count=6,
    ),
    "sweep_cluster_features.yaml": dict(
        grid={"training.n_message_steps": [5, 16], "seed": [1, 2, 3]}, paired=[], defaults={}, count=6
    ),
    "sweep_hydra_defaults_mappings.yaml": dict(
        grid={"learning_rate": [0.001, 0.01, 0.1], "seed": [7, 10]}, paired=[], defaults={}, count=6
    ),
}


@pytest.mark.parametrize("name", sorted(V1_SWEEPS))
def test_v1_sweep_files_load_unchanged(name):
    expected = V1_SWEEPS[name]
    spec = load_sweep(V1 / name)
    assert spec.grid == expected["grid"]
    assert spec.paired == expected["paired"]
    assert spec.defaults == expected["defaults"]
    assert count(spec) == expected["count"]
    assert spec.source == V1 / name
    assert spec.raw and isinstance(spec.raw, dict)


def test_every_v1_sweep_example_is_covered():
    assert sorted(p.name for p in V1.glob("sweep_*.yaml")) == sorted(V1_SWEEPS)


def test_v1_sweep_keys_that_are_ignored_are_noted():
    spec = load_sweep(V1 / "sweep_cluster_features.yaml")
    notes = "\n".join(spec.notices)
    for key in ("'complete'", "'resumable'", "'sweep.cost_param'", "'sweep.cost_map'"):
        assert key in notes
    assert "sweep_cluster_features.yaml:3:" in notes


def test_script_metadata_and_resources_are_kept():
    spec = load_sweep(V1 / "sweep_getting_started.yaml")
    assert spec.script == "train.py"
    assert spec.metadata == {"description": "smoke test for new arch"}


def test_sweep_resources_by_backend_and_retries(tmp_path):
    path = write(tmp_path / "sweep.yaml", "grid: {lr: [1]}\nresources:\n  slurm: {mem: 8G}\n  retries: 2\n")
    assert load_sweep(path).resources == {"slurm": {"mem": "8G"}, "retries": 2}


# --- v1 project files ------------------------------------------------------------------------


def test_v1_project_config_of_2025_init(tmp_path):
    project = load_project(V1 / "init_2025" / "sweeps" / "hsm_config.yaml", cwd=tmp_path)
    assert project.root == Path("/srv/projects/demo")
    assert project.output_dir == Path("/srv/projects/demo/sweeps/outputs")
    assert project.python_command() == ["/opt/envs/demo/bin/python"]
    assert project.train_script == Path("/srv/projects/demo/scripts/train.py")
    assert project.data["pbs"] == {
        "walltime": "04:00:00",
        "max_array_size": 10000,
        "select": 1,
        "ncpus": 4,
        "mem": "16gb",
    }
    assert "slurm" not in project.data and "hpc" not in project.data
    assert project.data["wandb"] == {"entity": "", "project": "demo", "group_override": True}


def test_v1_project_config_of_the_readme(tmp_path):
    project = load_project(V1 / "docs_2025" / "hsm_config.yaml", cwd=tmp_path)
    assert project.root == V1 / "docs_2025"
    local = project.section("local")
    assert local["max_parallel"] == 4 and local["walltime"] == "01:00:00"
    assert "max_parallel_jobs" not in local and "timeout" not in local
    assert project.data["slurm"] == {
        "walltime": "04:00:00",
        "cpus_per_task": 4,
        "mem": "16G",
        "partition": "gpu",
        "extra_directives": ["--mail-type=FAIL"],
    }
    remote = project.data["distributed"]["remotes"]["gpu_server"]
    assert remote == {
        "host": "gpu.university.edu",
        "ssh_key": "~/.ssh/id_ed25519",
        "port": 2222,
        "max_parallel_jobs": 8,
        "tasks_per_gpu": 1,
    }
    assert project.data["distributed"]["strategy"] == "round_robin"
    assert any("'local.timeout' is a v1 key: read as 'local.walltime'" in n for n in project.notices)


def test_v1_project_config_of_2026(monkeypatch, tmp_path):
    monkeypatch.setenv("USER", "alice")
    project = load_project(V1 / "machine_2026" / ".hsm" / "config.yaml", cwd=tmp_path)
    assert project.root == V1 / "machine_2026"
    assert project.output_dir == Path("/mnt/big-disk/alice/hsm-sweeps")
    assert project.python_command() == [*conda.run_prefix("demo"), "python"]
    local = project.section("local")
    assert local["pre_script"] == "module load cuda/12\nexport OMP_NUM_THREADS=4"
    assert local["visible_gpus"] == [1, 2, 3] and local["gpus"] == 1 and local["walltime"] == "04:00:00"
    slurm = project.section("slurm")
    assert slurm["gpu_type"] == "H100" and slurm["modules"] == ["matlab"]
    assert slurm["extra_directives"] == ["--mail-type=FAIL", "--exclude=node01"]
    assert slurm["qos_whitelist"] == ["normal", "medium"]
    distributed = project.section("distributed")
    assert distributed["strategy"] == "least_loaded" and distributed["local_slots"] == 1
    remotes = distributed["remotes"]
    assert set(remotes) == {"my-box", "lab-pc"}
    # spec: is this remote's own set-up and limits (v1's per-remote ResourceSpec).
    assert remotes["my-box"] == {
        "max_parallel_jobs": 4,
        "conda_env": "demo",
        "gpus": 1,
        "walltime": "04:00:00",
        "tasks_per_gpu": 1,
    }
    assert distributed["rsync_excludes"] == ["data/raw/"]
    assert remotes["lab-pc"] == {
        "host": "lab-pc.example.org",
        "port": 2222,
        "visible_gpus": [0, 1],
        "conda_env": "demo-cpu",
        "tasks_per_gpu": 1,
    }


def test_v2_branch_project_config(tmp_path):
    project = load_project(V1 / "v2_branch" / "hsm_config.yaml", cwd=tmp_path)
    assert project.root == Path("/home/user/code/simple_mlp")
    assert project.train_script == Path("/home/user/code/simple_mlp/main.py")
    assert project.section("local")["max_parallel"] == 4
    # Both set: as in v1, conda_env wins in a v1 file (hsm.yaml makes this an error).
    assert conda.describe(project.python_command()).startswith("conda_env ")
    assert "python_interpreter" not in project.section("paths")
    assert any("conda_env wins" in note for note in project.notices)
    for ignored in ("logging", "compute", "experiment_tracking", "hpc"):
        assert ignored not in project.data


def test_v1_example_blocks_no_loader_read_are_ignored(tmp_path):
    project = load_project(V1 / "examples_root" / "hsm_config.yaml", cwd=tmp_path)
    assert "execution" not in project.data and "resources" not in project.data
    assert len(project.notices) == 2


def test_v1_files_are_found_in_their_v1_locations(tmp_path):
    write(tmp_path / "sweeps" / "hsm_config.yaml", (V1 / "init_2025" / "sweeps" / "hsm_config.yaml").read_text())
    project = load_project(None, cwd=tmp_path / "sweeps")
    assert project.source == tmp_path / "sweeps" / "hsm_config.yaml"


# --- finding and placing the project config --------------------------------------------------


@pytest.mark.parametrize(
    "present, found",
    [
        (["hsm.yaml", ".hsm/config.yaml", "sweeps/hsm_config.yaml", "hsm_config.yaml"], "hsm.yaml"),
        ([".hsm/config.yaml", "sweeps/hsm_config.yaml", "hsm_config.yaml"], ".hsm/config.yaml"),
        (["sweeps/hsm_config.yaml", "hsm_config.yaml"], "sweeps/hsm_config.yaml"),
        (["hsm_config.yaml"], "hsm_config.yaml"),
    ],
)
def test_find_project_config_order(tmp_path, present, found):
    for name in present:
        write(tmp_path / name, "{}\n")
    assert find_project_config(tmp_path) == tmp_path / found


def test_find_project_config_walks_up_and_stops_at_the_first_folder_with_one(tmp_path):
    write(tmp_path / "hsm.yaml", "{}\n")
    write(tmp_path / "a" / "hsm_config.yaml", "{}\n")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_project_config(deep) == tmp_path / "a" / "hsm_config.yaml"
    assert find_project_config(tmp_path / "a") == tmp_path / "a" / "hsm_config.yaml"


def test_the_v1_machine_config_in_home_is_not_a_project_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / ".hsm" / "config.yaml", "local: {visible_gpus: [1]}\n")
    (tmp_path / "project").mkdir()
    assert find_project_config(tmp_path / "project") is None


def test_no_project_config_gives_defaults_rooted_at_cwd(tmp_path):
    project = load_project(None, cwd=tmp_path)
    assert project.source is None and project.root == tmp_path
    assert project.output_dir == tmp_path / "sweeps" / "outputs"
    assert project.python_command() == [sys.executable]
    assert project.train_script is None
    # arg_style and output_dir_arg follow from the script when unset (conventions.py).
    assert project.section("task") == {
        "bool_style": "flag",
        "list_style": "nargs",
        "workdir": "project",
        "extra_args": [],
        "env": {},
        "metrics_regex": {},
    }
    assert project.data["retries"] == 0 and project.section("local") == {"tasks_per_gpu": 1}
    assert "wandb" not in project.data and project.section("slurm") == {}


@pytest.mark.parametrize(
    "location, project_dir",
    [
        ("hsm.yaml", "."),
        (".hsm/config.yaml", "."),
        ("sweeps/hsm_config.yaml", "."),
        ("conf/hsm.yaml", "conf"),
    ],
)
def test_root_is_the_folder_the_config_belongs_to(tmp_path, location, project_dir):
    write(tmp_path / location, "paths: {train_script: train.py}\n")
    project = load_project(tmp_path / location, cwd=tmp_path)
    assert project.root == (tmp_path / project_dir).resolve()
    assert project.train_script == project.root / "train.py"


def test_project_root_is_relative_to_the_config_folder(tmp_path):
    write(tmp_path / "project" / ".hsm" / "config.yaml", "project: {root: ../code}\n")
    project = load_project(None, cwd=tmp_path / "project")
    assert project.root == tmp_path / "code"
    assert project.output_dir == tmp_path / "code" / "sweeps" / "outputs"


def test_an_absolute_output_dir_is_kept(tmp_path):
    write(tmp_path / "hsm.yaml", "paths: {output_dir: /data/sweeps}\n")
    assert load_project(None, cwd=tmp_path).output_dir == Path("/data/sweeps")


def test_v1_output_dir_named_the_scripts_outputs_so_sweeps_stay_where_v1_put_them(tmp_path):
    write(tmp_path / ".hsm" / "config.yaml", "paths: {output_dir: outputs}\n")
    project = load_project(None, cwd=tmp_path)
    assert project.output_dir == tmp_path / "sweeps" / "outputs"
    assert any("'paths.output_dir' named the script's outputs in v1" in note for note in project.notices)


def test_a_relative_config_path_is_relative_to_cwd(tmp_path):
    write(tmp_path / "conf" / "hsm.yaml", "local: {max_parallel: 3}\n")
    assert load_project(Path("conf/hsm.yaml"), cwd=tmp_path).section("local")["max_parallel"] == 3


def test_an_empty_project_config_means_all_defaults(tmp_path):
    write(tmp_path / "hsm.yaml", "# nothing yet\n")
    project = load_project(None, cwd=tmp_path)
    assert project.source == tmp_path / "hsm.yaml"
    assert project.section("task")["workdir"] == "project" and "arg_style" not in project.section("task")


@pytest.mark.parametrize(
    "paths, command",
    [
        ("{conda_env: ml}", [*conda.run_prefix("ml"), "python"]),
        ("{conda_env: ml, conda_root: /opt/mf}", [*conda.run_prefix("ml", "/opt/mf"), "python"]),
        ("{python_interpreter: python3}", ["python3"]),
        ("{python_interpreter: venv/bin/python}", ["{root}/venv/bin/python"]),
        ("{python_interpreter: /usr/bin/python3}", ["/usr/bin/python3"]),
    ],
)
def test_python_command(tmp_path, paths, command):
    write(tmp_path / "hsm.yaml", f"paths: {paths}\n")
    expected = [part.replace("{root}", str(tmp_path)) for part in command]
    assert load_project(None, cwd=tmp_path).python_command() == expected


def test_a_full_new_format_config_round_trips(tmp_path):
    write(
        tmp_path / "hsm.yaml",
        """\
project: {name: demo}
paths: {python_interpreter: python3, train_script: train.py, config_dir: configs, output_dir: out}
task:
  arg_style: raw
  output_dir_arg: null
  extra_args: ["trainer.fast=true"]
  env: {OMP_NUM_THREADS: "2"}
  metrics_regex: {loss: "loss=([0-9.]+)"}
retries: 2
local: {max_parallel: 4, gpus: 1, visible_gpus: [0, 1], tasks_per_gpu: 2, walltime: 90m, mem: 4G, pre_script: "module load cuda"}
slurm: {walltime: 1-00:00:00, cpus_per_task: 8, mem: 32G, gpus: 1, gpu_type: A100, partition: gpu, qos: normal,
        account: lab, constraint: a100, modules: [cuda], pre_script: [a, b], extra_directives: ["--exclusive"],
        max_array_size: 500}
pbs: {flavor: torque, queue: batch, account: lab, walltime: 2h, nodes: 1, ppn: 4, mem: 8GB, modules: cuda,
      extra_directives: ["-m abe"], max_array_size: 100}
distributed:
  strategy: least_loaded
  local_slots: 0
  remotes:
    box: {host: box.example.org, port: 22, user: me, ssh_key: ~/.ssh/k, conda_env: ml, project_dir: ~/demo,
          max_parallel_jobs: 2, gpus: 1, visible_gpus: [0], tasks_per_gpu: 1, shared_fs: false}
wandb: {project: demo, entity: lab, group_override: false}
""",
    )
    project = load_project(None, cwd=tmp_path)
    assert project.notices == ()
    assert project.section("task")["output_dir_arg"] is None
    assert project.section("slurm")["pre_script"] == "a\nb"
    assert project.section("pbs")["modules"] == ["cuda"]
    assert project.section("wandb")["group_override"] is False
    assert project.output_dir == tmp_path / "out"


# --- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("04:00:00", 14400),
        ("00:10:30", 630),
        ("100:00:00", 360000),
        ("1-02:03:04", 93784),
        ("2-00", 172800),
        ("1-12:30", 131400),
        (90, 5400),
        ("90", 5400),
        ("90m", 5400),
        ("2h", 7200),
        ("1.5h", 5400),
        ("45s", 45),
        ("1d", 86400),
        (" 2H ", 7200),
    ],
)
def test_parse_walltime_seconds(value, seconds):
    assert parse_walltime_seconds(value, "local.walltime") == seconds


@pytest.mark.parametrize(
    "value, megabytes",
    [
        ("16G", 16384),
        ("16GB", 16384),
        ("16gb", 16384),
        ("500M", 500),
        ("500MB", 500),
        (16000, 16000),
        ("16000", 16000),
        ("1T", 1048576),
        ("1.5G", 1536),
        ("512K", 1),
        ("2GiB", 2048),
        ("8 G", 8192),
    ],
)
def test_parse_mem_mb(value, megabytes):
    assert parse_mem_mb(value, "slurm.mem") == megabytes


@pytest.mark.parametrize("value", ["23:00", "4 hours", "", "1:61:00", True, 0, "0:00:00", [1]])
def test_bad_walltimes_name_the_key_and_show_good_forms(value):
    with pytest.raises(ConfigError) as caught:
        parse_walltime_seconds(value, "slurm.walltime")
    assert caught.value.key == "slurm.walltime" and "HH:MM:SS" in caught.value.hint


@pytest.mark.parametrize("value", ["16 gigs", "G", "-1G", False, 0, "1.2.3M"])
def test_bad_memory_names_the_key_and_shows_good_forms(value):
    with pytest.raises(ConfigError) as caught:
        parse_mem_mb(value, "local.mem")
    assert caught.value.key == "local.mem" and '"16G"' in caught.value.hint


# --- YAML details ----------------------------------------------------------------------------


def test_yaml_numbers_follow_yaml_1_2_like_v1():
    data = parse_yaml_text("a: 1e-3\nb: 010\nc: 12:00:00\nd: 2024-01-01\ne: 1_000\nf: yes\ng: .5\nh: 0x10\n").data
    assert data == {
        "a": 0.001,
        "b": 10,
        "c": "12:00:00",
        "d": "2024-01-01",
        "e": 1000,
        "f": True,
        "g": 0.5,
        "h": "0x10",
    }


def test_key_lines_are_recorded():
    lines = parse_yaml_text("grid:\n  lr: [1, 2]\npaired:\n  - g:\n      a: [1]\n").lines
    assert lines["grid.lr"] == 2 and lines["paired[0]"] == 4 and lines["paired[0].g.a"] == 5


def test_v1_slurm_remote_over_ssh_loads_with_its_spec_in_its_slurm_block(tmp_path):
    """The headline config of v1's MULTI_CLUSTER guide: a backend: slurm remote."""
    path = write(
        tmp_path / "hsm_config.yaml",
        """
paths: {train_script: train.py}
slurm: {partition: debug, mem: 1G, modules: [cuda]}
distributed:
  enabled: true
  remotes:
    ssh-box: {host: ssh-box, max_parallel_jobs: 4, gpus: all, spec: {cpus_per_task: 4, gpus: 1}}
    cluster:
      backend: slurm
      host: cluster
      ssh_port: 2222
      max_parallel_jobs: 32
      conda_env: my-env
      workdir: "/scratch/$USER/hsm-runs"
      archive_dir: "/shares/group/hsm-archive"
      archive_on: completed
      qos_whitelist: [normal, medium, long]
      slurm: {account: lab}
      spec: {walltime: "06:00:00", cpus_per_task: 4, mem: "32G", gpus: 1, gpu_type: H100, array_throttle: 8}
""",
    )
    project = load_project(path, cwd=tmp_path)
    cluster = project.section("distributed")["remotes"]["cluster"]
    assert cluster["backend"] == "slurm" and cluster["port"] == 2222 and cluster["workdir"] == "/scratch/$USER/hsm-runs"
    assert cluster["slurm"] == {
        "account": "lab",
        "qos_whitelist": ["normal", "medium", "long"],
        "walltime": "06:00:00",
        "cpus_per_task": 4,
        "mem": "32G",
        "gpus": 1,
        "gpu_type": "H100",
    }
    assert "backend" not in project.section("distributed")["remotes"]["ssh-box"]
    notices = "\n".join(project.notices)
    assert "array_throttle ignored" in notices and "read into 'distributed.remotes.cluster.slurm'" in notices
    assert cluster["archive_dir"] == "/shares/group/hsm-archive" and cluster["archive_on"] == "completed"
    assert "archive_dir" not in notices


def test_a_slurm_remote_gets_its_own_resources_and_set_up(tmp_path):
    from hsm_snake.config.sweep_file import load_sweep
    from hsm_snake.sweep.create import project_record

    path = write(
        tmp_path / "hsm.yaml",
        """
slurm: {partition: debug, mem: 1G, modules: [cuda]}
distributed:
  remotes:
    uzh: {backend: slurm, host: uzh, slurm: {mem: 4G, partition: gpu, pre_script: "source env.sh"}}
""",
    )
    sweep = write(tmp_path / "sweep.yaml", "grid: {lr: [1]}\nresources: {slurm: {walltime: '02:00:00'}}\n")
    record = project_record(load_project(path, cwd=tmp_path), load_sweep(sweep))
    remote = record["resources"]["slurm@uzh"]
    assert remote["mem_mb"] == 4096 and remote["slurm_partition"] == "gpu" and remote["runtime"] == 120
    assert record["resources"]["slurm"]["mem_mb"] == 1024
    assert record["runner"]["pre_scripts"]["slurm@uzh"] == "module load cuda\nsource env.sh"
    assert record["runner"]["pre_scripts"]["slurm"] == "module load cuda"


def test_v1_remote_gpu_settings_and_slurm_spec_forms_are_read(tmp_path):
    path = write(
        tmp_path / "hsm_config.yaml",
        """
hpc:
  system: slurm
  module_commands: [module load cuda, module load gcc]
distributed:
  remotes:
    listed: {host: a, gpus: [0, 2]}
    cpu-only: {host: b, gpus: cpu}
    counted: {host: c, gpus: 2, spec: {gpus: 1}}
    cluster:
      backend: slurm
      host: d
      spec:
        modules: cuda/12
        pre_script: [source a.sh, source b.sh]
        extra_directives: {exclusive: true, requeue: false, mail-type: END}
""",
    )
    project = load_project(path, cwd=tmp_path)
    remotes = project.section("distributed")["remotes"]
    assert remotes["listed"]["visible_gpus"] == [0, 2] and "gpus" not in remotes["listed"]
    assert remotes["cpu-only"]["gpus"] == 0
    assert remotes["counted"]["gpus"] == 1  # v1 took spec.gpus as the per-task count, not the top-level 2
    assert remotes["cluster"]["slurm"] == {
        "modules": ["cuda/12"],
        "pre_script": "source a.sh\nsource b.sh",
        "extra_directives": ["--exclusive", "--mail-type=END"],
    }
    assert project.section("slurm")["pre_script"] == "module load cuda\nmodule load gcc"
    notices = "\n".join(project.notices)
    assert "'cpu' is v1's CPU-only setting: read as gpus: 0" in notices
    assert "is a v1 GPU allowlist: read as visible_gpus" in notices
    assert "is v1's count of GPUs to use next to spec.gpus: ignored" in notices
