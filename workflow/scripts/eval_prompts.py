"""Snakemake script: the evaluation prompts every model answers (first n of the source)."""

import sys

from stylized_dpo.evals.generate import prepare_eval_prompts

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
n = prepare_eval_prompts(
    snakemake.params.source, snakemake.params.n, snakemake.input[0], snakemake.output[0]
)
print(f"{n} eval prompts from {snakemake.params.source}")
