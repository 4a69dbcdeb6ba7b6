"""Snakemake finds executor plugins by this package-name prefix (``executor: hsm-pbs``); the
executor lives in hsm_snake/executors/pbs/."""

from hsm_snake.executors.pbs.executor import Executor, ExecutorSettings, common_settings

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
