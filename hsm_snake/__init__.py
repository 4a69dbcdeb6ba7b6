"""hsm-snake: hyper-parameter sweeps planned by hsm-snake and scheduled by Snakemake."""

__version__ = "0.1.0"
