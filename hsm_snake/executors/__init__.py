"""Each backend's own code: Slurm, PBS and SSH (their executor plugins, scripts and accounting;
Slurm's limits and sbatch records), and what they share (bounded scheduler-tool calls, plugin
settings, the cluster job script's set-up and runner command: jobscript.py)."""
