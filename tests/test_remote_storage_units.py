"""A Slurm remote's storage tiers without a cluster: the login node's program (run here by this
Python, argv as ssh would pass it), when archive_on asks for an archive, and hsm.yaml's checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hsm_snake.config.project import load_project
from hsm_snake.errors import ConfigError
from hsm_snake.executors.remote_cluster import storage
from hsm_snake.layout.paths import SweepPaths
from hsm_snake.layout.records import read_record

SWEEP = "sweep_20261206_120000"


def login_node(
    source: Path | str, archive_dir: str, *, archive=False, require=False, remove=False, failed=False, env=None
):
    flags = ["1" if flag else "0" for flag in (archive, require, remove, failed)]
    done = subprocess.run(
        [sys.executable, "-c", storage.STORAGE_CODE, str(source), archive_dir, SWEEP, *flags],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return yaml.safe_load(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def copy(tmp_path):
    source = tmp_path / "scratch runs $x" / SWEEP
    (source / "tasks" / "task_001").mkdir(parents=True)
    (source / "tasks" / "task_001" / "status.yaml").write_text("status: completed\n")
    return source


def test_archive_then_remove_writes_v1s_sentinel(copy, tmp_path, monkeypatch):
    env = {"PATH": "/usr/bin:/bin", "ARCHIVES": str(tmp_path / "shares 'grp'")}
    facts = login_node(copy, "$ARCHIVES/hsm-archive", archive=True, require=True, remove=True, env=env)
    target = tmp_path / "shares 'grp'" / "hsm-archive" / SWEEP
    assert facts == {"source": str(copy), "target": str(target), "archived": True, "removed": True}
    assert (target / "tasks" / "task_001" / "status.yaml").read_text() == "status: completed\n"
    sentinel = yaml.safe_load((target / ".archived").read_text())
    assert set(sentinel) == {"archived_at", "source", "sweep_id", "any_failed"}  # v1's keys
    assert sentinel["source"] == str(copy) and sentinel["sweep_id"] == SWEEP and sentinel["any_failed"] is False
    assert (target / ".archived").read_text().splitlines()[3] == "any_failed: False"  # as v1 writes it
    assert not copy.exists() and copy.parent.exists()


def test_a_failed_archive_or_a_missing_one_keeps_the_copy(copy, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    facts = login_node(copy, str(blocked), archive=True, require=True, remove=True)
    assert "cannot create" in facts["error"] and copy.is_dir()
    facts = login_node(copy, str(tmp_path / "empty"), require=True, remove=True)
    assert facts["error"] == "not archived" and copy.is_dir()
    facts = login_node(copy, "", remove=True)
    assert facts["removed"] and not copy.exists()
    assert login_node(copy, "")["missing"] is True


def test_an_archive_with_its_sentinel_is_not_made_again_and_the_copy_may_go(copy, tmp_path):
    first = login_node(copy, str(tmp_path / "archive"), archive=True, require=True)
    sentinel = tmp_path / "archive" / SWEEP / ".archived"
    written = sentinel.read_text()
    (copy / "tasks" / "task_001" / "status.yaml").write_text("status: changed\n")
    facts = login_node(copy, str(tmp_path / "archive"), archive=True, require=True, remove=True)
    assert first["archived"] and facts == {
        "source": str(copy),
        "target": str(tmp_path / "archive" / SWEEP),
        "archived_before": True,
        "removed": True,
    }
    assert sentinel.read_text() == written and not copy.exists()
    archived = tmp_path / "archive" / SWEEP / "tasks" / "task_001" / "status.yaml"
    assert archived.read_text() == "status: completed\n"  # not copied over
    step = storage.StorageStep("box", str(copy), target=facts["target"], archived_before=True, removed=True)
    assert storage.describe(step) == (
        f"storage: {copy}: archived in {facts['target']} already (.archived there); removed {copy}"
    )


def test_an_archive_of_a_failed_sweep_is_brought_up_to_date_once_it_completed(copy, tmp_path):
    """archive_on: always archives a failed sweep; once a later complete finished it, the archive
    gets the completed copy and a sentinel saying so (v1 rsyncs each time), then it is not redone."""
    task = copy / "tasks" / "task_001" / "status.yaml"
    task.write_text("status: failed\n")
    login_node(copy, str(tmp_path / "archive"), archive=True, require=True, failed=True)
    target = tmp_path / "archive" / SWEEP
    assert yaml.safe_load((target / ".archived").read_text())["any_failed"] is True
    task.write_text("status: completed\n")
    facts = login_node(copy, str(tmp_path / "archive"), archive=True, require=True, remove=True)
    assert facts["archived"] and facts["removed"] and "archived_before" not in facts
    assert (target / "tasks" / "task_001" / "status.yaml").read_text() == "status: completed\n"
    assert yaml.safe_load((target / ".archived").read_text())["any_failed"] is False
    (copy / "tasks").mkdir(parents=True)
    assert login_node(copy, str(tmp_path / "archive"), archive=True)["archived_before"] is True


def test_a_copy_on_a_remote_gone_from_the_config_is_kept_without_a_connection(tmp_path):
    step = storage.finish_copy(SweepPaths(tmp_path / SWEEP), "gone", "/scratch/" + SWEEP, "completed", {})
    assert step is not None and "no longer a remote" in step.error and not step.removed


@pytest.mark.parametrize("where", ["parent", "itself"])
def test_an_archive_dir_holding_the_copy_is_refused(copy, where):
    archive_dir = copy.parent if where == "parent" else copy
    facts = login_node(copy, str(archive_dir), archive=True, remove=True)
    assert "holds the sweep's copy itself" in facts["error"] and copy.is_dir()


@pytest.mark.parametrize("source", ["relative/" + SWEEP, "/tmp/not-the-sweep", "/"])
def test_only_a_sweep_copy_is_touched(source):
    assert login_node(source, "", remove=True)["error"].startswith("refused")


@pytest.mark.parametrize(
    ("remote", "outcome", "wanted"),
    [
        ({"archive_dir": "/a"}, "completed", True),
        ({"archive_dir": "/a"}, "failed", False),
        ({"archive_dir": "/a", "archive_on": "always"}, "failed", True),
        ({"archive_dir": "/a", "archive_on": "always"}, None, False),
        ({"archive_dir": "/a", "archive_on": "never"}, "completed", False),
        ({"archive_on": "always"}, "completed", False),
    ],
)
def test_archive_on(remote, outcome, wanted):
    assert storage.archive_wanted(remote, outcome) is wanted


def write_config(tmp_path: Path, remote: str, name: str = "hsm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"paths: {{train_script: train.py}}\ndistributed:\n  remotes:\n    box: {remote}\n")
    return path


def test_archive_on_is_checked_with_a_did_you_mean(tmp_path):
    path = write_config(tmp_path, "{backend: slurm, host: c, archive_dir: /shares/a, archive_on: complete}")
    with pytest.raises(ConfigError) as error:
        load_project(path, cwd=tmp_path)
    assert error.value.key == "distributed.remotes.box.archive_on" and error.value.line == 4
    assert "did you mean 'completed'" in str(error.value)


def test_archive_dir_is_one_line(tmp_path):
    path = write_config(tmp_path, '{backend: slurm, host: c, archive_dir: "/shares/a\\nrm -rf ~"}')
    with pytest.raises(ConfigError) as error:
        load_project(path, cwd=tmp_path)
    assert error.value.key == "distributed.remotes.box.archive_dir"


def test_archive_keys_on_an_ssh_host(tmp_path):
    path = write_config(tmp_path, "{host: box, archive_dir: /shares/a}")
    with pytest.raises(ConfigError) as error:
        load_project(path, cwd=tmp_path)
    assert error.value.key == "distributed.remotes.box.archive_dir" and "backend: slurm" in str(error.value)
    # A v1 file loads: v1 accepted the key there and did nothing with it.
    v1 = load_project(write_config(tmp_path, "{host: box, archive_on: never}", "hsm_config.yaml"), cwd=tmp_path)
    assert "archive_on" not in v1.section("distributed")["remotes"]["box"]
    assert any("archive_on' is ignored: an SSH host has no archive step" in notice for notice in v1.notices)


def test_finish_settles_each_copy_once_per_outcome_and_tries_a_failed_step_again(project):
    """storage.finish without a connection: a copy nothing is asked of (no archive_dir, kept) is
    settled; one on an alias gone from the config is reported at every end until it is back."""
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s")
    paths = SweepPaths(project.root / "sweeps" / "outputs" / "s")
    entry = {"alias": "kept", "array_id": "12", "remote_sweep": "/scratch/s", "tasks": ["task_001"]}
    lines = [entry, {**entry, "alias": "gone", "array_id": "13"}]
    paths.submitted_jobs("remote-slurm").write_text("".join(json.dumps(line) + "\n" for line in lines))
    kept = {"backend": "slurm", "host": "login", "keep_remote_on_success": True}
    project_data = {"distributed": {"remotes": {"kept": kept}}}
    for _ in range(2):
        (step,) = storage.finish(paths, project_data)
        assert step.alias == "gone" and "no longer a remote" in step.error
    assert read_record(paths.cluster_storage) == {"kept": {"outcome": "completed", "arrays": 1}}
    paths.cluster_storage.write_text("kept: [damaged\n")
    assert [step.alias for step in storage.finish(paths, project_data)] == ["gone"]
    assert read_record(paths.cluster_storage)["kept"] == {"outcome": "completed", "arrays": 1}
