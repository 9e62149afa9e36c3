# Supervised fine-tuning of the base model (paper Table 1).


rule sft:
    input:
        model="results/models/base",
        train="results/data/sft/train.jsonl",
        test="results/data/sft/test.jsonl",
    output:
        model=directory("results/models/sft"),
        metrics="results/train/sft/metrics.jsonl",
    log:
        "logs/sft/sft.log",
    benchmark:
        "results/benchmarks/sft.tsv"
    conda:
        "../envs/training.yaml"
    threads: config["threads"]
    resources:
        mem_mb=8000,
        gpu=GPUS,
        gpu_mem_mb=GPU_MEM_MB,
        runtime=RUNTIME_MIN["sft"],
    params:
        sft=config["sft"],
        seed=config["seed"],
        checkpoint_dir="results/train/sft/checkpoint",
    script:
        "../workflow/scripts/sft.py"
