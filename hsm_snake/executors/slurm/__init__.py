"""Slurm through snakemake-executor-plugin-slurm: sacct verdicts, MaxSubmitJobs room, sbatch records."""
