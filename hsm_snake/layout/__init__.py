"""The sweep directory on disk: every path in it (paths), atomic records (records), a task's
status.yaml (status) and the task index (index).

Imported on compute nodes and SSH hosts: standard library and PyYAML only."""
