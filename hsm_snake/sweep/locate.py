"""Find a sweep directory from what the user typed: a path, a sweep id, or nothing (newest)."""

from __future__ import annotations

import shlex
from pathlib import Path

from hsm_snake.errors import SweepNotFoundError
from hsm_snake.layout.paths import SweepPaths


def find_sweep(ref: str | None, cwd: Path) -> SweepPaths:
    """A sweep by path, by id under the project's output dir, or the newest one there."""
    if ref:
        candidate = Path(ref).expanduser()
        if SweepPaths(candidate).task_mapping.exists():
            return SweepPaths(candidate.resolve())
        _refuse_sweep_without_mapping(candidate)
    # Only an id or "newest" needs the project config (for its output dir).
    from hsm_snake.config.project import load_project

    output_dir = load_project(None, cwd=cwd).sweeps_listing_dir
    if ref:
        by_id = output_dir / ref
        if SweepPaths(by_id).task_mapping.exists():
            return SweepPaths(_followed(by_id))
        _refuse_sweep_without_mapping(by_id)
        known = sorted(p.name for p in sweep_dirs(output_dir))
        hint = f"sweeps under {output_dir}: {', '.join(known[-5:])}" if known else f"no sweeps under {output_dir}"
        raise SweepNotFoundError(f"no sweep {ref!r} (neither a sweep directory nor a sweep id).\n  hint: {hint}")
    found = sweep_dirs(output_dir)
    if not found:
        old = v1_sweep_dirs(output_dir)
        hint = (
            f"{len(old)} HPC Sweep Manager v1 sweep folder(s) there ({', '.join(p.name for p in old[-3:])}) become "
            f"sweeps with `hsm-snake migrate {shlex.quote(str(old[-1]))}`"
            if old
            else "start one with `hsm-snake run sweep.yaml`, or name a sweep directory"
        )
        raise SweepNotFoundError(f"no sweeps under {output_dir}.\n  hint: {hint}")
    return SweepPaths(_followed(max(found, key=lambda p: SweepPaths(p).task_mapping.stat().st_mtime)))


def existing_sweep(ref: str, cwd: Path) -> SweepPaths | None:
    """The sweep ``ref`` names (a sweep directory or an id), or None when it names none."""
    if not ref:
        return None
    try:
        return find_sweep(ref, cwd)
    except SweepNotFoundError:
        return None


def _followed(folder: Path) -> Path:
    """A sweep's own folder for its link under sweeps/outputs (local.sweeps_root)."""
    return folder.resolve() if folder.is_symlink() else folder


def is_v1_sweep_dir(folder: Path) -> bool:
    """A folder HPC Sweep Manager v1 wrote (its sweep_config.yaml) that was never migrated."""
    paths = SweepPaths(folder)
    # hsm-snake's own sweeps have a sweep_config.yaml too: one whose task_mapping.yaml was lost
    # still has its project_config.yaml.
    return paths.sweep_config.is_file() and not paths.task_mapping.exists() and not paths.project_config.exists()


def v1_sweep_dirs(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    return sorted(p for p in output_dir.iterdir() if is_v1_sweep_dir(p))


def _refuse_sweep_without_mapping(folder: Path) -> None:
    """A sweep folder (it has tasks/) whose task list is gone, or a v1 sweep folder: say so
    rather than "no sweep"."""
    if is_v1_sweep_dir(folder):
        raise SweepNotFoundError(
            f"{folder} is a sweep folder of HPC Sweep Manager v1: hsm-snake reads it once it is migrated.\n"
            f"  hint: `hsm-snake migrate {shlex.quote(str(folder))}` adds hsm-snake's records to it (v1's files "
            "stay as they are, nothing is lost); add --to NEW_FOLDER to migrate a copy instead"
        )
    if SweepPaths(folder).tasks_dir.is_dir():
        raise SweepNotFoundError(
            f"{SweepPaths(folder).task_mapping} is missing: it lists the sweep's tasks, and without it "
            "hsm-snake cannot tell which task is which.\n"
            "  hint: restore the file (from a backup or version control); nothing in the sweep was changed"
        )


def sweep_dirs(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    return [p for p in output_dir.iterdir() if SweepPaths(p).task_mapping.exists()]
