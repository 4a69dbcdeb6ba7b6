from snakemake.utils import validate

from hsm_snake.sweep_index import load_index

validate(config, "../schemas/workflow_config.schema.json")

if config.get("sweep_dir"):
    workflow.workdir(config["sweep_dir"])

SWEEP = load_index(".")
