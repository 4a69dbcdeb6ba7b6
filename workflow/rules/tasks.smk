from hsm_snake.runner.escalation import rule_resources
from hsm_snake.runner.task import run_task


localrules:
    all,


# The target is the runner's completion marker, written only after a clean exit. stdout.log,
# stderr.log and status.yaml are deliberately undeclared: Snakemake deletes a job's log: files
# before it reruns the job, and the runner keeps each earlier attempt's logs in attempts/<n>/.
rule task:
    output:
        "tasks/{task}/.completed",
    wildcard_constraints:
        task=r"task_\d+",
    resources:
        # Per backend (--config backend=slurm); memory and time grow after a task ran out of them.
        **rule_resources(SWEEP.resources.get(config.get("backend"), {}), SWEEP.retry, SWEEP.paths),
    run:
        run_task(f"tasks/{wildcards.task}")
