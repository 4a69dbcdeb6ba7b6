"""The cluster class of each scheduler a remote's login node may run (its ``backend:``)."""

from __future__ import annotations

from hsm_snake.executors.remote_cluster.cluster import Cluster
from hsm_snake.executors.remote_cluster.pbs import PbsCluster
from hsm_snake.executors.remote_cluster.slurm import SlurmCluster

BY_SCHEDULER: dict[str, type[Cluster]] = {kind.scheduler: kind for kind in (SlurmCluster, PbsCluster)}
