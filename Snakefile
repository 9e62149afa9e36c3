# stylized-dpo: how the style of preference data shapes a language model after DPO.
# `snakemake --cores 2` runs the embedded default (config/config.yaml);
# `snakemake --configfile config/paper.yaml --profile profiles/slurm` runs the paper's study.
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/compute.smk"
include: "rules/data.smk"
include: "rules/base.smk"
include: "rules/sft.smk"
include: "rules/synth.smk"
include: "rules/dpo.smk"
include: "rules/generate.smk"
include: "rules/judge.smk"
include: "rules/sycophancy.smk"
include: "rules/helm.smk"
include: "rules/report.smk"
include: "rules/statistics.smk"
include: "rules/plan.smk"


# Every artefact of the study, each list taken from the rules that make it.
rule all:
    default_target: True
    input:
        # The paper's tables and figures, and the figures beyond them (each seed's).
        REPORT_TARGETS,
        SYCOPHANCY_FIGURE if SYCOPHANCY_ENABLED else [],
        # The style measures of the preference data and of each model's generations.
        rules.style_table.output,
        every_seed(rules.style_generations.output),
        # Beyond the paper: the sycophancy probe, HELM over every model, the statistics.
        every_seed(rules.sycophancy_summary.output) if SYCOPHANCY_ENABLED else [],
        [
            summary
            for suite in HELM_SUITES
            if suite
            for summary in every_seed(
                [rules.helm_summarize.output.summary], suite=suite
            )
        ],
        every_seed(rules.significance.output),
        every_seed(rules.helm_ci.output),
        rules.style_bias_report.output,
        # With several seeds: every table value across them, mean and interval; Tables 3-8,
        # the headline numbers, the comparisons and the paper's claims across seeds.
        (
            [*SEED_REPORT_TARGETS, *rules.significance_seeds.output]
            if len(SEEDS) > 1
            else []
        ),


# Rules without a GPU run where Snakemake runs, under every executor: profiles/slurm and
# profiles/runpod send only the GPU jobs away (rules/compute.smk).
LOCAL_RULES = cpu_rules(workflow.rules)
logger.debug(f"local rules (no GPU): {' '.join(LOCAL_RULES)}")
workflow.localrules(*LOCAL_RULES)
# The environment of each GPU job travels with it (profiles/runpod picks the image by it).
for _rule in workflow.rules:
    if _rule.name not in LOCAL_RULES:
        _rule.resources.setdefault("software_env", software_env(_rule))
# A local run never holds more GPUs at once than the machine has (or --resources gpu=N gives).
GPU_LIMIT = apply_local_gpu_limit()


# One handler (Snakemake keeps only the last `onstart` it reads); every problem named at once.
onstart:
    problems = []
    for check in (check_api_keys_of_planned_jobs, check_software_environments):
        try:
            check()
        except (ValueError, WorkflowError) as problem:
            problems.append(str(problem))
    if problems:
        raise WorkflowError("\n".join(problems))
