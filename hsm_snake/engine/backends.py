"""Map the backend sections of hsm.yaml onto Snakemake options, so profiles stay thin.

``slurm:`` becomes the task rule's resources for hsm-snake's Slurm executor (hsm-slurm, built on
snakemake-executor-plugin-slurm, whose sbatch options it uses: ``runtime``,
``mem_mb``, ``cpus_per_task``, ``slurm_partition``, ``slurm_account``, ``qos``, ``constraint``,
``gpu``/``gpu_model``, ``slurm_extra``; recorded in project_config.yaml and read by the workflow)
plus executor settings on the command line. The per-sweep ``resources:``
of sweep.yaml win over hsm.yaml.

``pbs:`` becomes the resources of hsm-snake's own PBS executor (``runtime``, ``mem_mb`` and
``pbs_*``: flavor, chunks, ncpus, ngpus, queue, account, extra), turned into ``#PBS`` lines by
``hsm_snake/executors/pbs/script.py``.
"""

from __future__ import annotations

import shlex
from typing import Any

from hsm_snake.config.project import parse_mem_mb, parse_walltime_seconds
from hsm_snake.errors import ConfigError
from hsm_snake.layout import names

# No memory request unless hsm.yaml asks for one (slurm.mem / pbs.mem): the job then gets the
# cluster's default. A job runs the task runner before the user's script (standard library +
# PyYAML, ~50 MB of its own), not a Snakemake.
DEFAULT_SLURM_RUNTIME_MIN = 60

# sbatch options hsm-snake's Slurm executor (through the plugin) sets itself; passing them again would fight it.
PLUGIN_MANAGED_SBATCH_OPTIONS = {
    "-J": "job name",
    "--job-name": "job name",
    "-o": "log file",
    "--output": "log file",
    "-e": "log file",
    "--error": "log file",
    "-a": "array",
    "--array": "array",
    "-t": "walltime",
    "--time": "walltime",
    "--mem": "mem",
    "--mem-per-cpu": "mem_per_cpu",
    "-p": "partition",
    "--partition": "partition",
    "-A": "account",
    "--account": "account",
    "-c": "cpus_per_task",
    "--cpus-per-task": "cpus_per_task",
    "-C": "constraint",
    "--constraint": "constraint",
    "--qos": "qos",
    "-q": "qos",
    "--gres": "gpus + gpu_type",
    "-G": "gpus",
    "--gpus": "gpus",
    "--comment": "(used by Snakemake)",
    "--wckey": "(used by Snakemake)",
}


def backend_of_profile(profile_name: str) -> str:
    """The hsm.yaml section a packaged profile takes its resources from."""
    return profile_name if profile_name in ("slurm", "pbs", "ssh") else "local"


def merged_section(project_data: dict[str, Any], sweep_resources: dict[str, Any], backend: str) -> dict[str, Any]:
    section = dict(project_data.get(backend) or {})
    section.update((sweep_resources or {}).get(backend) or {})
    return section


# The schedulers a remote's login node may run (``backend:`` of a remote that is no SSH host).
CLUSTER_SCHEDULERS = ("slurm", "pbs")


def cluster_remotes(project_data: dict[str, Any], *schedulers: str) -> dict[str, dict[str, Any]]:
    """The remotes of ``distributed.remotes`` that are a cluster's login node, reached over SSH
    (``backend: slurm`` or ``pbs``; only those of ``schedulers`` when given)."""
    wanted = schedulers or CLUSTER_SCHEDULERS
    remotes = (project_data.get("distributed") or {}).get("remotes") or {}
    return {str(alias): remote for alias, remote in remotes.items() if (remote or {}).get("backend") in wanted}


def remote_backend(alias: str, scheduler: str) -> str:
    """The per-backend key (resources, set-up) of a cluster remote: ``slurm@<alias>``, ``pbs@<alias>``."""
    return f"{scheduler}@{alias}"


def remote_cluster_section(project_data: dict[str, Any], sweep_resources: dict[str, Any], alias: str) -> dict[str, Any]:
    """A cluster remote's requests: hsm.yaml ``slurm:``/``pbs:`` (its scheduler's), then the
    remote's own block of that name (and v1 ``spec:``), then the sweep file's ``resources.<scheduler>``."""
    remote = cluster_remotes(project_data).get(alias, {})
    scheduler = str(remote.get("backend") or "slurm")
    section = dict(project_data.get(scheduler) or {})
    section.update(remote.get(scheduler) or {})
    section.update((sweep_resources or {}).get(scheduler) or {})
    return section


