"""Snakemake script: judge one model's generations (LLM judge or the reference stand-in)."""

import sys

from stylized_dpo.evals.judge import JudgeConfig, judge_model

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
inputs = snakemake.input
judge_model(
    generations_path=inputs.generations,
    out_path=snakemake.output.scores,
    run_path=snakemake.output.run,
    config=JudgeConfig.from_dict(dict(snakemake.params.judge)),
    prompts_path=inputs.get("prompts"),
    world_path=inputs.get("world"),
    template_path=inputs.get("template"),
)
