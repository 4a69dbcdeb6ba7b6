"""A sweep's tasks: expansion of grid/paired, task identity and numbering, creating the sweep
directory, finding a sweep, what is missing from it, and migrating v1 sweeps."""
