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
                "generations": f"results/generations/{wildcards.model}.jsonl",
                **JUDGE_EXTRA_INPUTS,
            }
        ),
    output:
        scores="results/judge/{model}.jsonl",
        run="results/judge/{model}.run.json",
    log:
        "logs/judge/{model}.log",
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
        scores=expand("results/judge/{model}.jsonl", model=MODELS),
        runs=expand("results/judge/{model}.run.json", model=MODELS),
    output:
        "results/judge/summary.csv",
    log:
        "logs/judge/summary.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        models=MODELS,
        seed=config["seed"],
        n_bootstrap=JUDGE.n_bootstrap,
    script:
        "../workflow/scripts/judge_summary.py"


rule win_rates:
    input:
        unpack(
            lambda wildcards: {
                "generations": expand(
                    "results/generations/{model}.jsonl", model=MODELS
                ),
                **WIN_RATE_EXTRA_INPUTS,
            }
        ),
    output:
        csv="results/judge/win_rates.csv",
        run="results/judge/win_rates.run.json",
    log:
        "logs/judge/win_rates.log",
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
        seed=config["seed"],
    script:
        "../workflow/scripts/win_rates.py"


rule style_generations:
    input:
        unpack(
            lambda wildcards: {
                "generations": expand(
                    "results/generations/{model}.jsonl", model=MODELS
                ),
                **GROUND_TRUTH,
            }
        ),
    output:
        "results/style/generations.csv",
    log:
        "logs/style/generations.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        models=MODELS,
    script:
        "../workflow/scripts/style_generations.py"
