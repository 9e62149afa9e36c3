"""Snakemake script: every HELM family and scenario of every model as one heatmap."""

import sys

from stylized_dpo.report.helm_figure import figure_helm

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
values = figure_helm(
    snakemake.input.summary,
    snakemake.output.pdf,
    snakemake.output.png,
    styles=params.styles,
    base_name=params.base_name,
    scenarios=params.scenarios,
    label=params.label,
)
print(f"HELM figure: {values.shape[0]} models x {values.shape[1]} columns drawn")
