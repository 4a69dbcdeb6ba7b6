"""Shared fixtures: throwaway projects with a real script, run through real Snakemake."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hsm_snake.cli.main import cli

# A script that records what it received and how often it ran. Behaviour is steered by
# parameters: fail=<code> exits with that code, sleep=<s> sleeps first.
ECHO_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    args = sys.argv[1:]
    task_dir = Path(os.environ["HSM_TASK_DIR"])
    run_log = Path(os.environ["RUN_LOG"])
    values = {}
    for arg in args:
        key, _, value = arg.partition("=")
        values[key] = value
    sleep = float(values.get("sleep", values.get("--sleep", 0)) or 0)
    with open(run_log, "a") as log:
        log.write(os.environ["HSM_TASK_ID"] + " start\\n")
    time.sleep(sleep)
    # hold=1: wait until the test creates <run log>.release (a task that is surely mid-run).
    while values.get("hold", "0") != "0" and not Path(str(run_log) + ".release").exists():
        time.sleep(0.05)
    (task_dir / "results" / "argv.json").write_text(json.dumps(args))
    fail = int(values.get("fail", 0) or 0)
    if fail and not os.environ.get("FORCE_OK"):
        print("about to fail", file=sys.stderr)
        raise SystemExit(fail)
    with open(run_log, "a") as log:
        log.write(os.environ["HSM_TASK_ID"] + " done\\n")
    print(json.dumps({"score": len(args)}))
    """
)


# A script that fails in one known way per mode=<mode>: ok (prints metrics from lr=), exception,
# memory, module, sleep (until the walltime kills it), sigkill, exit (status 3).
FAILING_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys, time
    args = dict(arg.partition("=")[::2] for arg in sys.argv[1:])
    mode, lr = args["mode"], float(args.get("lr") or 0.01)
    if mode == "ok":
        print("training", file=sys.stderr)
        print(json.dumps({"loss": round(lr * 10, 6), "acc": round(1 - lr, 6)}))
        sys.exit(0)
    if mode == "exception":
        raise ValueError("learning rate must be positive")
    if mode == "memory":
        raise MemoryError()
    if mode == "module":
        import torch_that_is_not_installed  # noqa
    if mode == "sleep":
        time.sleep(60)
    if mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "exit":
        print("giving up with status 3", file=sys.stderr)
        sys.exit(3)
    """
)


class Project:
    """A temporary project folder: hsm.yaml, a script, sweep files, and CLI helpers."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.run_log = root / "runs.log"
        (root / "echo.py").write_text(ECHO_SCRIPT)
        self.write_project({})
        monkeypatch.chdir(root)
        monkeypatch.setenv("RUN_LOG", str(self.run_log))

    def write_project(self, extra: dict) -> None:
        config = {
            "paths": {"python_interpreter": sys.executable, "train_script": "echo.py"},
            "task": {"arg_style": "raw", "output_dir_arg": None},
            "local": {"max_parallel": 2},
        }
        for key, value in extra.items():
            config.setdefault(key, {}).update(value)
        (self.root / "hsm.yaml").write_text(yaml.safe_dump(config))

    def write_sweep(self, data: dict, name: str = "sweep.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        return path

    def cli(self, *args: str, expect: int | None = 0):
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, f"exit {result.exit_code}\n{result.output}"
        return result

    def sweep_dirs(self) -> list[Path]:
        out = self.root / "sweeps" / "outputs"
        return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []

    def release(self) -> None:
        Path(str(self.run_log) + ".release").touch()

    def runs(self) -> list[str]:
        return self.run_log.read_text().splitlines() if self.run_log.exists() else []

    def completions(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for line in self.runs():
            task, event = line.split()
            if event == "done":
                counts[task] = counts.get(task, 0) + 1
        return counts


from background import background  # noqa: E402,F401  (fixture shared by several modules)


def pytest_collection_modifyitems(config, items):
    """Every test that uses the test bed (directly or through a fixture) is marked ``testbed``, so
    ``-m "not testbed"`` never starts it."""
    for item in items:
        if "tb" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.testbed)


@pytest.fixture(scope="session")
def tb():
    """The real Slurm / PBS-wrapper / sshd test bed, started once per session."""
    from testbed_support import start_testbed

    return start_testbed()


@pytest.fixture
def login_node(tb, tmp_path):
    """An sshd of the test's own (testbed_support.LoginNode), started; the test stops and starts it."""
    from testbed_support import LoginNode

    tb.need("hsmtb-lo")
    node = LoginNode(tb, tmp_path / "own-sshd")
    node.start()
    yield node
    node.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    return Project(tmp_path, monkeypatch)


# The hsm.yaml key of each cluster backend that names the test bed's Slurm partition.
TESTBED_QUEUE_KEY = {"slurm": "partition", "pbs": "queue"}


def on_testbed(project: Project, tb, monkeypatch: pytest.MonkeyPatch, backend: str, **section) -> Project:
    """The project set up to run on the test bed's ``backend`` (slurm, pbs): its environment, and
    hsm.yaml's ``backend:`` section with the test bed's partition plus ``section``."""
    tb.need(backend)
    for key, value in tb.facts["env"].items():
        monkeypatch.setenv(key, value)
    queue = tb.facts["env"].get("HSM_TB_SLURM_PARTITION", "debug")
    project.write_project({backend: {TESTBED_QUEUE_KEY[backend]: queue, **section}})
    return project


def remote_name(tmp_path: Path) -> str:
    """The folder a test's copies get on a test-bed host: its tmp_path's name with the pytest
    session's (``pytest-526-test_x0``), so two test sessions at once never share one."""
    return f"{tmp_path.parent.name}-{tmp_path.name}"


def read_status(task_dir: Path) -> dict:
    return yaml.safe_load((task_dir / "status.yaml").read_text())


# What a task of the test project's script leaves in its folder when it completed, on any backend.
COMPLETED_TASK_FILES = [
    ".completed",
    "metrics.json",
    "params.yaml",
    "results",
    "status.yaml",
    "stderr.log",
    "stdout.log",
]


def task_files(task_dir: Path) -> list[str]:
    return sorted(p.name for p in task_dir.iterdir())


# Parameter values that break shell strings and quoting; each test adds the ones its app can take.
QUOTING_HOSTILE = [
    "two words",
    " padded ",
    "it's",
    'say "hi"',
    "$HOME",
    "${HOME}",
    "`id`",
    "x;y",
    "a|b && c",
    "tab\there",
    "é 中文 🚀",
    "",
    "trailing\\",
]

# A script that records the arguments it was given in results/seen.json.
ARGV_APP = """
import json, os, sys
out = os.path.join(os.environ["HSM_RESULTS_DIR"], "seen.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump(sys.argv[1:], f, ensure_ascii=False)
"""


# A task over the test bed's default memory (500M, DefMemPerCPU), under twice that.
HOG_700M = """
import time
block = b"x" * (700 << 20)
time.sleep(2)
print("fine")
"""


def run_one_task_retried_once(project: Project, profile: str) -> tuple[dict, dict]:
    """``run`` of a one-task sweep with ``retries: 1`` on ``profile``: the task's first attempt's
    record and its final one."""
    (project.root / "hsm.yaml").write_text((project.root / "hsm.yaml").read_text() + "retries: 1\n")
    project.write_sweep({"grid": {"x": [1]}})
    project.cli("run", "sweep.yaml", "--profile", profile)
    (sweep_dir,) = project.sweep_dirs()
    task = sweep_dir / "tasks" / "task_001"
    return read_status(task / "attempts" / "1"), read_status(task)


def load_json(path: Path):
    return json.loads(path.read_text())


os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
