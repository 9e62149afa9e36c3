# `snakemake plan --cores 1 --configfile config/paper.yaml`: tokens, GPU hours and API dollars of every GPU
# and API stage, printed without running any other job (stylized_dpo.plan). It reads the shard
# cards that already exist, so it has no inputs to build and runs each time it is asked for.
rule plan:
    log:
        "logs/plan.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        config=lambda wildcards: config,
        models=lambda wildcards: MODELS,
        pref_datasets=lambda wildcards: PREF_DATASETS,
        styles=lambda wildcards: STYLES,
        job_gpus=lambda wildcards: rule_gpus(workflow.rules),
        runtime_min=RUNTIME_MIN,
    script:
        "../workflow/scripts/plan.py"
