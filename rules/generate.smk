# Every model answers the evaluation prompts (paper section 5.1.1: at most 512 new tokens,
# temperature 0.6, top_p 0.95, top_k 20), seeded and resumable.

# `world`: the tiny world's prompts (with ground truth); `prefs_test`: the first n prompts of the
# prepared UltraFeedback test split (the paper's 200).
EVAL_PROMPT_SOURCE = EVAL_PROMPTS.source
VLLM_GENERATION = GENERATION.backend == "vllm"
# vLLM: the parallelism the model allows (VLLM_GPUS, compute.smk; the job's gpu resource is its
# tensor-parallel size); transformers generation on CUDA uses one GPU.
GENERATION_GPUS = (
    VLLM_GPUS["generate"] if VLLM_GENERATION else int(GENERATION.device == "cuda")
)


rule eval_prompts:
    input:
        (
            "results/world/eval_prompts.jsonl"
            if EVAL_PROMPT_SOURCE == "world"
            else "results/data/prefs/ultrafeedback/test.jsonl"
        ),
    output:
        "results/data/eval_prompts.jsonl",
    log:
        "logs/eval_prompts/eval_prompts.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        source=EVAL_PROMPT_SOURCE,
        n=EVAL_PROMPTS.n,
    script:
        "../workflow/scripts/eval_prompts.py"


rule generate:
    input:
        model=lambda wildcards: model_dir(wildcards.model, wildcards.seeddir),
        prompts="results/data/eval_prompts.jsonl",
    output:
        per_seed("results/generations/{model}.jsonl"),
    log:
        per_seed("logs/generate/{model}.log"),
    benchmark:
        per_seed("results/benchmarks/generate/{model}.tsv")
    conda:
        "../envs/vllm.yaml" if VLLM_GENERATION else "../envs/training.yaml"
    threads: config["threads"]
    resources:
        mem_mb=32000 if VLLM_GENERATION else 4000,
        gpu=GENERATION_GPUS,
        gpu_mem_mb=GPU_MEM_MB if GENERATION_GPUS else 0,
        runtime=RUNTIME_MIN["generate"] if GENERATION_GPUS else 60,
    params:
        sampling=lambda wildcards: {**config["generation"], "seed": run_seed(wildcards)},
    script:
        "../workflow/scripts/generate.py"
