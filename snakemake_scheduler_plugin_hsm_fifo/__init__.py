"""Snakemake finds scheduler plugins by this package-name prefix; the scheduler lives in hsm_snake."""

from hsm_snake.engine.fifo_scheduler import Scheduler

__all__ = ["Scheduler"]
