"""How a task's script is called: argument style, the argument that gets the task folder, Hydra's
run folder, booleans, lists and working directory.

What hsm.yaml's ``task:`` section says wins; what it leaves out follows from what the script is:
- a Hydra app (it calls ``hydra.main``) gets ``key=value`` overrides in Hydra's grammar and
  ``hydra.run.dir=<task folder>``, so ``.hydra/``, Hydra's log and its outputs land in the task folder;
- an argparse script gets ``--key value``, ``true`` as a bare ``--key``, ``false`` left out, a list
  as ``--key a b``;
- anything else, and any project whose config is a v1 file, gets v1's contract: ``key=value``
  unquoted and ``output.dir=<task folder>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hsm_snake.config import appscan
from hsm_snake.config.project import ProjectConfig

# The argument that receives the task folder when task.output_dir_arg is not set.
DEFAULT_OUTPUT_DIR_ARG = {"hydra": None, "argparse": None, "raw": "output.dir"}


@dataclass(frozen=True)
class Conventions:
    arg_style: str
    why: str
    """Where the style comes from, for ``validate``."""
    output_dir_arg: str | None
    hydra_run_dir: bool
    """Pass ``hydra.run.dir=<task folder>`` (before the parameters, so the user's own wins)."""
    bool_style: str
    list_style: str
    run_in_task_dir: bool

    def describe(self) -> str:
        parts = [f"{self.arg_style} style ({self.why})"]
        if self.hydra_run_dir:
            parts.append("hydra.run.dir=<task folder>")
        if self.output_dir_arg:
            parts.append(f"{self.output_dir_arg}=<task folder>")
        if self.arg_style == "argparse":
            parts.append("true as --flag, false left out" if self.bool_style == "flag" else "--flag true/false")
            parts.append("lists as --key a b" if self.list_style == "nargs" else "lists as --key a --key b")
        parts.append("runs in the task folder" if self.run_in_task_dir else "runs in the project root")
        return ", ".join(parts)


def script_setting(project: ProjectConfig, sweep_script: str | None) -> tuple[str | None, str]:
    """The script a sweep runs (relative to the project root, as written) and the key that names
    it: the sweep file's ``script:`` wins over ``paths.train_script``."""
    if sweep_script:
        return sweep_script, "script"
    return project.section("paths").get("train_script"), "paths.train_script"


def task_conventions(project: ProjectConfig, script: Path | None) -> Conventions:
    """The conventions for running ``script`` (an absolute path, or None) in ``project``."""
    task = project.section("task")
    style = task.get("arg_style")
    if style:
        why = f"task.arg_style in {project.source.name if project.source else 'hsm.yaml'}"
    elif project.is_v1:
        style, why = "raw", f"{project.source.name} is a v1 config"
    else:
        info = appscan.read_script(script) if script else None
        style = {appscan.HYDRA: "hydra", appscan.ARGPARSE: "argparse"}.get(info.kind if info else None, "raw")
        why = info.evidence if info else "no script to look at"
    output_dir_arg = task["output_dir_arg"] if "output_dir_arg" in task else DEFAULT_OUTPUT_DIR_ARG[style]
    return Conventions(
        arg_style=style,
        why=why,
        output_dir_arg=output_dir_arg,
        hydra_run_dir=style == "hydra",
        bool_style=task.get("bool_style", "flag"),
        list_style=task.get("list_style", "nargs"),
        run_in_task_dir=task.get("workdir") == "task",
    )
