"""Snakemake finds executor plugins by this package-name prefix (``executor: hsm-remote-slurm``);
the executor lives in hsm_snake/executors/remote_cluster/."""

from hsm_snake.executors.remote_cluster.executor import ExecutorSettings, common_settings
from hsm_snake.executors.remote_cluster.executor import SlurmExecutor as Executor

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
