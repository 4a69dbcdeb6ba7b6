"""One test per patch of Snakemake / snakemake-executor-plugin-slurm internals (engine/snakemake_cli.py).

Each fails when an upgrade moves the patched target (the patch would silently stop) or when the fix
no longer has its effect (the patch can go). The tested versions are pinned in constraints.txt.
Every check runs in a fresh Python: the patches change modules process-wide.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run_python(
    code: str, env: dict[str, str] | None = None, cwd: Path | None = None, args: list[str] | None = None
) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *(args or [])],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "hsm-snake: warning" not in done.stderr, done.stderr
    return done.stdout


def test_plugin_registries_scan_sys_path_once():
    """Target: Snakemake's five plugin registries each call pkgutil.iter_modules() over sys.path."""
    out = run_python(
        """
        import pkgutil
        scans = 0
        original = pkgutil.iter_modules
        def counting(path=None, prefix=""):
            global scans
            if path is None and not prefix:
                scans += 1
            return original(path, prefix)
        pkgutil.iter_modules = counting
        from hsm_snake.engine import snakemake_cli
        snakemake_cli.list_sys_path_modules_once()
        from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
        from snakemake_interface_scheduler_plugins.registry import SchedulerPluginRegistry
        from snakemake_interface_storage_plugins.registry import StoragePluginRegistry
        executors = ExecutorPluginRegistry()
        schedulers = SchedulerPluginRegistry()
        StoragePluginRegistry()
        assert "hsm-ssh" in executors.plugins and "hsm-pbs" in executors.plugins, executors.plugins
        assert "hsm-fifo" in schedulers.plugins, schedulers.plugins
        print(scans)
        """
    )
    assert out.split() == ["1"], "the registries no longer list sys.path with pkgutil.iter_modules()"


def test_non_slurm_runs_leave_the_slurm_plugins_out():
    out = run_python(
        """
        from hsm_snake.engine import snakemake_cli
        snakemake_cli.leave_out_slurm_plugins()
        from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
        plugins = ExecutorPluginRegistry().plugins
        import sys
        print("slurm" in plugins, "hsm-ssh" in plugins, "snakemake_executor_plugin_slurm" in sys.modules)
        """
    )
    assert out.split() == ["False", "True", "False"]


def test_the_slurm_plugin_asks_scontrol_at_import_and_the_patch_points_it_at_nothing(tmp_path: Path):
    """Target: importing the Slurm plugin runs `scontrol show config` (10 s timeout without a controller)."""
    probe = tmp_path / "bin" / "scontrol"
    probe.parent.mkdir()
    seen = tmp_path / "seen"
    probe.write_text(f'#!/bin/sh\necho "SLURM_CONF=$SLURM_CONF $*" >> "{seen}"\n')
    probe.chmod(0o755)
    path = f"{probe.parent}{os.pathsep}{os.environ['PATH']}"
    run_python(
        """
        from hsm_snake.engine import snakemake_cli
        snakemake_cli.import_snakemake_cli()
        from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
        ExecutorPluginRegistry().get_plugin("slurm")
        """,
        env={"PATH": path, "SLURM_CONF": "/etc/slurm/slurm.conf"},
    )
    calls = seen.read_text().splitlines() if seen.exists() else []
    if not calls:
        pytest.fail("the Slurm plugin no longer runs scontrol at import: SLURM_CONF=/dev/null can go")
    assert all(call.startswith(f"SLURM_CONF={os.devnull} ") for call in calls), calls


def test_workflow_files_are_read_without_smart_open(tmp_path: Path):
    (tmp_path / "Snakefile").write_text('rule all:\n    output: "x"\n    shell: "touch x"\n')
    out = run_python(
        """
        import atexit, sys
        atexit.register(lambda: print("smart_open" in sys.modules))
        from hsm_snake.engine import snakemake_cli
        snakemake_cli.main(["-n", "--cores", "1", "--quiet", "all"])
        """,
        cwd=tmp_path,
    )
    assert out.split()[-1] == "False", out


def test_array_chunks_are_submitted_whatever_is_still_pending():
    """Target: the Slurm plugin's run_jobs asks pending_jobs_for_rule() before it submits an array."""
    out = run_python(
        """
        import inspect
        import snakemake_executor_plugin_slurm as plugin
        from hsm_snake.engine import snakemake_cli
        uses = "pending_jobs_for_rule(" in inspect.getsource(plugin.Executor.run_jobs)
        snakemake_cli.submit_every_array_chunk_at_once()
        print(uses, plugin.pending_jobs_for_rule(None, "task"))
        """
    )
    assert out.split() == ["True", "0"]


def test_local_runs_have_no_job_rate_limiter():
    out = run_python(
        """
        from snakemake import cli
        from hsm_snake.engine import snakemake_cli
        _, before = cli.parse_args(["--cores", "1"])
        snakemake_cli.drop_local_rate_limit(cli)
        _, local = cli.parse_args(["--cores", "1"])
        _, asked = cli.parse_args(["--cores", "1", "--max-jobs-per-timespan", "5/1s"])
        print(before.max_jobs_per_timespan is not None, local.max_jobs_per_timespan, asked.max_jobs_per_timespan is not None)
        """
    )
    assert out.split() == ["True", "None", "True"]


