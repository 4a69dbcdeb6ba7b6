"""``hsm-snake remote ...``: the SSH hosts of the project's hsm.yaml (``distributed.remotes``).

Edits go through ruamel.yaml's round trip, so the user's comments, order and quoting stay; the
edited file is checked like any hsm.yaml before it replaces the old one (atomically).
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from hsm_snake.config.project import find_project_config, load_project
from hsm_snake.errors import ConfigError
from hsm_snake.executors.ssh import hosts as hostmod
from hsm_snake.executors.ssh.hosts import Host, Ssh
from hsm_snake.layout.records import write_text_atomic

KEY_TIMEOUT_S = 30


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Health:
    alias: str
    address: str
    healthy: bool
    detail: str
    free_gb: float | None = None


def project_file(cwd: Path) -> Path:
    """The project's hsm.yaml (found from cwd upwards), or cwd/hsm.yaml for a new one."""
    return find_project_config(cwd) or Path(cwd).absolute() / "hsm.yaml"


def _round_trip() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _edit(path: Path, change) -> None:
    """Apply ``change`` to the round-trip document of ``path``; keep the result only if it loads."""
    yaml = _round_trip()
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    document = yaml.load(old) if old.strip() else None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, dict):
        raise ConfigError("is not a mapping of sections; cannot add a remote to it", file=path)
    change(document)
    out = io.StringIO()
    yaml.dump(document, out)
    write_text_atomic(path, out.getvalue())
    try:
        load_project(path, path.parent)
    except ConfigError:
        if old:
            write_text_atomic(path, old)
        else:
            path.unlink()
        raise


def _remotes_of(document: dict[str, Any], create: bool) -> dict[str, Any] | None:
    distributed = document.get("distributed")
    if distributed is None and create:
        distributed = document["distributed"] = CommentedMap()
    if not isinstance(distributed, dict):
        return None
    remotes = distributed.get("remotes")
    if remotes is None and create:
        remotes = distributed["remotes"] = CommentedMap()
    return remotes if isinstance(remotes, dict) else None


def check_new_alias(path: Path, alias: str, remotes: dict[str, Any] | None = None) -> None:
    if remotes is None:
        document = _round_trip().load(path.read_text(encoding="utf-8")) if path.exists() else None
        remotes = _remotes_of(document, create=False) if isinstance(document, dict) else None
    if alias in (remotes or {}):
        raise ConfigError(
            f"remote '{alias}' exists already",
            file=path,
            key=f"distributed.remotes.{alias}",
            hint=f"hsm-snake remote remove {alias} first, or edit {path.name}",
        )


def add_remote(path: Path, alias: str, fields: dict[str, Any]) -> None:
    def change(document: dict[str, Any]) -> None:
        remotes = _remotes_of(document, create=True)
        if remotes is None:
            raise ConfigError(
                "is not a mapping of remotes",
                file=path,
                key="distributed.remotes",
                hint="distributed: {remotes: {ALIAS: {host: ...}}}",
            )
        check_new_alias(path, alias, remotes)
        remotes[alias] = CommentedMap((key, value) for key, value in fields.items() if value is not None)

    _edit(path, change)


def remove_remote(path: Path, alias: str) -> None:
    def change(document: dict[str, Any]) -> None:
        remotes = _remotes_of(document, create=False) or {}
        if alias not in remotes:
            raise ConfigError(
                f"no remote '{alias}'",
                file=path,
                key="distributed.remotes",
                hint="known: " + (", ".join(remotes) or "none") + " (hsm-snake remote list)",
            )
        del remotes[alias]

    if not path.exists():
        raise ConfigError(
            f"no remote '{alias}': there is no project config",
            file=path,
            hint="hsm-snake remote add ALIAS --host HOST creates it",
        )
    _edit(path, change)


def remotes(cwd: Path) -> dict[str, Host]:
    """The remotes as the executor will see them (v1 names and forms already read)."""
    project = load_project(None, cwd).data
    distributed = project.get("distributed") or {}
    return {
        str(alias): hostmod.host_from_remote(str(alias), remote or {}, project)
        for alias, remote in (distributed.get("remotes") or {}).items()
    }


