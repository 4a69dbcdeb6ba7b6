"""``python -m hsm_snake.snakemake_cli ARGS``: Snakemake's own command line, minus two delays.

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

- snakemake-executor-plugin-slurm 2.8 submits array jobs only once a full chunk of a rule's
  jobs has arrived (or all that are ready); jobs handed over in smaller numbers are set aside
  and never submitted. Snakemake hands over as many jobs as slots are free, so once the queue is
  full (``--jobs``, e.g. capped by MaxSubmitJobs) and slots free up one by one, every new job
  was dropped and the run waited forever (seen on the test cluster with ``--jobs 3``). With the
  plugin's count of still-ready jobs taken as 0, it submits what it is given: an array when
  there are two or more, else a single job.

Everything else is Snakemake's ``main``.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType


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


def submit_every_array_chunk_at_once() -> None:
    try:
        import snakemake_executor_plugin_slurm as slurm_plugin
    except ImportError:
        return
    if hasattr(slurm_plugin, "pending_jobs_for_rule"):
        slurm_plugin.pending_jobs_for_rule = lambda dag, rule_name: 0


def main(argv: list[str] | None = None) -> None:
    cli = import_snakemake_cli()
    submit_every_array_chunk_at_once()
    snakemake_parse_args = cli.parse_args

    def parse_args_without_local_rate_limit(args):
        parser, parsed = snakemake_parse_args(args)
        if parsed.executor in (None, "local") and "--max-jobs-per-timespan" not in (args or []):
            parsed.max_jobs_per_timespan = None
        return parser, parsed

    cli.parse_args = parse_args_without_local_rate_limit
    cli.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
