"""Drives Snakemake: its command line, the sweep lock, the FIFO scheduler plugin, recovery after a
kill, leftovers of killed runs, cancel, and the backends' Snakemake options."""