def address(host: Host) -> str:
    return (f"{host.user}@" if host.user else "") + host.host + (f":{host.port}" if host.port else "")


def accept_host_key(host: Host) -> str:
    """Connect once with StrictHostKeyChecking=accept-new: an unknown key is recorded in
    known_hosts, a changed one is still refused. Only on the user's explicit request."""
    with Ssh.private() as ssh:
        # ssh takes the first value of an option: these win over the options' =yes and =auto.
        command = [
            "ssh",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "ControlMaster=no",
            *ssh.options(host),
            "--",
            host.host,
            "true",
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=KEY_TIMEOUT_S, check=False
        )
    if done.returncode != 0:
        raise ConfigError(
            f"could not record the host key of {address(host)}: "
            + hostmod.explain_ssh_failure(done.stderr, done.returncode),
            hint="check the host, port and user, then try again",
        )
    return done.stderr.strip()


def check_remote(host: Host) -> list[Check]:
    """Connection, Python, PyYAML, rsync, project_dir writable, disk space: one Check each."""
    with Ssh.private() as ssh:
        try:
            done = subprocess.run(
                ssh.command(host, "true"),
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=hostmod.HEALTH_TIMEOUT_S,
                check=False,
            )
            connected = done.returncode == 0
            why = "" if connected else hostmod.explain_ssh_failure(done.stderr, done.returncode)
        except subprocess.TimeoutExpired:
            connected, why = False, f"no answer within {hostmod.HEALTH_TIMEOUT_S} s"
        checks = [Check("connect", connected, address(host) if connected else why)]
        if not connected:
            return checks
        found = hostmod.probe(ssh, host, host.project_dir)
        if host.backend != "ssh":
            checks.append(scheduler_tools_check(ssh, host))
        ssh.close(host)
    python = hostmod.python_name(host)
    if found.error:
        return [*checks, Check("python", False, found.error)]
    free_gb = found.free_bytes / 1e9
    return [
        *checks,
        Check("python", True, f"{python}: Python {found.python}"),
        Check(
            "pyyaml",
            found.yaml is not None,
            f"PyYAML {found.yaml}"
            if found.yaml
            else f"{python} cannot import yaml: run "
            f"'{python} -m pip install pyyaml' there, or set --python/--conda-env to a Python that has it",
        ),
        Check(
            "rsync",
            bool(found.rsync) or host.shared_fs,
            found.rsync or "not installed there: install rsync (apt-get install rsync), or use shared_fs: true",
        ),
        Check(
            "project_dir",
            found.writable,
            f"{found.directory} "
            + ("writable" if found.writable else "is not writable: pick another --project-dir or fix its permissions"),
        ),
        Check("disk", free_gb >= host.min_free_gb, f"{free_gb:.1f} GB free (min_free_gb {host.min_free_gb:g})"),
    ]


def scheduler_tools_check(ssh: Ssh, host: Host) -> Check:
    """A cluster remote: the scheduler commands its executor calls (sbatch…, qsub…)."""
    from hsm_snake.executors.remote_cluster.cluster import tools_problem
    from hsm_snake.executors.remote_cluster.schedulers import BY_SCHEDULER

    tools = BY_SCHEDULER[host.backend].tools
    problem = tools_problem(ssh, host, host.backend, tools, hostmod.HEALTH_TIMEOUT_S)
    return Check(host.backend, problem is None, problem or ", ".join(tools))


def health(pool: dict[str, Host]) -> list[Health]:
    def one(host: Host) -> Health:
        checks = check_remote(host)
        failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
        disk = next((c for c in checks if c.name == "disk"), None)
        free_gb = float(disk.detail.split()[0]) if disk else None
        python = next((c.detail for c in checks if c.name == "python" and c.ok), "")
        return Health(host.alias, address(host), not failed, "; ".join(failed) or python, free_gb)

    if not pool:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(pool))) as workers:
        return list(workers.map(one, pool.values()))


