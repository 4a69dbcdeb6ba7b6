# Plain-Snakemake entry point, from the repository root:
#   snakemake --cores 2 --directory sweeps/outputs/<sweep_id>
#   snakemake --cores 2 --config sweep_dir=sweeps/outputs/<sweep_id>
# It reuses the workflow packaged with hsm-snake (module + use rule keeps its default target).
from hsm_snake.package_data import workflow_dir


module hsm_snake_workflow:
    snakefile:
        str(workflow_dir() / "Snakefile")
    config:
        config


use rule * from hsm_snake_workflow
