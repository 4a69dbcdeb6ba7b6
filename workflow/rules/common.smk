from hsm_snake.config.schema import validate
from hsm_snake.layout.index import load_index

# The same schema check as snakemake.utils.validate, without its first step: that imports
# pandas (~0.25 s, in every run and every cluster job) to see whether the config is a DataFrame.
validate(dict(config), "workflow_config", file="the workflow config (--config)")

if config.get("sweep_dir"):
    workflow.workdir(config["sweep_dir"])

SWEEP = load_index(".")