def test_a_moved_target_is_named_on_stderr_and_the_run_goes_on_unpatched():
    """What an upgrade that moved every target looks like: one warning per patch, no crash."""
    code = """
        import snakemake_executor_plugin_slurm as plugin
        from snakemake import cli, sourcecache
        from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
        from snakemake.scheduling.job_scheduler import JobScheduler
        from hsm_snake.engine import snakemake_cli
        ExecutorPluginRegistry.collect_plugins = None
        del JobScheduler._schedule_reevalutation
        sourcecache.parse_uri = None
        del plugin.pending_jobs_for_rule
        parse_args = cli.parse_args
        def parse_args_of_an_upgrade(args):
            parser, parsed = parse_args(args)
            del parsed.max_jobs_per_timespan
            return parser, parsed
        cli.parse_args = parse_args_of_an_upgrade
        snakemake_cli.leave_out_slurm_plugins()
        snakemake_cli.read_local_sources_without_smart_open()
        snakemake_cli.submit_every_array_chunk_at_once()
        snakemake_cli.drop_local_rate_limit(cli)
        snakemake_cli.reevaluation_timers_as_daemons()
        _, parsed = cli.parse_args(["--cores", "1"])
        print(ExecutorPluginRegistry.collect_plugins, sourcecache.parse_uri, hasattr(plugin, "pending_jobs_for_rule"))
        """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "None", "False"]  # nothing patched over the moved targets
    warnings = [line for line in done.stderr.splitlines() if line.startswith("hsm-snake: warning: ")]
    targets = [
        "ExecutorPluginRegistry.collect_plugins",
        "snakemake.sourcecache",
        "snakemake_executor_plugin_slurm.pending_jobs_for_rule",
        "JobScheduler._schedule_reevalutation",
        "the --max-jobs-per-timespan option",
    ]
    assert len(warnings) == 5, done.stderr
    for warning, target in zip(warnings, targets, strict=True):
        assert warning.startswith(f"hsm-snake: warning: {target} is not where the tested versions have it")
        assert "(see constraints.txt); running without hsm-snake's fix: " in warning


def test_the_slurm_plugin_imports_pandas_and_the_patch_defers_it_to_the_efficiency_report():
    """Target: importing snakemake-executor-plugin-slurm imports pandas and numpy (its efficiency
    report module), ~0.5 s of CPU at every Slurm run's start."""
    probe = """
        import sys
        from hsm_snake.engine import snakemake_cli
        if sys.argv[1] == "patched":
            snakemake_cli.import_efficiency_report_on_use()
        snakemake_cli.import_snakemake_cli()
        from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
        ExecutorPluginRegistry().get_plugin("hsm-slurm")
        imported = "pandas" in sys.modules, "numpy" in sys.modules
        import snakemake_executor_plugin_slurm as plugin
        report = sys.modules[snakemake_cli.EFFICIENCY_REPORT]
        # The report's parsing, through the name the plugin holds and through the module.
        print(*imported, report.parse_reqmem("2G"), plugin.create_efficiency_report.__name__, "pandas" in sys.modules)
        """
    unpatched = run_python(probe, args=["unpatched"]).split()
    if unpatched[:2] != ["True", "True"]:
        pytest.fail(f"the Slurm plugin no longer imports pandas/numpy at import ({unpatched}): the patch can go")
    assert run_python(probe, args=["patched"]).split() == [
        "False",
        "False",
        "2048.0",
        "create_efficiency_report",
        "True",
    ]


def test_rate_limit_timers_do_not_hold_up_the_engines_exit():
    """Target: each scheduling round with a job rate limiter starts a non-daemon 1-s Timer, which
    the engine's exit waits for."""
    probe = """
        import sys, threading, types
        from snakemake.scheduling.job_scheduler import JobScheduler
        from hsm_snake.engine import snakemake_cli
        if sys.argv[1] == "patched":
            snakemake_cli.reevaluation_timers_as_daemons()
        scheduler = types.SimpleNamespace(_open_jobs=threading.Semaphore(0))
        before = set(threading.enumerate())
        JobScheduler._schedule_reevalutation(scheduler, 0.05)
        (timer,) = set(threading.enumerate()) - before
        print(timer.daemon, scheduler._open_jobs.acquire(timeout=60))
        """
    unpatched = run_python(probe, args=["unpatched"]).split()
    if unpatched != ["False", "True"]:
        pytest.fail(f"Snakemake's reevaluation timers changed ({unpatched}): the patch can go")
    assert run_python(probe, args=["patched"]).split() == ["True", "True"]


def test_the_engine_exits_like_sys_exit_without_the_module_teardown():
    probe = """
        import atexit, sys, threading, time
        from hsm_snake.engine import snakemake_cli

        class TornDown:
            def __del__(self):
                print("torn down", flush=True)

        kept = TornDown()
        atexit.register(lambda: print("atexit ran"))
        threading.Thread(target=lambda: (time.sleep(0.2), print("thread done"))).start()
        print("buffered", end=" ")
        snakemake_cli.exit_now(int(sys.argv[1]) if sys.argv[1].isdigit() else sys.argv[1])
        """
    for code, status in (("0", 0), ("3", 3), ("a message", 1)):
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(probe), code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": ""},
            timeout=120,
        )
        assert done.returncode == status
        assert done.stdout.split() == ["buffered", "thread", "done", "atexit", "ran"]
        assert done.stderr == ("a message\n" if status == 1 else "")
