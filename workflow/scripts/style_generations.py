"""Snakemake script: style measures of every model's generations (+ reference accuracy)."""

import sys

from stylized_dpo.evals.style import style_table

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
inputs = snakemake.input
table = style_table(
    models=snakemake.params.models,
    generation_paths=inputs.generations,
    out_path=snakemake.output[0],
    prompts_path=inputs.get("prompts"),
    world_path=inputs.get("world"),
)
print(table.to_string(index=False))
