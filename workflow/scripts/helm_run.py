"""Snakemake script: helm-run on one model (core scenarios, offline) into its own folder."""

import sys

from stylized_dpo.evals.helm import HelmConfig
from stylized_dpo.evals.helm_run import run_model

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
run_model(
    model=snakemake.wildcards.model,
    model_dir=snakemake.input.model,
    data_dir=snakemake.input.get("data"),
    out_dir=snakemake.output.run,
    config=HelmConfig.from_dict(snakemake.params.helm),
    threads=snakemake.threads,
)
