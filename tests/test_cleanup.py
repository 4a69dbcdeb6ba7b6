"""``hsm-snake cleanup`` (v1's sweep cleanup) and ``recent --all/--incomplete``."""

from __future__ import annotations

import os
import time

from hsm_snake.engine.lock import SweepLock
from hsm_snake.layout.paths import SweepPaths


def _age(sweep_dir, days: float) -> None:
    """Make a sweep look created ``days`` ago (its metadata's time, as a run writes it)."""
    meta = sweep_dir / "sweep_metadata.yaml"
    text = meta.read_text()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - days * 86400))
    lines = [f"created: '{stamp}'" if line.startswith("created:") else line for line in text.splitlines()]
    meta.write_text("\n".join(lines) + "\n")


def test_cleanup_deletes_old_sweeps_spares_incomplete_and_running_ones(project):
    project.write_sweep({"grid": {"x": [1, 2]}})
    for sweep_id in ("old_done", "old_part", "old_busy", "new"):
        project.cli(
            "run", "sweep.yaml", "--sweep-id", sweep_id, *(["--max-tasks", "1"] if sweep_id == "old_part" else [])
        )
    out = project.root / "sweeps" / "outputs"
    for sweep_id in ("old_done", "old_part", "old_busy"):
        _age(out / sweep_id, 40)
    v1_dir = out / "sweep_20240101_000000"
    v1_dir.mkdir()
    (v1_dir / "submission_summary.txt").write_text("Sweep ID: sweep_20240101_000000\n")
    os.utime(v1_dir, (time.time() - 50 * 86400,) * 2)
    listed = project.cli("recent", "--incomplete").output
    assert "old_part" in listed and "old_done" not in listed
    assert all(s in project.cli("recent", "--all").output for s in ("old_done", "old_part", "new"))

    dry = project.cli("cleanup", "--keep-incomplete", "--dry-run").output
    assert "old_done" in dry and "old_busy" in dry and "old_part" not in dry.split("under")[-1] and "dry run" in dry
    assert (out / "old_done").exists()
    with SweepLock(SweepPaths(out / "old_busy")) as lock:
        lock.acquire(["test"])
        done = project.cli("cleanup", "-d", "30", "--keep-incomplete", "-y").output
    assert "kept old_busy: a run is in progress" in done, done
    assert sorted(p.name for p in out.iterdir()) == ["new", "old_busy", "old_part", "sweep_20240101_000000"]
    project.cli("cleanup", "-y")
    assert sorted(p.name for p in out.iterdir()) == ["new"]


def test_cleanup_asks_first(project):
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s")
    _age(project.root / "sweeps" / "outputs" / "s", 31)
    from click.testing import CliRunner

    from hsm_snake.cli.main import cli

    result = CliRunner().invoke(cli, ["cleanup"], input="n\n")
    assert result.exit_code == 1 and "nothing deleted" in result.output
    assert (project.root / "sweeps" / "outputs" / "s").exists()


def test_a_sweep_whose_run_starts_after_the_listing_is_kept(project):
    """The run lock is taken again right before deleting: a run that started meanwhile keeps its sweep."""
    from hsm_snake.engine.cleanup import remove_sweep

    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--sweep-id", "s")
    sweep = project.root / "sweeps" / "outputs" / "s"
    with SweepLock(SweepPaths(sweep)) as lock:
        lock.acquire(["hsm-snake", "complete", "s"])
        why = remove_sweep(sweep, ["hsm-snake", "cleanup"])
    assert why is not None and why.startswith("sweep s is already being run by pid ")
    assert (sweep / "task_mapping.yaml").exists()
    assert remove_sweep(sweep, ["hsm-snake", "cleanup"]) is None and not sweep.exists()


def test_remote_clean_takes_the_sweep_as_the_last_name_refuses_an_ambiguous_one(project):
    """``remote clean [ALIAS]... [SWEEP]`` next to ``--sweep``, decided before any connection."""
    project.write_sweep({"grid": {"x": [1]}})
    for sweep_id in ("box", "here"):
        project.cli("run", "sweep.yaml", "--sweep-id", sweep_id)
    project.write_project({"distributed": {"remotes": {"box": {"host": "box"}}}})  # after the sweeps ran
    for argv in (["here"], ["-y", "--", "here"], ["--sweep", "here"]):
        out = project.cli("remote", "clean", *argv).output
        assert out.strip() == "sweep here ran on no SSH host or Slurm remote: nothing to clean", (argv, out)
    folder = str(project.root / "sweeps" / "outputs" / "here")
    assert "sweep here ran on no SSH host" in project.cli("remote", "clean", folder).output
    out = project.cli("remote", "clean", "-y", "box", expect=2).output
    assert "'box' names both a remote in hsm.yaml and a sweep" in out and "--sweep box" in out, out
    assert "sweep box ran on no SSH host" in project.cli("remote", "clean", "--sweep", "box").output
    out = project.cli("remote", "clean", "-y", "--", "-box", "here", expect=2).output
    assert "'-box'" in out and "remote alias" in out, out
    out = project.cli("remote", "clean", "--everything", "--sweep", "here", expect=2).output
    assert "--sweep or --everything" in out, out
