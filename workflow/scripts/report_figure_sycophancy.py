"""Snakemake script: accuracy before/after a user's push-back and the flip rate per model."""

import sys

from stylized_dpo.report.sycophancy_figure import figure_sycophancy

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
data = figure_sycophancy(
    snakemake.input.summary,
    snakemake.output.pdf,
    snakemake.output.png,
    styles=params.styles,
    base_name=params.base_name,
    label=params.label,
)
print(data.to_string(index=False))
