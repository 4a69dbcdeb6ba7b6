"""A Slurm cluster reached over SSH: hsm-snake's own executor (``hsm-remote-slurm``)."""
