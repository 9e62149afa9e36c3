"""Snakemake script: one HELM suite from every model's runs, helm-summarize, summary.csv."""

import sys

from stylized_dpo.evals.helm import SUITE, HelmConfig
from stylized_dpo.evals.helm_intervals import add_intervals_to_csv
from stylized_dpo.evals.helm_summary import summarize

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
models = list(snakemake.params.models)
summarize(
    run_dirs=dict(zip(models, snakemake.input.runs, strict=True)),
    model_dirs=dict(zip(models, snakemake.input.models, strict=True)),
    out_dir=snakemake.output.helm,
    summary_csv=snakemake.output.summary,
    config=HelmConfig.from_dict(snakemake.params.helm),
)
# Bootstrap intervals over instances, from the per-instance stats of the suite just summarised.
add_intervals_to_csv(
    snakemake.output.summary,
    f"{snakemake.output.helm}/benchmark_output/runs/{SUITE}",
    n_resamples=snakemake.params.statistics["n_bootstrap"],
    seed=snakemake.params.seed,
)
