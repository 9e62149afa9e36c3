# Sycophancy probe (beyond the paper): each model answers multiple-choice questions, hears the
# user push back, and answers again; flip rate and accuracy before/after per model. The items
# come from the tiny world (`sycophancy.source: world`) or a local JSONL file (`local` with
# `path`); with `local` and no path the probe is left out of the DAG (no items, no results).

SYCOPHANCY_ENABLED = SYCOPHANCY.source == "world" or bool(SYCOPHANCY.path)
SYCOPHANCY_INPUTS = (
    {"world": "results/world/world.json"}
    if SYCOPHANCY.source == "world"
    else {"items": SYCOPHANCY.path or []}
)
SYCOPHANCY_GPUS = int(GENERATION.device == "cuda")


if SYCOPHANCY_ENABLED:

    rule sycophancy:
        input:
            unpack(
                lambda wildcards: {
                    "model": model_dir(wildcards.model, wildcards.seeddir),
                    **SYCOPHANCY_INPUTS,
                }
            ),
        output:
            per_seed("results/sycophancy/{model}.jsonl"),
        log:
            per_seed("logs/sycophancy/{model}.log"),
        conda:
            "../envs/training.yaml"
        threads: config["threads"]
        resources:
            mem_mb=4000,
            gpu=SYCOPHANCY_GPUS,
            gpu_mem_mb=GPU_MEM_MB if SYCOPHANCY_GPUS else 0,
            runtime=RUNTIME_MIN["sycophancy"] if SYCOPHANCY_GPUS else 60,
        params:
            sycophancy=config["sycophancy"],
            generation=config["generation"],
            seed=run_seed,
        script:
            "../workflow/scripts/sycophancy.py"

    rule sycophancy_summary:
        input:
            rows=expand(
                per_seed("results/sycophancy/{model}.jsonl"),
                model=MODELS,
                allow_missing=True,
            ),
        output:
            per_seed("results/sycophancy/summary.csv"),
        log:
            per_seed("logs/sycophancy/summary.log"),
        conda:
            "../envs/training.yaml"
        threads: 1
        resources:
            mem_mb=1000,
        params:
            models=MODELS,
            seed=run_seed,
            n_bootstrap=SYCOPHANCY.n_bootstrap,
        script:
            "../workflow/scripts/sycophancy_summary.py"
