# Judging the generations: the LLM judge's four criteria per model and their summary (paper
# Appendix B.1, Figure 3), win rates against a baseline (paper Table 3) and the style of the
# answers. Uses EVAL_PROMPT_SOURCE from generate.smk.

JUDGE_BACKEND = JUDGE.backend
WIN_RATE_BACKEND = WIN_RATES.backend
# Only the tiny world's eval prompts carry the facts that the reference backends check and the
# style table's accuracy columns need.
GROUND_TRUTH = (
    {"prompts": "results/data/eval_prompts.jsonl", "world": "results/world/world.json"}
    if EVAL_PROMPT_SOURCE == "world"
    else {}
)
if "reference" in (JUDGE_BACKEND, WIN_RATE_BACKEND) and not GROUND_TRUTH:
    raise ValueError(
        "the reference judge and win-rate backends score against the tiny world's ground "
        "truth: they need data.eval_prompts.source = world"
    )
JUDGE_EXTRA_INPUTS = (
    GROUND_TRUTH if JUDGE_BACKEND == "reference" else {"template": JUDGE.prompt}
)
WIN_RATE_EXTRA_INPUTS = {
    "reference": GROUND_TRUTH,
    "pairwise_judge": {"template": WIN_RATES.prompt},
}.get(WIN_RATE_BACKEND, {})
REWARD_MODEL_GPUS = int(
    WIN_RATE_BACKEND == "reward_model" and WIN_RATES.device == "cuda"
)


rule judge:
    input:
        unpack(
            lambda wildcards: {
                "generations": per_seed(
                    f"results/generations/{wildcards.model}.jsonl", wildcards.seeddir
                ),
                **JUDGE_EXTRA_INPUTS,
            }
        ),
    output:
        scores=per_seed("results/judge/{model}.jsonl"),
        run=per_seed("results/judge/{model}.run.json"),
    log:
        per_seed("logs/judge/{model}.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        judge=config["judge"],
    script:
        "../workflow/scripts/judge.py"


rule judge_summary:
    input:
        scores=expand(
            per_seed("results/judge/{model}.jsonl"), model=MODELS, allow_missing=True
        ),
        runs=expand(
            per_seed("results/judge/{model}.run.json"),
            model=MODELS,
            allow_missing=True,
        ),
    output:
        per_seed("results/judge/summary.csv"),
    log:
        per_seed("logs/judge/summary.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        models=MODELS,
        seed=run_seed,
        n_bootstrap=JUDGE.n_bootstrap,
    script:
        "../workflow/scripts/judge_summary.py"


rule win_rates:
    input:
        unpack(
            lambda wildcards: {
                "generations": expand(
                    per_seed("results/generations/{model}.jsonl", wildcards.seeddir),
                    model=MODELS,
                ),
                **WIN_RATE_EXTRA_INPUTS,
            }
        ),
    output:
        csv=per_seed("results/judge/win_rates.csv"),
        run=per_seed("results/judge/win_rates.run.json"),
    log:
        per_seed("logs/judge/win_rates.log"),
    conda:
        "../envs/training.yaml"
    threads: config["threads"]
    resources:
        mem_mb=32000 if REWARD_MODEL_GPUS else 4000,
        gpu=REWARD_MODEL_GPUS,
        gpu_mem_mb=GPU_MEM_MB if REWARD_MODEL_GPUS else 0,
        runtime=RUNTIME_MIN["win_rates"] if REWARD_MODEL_GPUS else 60,
    params:
        win_rates=config["win_rates"],
        models=MODELS,
        seed=run_seed,
    script:
        "../workflow/scripts/win_rates.py"


rule style_generations:
    input:
        unpack(
            lambda wildcards: {
                "generations": expand(
                    per_seed("results/generations/{model}.jsonl", wildcards.seeddir),
                    model=MODELS,
                ),
                **GROUND_TRUTH,
            }
        ),
    output:
        per_seed("results/style/generations.csv"),
    log:
        per_seed("logs/style/generations.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        models=MODELS,
    script:
        "../workflow/scripts/style_generations.py"
