"""PBS Pro / OpenPBS / Torque backend: job scripts (script.py), qstat parsing (qstat.py), how a
job ended (accounting.py) and the Snakemake executor (executor.py, imported only by Snakemake
through the shim package ``snakemake_executor_plugin_hsm_pbs``)."""
