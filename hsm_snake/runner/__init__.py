"""Runs one task on any host: `python -m hsm_snake.runner TASK_DIR` or `run_task` from the workflow.

Standard library, PyYAML and hsm_snake.layout only: SSH hosts get this package and layout, nothing else."""
