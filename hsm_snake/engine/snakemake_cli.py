"""``python -m hsm_snake.engine.snakemake_cli ARGS``: Snakemake's own command line, minus two delays.

- Snakemake's CLI always installs a job rate limiter (default 100 jobs/s). On the local executor
  it protects nothing, and it costs a timer thread and an extra scheduling round for every round
  (~5,000 threads for 500 short tasks). The arguments are parsed with Snakemake's own parser (so
  profiles work exactly as with ``snakemake``) and the limiter is dropped when jobs run on this
  machine.
- Snakemake imports every installed executor plugin at start-up, and
  snakemake-executor-plugin-slurm 2.8 runs ``scontrol show config`` (10 s timeout) while its
  module is imported, only to word a help text. With a Slurm client installed and no controller
  answering (a workstation off the cluster network, a test bed that is down), every run, local
  ones included, waited 10 s. ``SLURM_CONF`` points at an empty file during that import, so the
  query fails at once; the plugin asks again, with the real configuration, when it runs jobs.

- snakemake-executor-plugin-slurm 2.8 (``executor: slurm``; hsm-slurm submits task jobs itself)
  submits array jobs only once a full chunk of a rule's
  jobs has arrived (or all that are ready); jobs handed over in smaller numbers are set aside
  and never submitted. Snakemake hands over as many jobs as slots are free, so once the queue is
  full (``--jobs``, e.g. capped by MaxSubmitJobs) and slots free up one by one, every new job
  was dropped and the run waited forever (seen on the test cluster with ``--jobs 3``). With the
  plugin's count of still-ready jobs taken as 0, it submits what it is given: an array when
  there are two or more, else a single job.

- Snakemake imports every installed executor plugin at start-up; the Slurm plugin's import
  (pandas among others) costs ~0.3 s of CPU on every run. When the executor named on the command
  line or in the ``--profile`` folder is not Slurm, the Slurm plugins are left out.

- snakemake-executor-plugin-slurm 2.8 imports its efficiency report module at import, and with
  it pandas and numpy (~0.5 s of CPU at the start of every Slurm run, before the first job is
  submitted). The report is written only with ``--slurm-efficiency-report``. When the Slurm
  plugin may be imported, a stand-in for that module comes first: its
  ``create_efficiency_report`` (and any other name asked of it) imports the real module then.

- Snakemake reads the workflow's own files (Snakefile, rules) through smart_open, which can
  read URLs too; importing it (and boto3 with it, when installed) costs ~0.15 s of every run.
  Local files are opened and their paths split here the way smart_open does it; URLs and git
  sources still go through smart_open.

- Snakemake's plugin registries (executors, schedulers, storage, reports, loggers) each list every
  folder of ``sys.path`` with ``pkgutil.iter_modules()`` to find their plugins: five scans of
  site-packages per start. The listing is taken once.

- With a job rate limiter (``--max-jobs-per-timespan``, which hsm-snake passes to cluster runs
  to keep arrays within MaxArraySize), every scheduling round starts a ``threading.Timer`` of the
  timespan (1 s) to look again; the timer is not a daemon, so the engine's exit waited for the
  last one: up to 1 s at the end of every run. The timers are daemons here: one that fires after
  the scheduler ended only releases a semaphore nobody waits on.

- The engine's interpreter, once Snakemake has ended (its jobs, threads and atexit handlers
  done), skips the teardown of its ~1,500 modules: ~1 s of every run's end on the test machine.

- hsm-snake stops its engine with SIGINT (Snakemake's clean stop: it cancels cluster jobs). A
  process started in the background by a shell (``nohup``, ``&`` in a script) inherits SIGINT
  ignored, and Python then installs no KeyboardInterrupt handler: the stop did nothing, and a
  stopped run on Slurm left its jobs queued. The engine always takes SIGINT as Ctrl-C.

Everything else is Snakemake's ``main``. Each patch checks that its target is where the tested
versions (constraints.txt) have it; when an upgrade moved it, the run goes on without that fix and
says so on stderr. tests/test_snakemake_patches.py fails in that case, and when a fix stops having
its effect.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import pkgutil
import signal
import sys
import threading
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import yaml

LocalUri = namedtuple("LocalUri", ["scheme", "uri_path"])

SLURM_PLUGINS = (
    "snakemake_executor_plugin_slurm",
    "snakemake_executor_plugin_slurm_jobstep",
    "snakemake_executor_plugin_hsm_slurm",
)
SLURM_EXECUTORS = ("slurm", "slurm-jobstep", "hsm-slurm")
EFFICIENCY_REPORT = "snakemake_executor_plugin_slurm.efficiency_report"


def target_moved(target: str, consequence: str) -> None:
    """Say that an upgrade of Snakemake or its Slurm plugin moved what a patch here changes."""
    print(
        f"hsm-snake: warning: {target} is not where the tested versions have it (see constraints.txt); "
        f"running without hsm-snake's fix: {consequence}",
        file=sys.stderr,
    )


def executor_of(args: list[str]) -> str | None:
    """The executor a Snakemake command line asks for (``--executor``, else its ``--profile``'s)."""
    executor = profile = None
    for i, arg in enumerate(args):
        name, _, inline = arg.partition("=")
        value = inline if inline else (args[i + 1] if i + 1 < len(args) else None)
        if name in ("--executor", "-e"):
            executor = value
        elif name == "--profile":
            profile = value
    if executor or not profile:
        return executor
    try:
        config = yaml.safe_load((Path(profile) / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    return str(config.get("executor") or "local") if isinstance(config, dict) else None


def leave_out_slurm_plugins() -> None:
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    collect = getattr(ExecutorPluginRegistry, "collect_plugins", None)
    if collect is None:
        target_moved("ExecutorPluginRegistry.collect_plugins", "the Slurm plugin is imported by every run (~0.3 s)")
        return

    def collect_without_slurm(self) -> None:
        iter_modules = pkgutil.iter_modules

        def without_slurm(*args, **kwargs) -> Iterator[pkgutil.ModuleInfo]:
            return (info for info in iter_modules(*args, **kwargs) if info.name not in SLURM_PLUGINS)

        pkgutil.iter_modules = without_slurm
        try:
            collect(self)
        finally:
            pkgutil.iter_modules = iter_modules

    ExecutorPluginRegistry.collect_plugins = collect_without_slurm


def list_sys_path_modules_once() -> None:
    iter_modules = pkgutil.iter_modules
    found: list[pkgutil.ModuleInfo] | None = None

    def listed_once(path=None, prefix=""):
        nonlocal found
        if path is not None or prefix:
            return iter_modules(path, prefix)
        if found is None:
            found = list(iter_modules())
        return iter(found)

    pkgutil.iter_modules = listed_once


def import_efficiency_report_on_use() -> None:
    """The Slurm plugin's efficiency report module (pandas, numpy) is imported when the report is
    written, not with the plugin."""
    if EFFICIENCY_REPORT in sys.modules or importlib.util.find_spec(EFFICIENCY_REPORT.split(".")[0]) is None:
        return
    stand_in = ModuleType(EFFICIENCY_REPORT, "Imports the real module at its first use (hsm-snake).")

    def real_module() -> ModuleType:
        if sys.modules.get(EFFICIENCY_REPORT) is stand_in:
            del sys.modules[EFFICIENCY_REPORT]
        return importlib.import_module(EFFICIENCY_REPORT)

    def create_efficiency_report(*args, **kwargs):
        return real_module().create_efficiency_report(*args, **kwargs)

    def any_other_name(name: str):
        if name.startswith("__"):  # what the import system asks of a module (__path__, …)
            raise AttributeError(name)
        return getattr(real_module(), name)

    stand_in.create_efficiency_report = create_efficiency_report
    stand_in.__getattr__ = any_other_name
    sys.modules[EFFICIENCY_REPORT] = stand_in


def import_snakemake_cli() -> ModuleType:
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = os.devnull
    try:
        from snakemake import cli
    finally:
        if saved is None:
            del os.environ["SLURM_CONF"]
        else:
            os.environ["SLURM_CONF"] = saved
    return cli


def read_local_sources_without_smart_open() -> None:
    from snakemake import sourcecache

    parse_uri = getattr(sourcecache, "parse_uri", None)
    open_source = getattr(getattr(sourcecache, "SourceCache", None), "_open", None)
    local_file = getattr(sourcecache, "LocalSourceFile", None)
    if parse_uri is None or open_source is None or local_file is None:
        target_moved("snakemake.sourcecache", "workflow files are read through smart_open (~0.15 s per run)")
        return

    def local_path(path_or_uri: object) -> str | None:
        text = os.fspath(path_or_uri) if isinstance(path_or_uri, os.PathLike) else path_or_uri
        return os.path.expanduser(text) if isinstance(text, str) and "://" not in text else None

    def parse_local_path_first(path_or_uri):
        path = local_path(path_or_uri)
        return parse_uri(path_or_uri) if path is None else LocalUri("file", path)

    def open_local_file_first(self, source_file, mode, encoding=None):
        if type(source_file) is local_file:
            path = local_path(source_file.get_path_or_uri(secret_free=False))
            if path is not None:
                try:
                    return open(path, mode, encoding=None if "b" in mode else encoding)
                except OSError:
                    pass  # Snakemake's own way words the error (WorkflowError naming the file)
        return open_source(self, source_file, mode, encoding=encoding)

    sourcecache.parse_uri = parse_local_path_first
    sourcecache.SourceCache._open = open_local_file_first


def submit_every_array_chunk_at_once() -> None:
    try:
        import snakemake_executor_plugin_slurm as slurm_plugin
    except ImportError:
        return
    if not hasattr(slurm_plugin, "pending_jobs_for_rule"):
        target_moved(
            "snakemake_executor_plugin_slurm.pending_jobs_for_rule",
            "array jobs handed over one by one may never be submitted (a run that waits forever)",
        )
        return
    slurm_plugin.pending_jobs_for_rule = lambda dag, rule_name: 0


def reevaluation_timers_as_daemons() -> None:
    from snakemake.scheduling import job_scheduler

    scheduler = getattr(job_scheduler, "JobScheduler", None)
    if not hasattr(scheduler, "_schedule_reevalutation"):
        target_moved("JobScheduler._schedule_reevalutation", "a run's end may wait up to 1 s for a rate-limit timer")
        return

    def schedule_reevaluation(self, delay) -> None:
        timer = threading.Timer(delay, self._open_jobs.release)
        timer.daemon = True
        timer.start()

    scheduler._schedule_reevalutation = schedule_reevaluation


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = sys.argv[1:] if argv is None else argv
    executor = executor_of(args)
    list_sys_path_modules_once()
    if executor is not None and executor not in SLURM_EXECUTORS:
        leave_out_slurm_plugins()
    else:
        import_efficiency_report_on_use()
    cli = import_snakemake_cli()
    read_local_sources_without_smart_open()
    if executor is None or executor == "slurm":
        submit_every_array_chunk_at_once()
    drop_local_rate_limit(cli)
    reevaluation_timers_as_daemons()
    try:
        cli.main(args)
    except SystemExit as stop:
        exit_now(stop.code)
    exit_now(0)


def exit_now(code: object) -> NoReturn:
    """Exit as ``sys.exit(code)`` does (non-daemon threads joined, atexit handlers run, output
    flushed), without the interpreter's teardown of every module."""
    shutdown_threads = getattr(threading, "_shutdown", None)
    if shutdown_threads is None:
        target_moved("threading._shutdown", "the engine's exit takes ~1 s more")
        sys.exit(code)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    shutdown_threads()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code or 0)


def drop_local_rate_limit(cli: ModuleType) -> None:
    snakemake_parse_args = cli.parse_args

    def parse_args_without_local_rate_limit(args):
        parser, parsed = snakemake_parse_args(args)
        if parsed.executor in (None, "local") and "--max-jobs-per-timespan" not in (args or []):
            if not hasattr(parsed, "max_jobs_per_timespan"):
                target_moved("the --max-jobs-per-timespan option", "local runs keep Snakemake's job rate limiter")
                return parser, parsed
            parsed.max_jobs_per_timespan = None
        return parser, parsed

    cli.parse_args = parse_args_without_local_rate_limit


if __name__ == "__main__":
    main()
