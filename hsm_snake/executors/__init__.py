"""Each backend's own code: Slurm (accounting, limits, sbatch records), PBS and SSH (their executor
plugins, scripts and accounting), and what they share (bounded scheduler-tool calls, plugin settings)."""
