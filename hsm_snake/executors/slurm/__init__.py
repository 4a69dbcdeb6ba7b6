"""Slurm: the executor hsm-slurm (executor.py, a subclass of snakemake-executor-plugin-slurm's whose
jobs run the task runner), sacct verdicts, MaxSubmitJobs room, sbatch records."""
