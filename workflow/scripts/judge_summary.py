"""Snakemake script: mean, std and bootstrap CI of each judge criterion per model."""

import sys

from stylized_dpo.evals.judge import summarize

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
table = summarize(
    models=snakemake.params.models,
    scores_paths=snakemake.input.scores,
    run_paths=snakemake.input.runs,
    out_path=snakemake.output[0],
    seed=snakemake.params.seed,
    n_bootstrap=snakemake.params.n_bootstrap,
)
print(table.to_string(index=False))
