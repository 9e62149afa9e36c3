# DPO of the SFT model on each preference dataset (paper Table 2), with reference log-probs
# computed once per (reference model, dataset, split); see DPO_RUNS in common.smk. Each scored
# sequence is cached by content (results/cache/ref_logps): a style set shares UltraFeedback's
# prompts and rejected answers and a -tonal set is a subset of its set, so each is scored after
# the set it reuses and computes only its new sequences.
# mem_mb is computed from each job's inputs by stylized_dpo.resources.train_mem_mb.
from stylized_dpo.resources import train_mem_mb


rule reference_logps:
    input:
        unpack(get_reference_logps_input),
    output:
        logps=per_seed(
            "results/data/prefs/{dataset}/ref_logps_{split}{ref_suffix}.parquet"
        ),
    log:
        per_seed("logs/reference_logps/{dataset}_{split}{ref_suffix}.log"),
    benchmark:
        per_seed("results/benchmarks/reference_logps/{dataset}_{split}{ref_suffix}.tsv")
    conda:
        "../envs/training.yaml"
    threads: config["threads"]
    resources:
        mem_mb=lambda wildcards, input: train_mem_mb(
            "reference_logps",
            input.model,
            [input.pairs],
            get_reference_logps_params(wildcards),
            1,
        ),
        gpu=1,
        gpu_mem_mb=GPU_MEM_MB,
        runtime=RUNTIME_MIN["reference_logps"],
    params:
        dpo=get_reference_logps_params,
        cache="results/cache/ref_logps",
    script:
        "../workflow/scripts/reference_logps.py"


rule dpo:
    input:
        unpack(get_dpo_input),
    output:
        model=directory(per_seed("results/models/{dpo_model}")),
        metrics=per_seed("results/train/{dpo_model}/metrics.jsonl"),
    log:
        per_seed("logs/dpo/{dpo_model}.log"),
    benchmark:
        per_seed("results/benchmarks/dpo/{dpo_model}.tsv")
    conda:
        "../envs/training.yaml"
    threads: config["threads"]
    resources:
        mem_mb=lambda wildcards, input: train_mem_mb(
            "dpo",
            input.model,
            [input.train, input.test],
            get_dpo_params(wildcards),
            GPUS,
        ),
        gpu=GPUS,
        gpu_mem_mb=GPU_MEM_MB,
        runtime=RUNTIME_MIN["dpo"],
    params:
        dpo=get_dpo_params,
    script:
        "../workflow/scripts/dpo.py"
