# DPO of the SFT model on each preference dataset (paper Table 2), with reference log-probs
# computed once per split by the SFT model.


rule reference_logps:
    input:
        model="results/models/sft",
        pairs="results/data/prefs/{dataset}/{split}.jsonl",
    output:
        logps="results/data/prefs/{dataset}/ref_logps_{split}.parquet",
    log:
        "logs/reference_logps/{dataset}_{split}.log",
    benchmark:
        "results/benchmarks/reference_logps/{dataset}_{split}.tsv"
    conda:
        "../envs/training.yaml"
    threads: config["threads"]
    resources:
        mem_mb=8000,
        gpu=1,
        gpu_mem_mb=GPU_MEM_MB,
        runtime=RUNTIME_MIN["reference_logps"],
    params:
        dpo=get_reference_logps_params,
    script:
        "../workflow/scripts/reference_logps.py"


rule dpo:
    input:
        model="results/models/sft",
        train="results/data/prefs/{dataset}/train.jsonl",
        test="results/data/prefs/{dataset}/test.jsonl",
        ref_train="results/data/prefs/{dataset}/ref_logps_train.parquet",
        ref_test="results/data/prefs/{dataset}/ref_logps_test.parquet",
    output:
        model=directory("results/models/dpo-{dataset}"),
        metrics="results/train/dpo-{dataset}/metrics.jsonl",
    log:
        "logs/dpo/{dataset}.log",
    benchmark:
        "results/benchmarks/dpo/{dataset}.tsv"
    conda:
        "../envs/training.yaml"
    threads: config["threads"]
    resources:
        mem_mb=8000,
        gpu=GPUS,
        gpu_mem_mb=GPU_MEM_MB,
        runtime=RUNTIME_MIN["dpo"],
    params:
        dpo=get_dpo_params,
        checkpoint_dir=lambda wildcards: f"results/train/dpo-{wildcards.dataset}/checkpoint",
    script:
        "../workflow/scripts/dpo.py"
