# Supervised fine-tuning (paper Table 1): `sft` from the base model on the SFT chats, and, with
# `sft_on_chosen.enabled`, `sft-chosen` from `sft` on UltraFeedback's chosen answers.
# mem_mb is computed from the job's inputs (model size, shard tokens) by
# stylized_dpo.resources.train_mem_mb once they exist.
from stylized_dpo.resources import train_mem_mb


rule sft:
    input:
        unpack(get_sft_input),
    output:
        model=directory(per_seed("results/models/{sft_model}")),
        metrics=per_seed("results/train/{sft_model}/metrics.jsonl"),
    log:
        per_seed("logs/sft/{sft_model}.log"),
    benchmark:
        per_seed("results/benchmarks/{sft_model}.tsv")
    conda:
        "../envs/training.yaml"
    threads: config["threads"]
    resources:
        mem_mb=lambda wildcards, input: train_mem_mb(
            "sft",
            input.model,
            [input.train, input.test],
            get_sft_params(wildcards),
            GPUS,
        ),
        gpu=GPUS,
        gpu_mem_mb=GPU_MEM_MB,
        runtime=RUNTIME_MIN["sft"],
    params:
        sft=get_sft_params,
    script:
        "../workflow/scripts/sft.py"