def cluster_resources(project_data: dict[str, Any], sweep_resources: dict[str, Any]) -> dict[str, Any]:
    """The task rule's resources on each cluster backend (``slurm``, ``pbs``, ``slurm@<alias>``,
    ``pbs@<alias>``); raises ConfigError for a request that cannot go into a job script."""
    resources = {
        "slurm": slurm_resources(merged_section(project_data, sweep_resources, "slurm")),
        "pbs": pbs_resources(merged_section(project_data, sweep_resources, "pbs")),
    }
    for alias, remote in cluster_remotes(project_data).items():
        section = remote_cluster_section(project_data, sweep_resources, alias)
        scheduler = remote["backend"]
        resources[remote_backend(alias, scheduler)] = (slurm_resources if scheduler == "slurm" else pbs_resources)(
            section
        )
    return resources


def slurm_resources(section: dict[str, Any]) -> dict[str, Any]:
    """Snakemake resources for the slurm plugin from a ``slurm:`` section."""
    resources: dict[str, Any] = {"runtime": DEFAULT_SLURM_RUNTIME_MIN}
    if section.get("walltime") is not None:
        seconds = parse_walltime_seconds(section["walltime"], "slurm.walltime")
        resources["runtime"] = max(1, -(-int(seconds) // 60))
    if section.get("mem") is not None:
        resources["mem_mb"] = parse_mem_mb(section["mem"], "slurm.mem")
    if section.get("mem_per_cpu") is not None:
        resources.pop("mem_mb", None)
        resources["mem_mb_per_cpu"] = parse_mem_mb(section["mem_per_cpu"], "slurm.mem_per_cpu")
    simple = {
        "cpus_per_task": "cpus_per_task",
        "partition": "slurm_partition",
        "account": "slurm_account",
        "qos": "qos",
        "constraint": "constraint",
    }
    for key, resource in simple.items():
        if section.get(key) is not None:
            resources[resource] = _checked(section[key], f"slurm.{key}", key == "constraint")
    if section.get("gpus"):
        resources["gpu"] = int(section["gpus"])
        if section.get("gpu_type"):
            resources["gpu_model"] = section["gpu_type"]
    extra = check_extra_directives(section.get("extra_directives") or [])
    if extra:
        resources["slurm_extra"] = shlex.join(extra)
    return resources


def _checked(value: Any, key: str, free_text: bool = False) -> Any:
    """A queue/account/partition (one word) or constraint (one line) from hsm.yaml or the sweep's
    ``resources:``, which the schema of hsm.yaml does not see: it goes into a job script."""
    try:
        if isinstance(value, str):
            (names.check_one_line if free_text else names.check_scheduler_word)(value)
    except names.BadName as bad:
        raise ConfigError(bad.message, key=key, hint=bad.hint) from None
    return value


def option_word(directive: str) -> tuple[str, str]:
    """(option, the value written onto it): ``-o/tmp/x`` and ``-o /tmp/x`` are both ``-o``,
    ``--output=/x`` is ``--output``."""
    word = directive.split()[0] if directive.strip() else directive
    if word.startswith("--"):
        option, _, attached = word.partition("=")
        return option, attached
    if word.startswith("-") and len(word) > 2:
        return word[:2], word[2:].removeprefix("=")
    return word, ""


def _managed_sbatch_option(option: str) -> str | None:
    if option in PLUGIN_MANAGED_SBATCH_OPTIONS:
        return PLUGIN_MANAGED_SBATCH_OPTIONS[option]
    # sbatch (getopt_long) takes any unambiguous start of a long option: --outp is --output.
    if option.startswith("--") and len(option) > 3:
        return next((why for name, why in PLUGIN_MANAGED_SBATCH_OPTIONS.items() if name.startswith(option)), None)
    return None


def check_extra_directives(directives: list[str]) -> list[str]:
    for directive in directives:
        _checked(directive, "slurm.extra_directives", free_text=True)
        managed = _managed_sbatch_option(option_word(directive)[0])
        if managed:
            raise ConfigError(
                f"{directive!r} is an option hsm-snake's Slurm executor sets itself",
                key="slurm.extra_directives",
                hint=f"set it through slurm: {managed} in hsm.yaml instead",
            )
    return list(directives)


# qsub options hsm-snake's PBS executor sets itself, and the hsm.yaml pbs: key for each.
PBS_MANAGED_QSUB_OPTIONS = {
    "-N": "(the job name: sweep and task)",
    "-o": "(logs/pbs/ of the sweep)",
    "-e": "(logs/pbs/ of the sweep)",
    "-J": "(job arrays)",
    "-t": "(job arrays)",
    "-q": "queue",
    "-A": "account",
    "-V": "(the environment is always exported)",
}
# -l resources the executor writes from pbs: keys.
PBS_MANAGED_RESOURCES = {
    "walltime": "walltime",
    "select": "select + ncpus + mem + ngpus",
    "nodes": "nodes + ppn",
    "ncpus": "ncpus",
    "mem": "mem",
    "ngpus": "ngpus",
}


def pbs_flavor(section: dict[str, Any]) -> str:
    """``pbs.flavor``; unset, ``pro`` when PBS Pro-only keys (select, ncpus, ngpus) are used,
    else ``torque``: ``-l nodes=N:ppn=C`` + ``-l mem`` is the request both understand (PBS Pro
    converts it into a select statement, Torque knows no select)."""
    if section.get("flavor"):
        return str(section["flavor"])
    if any(section.get(key) is not None for key in ("select", "ncpus", "ngpus")):
        return "pro"
    return "torque"


def pbs_resources(section: dict[str, Any]) -> dict[str, Any]:
    """Snakemake resources for hsm-snake's PBS executor (hsm-pbs) from a ``pbs:`` section."""
    resources: dict[str, Any] = {
        "runtime": DEFAULT_SLURM_RUNTIME_MIN,
        "pbs_flavor": pbs_flavor(section),
    }
    if section.get("walltime") is not None:
        seconds = parse_walltime_seconds(section["walltime"], "pbs.walltime")
        resources["runtime"] = max(1, -(-int(seconds) // 60))
    if section.get("mem") is not None:
        resources["mem_mb"] = parse_mem_mb(section["mem"], "pbs.mem")
    chunks = section.get("select") if section.get("select") is not None else section.get("nodes")
    cpus = section.get("ncpus") if section.get("ncpus") is not None else section.get("ppn")
    resources["pbs_chunks"] = int(chunks or 1)
    resources["pbs_ncpus"] = int(cpus or 1)
    if section.get("ngpus"):
        resources["pbs_ngpus"] = int(section["ngpus"])
    if section.get("queue"):
        resources["pbs_queue"] = _checked(str(section["queue"]), "pbs.queue")
    if section.get("account"):
        resources["pbs_account"] = _checked(str(section["account"]), "pbs.account")
    extra = check_pbs_directives(section.get("extra_directives") or [])
    if extra:
        resources["pbs_extra"] = shlex.join(extra)
    return resources


def check_pbs_directives(directives: list[str]) -> list[str]:
    """Refuse extra qsub options that would fight the executor; point at the hsm.yaml key."""
    for directive in directives:
        _checked(directive, "pbs.extra_directives", free_text=True)
        words = directive.split()
        if not words:
            continue
        option, attached = option_word(directive)
        managed = PBS_MANAGED_QSUB_OPTIONS.get(option)
        if option == "-l":
            requested = " ".join([attached, *words[1:]]).replace(",", " ").split()
            for item in requested:
                managed = PBS_MANAGED_RESOURCES.get(item.split("=", 1)[0].split(":", 1)[0]) or managed
        if managed:
            hint = (
                f"set it through pbs: {managed} in hsm.yaml instead"
                if not managed.startswith("(")
                else f"hsm-snake sets it {managed}"
            )
            raise ConfigError(
                f"{directive!r} is an option hsm-snake's PBS executor sets itself",
                key="pbs.extra_directives",
                hint=hint,
            )
    return list(directives)


def snakemake_args(
    profile_name: str, project_data: dict[str, Any], sweep_resources: dict[str, Any], gpus: dict[str, Any] | None = None
) -> list[str]:
    """Executor options a backend needs on top of its profile (its resources are in the rule).

    Local: the machine's device slots (``gpus``: the runner's recorded GPU settings) as the
    ``gpu`` resource, so Snakemake never starts more GPU tasks than there are slots.
    """
    backend = backend_of_profile(profile_name)
    if backend == "local":
        if gpus and gpus.get("per_task") and gpus.get("visible"):
            return ["--resources", f"gpu={len(gpus['visible']) * int(gpus.get('tasks_per_gpu') or 1)}"]
        return []
    if backend not in ("slurm", "pbs"):
        return []
    section = merged_section(project_data, sweep_resources, backend)
    if backend == "slurm":
        args = [] if section.get("account") else ["--hsm-slurm-no-account"]
        return [*args, "--hsm-slurm-array-limit", str(slurm_array_limit(section))]
    if section.get("max_array_size") is not None:
        return ["--hsm-pbs-array-limit", str(section["max_array_size"])]
    return []


# Tasks per sbatch --array. hsm-slurm's job script takes ~35 bytes per element (a case on the
# element's index); above SLURM_MAX_ARRAY_SIZE a run asks the cluster (limits.array_limit).
SLURM_ARRAY_SIZE = 500
SLURM_MAX_ARRAY_SIZE = 1000


def slurm_array_limit(section: dict[str, Any]) -> int:
    """Tasks per sbatch --array: slurm.max_array_size (default SLURM_ARRAY_SIZE), at most
    SLURM_MAX_ARRAY_SIZE before the cluster is asked (a run raises it up to the cluster's
    MaxArraySize: executors/slurm/limits.py array_limit)."""
    asked = section.get("max_array_size")
    return min(int(asked), SLURM_MAX_ARRAY_SIZE) if asked else SLURM_ARRAY_SIZE