# Run by the host's Python: argv[1] the host's project_dir, argv[2] what under it to remove ("" for
# all of it). It removes only inside project_dir, never the home folder or a top-level folder, and
# all of project_dir only when it holds what hsm-snake puts there (.hsm-runner/ or sweeps/).
CLEAN_CODE = """
import json, os, shutil, sys
base = os.path.abspath(os.path.expanduser(sys.argv[1]))
target = os.path.abspath(os.path.join(base, sys.argv[2])) if sys.argv[2] else base
home = os.path.abspath(os.path.expanduser("~"))
ours = any(os.path.isdir(os.path.join(base, n)) for n in (".hsm-runner", "sweeps"))
def say(**facts):
    print(json.dumps(dict(path=target, **facts)))
if target in ("/", home) or os.path.dirname(target) == "/" or (target != base and not target.startswith(base + os.sep)):
    say(error="refused: not a folder hsm-snake made")
elif target == base and os.path.isdir(base) and not ours:
    say(error="refused: it holds no .hsm-runner/ or sweeps/, so hsm-snake did not make it")
else:
    existed = os.path.lexists(target)
    try:
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif existed:
            os.unlink(target)
        say(removed=existed)
    except OSError as e:
        say(error=str(e))
"""


@dataclass
class Cleaned:
    alias: str
    path: str
    removed: bool
    error: str = ""


def pick_hosts(cwd: Path, names: list[str], every: bool) -> dict[str, Host]:
    """The registered hosts named (``every``: all of them); a name that is not registered is a
    bare ~/.ssh/config alias (v1's ``hsm remote test NAME``), with the default project_dir."""
    pool = remotes(cwd)
    if every:
        if not pool:
            raise ConfigError(
                "no remotes registered", file=find_project_config(cwd), hint="hsm-snake remote add ALIAS [HOST]"
            )
        return pool
    if not names:
        raise ConfigError("name the hosts (registered aliases or ~/.ssh/config aliases), or give --all")
    chosen = {}
    for name in names:
        if name.startswith("-") or not name.strip():
            raise ConfigError(f"{name!r} is not a host alias", hint="put -- before host names")
        chosen[name] = pool.get(name) or hostmod.host_from_remote(name, {})
    return chosen


def clean_host(host: Host, under: str, timeout_s: float = hostmod.HEALTH_TIMEOUT_S) -> Cleaned:
    """Remove ``under`` (a path relative to the host's project_dir; "" for all of it) on ``host``."""
    if host.shared_fs:
        return Cleaned(host.alias, host.project_dir, False, "refused: a shared_fs host works in your own files")
    with Ssh.private() as ssh:
        command = ssh.command(host, shlex.join([*host.python, "-c", CLEAN_CODE, host.project_dir, under]))
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            return Cleaned(host.alias, host.project_dir, False, f"no answer within {timeout_s:g} s")
        finally:
            ssh.close(host)
    try:
        facts = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        why = hostmod.explain_ssh_failure(done.stderr, done.returncode)
        return Cleaned(host.alias, host.project_dir, False, why)
    return Cleaned(host.alias, str(facts["path"]), bool(facts.get("removed")), str(facts.get("error") or ""))


def clean(hosts: dict[str, Host], under: str) -> list[Cleaned]:
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as workers:
        return list(workers.map(lambda host: clean_host(host, under), hosts.values()))


@dataclass
class HostGpus:
    alias: str
    address: str
    gpus: list[dict[str, Any]]
    problem: str = ""


def gpu_report(pool: dict[str, Host]) -> list[HostGpus]:
    """Each host's GPUs as its nvidia-smi lists them (after the host's set-up): index, name,
    memory used/total (MB), use (%); or why they could not be read."""

    def one(host: Host) -> HostGpus:
        with Ssh.private() as ssh:
            found = hostmod.probe(ssh, host, host.project_dir)
            ssh.close(host)
        if found.error:
            return HostGpus(host.alias, address(host), [], found.error)
        if found.gpus is None:
            return HostGpus(host.alias, address(host), [], "no nvidia-smi there (after its pre_script)")
        return HostGpus(host.alias, address(host), found.gpus, "" if found.gpus else "nvidia-smi lists no GPU")

    if not pool:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(pool))) as workers:
        return list(workers.map(one, pool.values()))
