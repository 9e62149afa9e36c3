# Style rewrites of UltraFeedback's chosen answers (paper section 3.2), one job per style and
# split, and the stylometric table of all preference sets.
# vLLM: the parallelism the generator allows (VLLM_GPUS, compute.smk): the job's gpu resource
# is its tensor_parallel_size (a different synth.vllm.tensor_parallel_size would be a second switch).
SYNTH_VLLM = SYNTH.backend == "vllm"
SYNTH_TP = SYNTH.vllm.tensor_parallel_size
if SYNTH_VLLM and SYNTH_TP not in (1, VLLM_GPUS["style_rewrite"]):
    raise ValueError(
        f"synth.vllm.tensor_parallel_size ({SYNTH_TP}) differs from the parallelism chosen for "
        f"{SYNTH.model} ({VLLM_GPUS['style_rewrite']} GPUs): leave it at 1 and set "
        f"compute.vllm_models.<model>.tensor_parallel"
    )


rule style_rewrite:
    input:
        pairs="results/data/prefs/ultrafeedback/{split}.jsonl",
        # only the rows the policy trains on (its length-filtered shard) are rewritten
        shard="results/data/prefs/ultrafeedback/tokens/{split}.parquet",
        style="config/prompts/styles/{style}.yaml",
    output:
        pairs="results/data/prefs/{style}/{split}.jsonl",
        card="results/data/prefs/{style}/{split}_synth.json",
    log:
        "logs/style_rewrite/{style}_{split}.log",
    benchmark:
        "results/benchmarks/style_rewrite/{style}_{split}.tsv"
    conda:
        ("../envs/vllm.yaml" if SYNTH_VLLM else "../envs/training.yaml")
    threads: config["threads"]
    resources:
        mem_mb=32000 if SYNTH_VLLM else 4000,
        gpu=VLLM_GPUS["style_rewrite"],
        gpu_mem_mb=GPU_MEM_MB if SYNTH_VLLM else 0,
        runtime=RUNTIME_MIN["style_rewrite"] if SYNTH_VLLM else 60,
    params:
        synth=config["synth"],
        seed=config["seed"],
        cache=lambda wildcards: f"results/cache/synth/{wildcards.style}/{wildcards.split}.jsonl",
    script:
        "../workflow/scripts/style_rewrite.py"


rule style_table:
    input:
        expand(
            "results/data/prefs/{dataset}/{split}.jsonl",
            dataset=PREF_DATASETS,
            split=SPLITS,
        ),
    output:
        "results/data/prefs/style_measures.csv",
    log:
        "logs/style_table/style_table.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        datasets=PREF_DATASETS,
        splits=SPLITS,
    script:
        "../workflow/scripts/style_table.py"
