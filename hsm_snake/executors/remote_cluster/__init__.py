"""A cluster reached over SSH (Slurm: ``hsm-remote-slurm``, PBS: ``hsm-remote-pbs``): hsm-snake's own executor."""
