"""Snakemake finds executor plugins by this package-name prefix (``executor: hsm-ssh``); the
executor lives in hsm_snake/executors/ssh/."""

from hsm_snake.executors.ssh.executor import Executor, ExecutorSettings, common_settings

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
