"""``python -m hsm_snake.snakemake_cli ARGS``: Snakemake's own command line, minus one limit.

Snakemake's CLI always installs a job rate limiter (default 100 jobs/s). On the local executor
it protects nothing, and it costs a timer thread and an extra scheduling round for every round
(~5,000 threads for 500 short tasks). This entry point parses the arguments with Snakemake's
own parser (so profiles work exactly as with ``snakemake``) and drops the limiter when jobs run
on this machine. Everything else is Snakemake's ``main``.
"""

from __future__ import annotations

import sys

from snakemake import cli


def parse_args_without_local_rate_limit(argv):
    parser, args = _snakemake_parse_args(argv)
    if args.executor in (None, "local") and "--max-jobs-per-timespan" not in (argv or []):
        args.max_jobs_per_timespan = None
    return parser, args


_snakemake_parse_args = cli.parse_args


def main(argv: list[str] | None = None) -> None:
    cli.parse_args = parse_args_without_local_rate_limit
    cli.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
