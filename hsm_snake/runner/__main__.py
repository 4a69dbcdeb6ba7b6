"""``python -m hsm_snake.runner TASK_DIR``: run one task as a process of its own."""

import sys

from hsm_snake.runner.task import main

sys.exit(main())
