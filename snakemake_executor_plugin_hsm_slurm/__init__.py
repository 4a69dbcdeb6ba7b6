"""Snakemake finds executor plugins by this package-name prefix (``executor: hsm-slurm``); the
executor lives in hsm_snake/executors/slurm/executor.py."""

from hsm_snake.executors.slurm.executor import Executor, ExecutorSettings, common_settings

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
