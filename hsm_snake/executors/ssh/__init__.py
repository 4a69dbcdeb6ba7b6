"""hsm-snake's SSH pool executor (``executor: hsm-ssh``): runs the task runner itself on remote
hosts over ssh, syncing the runner, the project and the task folder with rsync."""
