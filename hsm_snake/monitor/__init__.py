"""Reading a sweep's state for people: scan, progress, results, errors (triage), HTML report, plots,
recent sweeps. Never imports Snakemake."""
