"""Snakemake script: flip rate and accuracy before/after pushback, one row per model."""

import sys

from stylized_dpo.evals.sycophancy import summarize

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
table = summarize(
    models=snakemake.params.models,
    paths=snakemake.input.rows,
    out_path=snakemake.output[0],
    seed=snakemake.params.seed,
    n_bootstrap=snakemake.params.n_bootstrap,
)
print(table.to_string(index=False))
